"""``--web-config-file``: TLS (a self-signed certificate made by the openssl CLI), client
certificates, basic auth with bcrypt hashes, bad files refused at start, and a real Prometheus
scraping over HTTPS with credentials."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from telhelpers import free_port

from sip_otel.config import ConfigError, load_settings
from sip_otel.errors import Reasons
from sip_otel.stats import PipelineStats
from sip_otel.telemetry import Telemetry, TelemetryOptions
from sip_otel.telemetry.server import CACHE_S
from sip_otel.telemetry.webconfig import WebConfigError, load_web_config

OPENSSL = shutil.which("openssl")
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl CLI")
PASSWORD = "s3cret pass"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    for name in ("server", "client"):
        subprocess.run(
            [
                str(OPENSSL),
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={name}",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(d / f"{name}.key"),
                "-out",
                str(d / f"{name}.crt"),
            ],
            check=True,
            capture_output=True,
        )
    return d


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")


def start(config: Path) -> Telemetry:
    stats = PipelineStats()
    stats.requests["BYE"] = 5
    tel = Telemetry(
        stats,
        Reasons(),
        lambda: {},
        TelemetryOptions(http_host="127.0.0.1", http_port=0, web_config_file=str(config)),
    )
    tel.start_http()
    tel.set_ready()
    return tel


def get(
    url: str, ctx: ssl.SSLContext | None = None, user: str | None = None, password: str = ""
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def client_ctx(certs: Path, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "server.crt"))
    if with_cert:
        ctx.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
    return ctx


@pytest.fixture
def tls_auth(certs: Path, tmp_path: Path) -> Iterator[Telemetry]:
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n"
        f"  cert_file: {certs / 'server.crt'}\n"
        f"  key_file: {certs / 'server.key'}\n"
        "basic_auth_users:\n"
        f"  prometheus: '{hashed(PASSWORD)}'\n"
    )
    tel = start(config)
    yield tel
    tel.shutdown()


def test_https_with_basic_auth(tls_auth: Telemetry, certs: Path) -> None:
    base = f"https://127.0.0.1:{tls_auth.http_port}"
    ctx = client_ctx(certs)
    status, headers, body = get(f"{base}/metrics", ctx, "prometheus", PASSWORD)
    assert status == 200 and b"\nsip_exporter_bye_total 5.0\n" in body
    status, headers, _ = get(f"{base}/metrics", ctx)
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="sip-otel"'
    assert get(f"{base}/metrics", ctx, "prometheus", "wrong")[0] == 401
    assert get(f"{base}/metrics", ctx, "nobody", PASSWORD)[0] == 401
    assert get(f"{base}/", ctx)[0] == 401
    assert get(f"{base}/health", ctx)[:3:2] == (200, b"ok\n")  # probes need no credentials
    # plain HTTP to the TLS port: no answer, a counted tls_error
    with socket.create_connection(("127.0.0.1", tls_auth.http_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            answer = s.recv(4096)
        assert b"sip_exporter" not in answer
    time.sleep(CACHE_S * 1.5)  # past the exposition cache's window
    _, _, body = get(f"{base}/metrics", ctx, "prometheus", PASSWORD)
    assert b'sip_otel_http_client_errors_total{kind="unauthorized"} 4.0\n' in body
    assert b'sip_otel_http_client_errors_total{kind="tls_error"} 1.0\n' in body


def test_client_certificate_required(certs: Path, tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    (tmp_path / "server.crt").write_bytes((certs / "server.crt").read_bytes())
    (tmp_path / "server.key").write_bytes((certs / "server.key").read_bytes())
    (tmp_path / "ca.crt").write_bytes((certs / "client.crt").read_bytes())
    config.write_text(  # relative paths: to the file's directory
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_ca_file: ca.crt\n  min_version: TLS13\n"
    )
    tel = start(config)
    try:
        url = f"https://127.0.0.1:{tel.http_port}/metrics"
        assert get(url, client_ctx(certs, with_cert=True))[0] == 200
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            get(url, client_ctx(certs))
        old = client_ctx(certs, with_cert=True)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            get(url, old)
    finally:
        tel.shutdown()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  foo: 1\n",
            "unknown key tls_server_config.foo",
        ),
        ("basic_auth_user:\n  a: b\n", "unknown key basic_auth_user"),
        (
            "tls_server_config:\n  cipher_suites: [x]\n",
            "tls_server_config.cipher_suites is not supported",
        ),
        ("basic_auth_users:\n  a: plain\n", "basic_auth_users.a is not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: a.crt\n", "needs both cert_file and key_file"),
        (
            "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
            "cannot load",
        ),
        ("tls_server_config: [\n", "not YAML"),
        ("- a\n", "must be a mapping"),
    ],
)
def test_bad_files_are_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "web.yml"
    config.write_text(text)
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(config))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_setting_checks_the_file_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users:\n  a: plain\n")
    monkeypatch.setenv("SIP_EXPORTER_WEB_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(
        "bad configuration: SIP_EXPORTER_WEB_CONFIG_FILE (--web-config-file): web config "
    )
    config.write_text(f"basic_auth_users:\n  a: '{hashed('x')}'\n")
    assert load_settings().agent_config().web_config_file == str(config)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus server binary not installed")
def test_prometheus_scrapes_over_https_with_credentials(
    tls_auth: Telemetry, certs: Path, tmp_path: Path
) -> None:
    from test_telemetry_prometheus_server import wait_value

    (tmp_path / "password").write_text(PASSWORD)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: sip-otel\n    scheme: https\n"
        f"    tls_config:\n      ca_file: {certs / 'server.crt'}\n"
        "    basic_auth:\n      username: prometheus\n"
        f"      password_file: {tmp_path / 'password'}\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{tls_auth.http_port}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_value(f"http://127.0.0.1:{port}", "sip_exporter_bye_total", 5)
        wait_value(f"http://127.0.0.1:{port}", 'up{job="sip-otel"}', 1)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
