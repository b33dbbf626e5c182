"""The MQTT contract between a device and the EHR: topics, QoS, payload shapes (DESIGN.md "MQTT").

Everything that crosses the wire is spelled here once; the EHR side (records_server/ingest.py)
implements the same contract without importing this module (apps share wires, not code).
"""

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # only for the annotation: readings.py imports this module, not the reverse
    from device_sim.readings import Reading

# Retained, so the EHR learns about a device even when it subscribes after the device came up.
ANNOUNCE_TOPIC = "ehr/devices/{device_id}/announce"
READINGS_TOPIC = "ehr/devices/{device_id}/readings"
# At-least-once: for medical data a duplicate is harmless (it carries `seq`), a gap is not.
QOS = 1

KIND_BLOOD_PRESSURE = "blood_pressure"
UNIT_MM_HG = "mm[Hg]"  # UCUM code, as FHIR Observation.valueQuantity.code uses it
DEFAULT_MODEL = "UMA-Sim BP-200"
DEFAULT_FIRMWARE = "1.0.0"

DEFAULT_BROKER_URL = "mqtt://127.0.0.1:1883"
MQTT_DEFAULT_PORT = 1883

# '+' and '#' are MQTT wildcards and '/' a level separator: none may appear in a topic level.
_FORBIDDEN_IN_LEVEL = frozenset("+#/\x00")


def check_device_id(device_id: str) -> str:
    """Return `device_id` if it can be one MQTT topic level, else raise ValueError."""
    if not device_id or _FORBIDDEN_IN_LEVEL & set(device_id) or device_id.startswith("$"):
        raise ValueError(f"not usable as an MQTT topic level: {device_id!r}")
    return device_id


def announce_topic(device_id: str) -> str:
    return ANNOUNCE_TOPIC.format(device_id=check_device_id(device_id))


def readings_topic(device_id: str) -> str:
    return READINGS_TOPIC.format(device_id=check_device_id(device_id))


def rfc3339(moment: datetime) -> str:
    """`2026-11-23T21:00:00Z`: RFC 3339, UTC, whole seconds (what the EHR stores)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a reading's time must be zone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def announce_payload(
    device_id: str,
    patient: str,
    model: str = DEFAULT_MODEL,
    firmware: str = DEFAULT_FIRMWARE,
) -> bytes:
    """The retained announce message: who this device is and whose body it measures."""
    return _encode(
        {
            "device_id": device_id,
            "patient": patient,
            "kind": KIND_BLOOD_PRESSURE,
            "model": model,
            "firmware": firmware,
        }
    )


def reading_payload(reading: "Reading") -> bytes:
    """One reading as the EHR expects it."""
    return _encode(
        {
            "seq": reading.seq,
            "measured_at": rfc3339(reading.measured_at),
            "systolic": reading.systolic,
            "diastolic": reading.diastolic,
            "pulse": reading.pulse,
            "unit": UNIT_MM_HG,
        }
    )


def parse_broker_url(url: str) -> tuple[str, int]:
    """`mqtt://host:port` → (host, port). TLS (`mqtts://`) is not part of the demo."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port], got {url!r}")
    return parts.hostname, parts.port or MQTT_DEFAULT_PORT


def _encode(document: dict) -> bytes:
    # Compact and UTF-8: small packets, and byte-for-byte stable for the same reading.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
