"""`python -m device_sim` as a user runs it: a subprocess against the embedded broker."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from device_sim.cli import fleet_ids, summary_line
from device_sim.publisher import Stats

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"summary: devices=(?P<devices>\d+) sent=(?P<sent>\d+) acknowledged=(?P<acknowledged>\d+)"
    r" buffered=(?P<buffered>\d+) dropped=(?P<dropped>\d+)"
)


def simulator(*args: str, env: dict | None = None, **kwargs) -> list[str]:
    return [sys.executable, "-m", "device_sim", "--quiet", *args]


def run_simulator(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        simulator(*args),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def summary(stdout: str) -> dict[str, int]:
    match = SUMMARY.fullmatch(stdout.strip().splitlines()[-1])
    assert match, stdout
    return {k: int(v) for k, v in match.groupdict().items()}


def test_count_run_prints_the_summary_and_exits_0(amqtt_broker, device_id, subscribe):
    subscriber = subscribe(amqtt_broker.host, amqtt_broker.port, device_id)
    done = run_simulator(
        "--count", "5", "--interval", "0.01", "--broker", amqtt_broker.url, "--first-seq", "1",
        "--device-id", device_id, "--seed", "7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "summary: devices=1 sent=5 acknowledged=5 buffered=0 dropped=0"
    )
    assert subscriber.wait_for(lambda: len(subscriber.readings()) >= 5)
    assert sorted(r["seq"] for r in subscriber.readings()) == [1, 2, 3, 4, 5]
    assert subscriber.announces()[0].json()["patient"] == "alice"


def test_broker_comes_from_MQTT_URL(amqtt_broker, device_id, subscribe):
    subscribe(amqtt_broker.host, amqtt_broker.port, device_id)
    done = run_simulator(
        "--count", "2", "--interval", "0.01", "--device-id", device_id,
        env={"MQTT_URL": amqtt_broker.url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout)["acknowledged"] == 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_run_with_the_summary_and_exit_0(
    amqtt_broker, device_id, subscribe, signum
):
    subscriber = subscribe(amqtt_broker.host, amqtt_broker.port, device_id)
    process = subprocess.Popen(
        simulator("--interval", "0.02", "--broker", amqtt_broker.url, "--device-id", device_id),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert subscriber.wait_for(lambda: len(subscriber.readings()) >= 3)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    counts = summary(stdout)
    assert counts["devices"] == 1
    assert counts["acknowledged"] >= 3
    assert counts["sent"] >= counts["acknowledged"]
    assert "Traceback" not in stderr


def test_fleet(amqtt_broker, subscribe, device_id):
    first = f"{device_id}-001"
    ids = [f"{device_id}-00{i}" for i in (1, 2, 3)]
    subscribers = [subscribe(amqtt_broker.host, amqtt_broker.port, i) for i in ids]
    done = run_simulator(
        "--devices", "3", "--count", "4", "--interval", "0.01", "--seed", "1", "--first-seq", "1",
        "--broker", amqtt_broker.url, "--device-id", first,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ids
    assert lines[-1] == "summary: devices=3 sent=12 acknowledged=12 buffered=0 dropped=0"
    for subscriber in subscribers:
        assert subscriber.wait_for(lambda s=subscriber: len(s.readings()) >= 4)
        assert sorted(r["seq"] for r in subscriber.readings()) == [1, 2, 3, 4]
    # Distinct seeds per device: three patients' worth of numbers, not one copied three times.
    firsts = {tuple(sorted(s.readings(), key=lambda r: r["seq"])[0].items()) for s in subscribers}
    assert len(firsts) == 3


@pytest.mark.parametrize(
    "args",
    [
        ("--broker", "http://127.0.0.1:1883"),
        ("--device-id", "bp/monitor"),
        ("--device-id", "bp+1"),
        ("--interval", "0"),
        ("--count", "-1"),
        ("--devices", "0"),
    ],
)
def test_bad_arguments_exit_2(args):
    done = run_simulator(*args, "--count", "1") if "--count" not in args else run_simulator(*args)
    assert done.returncode == 2
    assert "error" in done.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "uma-health-device"
    assert script.exists()
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    for option in ("--device-id", "--patient", "--broker", "--interval", "--count", "--seed"):
        assert option in done.stdout


@pytest.mark.parametrize(
    "device_id, n, expected",
    [
        ("bp-monitor-001", 1, ["bp-monitor-001"]),
        ("bp-monitor-001", 3, ["bp-monitor-001", "bp-monitor-002", "bp-monitor-003"]),
        ("bp-monitor-9", 2, ["bp-monitor-9", "bp-monitor-10"]),
        ("cuff", 2, ["cuff-001", "cuff-002"]),
    ],
)
def test_fleet_ids(device_id, n, expected):
    assert fleet_ids(device_id, n) == expected


def test_summary_line_adds_up_devices():
    stats = [Stats("a", 3, 3, 2, 1, 0, 1), Stats("b", 5, 4, 4, 1, 0, 2)]
    assert summary_line(stats) == "summary: devices=2 sent=7 acknowledged=6 buffered=2 dropped=0"
