"""The container, compose, Kubernetes and systemd examples, checked as far as this machine can
without a container engine or a cluster:

* Dockerfile: two stages, no kernel headers and no compiler in the runtime image, the filter
  source inside at the path the agent reads, explicit capabilities (never ``--privileged``);
* compose: the five services, every bind-mounted file exists, the agent's capabilities and
  settings, Prometheus' config accepted by ``promtool check config`` with the rule files;
* Kubernetes: every manifest valid against the Kubernetes OpenAPI schemas (strict: unknown
  fields fail) of 1.29 to 1.37 (package kubernetes-validate), the agent's host network,
  capabilities, header mounts and /health probes, the collector's config equal to
  examples/otel-collector.yaml;
* systemd: ``systemd-analyze verify`` with no warning;
* every ``SIP_EXPORTER_*`` variable any example sets is a real setting.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from sip_otel.config import check_environment

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
COMPOSE = EXAMPLES / "compose"
K8S = EXAMPLES / "kubernetes"
UNIT = EXAMPLES / "systemd" / "sip-otel.service"
COLLECTOR_VERSION = "0.152.0"
CAPS = ["BPF", "PERFMON", "NET_RAW"]


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_dockerfile_is_lean_and_unprivileged() -> None:
    text = (REPO / "Dockerfile").read_text()
    build, runtime = _stages(text)
    assert build.startswith("debian:12-slim AS build")
    assert "gcc" in build and "python3-dev" in build
    runtime_installs = " ".join(
        line for line in runtime.splitlines() if not line.lstrip().startswith("#")
    )
    for heavy in ("linux-headers", "gcc", "python3-dev", "libc6-dev", "clang"):
        assert heavy not in runtime_installs, heavy
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    # the filter source: pyproject installs it under <prefix>/share/sip-otel/bpf
    # with every header it includes (so_media_map.h, so_rtp.h: the filter's media part)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["data-files"]["share/sip-otel/bpf"]
    assert sorted(shipped) == sorted(
        f"bpf/{f.name}" for f in (REPO / "bpf").iterdir() if f.suffix in (".c", ".h")
    )
    assert "SIP_OTEL_BPF_DIR=/opt/venv/share/sip-otel/bpf" in runtime
    assert "COPY bpf ./bpf" in build
    run_lines = [line for line in text.splitlines() if "docker run" in line or "--cap" in line]
    assert run_lines and not any("--privileged" in line for line in run_lines)
    assert "--cap-drop ALL --cap-add BPF --cap-add PERFMON --cap-add NET_RAW" in text
    assert "--cap-add SYS_ADMIN" in text  # the older-Docker variant is documented


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return doc


def test_compose_services_and_files() -> None:
    doc = _compose()
    services = doc["services"]
    assert set(services) == {"agent", "collector", "prometheus", "tempo", "grafana"}
    named = set(doc["volumes"])
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                if source.startswith("."):
                    assert (COMPOSE / source).exists(), f"{name}: {source} missing"
            else:
                assert source in named, f"{name}: volume {source} not declared"
        for dep in svc.get("depends_on", []):
            assert dep in services
    agent = services["agent"]
    assert agent["network_mode"] == "host"
    assert agent["cap_drop"] == ["ALL"] and agent["cap_add"] == CAPS
    assert "privileged" not in agent
    assert "/lib/modules:/lib/modules:ro" in agent["volumes"]
    assert (COMPOSE / agent["build"]["context"] / agent["build"]["dockerfile"]).is_file()
    assert services["collector"]["image"].endswith(":" + COLLECTOR_VERSION)
    assert "../otel-collector.yaml:/etc/otelcol/config.yaml:ro" in services["collector"]["volumes"]
    grafana = services["grafana"]["volumes"]
    assert "../grafana/sip-otel.json:/var/lib/grafana/dashboards/sip-otel.json:ro" in grafana
    provider = yaml.safe_load(
        (COMPOSE / "grafana/provisioning/dashboards/dashboards.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load(
        (COMPOSE / "grafana/provisioning/datasources/datasources.yaml").read_text()
    )
    assert {s["type"] for s in sources["datasources"]} == {"prometheus", "tempo"}
    tempo = yaml.safe_load((COMPOSE / "tempo.yaml").read_text())
    receiver = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    collector = yaml.safe_load((EXAMPLES / "otel-collector.yaml").read_text())
    assert receiver.endswith(":4317") and collector["exporters"]["otlp/tempo"]["endpoint"] == (
        "tempo:4317"
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_compose_prometheus_config(tmp_path: Path) -> None:
    doc = _compose()
    mounts = dict(
        v.split(":")[:2] for v in doc["services"]["prometheus"]["volumes"] if v.startswith(".")
    )
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    local = []
    for path in config["rule_files"]:  # container paths -> the mounted files here
        (source,) = [s for s, target in mounts.items() if target == path]
        local.append(str((COMPOSE / source).resolve()))
    config["rule_files"] = local
    assert {j["job_name"] for j in config["scrape_configs"]} >= {"sip-otel"}
    out = tmp_path / "prometheus.yml"
    out.write_text(yaml.safe_dump(config))
    proc = subprocess.run(["promtool", "check", "config", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out.append((path.name, doc))
    return out


@pytest.mark.parametrize("version", ["1.29.0", "1.31.0", "1.33.0", "1.35.0", "1.37.0"])
def test_kubernetes_manifests_against_openapi_schemas(version: str) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (test extra)"
    )
    kinds = []
    for name, doc in _manifests():
        kv.validate(doc, version, strict=True)  # raises ValidationError naming the field
        kinds.append((name, doc["kind"]))
    assert sorted(kinds) == [
        ("namespace.yaml", "Namespace"),
        ("otel-collector.yaml", "ConfigMap"),
        ("otel-collector.yaml", "Deployment"),
        ("otel-collector.yaml", "Service"),
        ("sip-otel-agent.yaml", "ConfigMap"),
        ("sip-otel-agent.yaml", "DaemonSet"),
    ]


def test_kubernetes_schema_check_catches_a_typo() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed")
    (ds,) = [doc for _, doc in _manifests() if doc["kind"] == "DaemonSet"]
    ds["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kv.ValidationError, match="hostNetwrok"):
        kv.validate(ds, "1.37.0", strict=True)


def test_kubernetes_agent_and_collector() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _manifests()}
    pod = docs[("DaemonSet", "sip-otel-agent")]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"], "add": CAPS}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": 2112}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/lib/modules", "/usr/src"):
        assert mounts[path]["readOnly"] is True
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == path
    settings = docs[("ConfigMap", "sip-otel-agent")]["data"]
    assert settings["SIP_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.sip-otel.svc:4317"
    check_environment(settings)  # every key is a real setting
    embedded = yaml.safe_load(docs[("ConfigMap", "otel-collector")]["data"]["config.yaml"])
    assert embedded == yaml.safe_load((EXAMPLES / "otel-collector.yaml").read_text())
    deployment = docs[("Deployment", "otel-collector")]["spec"]["template"]["spec"]
    assert deployment["containers"][0]["image"].endswith(":" + COLLECTOR_VERSION)
    assert f"Collector {COLLECTOR_VERSION}" in (EXAMPLES / "otel-collector.yaml").read_text()


def test_examples_set_only_real_settings() -> None:
    agent_env = _compose()["services"]["agent"]["environment"]
    check_environment({k: str(v) for k, v in agent_env.items()})
    text = (REPO / "Dockerfile").read_text() + UNIT.read_text()
    names = set(re.findall(r"\b(SIP_(?:EXPORTER|OTEL)_[A-Z_]+)", text))
    assert names
    assert check_environment(dict.fromkeys(names, "x")) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at a stand-in, change nothing else
    stub = tmp_path / "sip-otel"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert "ExecStart=/opt/sip-otel/venv/bin/sip-otel run" in text
    unit = tmp_path / "sip-otel.service"
    unit.write_text(text.replace("/opt/sip-otel/venv/bin/sip-otel", str(stub)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # no unknown key, no bad value


def test_systemd_unit_grants_only_the_capture_capabilities() -> None:
    lines = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line[:40])
    assert lines["CapabilityBoundingSet"] == "CAP_BPF CAP_PERFMON CAP_NET_RAW"
    assert lines["AmbientCapabilities"] == "CAP_BPF CAP_PERFMON CAP_NET_RAW"
    assert lines["RestartPreventExitStatus"] == "2"  # configuration errors do not loop
