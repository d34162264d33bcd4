/* SPDX-License-Identifier: Apache-2.0
 * Per-stage cost of the compiled pipeline on a capture file, in one process, from the same C
 * sources as the extension (built and run by benchmarks/bench_replay.py):
 *
 *   read    pcap/pcapng record iteration only
 *   decode  + frame decoding (Ethernet/VLAN/IP/UDP/TCP, reassembly, framing) -> payloads
 *   parse   + the SIP parser -> messages
 *   track   + message counters, transactions, dialogs, registrations, RFC 6076 (the pipeline)
 *
 * Each stage runs the file ``runs`` times; the median is printed in ns per SIP message, so a
 * stage's own cost is its figure minus the previous one.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "so_pipeline.h"

static uint64_t g_frames, g_payloads, g_msgs;
static so_net *g_net;
static so_parser *g_parser;
static uint64_t g_reasons[SO_N_REASONS], g_evictions[SO_N_EVICTIONS];

static void count_msg(void *ctx, so_msg *m) { g_msgs++; }
static void on_payload_parse(void *ctx, const so_payload *p) {
    g_payloads++;
    so_parse_payload(g_parser, p, g_reasons, count_msg, NULL);
}
static void on_payload_count(void *ctx, const so_payload *p) { g_payloads++; }
static void frame_count(void *ctx, int64_t ts, uint32_t lt, const uint8_t *d, size_t n, uint32_t i) {
    g_frames++;
}
static void frame_decode(void *ctx, int64_t ts, uint32_t lt, const uint8_t *d, size_t n, uint32_t i) {
    g_frames++;
    so_net_feed(g_net, ts, lt, d, n);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double run(int stage, const uint8_t *buf, size_t size) {
    so_pcap pc;
    memset(&pc, 0, sizeof(pc));
    if (so_pcap_open(&pc, buf, size)) {
        fprintf(stderr, "not a capture\n");
        exit(1);
    }
    so_net_config nc;
    memset(&nc, 0, sizeof(nc));
    so_net_limits_default(&nc.limits);
    nc.sip_ports[5060 >> 3] |= 1 << (5060 & 7);
    nc.sip_ports[5061 >> 3] |= 1 << (5061 & 7);
    nc.looks_like_sip = so_looks_like_sip;
    nc.sip_framer = &so_sip_framer_ops;
    nc.on_payload = stage == 1 ? on_payload_count : on_payload_parse;
    nc.reasons = g_reasons;
    nc.evictions = g_evictions;
    so_pipeline *p = NULL;
    if (stage == 1 || stage == 2) {
        g_net = so_net_new(&nc);
        g_parser = so_parser_new();
    } else if (stage == 3) {
        so_pipeline_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        so_net_limits_default(&cfg.limits);
        memcpy(cfg.sip_ports, nc.sip_ports, sizeof(cfg.sip_ports));
        so_track_config_default(&cfg.track);
        p = so_pipeline_new(&cfg);
    }
    g_frames = g_payloads = g_msgs = 0;
    double t0 = now_s();
    so_pcap_status st;
    do {
        if (stage == 0)
            st = so_pcap_next(&pc, 65536, frame_count, NULL);
        else if (stage == 3)
            st = so_pipeline_pcap(p, &pc, 65536);
        else
            st = so_pcap_next(&pc, 65536, frame_decode, NULL);
    } while (st == SO_PCAP_MORE);
    if (stage == 3) {
        so_pipeline_finish(p, p->last_ts);
        g_msgs = p->stats.messages;
    }
    double t = now_s() - t0;
    if (stage == 3)
        so_pipeline_free(p);
    if (stage == 1 || stage == 2) {
        so_net_free(g_net);
        so_parser_free(g_parser);
    }
    so_pcap_close(&pc);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CAPTURE [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(argv[1]);
        return 1;
    }
    const uint8_t *buf = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (buf == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* message count from a full run */
    run(3, buf, st.st_size);
    uint64_t msgs = g_msgs;
    const char *names[] = {"read", "decode", "parse", "track"};
    double prev = 0;
    printf("%s: %llu SIP messages, median of %d runs (ns per message)\n", argv[1],
           (unsigned long long)msgs, runs);
    for (int stage = 0; stage < 4; stage++) {
        double t[64];
        for (int i = 0; i < runs && i < 64; i++)
            t[i] = run(stage, buf, st.st_size);
        qsort(t, runs, sizeof(double), cmp_d);
        double ns = t[runs / 2] * 1e9 / (double)(msgs ? msgs : 1);
        printf("  %-7s %8.1f cumulative  %8.1f this stage\n", names[stage], ns, ns - prev);
        prev = ns;
    }
    return 0;
}
