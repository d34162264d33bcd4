# sip-otel agent image (Debian 12, CPython 3.11, bcc from Debian).
#
# Two stages: the builder compiles the C core (gcc, Python headers, Cython) into a wheel; the
# runtime image has Python, bcc and the wheel, and no compiler or kernel headers.
#
# Kernel headers are NOT baked in: bcc compiles the socket filter at start against the headers
# of the kernel the container runs on, which the image cannot know (Debian's linux-headers-amd64
# matches only Debian's own kernel, and the documented run mounts the host's /lib/modules and
# /usr/src over them anyway). Mount the host's headers read-only; without them the agent falls
# back to AF_PACKET (classic BPF, CAP_NET_RAW only) and says so in its first log line and in
# sip_otel_build_info{capture="afpacket"}. The filter source is inside the image
# (/opt/venv/share/sip-otel/bpf, SIP_OTEL_BPF_DIR).
#
# Run (host network, explicit capabilities, never --privileged):
#   Docker >= 20.10 (kernel >= 5.8):
#     docker run -d --name sip-otel --network host \
#       --cap-drop ALL --cap-add BPF --cap-add PERFMON --cap-add NET_RAW \
#       -v /lib/modules:/lib/modules:ro -v /usr/src:/usr/src:ro \
#       -e SIP_EXPORTER_INTERFACE=eth0 sip-otel
#   Docker < 20.10 (no CAP_BPF/CAP_PERFMON names; its seccomp profile allows bpf(2) only with
#   CAP_SYS_ADMIN): replace "--cap-add BPF --cap-add PERFMON" by "--cap-add SYS_ADMIN".
#   AF_PACKET only (no eBPF): "--cap-drop ALL --cap-add NET_RAW" and no header mounts.
#   curl http://localhost:2112/metrics
# docs/deployment.md explains each capability and the other runtimes (Podman, Kubernetes).

FROM debian:12-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python3-dev \
        gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY src ./src
COPY bpf ./bpf
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip wheel --no-cache-dir --no-deps -w /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/*.whl)[web]"

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
# python3-bpfcc brings bcc and its LLVM/clang libraries (used only by the short-lived loader
# child, never mapped by the agent itself: docs/capture.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-bpfcc ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
RUN ln -s /usr/lib/python3/dist-packages/bcc /opt/venv/lib/python3.11/site-packages/bcc \
 && /opt/venv/bin/python -c "import sip_otel._core, bcc"
COPY LICENSE /usr/share/doc/sip-otel/LICENSE
ENV SIP_EXPORTER_HTTP_PORT=2112 SIP_OTEL_BPF_DIR=/opt/venv/share/sip-otel/bpf
EXPOSE 2112
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD ["/opt/venv/bin/python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('SIP_EXPORTER_WEB_CONFIG_FILE')); u.urlopen('%s://127.0.0.1:%s/health' % ('https' if tls else 'http', os.environ.get('SIP_EXPORTER_HTTP_PORT', '2112')), timeout=2, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["/opt/venv/bin/sip-otel"]
CMD ["run"]
