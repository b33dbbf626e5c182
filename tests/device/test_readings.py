"""The reading generator alone (device_sim/readings.py) and the wire shapes (device_sim/wire.py)."""

import itertools
import json
import re
import statistics
from datetime import UTC, datetime, timedelta, timezone

import pytest

from device_sim import wire
from device_sim.readings import (
    DIASTOLIC_BOUNDS,
    MIN_PULSE_PRESSURE,
    PULSE_BOUNDS,
    SYSTOLIC_BOUNDS,
    Profile,
    ReadingGenerator,
    series,
)

START = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def take(n, **kwargs):
    kwargs.setdefault("interval", timedelta(minutes=5))
    return list(itertools.islice(series(START, **kwargs), n))


@pytest.mark.parametrize("seed", [0, 1, 42, 2026])
def test_values_stay_in_bounds_and_diastolic_below_systolic(seed):
    for r in take(5000, seed=seed):
        assert SYSTOLIC_BOUNDS[0] <= r.systolic <= SYSTOLIC_BOUNDS[1]
        assert DIASTOLIC_BOUNDS[0] <= r.diastolic <= DIASTOLIC_BOUNDS[1]
        assert PULSE_BOUNDS[0] <= r.pulse <= PULSE_BOUNDS[1]
        assert r.systolic - r.diastolic >= MIN_PULSE_PRESSURE
        assert all(isinstance(v, int) for v in (r.systolic, r.diastolic, r.pulse))


def test_diastolic_below_systolic_even_for_an_extreme_profile():
    """A profile pushing diastolic above systolic still yields diastolic < systolic."""
    profile = Profile(systolic=75, diastolic=140, systolic_noise=20, diastolic_noise=20)
    for r in take(2000, seed=3, profile=profile):
        assert r.diastolic < r.systolic
        assert SYSTOLIC_BOUNDS[0] <= r.systolic and DIASTOLIC_BOUNDS[0] <= r.diastolic


def test_seq_starts_at_one_and_increases_by_one():
    assert [r.seq for r in take(500, seed=1)] == list(range(1, 501))


def test_seq_is_per_generator():
    a, b = ReadingGenerator(seed=1), ReadingGenerator(seed=1)
    a.measure(START)
    a.measure(START)
    assert b.measure(START).seq == 1
    assert a.seq == 2


def test_same_seed_same_readings_different_seed_different_readings():
    assert take(200, seed=7) == take(200, seed=7)
    assert take(200, seed=7) != take(200, seed=8)


def test_seeded_generator_ignores_the_global_random_state():
    import random

    random.seed(1)
    first = take(50, seed=5)
    random.seed(2)
    assert take(50, seed=5) == first


def test_daily_rhythm_night_lower_than_afternoon():
    """A 'dipper' profile: readings at 03:00 are clearly lower than at 14:00 (same seed)."""
    day = timedelta(days=1)
    night = list(itertools.islice(series(START.replace(hour=3), day, seed=11), 400))
    afternoon = list(itertools.islice(series(START.replace(hour=14), day, seed=11), 400))

    def mean(readings, field):
        return statistics.fmean(getattr(r, field) for r in readings if not r.spike)

    for field, at_least in (("systolic", 10), ("diastolic", 7), ("pulse", 8)):
        assert mean(afternoon, field) - mean(night, field) >= at_least, field


def test_daily_rhythm_follows_the_patients_local_time():
    """The trough is at the patient's night: 03:00 in UTC+10 is 17:00 UTC."""
    tz = timezone(timedelta(hours=10))
    generator = ReadingGenerator(local_tz=tz)
    assert generator.daily_rhythm(datetime(2026, 1, 1, 17, 0, tzinfo=UTC)) < -0.8
    assert ReadingGenerator().daily_rhythm(datetime(2026, 1, 1, 14, 0, tzinfo=UTC)) == 1.0


def test_spikes_exist_but_are_rare():
    readings = take(20_000, seed=99)
    spikes = [r for r in readings if r.spike]
    assert 0.005 <= len(spikes) / len(readings) <= 0.03  # profile: 1.5 %
    normal = [r for r in readings if not r.spike]
    # A spike is a hypertensive episode: on average far above the patient's usual numbers...
    assert statistics.fmean(r.systolic for r in spikes) >= (
        statistics.fmean(r.systolic for r in normal) + 30
    )
    # ...and stage-2 readings (≥ 160 systolic) come (almost) only from spikes.
    high = [r for r in readings if r.systolic >= 160]
    assert high and sum(r.spike for r in high) / len(high) >= 0.95


def test_no_spikes_when_the_profile_has_none():
    assert not any(r.spike for r in take(5000, seed=1, profile=Profile(spike_probability=0)))


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        ReadingGenerator().measure(datetime(2026, 1, 1, 12, 0))


def test_reading_payload_matches_design():
    reading = take(1, seed=1)[0]
    payload = json.loads(wire.reading_payload(reading))
    assert set(payload) == {"seq", "measured_at", "systolic", "diastolic", "pulse", "unit"}
    assert payload["seq"] == 1
    assert payload["measured_at"] == "2026-11-23T21:00:00Z"
    assert payload["unit"] == "mm[Hg]"
    assert (payload["systolic"], payload["diastolic"], payload["pulse"]) == (
        reading.systolic,
        reading.diastolic,
        reading.pulse,
    )


@pytest.mark.parametrize(
    "moment, expected",
    [
        (datetime(2026, 11, 23, 21, 0, tzinfo=UTC), "2026-11-23T21:00:00Z"),
        (datetime(2026, 11, 23, 22, 0, 5, 999_999, tzinfo=UTC), "2026-11-23T22:00:05Z"),
        (datetime(2026, 11, 24, 1, 0, tzinfo=timezone(timedelta(hours=4))), "2026-11-23T21:00:00Z"),
    ],
)
def test_rfc3339_utc(moment, expected):
    assert wire.rfc3339(moment) == expected
    assert RFC3339_UTC.fullmatch(expected)


def test_every_generated_timestamp_is_rfc3339_utc():
    for r in take(100, seed=2, interval=timedelta(seconds=37)):
        stamp = json.loads(wire.reading_payload(r))["measured_at"]
        assert RFC3339_UTC.fullmatch(stamp)
        assert datetime.fromisoformat(stamp) == r.measured_at.replace(microsecond=0)


def test_announce_payload_matches_design():
    payload = json.loads(wire.announce_payload("bp-monitor-001", "alice"))
    assert payload == {
        "device_id": "bp-monitor-001",
        "patient": "alice",
        "kind": "blood_pressure",
        "model": wire.DEFAULT_MODEL,
        "firmware": wire.DEFAULT_FIRMWARE,
    }


def test_topics():
    assert wire.announce_topic("bp-monitor-001") == "ehr/devices/bp-monitor-001/announce"
    assert wire.readings_topic("bp-monitor-001") == "ehr/devices/bp-monitor-001/readings"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "$SYS", "x\x00"])
def test_device_ids_that_cannot_be_a_topic_level_are_refused(bad):
    with pytest.raises(ValueError):
        wire.readings_topic(bad)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884)),
        ("mqtt://broker", ("broker", 1883)),
        ("tcp://localhost:1883", ("localhost", 1883)),
    ],
)
def test_parse_broker_url(url, expected):
    assert wire.parse_broker_url(url) == expected


@pytest.mark.parametrize("url", ["http://x:1883", "mqtts://x", "127.0.0.1:1883", "mqtt://"])
def test_parse_broker_url_refuses(url):
    with pytest.raises(ValueError):
        wire.parse_broker_url(url)
