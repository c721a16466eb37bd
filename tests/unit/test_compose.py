"""docker-compose.yml and deploy/: the Docker stack agrees with the code and the local stack.

No Docker engine is needed: the file is read with PyYAML, and `docker compose config -q`
(which validates without an engine) runs where the docker client and its compose plugin are
installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry

from custpulse.settings import Settings
from custpulse.streams.churn_trainer import TrainerMetrics
from custpulse.streams.metrics import create_metrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = {"kafka", "redis", "worker", "trainer", "generator", "prometheus", "grafana"}
DASHBOARD_METRICS = {
    "custpulse_events_in_total",
    "custpulse_events_accepted_total",
    "custpulse_events_deadlettered_total",
    "custpulse_events_duplicate_total",
    # throughput, lag, latency, dead letters, segment sizes, alerts, model quality (issue 14)
    "custpulse_consumer_lag_messages",
    "custpulse_event_lag_seconds_bucket",
    "custpulse_alert_lag_seconds_bucket",
    "custpulse_watermark_lag_seconds",
    "custpulse_segment_customers",
    "custpulse_segment_changes_total",
    "custpulse_campaign_triggers_total",
    "custpulse_churn_model_roc_auc",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings() with nothing from this process's environment: the code's own defaults."""
    for name in list(os.environ):
        if name in {"KAFKA_BOOTSTRAP", "REDIS_URL"} or name.upper().startswith("CUSTPULSE_"):
            monkeypatch.delenv(name)
    return Settings()


def published_ports(service: dict[str, Any]) -> dict[int, tuple[int, str | None]]:
    """Map host port -> (container port, host ip or None), short and long port syntax."""
    result: dict[int, tuple[int, str | None]] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if entry.get("published") is None:
                continue
            result[int(entry["published"])] = (int(entry["target"]), entry.get("host_ip"))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 1:
            continue  # container port only: published on a random host port
        host_ip = parts[0] if len(parts) == 3 else None
        result[int(parts[-2])] = (int(parts[-1]), host_ip)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source on the host, target in the container) of every bind mount of a service."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                mounts.append((entry["source"], entry["target"]))
            continue
        source, target = str(entry).split(":")[:2]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "volume":
                names.append(entry["source"])
            continue
        source = str(entry).split(":")[0]
        if ":" in str(entry) and not source.startswith((".", "/", "~")):
            names.append(source)
    return names


def mounted_file(service: dict[str, Any], target: str) -> Path:
    for source, mount_target in bind_mounts(service):
        if mount_target == target:
            return ROOT / source
    raise AssertionError(f"nothing is mounted at {target}")


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# (a) the file's shape -------------------------------------------------------------------


def test_all_services_present(services: dict[str, dict[str, Any]]) -> None:
    assert SERVICES <= set(services), f"missing: {sorted(SERVICES - set(services))}"


def test_kafka_is_the_official_kraft_image(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.0")
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka:19092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_host_ports_published(services: dict[str, dict[str, Any]]) -> None:
    assert published_ports(services["kafka"]).get(9092, (None,))[0] == 9092
    assert published_ports(services["redis"]).get(6379, (None,))[0] == 6379


def test_worker_environment(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "generator"):
        env = environment(services[name])
        assert env["KAFKA_BOOTSTRAP"] == "kafka:19092", name
        assert env["REDIS_URL"] == "redis://redis:6379/0", name
        assert env["CUSTPULSE_TOPIC_PREFIX"] == "cp.", name
    assert services["worker"]["command"] == ["worker"]
    assert services["generator"]["command"][:2] == ["generate", "--to-topics"]


def test_prometheus_scrapes_the_worker(services: dict[str, dict[str, Any]]) -> None:
    config_file = mounted_file(services["prometheus"], "/etc/prometheus/prometheus.yml")
    assert config_file.is_file()
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    port = environment(services["worker"])["CUSTPULSE_METRICS_PORT"]
    assert f"worker:{port}" in targets
    assert port == "9108"


def test_mounted_paths_exist(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source, _target in bind_mounts(service):
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: volume {volume} is not declared"
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (ROOT / context / dockerfile).is_file(), f"{name}: no {dockerfile}"


def test_grafana_provisioning(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    provisioning = mounted_file(grafana, "/etc/grafana/provisioning")
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert [d["url"] for d in datasources] == ["http://prometheus:9090"]
    providers = yaml.safe_load(
        (provisioning / "dashboards" / "custpulse.yml").read_text(encoding="utf-8")
    )["providers"]
    dashboards_dir = mounted_file(grafana, providers[0]["options"]["path"])
    assert list(dashboards_dir.glob("*.json"))
    assert environment(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] == "true"


def test_dashboard_uses_exported_metrics() -> None:
    dashboard = json.loads(
        (ROOT / "deploy/grafana/dashboards/custpulse.json").read_text(encoding="utf-8")
    )
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"custpulse_[a-z_]+", target["expr"])
    }
    registry = CollectorRegistry()
    create_metrics(registry)
    TrainerMetrics(registry)  # the trainer process's families (model quality)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    exported = {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    assert DASHBOARD_METRICS <= used
    assert used <= exported, f"not exported by the worker: {sorted(used - exported)}"


# (b) docker compose's own validation ------------------------------------------------------


def test_docker_compose_config_is_valid() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker client not installed")
    plugin = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if plugin.returncode != 0:
        # The docker CLI without its compose plugin cannot validate either.
        pytest.skip("docker client not installed (no `docker compose` plugin)")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        print(result.stderr)
    assert result.returncode == 0, result.stderr


# (c) same addresses as the local stack ----------------------------------------------------


def test_ports_agree_with_settings_defaults(
    services: dict[str, dict[str, Any]], default_settings: Settings
) -> None:
    assert default_settings.kafka_bootstrap == "127.0.0.1:9092"
    assert default_settings.redis_url == "redis://127.0.0.1:6379/0"

    kafka_host, kafka_port = host_port(default_settings.kafka_bootstrap)
    kafka_ports = published_ports(services["kafka"])
    assert kafka_port in kafka_ports
    container_port, host_ip = kafka_ports[kafka_port]
    assert container_port == kafka_port
    assert host_ip in (None, "0.0.0.0", kafka_host)
    # What the broker tells host clients must be the address they bootstrapped from.
    advertised = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"://{default_settings.kafka_bootstrap}" in advertised

    redis = urlsplit(default_settings.redis_url)
    redis_ports = published_ports(services["redis"])
    assert redis.port in redis_ports
    container_port, host_ip = redis_ports[redis.port]
    assert container_port == 6379
    assert host_ip in (None, "0.0.0.0", redis.hostname)
    assert urlsplit(environment(services["worker"])["REDIS_URL"]).port == 6379
