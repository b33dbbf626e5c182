"""A device feed as FHIR: each reading is one vital-signs Observation, the LOINC blood
pressure panel (85354-9) with systolic, diastolic and pulse as components."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from .entries import collection
from .models import Device, Reading

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PANEL = ("85354-9", "Blood pressure panel with all children optional")
COMPONENTS = (
    ("systolic", "8480-6", "Systolic blood pressure", "mm[Hg]"),
    ("diastolic", "8462-4", "Diastolic blood pressure", "mm[Hg]"),
    ("pulse", "8867-4", "Heart rate", "/min"),
)
MAX_LIMIT = 1000


def _coding(code: str, display: str) -> dict:
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


def observation(device: Device, reading: Reading) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"{device.device_id}-{reading.seq}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": _coding(*PANEL),
        "subject": {"reference": f"Patient/{device.patient.username}"},
        "effectiveDateTime": reading.measured_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": {"display": device.device_id},
        "identifier": [{"system": f"urn:device:{device.device_id}", "value": str(reading.seq)}],
        "component": [
            {
                "code": _coding(code, display),
                "valueQuantity": {
                    "value": getattr(reading, name),
                    "unit": unit,
                    "system": UCUM,
                    "code": unit,
                },
            }
            for name, code, display, unit in COMPONENTS
        ],
    }


def readings_of(session: Session, device: Device, since, limit: int) -> list[Reading]:
    """After ``since`` (oldest first), or else the latest ``limit`` (still oldest first)."""
    query = select(Reading).where(Reading.device_pk == device.id)
    if since is not None:
        rows = session.scalars(
            query.where(Reading.measured_at > since)
            .order_by(Reading.measured_at, Reading.seq)
            .limit(limit)
        )
        return list(rows)
    rows = session.scalars(
        query.order_by(Reading.measured_at.desc(), Reading.seq.desc()).limit(limit)
    )
    return list(reversed(list(rows)))


def feed_bundle(device: Device, readings: list[Reading]) -> dict:
    return collection(f"{device.device_id}-readings", [observation(device, r) for r in readings])


def online_devices(patient_id: int):
    """The query of a patient's live feeds, the devices that are UMA resources: announced
    and not retired."""
    return (
        select(Device)
        .where(
            Device.patient_id == patient_id,
            Device.announced_at.is_not(None),
            Device.retired_at.is_(None),
        )
        .order_by(Device.id)
    )
