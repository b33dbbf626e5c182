"""Record sets' contents: FHIR entries as they are read (a Bundle) and added (validated)."""

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Entry, Patient, RecordSet
from .record_kinds import KINDS

JSON_TYPES = ("application/json", "application/fhir+json")
AUTHOR_TAG = "https://uma-health.example/fhir/author"
PATIENT_MEMBER_KINDS = ("Immunization", "AllergyIntolerance")  # FHIR R4 names it `patient`


class InvalidEntry(ValueError):
    """The entry cannot be stored; the message says why, for the client's developer."""


def parse_entry(raw: bytes, content_type: str | None, record_set: RecordSet) -> dict:
    """A FHIR resource fit for ``record_set``, or ``InvalidEntry``."""
    if (content_type or "").split(";")[0].strip().lower() not in JSON_TYPES:
        raise InvalidEntry("Send the entry as JSON (Content-Type: application/fhir+json).")
    try:
        resource = json.loads(raw, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        raise InvalidEntry("The body is not valid JSON.") from None
    except RecursionError:
        raise InvalidEntry("The body is nested too deeply.") from None
    if not isinstance(resource, dict):
        raise InvalidEntry("An entry is one FHIR resource: a JSON object.")
    allowed = KINDS.get(record_set.name, {}).get("fhir_types", [])
    kind = resource.get("resourceType")
    if kind not in allowed:
        raise InvalidEntry(
            f"'{record_set.name}' holds {', '.join(allowed)} resources; resourceType is {kind!r}."
        )
    expected = f"Patient/{record_set.patient.username}"
    # Most kinds name their patient in `subject`; Immunization and AllergyIntolerance in
    # `patient`. Either must be this patient, so nobody files a record under another's name.
    for member in ("subject", "patient"):
        named = resource.get(member, {"reference": expected})
        if not isinstance(named, dict) or named.get("reference") != expected:
            raise InvalidEntry(f"The entry's {member} must be {expected}.")
    return resource


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def add_entry(
    session: Session,
    record_set: RecordSet,
    resource: dict,
    author_sub: str | None,
    author: str | None,
    client_id: str | None,
) -> Entry:
    """Store ``resource`` with a server-assigned id and who wrote it: the RPT's subject
    (``author_sub``), shown by the name the AS gave (``author``), and through which client."""
    patient: Patient = record_set.patient
    fhir_id = uuid.uuid4().hex
    stored = dict(resource)
    stored["id"] = fhir_id
    member = "patient" if stored["resourceType"] in PATIENT_MEMBER_KINDS else "subject"
    stored[member] = {
        "reference": f"Patient/{patient.username}",
        "display": patient.full_name or patient.username,
    }
    # Provenance in FHIR's own terms: meta.source names the app, a tag the person.
    stored["meta"] = {
        "lastUpdated": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": client_id or "",
        "tag": [{"system": AUTHOR_TAG, "code": author or "", "display": author or ""}],
    }
    entry = Entry(
        record_set_id=record_set.id,
        fhir_id=fhir_id,
        resource_type=stored["resourceType"],
        resource=stored,
        author_sub=author_sub,
        author_name=author,
        client_id=client_id,
    )
    session.add(entry)
    session.commit()
    return entry


def entries_of(session: Session, record_set: RecordSet) -> list[Entry]:
    return list(
        session.scalars(
            select(Entry).where(Entry.record_set_id == record_set.id).order_by(Entry.id)
        )
    )


def collection(bundle_id: str, resources: list[dict]) -> dict:
    """A FHIR ``collection`` Bundle: what every read of the EHR's API answers."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "id": bundle_id,
        "total": len(resources),
        "entry": [{"resource": resource} for resource in resources],
    }


def bundle(record_set: RecordSet, entries: list[Entry]) -> dict:
    return collection(
        f"{record_set.patient.username}-{record_set.name}", [e.resource for e in entries]
    )
