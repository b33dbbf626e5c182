"""The MQTT contract as the EHR reads it (DESIGN.md "MQTT"): topics, and the checks every
payload passes before anything is stored. No MQTT client and no database in here."""

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

ANNOUNCE_TOPIC = "ehr/devices/{device_id}/announce"
READINGS_TOPIC = "ehr/devices/{device_id}/readings"
SUBSCRIPTIONS = ("ehr/devices/+/announce", "ehr/devices/+/readings")
QOS = 1
KIND_BLOOD_PRESSURE = "blood_pressure"
UNIT = "mm[Hg]"

_TOPIC = re.compile(r"^ehr/devices/(?P<device_id>[^/+#]{1,128})/(?P<what>announce|readings)$")
_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
# Bounds no living, measurable person leaves; anything outside is a broken device or a forgery.
SYSTOLIC = (40, 300)
DIASTOLIC = (20, 200)
PULSE = (20, 300)
MAX_PAYLOAD = 4096
MAX_SEQ = 2**62


class BadMessage(ValueError):
    """The message is dropped; the text says why, for one log line."""


@dataclass(frozen=True)
class Announce:
    device_id: str
    patient: str
    kind: str
    model: str | None
    firmware: str | None


@dataclass(frozen=True)
class ReadingMessage:
    device_id: str
    seq: int
    measured_at: datetime
    systolic: int
    diastolic: int
    pulse: int


def parse_topic(topic: str) -> tuple[str, str]:
    """``(device_id, "announce" | "readings")`` or BadMessage."""
    match = _TOPIC.match(topic)
    if not match:
        raise BadMessage(f"unexpected topic {topic!r}")
    return match["device_id"], match["what"]


def _document(payload: bytes) -> dict:
    if len(payload) > MAX_PAYLOAD:
        raise BadMessage(f"payload of {len(payload)} bytes")
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadMessage("payload is not JSON") from None
    if not isinstance(document, dict):
        raise BadMessage("payload is not a JSON object")
    return document


def _whole(document: dict, name: str, low: int, high: int) -> int:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadMessage(f"{name}={value!r} is not a whole number in [{low}, {high}]")
    return value


def parse_announce(device_id: str, payload: bytes) -> Announce:
    document = _document(payload)
    if document.get("device_id") != device_id:
        raise BadMessage("announce names another device than its topic")
    if document.get("kind") != KIND_BLOOD_PRESSURE:
        raise BadMessage(f"unsupported kind {document.get('kind')!r}")
    patient = document.get("patient")
    if not isinstance(patient, str) or not patient:
        raise BadMessage("announce without a patient")
    extras = {k: document.get(k) for k in ("model", "firmware")}
    if not all(v is None or isinstance(v, str) and len(v) <= 64 for v in extras.values()):
        raise BadMessage("model/firmware must be short strings")
    return Announce(device_id, patient, KIND_BLOOD_PRESSURE, **extras)


def parse_reading(device_id: str, payload: bytes) -> ReadingMessage:
    document = _document(payload)
    if document.get("unit") != UNIT:
        raise BadMessage(f"unit {document.get('unit')!r} is not {UNIT}")
    measured = document.get("measured_at")
    if not isinstance(measured, str) or not _RFC3339_UTC.match(measured):
        raise BadMessage(f"measured_at {measured!r} is not an RFC 3339 UTC time")
    try:
        measured_at = datetime.fromisoformat(measured.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise BadMessage(f"measured_at {measured!r} is not a valid time") from None
    systolic = _whole(document, "systolic", *SYSTOLIC)
    diastolic = _whole(document, "diastolic", *DIASTOLIC)
    if diastolic >= systolic:
        raise BadMessage("diastolic is not below systolic")
    return ReadingMessage(
        device_id,
        _whole(document, "seq", 0, MAX_SEQ),
        measured_at,
        systolic,
        diastolic,
        _whole(document, "pulse", *PULSE),
    )
