"""``make demo``'s launcher refuses settings it cannot use with one clear line, before it
seeds or starts anything (never a traceback)."""

import subprocess
import sys
from pathlib import Path

import pytest

from uma_demo.launch import BadSetting, number_setting, port_setting

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "65536", "80.5", " "])
def test_a_port_that_is_not_a_port_is_refused_by_name(raw):
    with pytest.raises(BadSetting, match="MQTT_PORT="):
        port_setting({"MQTT_PORT": raw}, "MQTT_PORT", 1883)


def test_unset_settings_take_their_default_and_good_ones_are_read():
    assert port_setting({}, "AS_PORT", 8400) == 8400
    assert port_setting({"AS_PORT": "9400"}, "AS_PORT", 8400) == 9400
    assert number_setting({"WORKERS": "3"}, "WORKERS", 2, 64) == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [("AS_PORT", "eighty"), ("MQTT_PORT", "18x83"), ("WORKERS", "0"), ("DOCTOR_PORT", "99999")],
)
def test_the_launcher_names_the_bad_setting_and_starts_nothing(tmp_path, name, value):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), name: value}
    result = subprocess.run(
        [sys.executable, "-m", "uma_demo.launch"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"make demo: {name}={value!r} is not a whole number" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing was seeded or started
