"""The EHR's checks of device messages, alone: what gets stored and what is dropped."""

import json

import pytest

from records_server.device_wire import BadMessage, parse_announce, parse_reading, parse_topic

GOOD = {
    "seq": 7,
    "measured_at": "2026-11-23T08:00:00Z",
    "systolic": 131,
    "diastolic": 84,
    "pulse": 71,
    "unit": "mm[Hg]",
}
ANNOUNCE = {
    "device_id": "bp-1",
    "patient": "alice",
    "kind": "blood_pressure",
    "model": "UMA-Sim BP-200",
    "firmware": "1.0.0",
}


def encode(document) -> bytes:
    return json.dumps(document).encode()


def test_a_good_reading():
    reading = parse_reading("bp-1", encode(GOOD))
    assert (reading.seq, reading.systolic, reading.diastolic, reading.pulse) == (7, 131, 84, 71)
    assert reading.measured_at.isoformat() == "2026-11-23T08:00:00+00:00"
    assert parse_reading("bp-1", encode({**GOOD, "x_ext": 1})).seq == 7  # extensions ignored


@pytest.mark.parametrize(
    "change",
    [
        {"seq": -1},
        {"seq": 1.5},
        {"seq": True},
        {"seq": None},
        {"systolic": 20},
        {"systolic": 400},
        {"diastolic": 131},  # not below systolic
        {"pulse": 0},
        {"pulse": "70"},
        {"unit": "kPa"},
        {"measured_at": "2026-11-23 08:00:00"},
        {"measured_at": "2026-11-23T08:00:00+01:00"},  # UTC only
        {"measured_at": "2026-13-45T08:00:00Z"},
        {"measured_at": 1700000000},
    ],
)
def test_readings_out_of_contract_are_dropped(change):
    with pytest.raises(BadMessage):
        parse_reading("bp-1", encode({**GOOD, **change}))


@pytest.mark.parametrize("payload", [b"", b"nul", b"[]", b'"x"', b"{" * 5000, b"\xff"])
def test_non_objects_are_dropped(payload):
    with pytest.raises(BadMessage):
        parse_reading("bp-1", payload)


def test_announce():
    assert parse_announce("bp-1", encode(ANNOUNCE)).patient == "alice"
    for change in ({"device_id": "bp-2"}, {"kind": "glucose"}, {"patient": ""}, {"model": 5}):
        with pytest.raises(BadMessage):
            parse_announce("bp-1", encode({**ANNOUNCE, **change}))


@pytest.mark.parametrize(
    "topic, expected",
    [
        ("ehr/devices/bp-1/readings", ("bp-1", "readings")),
        ("ehr/devices/bp-1/announce", ("bp-1", "announce")),
    ],
)
def test_topics(topic, expected):
    assert parse_topic(topic) == expected


@pytest.mark.parametrize(
    "topic", ["ehr/devices//readings", "ehr/devices/a/b/readings", "other/bp-1/readings"]
)
def test_unexpected_topics(topic):
    with pytest.raises(BadMessage):
        parse_topic(topic)
