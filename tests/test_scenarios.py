"""``uma-health scenario`` (issue 8) against the real demo: ``uma_demo/launch.py`` on free
ports in a directory of its own (SQLite, the embedded broker, the monitor), the stories run
twice as a user would type them, and the two ways it can end otherwise."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.live

UMA_HEALTH = Path(sys.executable).with_name("uma-health")  # the console script
READY = "uma-health demo is running"
# Variables of the launcher and the apps a caller may have set: the demo here sets its own.
PREFIXES = ("AS_", "EHR_", "DOCTOR_", "MQTT_", "DATABASE_URL", "WORKERS")


class Demo:
    def __init__(self, directory: Path):
        ports = {name: free_port() for name in ("AS_PORT", "EHR_PORT", "DOCTOR_PORT", "MQTT")}
        self.as_url, self.ehr_url, self.doctor_url = (
            f"http://127.0.0.1:{ports[name]}" for name in ("AS_PORT", "EHR_PORT", "DOCTOR_PORT")
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
        env.update(
            {name: str(port) for name, port in ports.items() if name.endswith("_PORT")},
            MQTT_PORT=str(ports["MQTT"]),
            AS_ISSUER=self.as_url,
            EHR_URL=self.ehr_url,
            DOCTOR_URL=self.doctor_url,
            WORKERS="1",  # two cores, shared with other test runs
            # A faster demo than the laptop's: polls every second, revocation within 1 s.
            AS_UMA_POLL_INTERVAL="1",
            EHR_INTROSPECTION_CACHE_SECONDS="1",
        )
        self.directory, self.env = directory, env
        self.log = directory / "demo.log"
        with open(self.log, "wb") as log:
            # The launcher keeps each app's SQLite database under instance/ of its directory.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uma_demo.launch"],
                cwd=directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while READY not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("the demo did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to the launcher, which stops every part it started."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    running = Demo(tmp_path_factory.mktemp("demo"))
    running.wait_ready()
    yield running
    running.stop()


def scenario(*args: str) -> subprocess.CompletedProcess:
    assert UMA_HEALTH.exists(), "no uma-health console script: pip install -e . first"
    return subprocess.run(
        [str(UMA_HEALTH), "scenario", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def urls(demo: Demo) -> list[str]:
    return ["--as-url", demo.as_url, "--ehr-url", demo.ehr_url, "--doctor-url", demo.doctor_url]


def test_all_stories_pass_and_pass_again(demo):
    first = scenario("all", *urls(demo))
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for story in ("surgery", "device", "stranger", "revoke"):
        assert f"━━ {story}: " in out
    assert "✘" not in out and first.stderr == ""
    assert "clicked Protect my records" in out  # the demo starts unlinked
    # The numbered protocol steps behind each doctor-side action.
    assert " 1. Requesting party → Client (doctor app): GET /open" in out
    for told in ("[PERM-2]", "[RS-2]", "[INT-4]", "[RS-5]", "[INT-3]", "[checklist 9]"):
        assert told in out, told
    for grant_answer in ("403 request_submitted", "403 request_denied"):
        assert grant_answer in out, grant_answer
    assert "Mallory's waiting page ended by itself: “Not shared with you”" in out
    assert "readings)" in out and "the record (" in out

    again = scenario("all", *urls(demo))
    assert again.returncode == 0, again.stdout + again.stderr
    out = again.stdout
    assert "✘" not in out and "All 4 stories went as told." in out
    assert "her records are protected already" in out
    assert "with carol before (policy #" in out
    assert "Alice said no to Mallory in an earlier run" in out  # the AS remembers a refusal
    assert "Bob no longer gets the record" in out


def test_a_step_that_goes_otherwise_fails_the_run(demo):
    """The doctor app given as the EHR: Alice finds no Protect my records there."""
    result = scenario("surgery", *urls(demo)[:2], "--ehr-url", demo.doctor_url, *urls(demo)[4:])
    assert result.returncode == 1
    assert "✘ Alice's records are protected by her AS but the EHR showed" in result.stdout
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("uma-health scenario: 1 of 1 stories went otherwise; surgery:")


def test_no_demo_is_one_line_and_exit_2():
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = scenario("all", "--as-url", nowhere, "--ehr-url", nowhere, "--doctor-url", nowhere)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"uma-health scenario: the authorization server at {nowhere} did not answer; is the "
        "demo running (make demo)? Otherwise point --as-url/--ehr-url/--doctor-url at it.\n"
    )


def test_the_launcher_stops_on_a_schema_changed_under_it(demo):
    """Runs last: it ends the module's demo. The doctor app's database downgraded behind the
    running demo (another version's code, say): the launcher sees /healthz say so, names the
    command that mends it, and stops everything instead of serving pages that answer 500."""
    downgrade = subprocess.run(
        [sys.executable, "-m", "doctor_client.cli", "db", "downgrade", "base"],
        cwd=demo.directory,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert downgrade.returncode == 0, downgrade.stderr
    assert demo.process.wait(timeout=30) == 1
    log = demo.log.read_text()
    assert (
        "make demo: Doctor app: the doctor database has no schema yet: run "
        "`uma-health-doctor db upgrade`; stopping everything"
    ) in log
