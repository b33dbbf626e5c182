"""docker-compose.yml holds the whole demo: read as the README promises it, and checked by a
compose CLI (`config -q`)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]
APPS = {"authz": "8400", "ehr": "8401", "doctor": "8402"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_part_of_the_demo_is_a_service(compose):
    services = compose["services"]
    assert {"mosquitto", "authz", "ehr", "ingest", "doctor", "device", "postgres"} <= set(services)
    assert services["postgres"]["profiles"] == ["postgres"]
    for name, port in APPS.items():
        assert f"127.0.0.1:{port}" in services[name]["command"], name


def test_one_issuer_for_the_browser_and_the_apps(compose):
    """Host networking: http://localhost:8400 means the same server everywhere."""
    for name in ("authz", "ehr", "ingest", "doctor", "device"):
        service = compose["services"][name]
        assert service["network_mode"] == "host", name
        assert service["environment"]["AS_ISSUER"] == "http://localhost:8400", name


def test_mosquitto_keeps_an_offline_session_whole():
    config = (ROOT / "deploy" / "mosquitto.conf").read_text()
    assert "max_queued_messages 0" in config and "persistence true" in config


def test_the_image_holds_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (
        "authz_server",
        "records_server",
        "doctor_client",
        "device_sim",
        "health_fhir",
        "app_support",
        "uma_demo",
    ):
        assert f"COPY {package} " in dockerfile, package


def compose_cli() -> list[str] | None:
    """The docker CLI's compose plugin, or Debian's docker-compose (`make test` installs it)."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_accepts_the_file():
    cli = compose_cli()
    if cli is None:
        unavailable("no compose CLI: neither `docker compose` nor docker-compose is installed")
    result = subprocess.run(
        [*cli, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
