"""The demo's patients and records at the EHR. Idempotent: running it twice changes nothing.

The records start unlinked: the story begins with Alice clicking "Protect my records"."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from .demo_records import demo_entries
from .models import Device, Entry, Patient, RecordSet

DEMO_PATIENTS = [("alice", "Alice Patient")]
# Bob prescribes Alice a blood-pressure monitor after the operation (DESIGN.md).
DEMO_DEVICES = [("bp-monitor-001", "alice")]


def ensure_patient(session: Session, username: str, full_name: str) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.username == username))
    if patient is None:
        patient = Patient(username=username, full_name=full_name)
        session.add(patient)
        session.flush()
    return patient


def provision(session: Session, device_id: str, username: str) -> Device:
    """Let a device's readings in, for this patient; its feed is registered when it first
    announces itself. Provisioning a retired device again brings it back."""
    patient = session.scalar(select(Patient).where(Patient.username == username))
    if patient is None:
        raise LookupError(f"no patient {username!r}")
    device = session.scalar(select(Device).where(Device.device_id == device_id))
    if device is None:
        device = Device(device_id=device_id, patient_id=patient.id)
        session.add(device)
    elif device.patient_id != patient.id:
        raise ValueError(f"{device_id} is provisioned to another patient")
    device.retired_at = None
    session.flush()
    return device


def seed_demo(session: Session) -> None:
    for username, full_name in DEMO_PATIENTS:
        patient = ensure_patient(session, username, full_name)
        existing = {rs.name for rs in patient.record_sets}
        for name, resources in demo_entries(username).items():
            if name in existing:
                continue
            record_set = RecordSet(patient_id=patient.id, name=name)
            session.add(record_set)
            session.flush()
            for resource in resources:
                session.add(
                    Entry(
                        record_set_id=record_set.id,
                        fhir_id=f"{username}-{resource['id']}",
                        resource_type=resource["resourceType"],
                        resource=resource,
                    )
                )
    for device_id, username in DEMO_DEVICES:
        provision(session, device_id, username)
    session.commit()
