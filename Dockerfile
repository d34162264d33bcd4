# sip-otel agent image. Run privileged on the host network, like sip-exporter:
#   docker run --rm --privileged --network host -v /lib/modules:/lib/modules:ro \
#     -v /usr/src:/usr/src:ro -e SIP_EXPORTER_INTERFACE=eth0 sip-otel
#   curl http://localhost:2112/metrics
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python3-bpfcc \
        python3-dev gcc libc6-dev linux-headers-amd64 iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sip-otel
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY bpf ./bpf
RUN python3 -m venv /opt/venv \
 && ln -s /usr/lib/python3/dist-packages/bcc /opt/venv/lib/python3.11/site-packages/bcc \
 && /opt/venv/bin/pip install --no-cache-dir .
ENV SIP_EXPORTER_HTTP_PORT=2112 SIP_OTEL_BPF_DIR=/opt/sip-otel/bpf
EXPOSE 2112
HEALTHCHECK CMD python3 -c "import urllib.request,os;urllib.request.urlopen('http://127.0.0.1:%s/health'%os.environ.get('SIP_EXPORTER_HTTP_PORT','2112'))"
ENTRYPOINT ["/opt/venv/bin/sip-otel"]
CMD ["run"]
