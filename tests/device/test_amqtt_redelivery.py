"""The embedded broker's redelivery patch (uma_demo/broker_redelivery.py) against the amqtt
installed: the bug it mends is still there, the patch mends it, and an amqtt version it was
not checked against stops the broker loudly (docs/amqtt-redelivery.md)."""

import subprocess
import sys
from pathlib import Path

import amqtt
import pytest

from uma_demo.broker_redelivery import KNOWN_AMQTT, UnknownAmqtt, check_amqtt_version

REPRO = Path(__file__).resolve().parents[2] / "docs" / "amqtt_redelivery_repro.py"


def reproduce(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPRO), *options],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPRO.parents[1],
    )


def test_the_installed_amqtt_is_one_the_patch_was_checked_against():
    assert amqtt.__version__ in KNOWN_AMQTT, (
        f"amqtt {amqtt.__version__} is installed; the redelivery patch overrides a private "
        f"method of amqtt and was checked against {KNOWN_AMQTT} only. Run "
        "docs/amqtt_redelivery_repro.py with and without --patched, read the new "
        "_handle_qos1_message_flow, then add the version to KNOWN_AMQTT or drop the patch."
    )


def test_an_unknown_amqtt_is_refused_by_name():
    with pytest.raises(UnknownAmqtt, match=r"amqtt 0\.99\.0 is not one of .*amqtt-redelivery\.md"):
        check_amqtt_version("0.99.0")


def test_amqtt_alone_still_loses_the_unacknowledged_message():
    """If this fails, amqtt fixed the bug: the patch (and this test) can go."""
    result = reproduce()
    assert (result.returncode, result.stdout.strip()) == (1, "LOST (after reconnect: [])"), (
        result.stdout + result.stderr
    )


def test_the_patch_redelivers_it():
    result = reproduce("--patched")
    assert (result.returncode, result.stdout.strip()) == (0, "REDELIVERED"), (
        result.stdout + result.stderr
    )
