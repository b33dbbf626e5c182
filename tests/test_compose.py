"""docker-compose.yml holds the whole demo: read as the README promises it, and checked by a
compose CLI (`config -q`)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]
APPS = {"authz": "${AS_NODE_PORT:-8400}", "ehr": "${EHR_NODE_PORT:-8401}", "doctor": "8402"}


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


def compose_config(*options: str, quiet: bool = True) -> subprocess.CompletedProcess:
    cli = compose_cli()
    if cli is None:
        unavailable("no compose CLI: neither `docker compose` nor docker-compose is installed")
    return subprocess.run(
        [*cli, "-f", str(ROOT / "docker-compose.yml"), *options, "config"]
        + (["-q"] if quiet else []),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_docker_compose_accepts_the_file():
    result = compose_config()
    assert result.returncode == 0, result.stderr


SCALE = ("--profile", "postgres", "--profile", "scale", "--env-file", "deploy/scale.env")


def test_the_scale_profile_puts_a_balancer_before_two_nodes_of_each():
    """The balancer takes the public ports (the issuer and the EHR's URL stay the same), and
    its backends are exactly the nodes' gunicorn addresses."""
    result = compose_config(*SCALE, quiet=False)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"authz", "authz-2", "ehr", "ehr-2", "balancer", "postgres"} <= set(services)
    balancer = services["balancer"]["environment"]
    for app, backends in (("authz", "AS_NODE_"), ("ehr", "EHR_NODE_")):
        commands = [services[name]["command"] for name in (app, f"{app}-2")]
        binds = {command.split("--bind ")[1].split()[0] for command in commands}
        assert binds == {balancer[f"{backends}1"], balancer[f"{backends}2"]}, app
    assert (balancer["AS_PORT"], balancer["EHR_PORT"]) == ("8400", "8401")
    for name in ("authz", "authz-2", "ehr", "ehr-2"):
        assert services[name]["environment"]["AS_ISSUER"] == "http://localhost:8400"
        assert services[name]["environment"]["AS_DATABASE_URL"].startswith("postgresql")
    assert services["authz"]["environment"]["AS_TRUSTED_PROXIES"] == "1"


def test_haproxy_accepts_the_balancer_configuration():
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        unavailable("no haproxy: `make test` installs Debian's package")
    compose = yaml.safe_load(compose_config(*SCALE, quiet=False).stdout)
    env = {"PATH": "/usr/bin:/bin", **compose["services"]["balancer"]["environment"]}
    env["AS_PORT"], env["EHR_PORT"] = "18400", "18401"  # checked, not bound: any port will do
    result = subprocess.run(
        [haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
