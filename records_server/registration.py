"""Which of a patient's record sets and device feeds are registered at the AS (FedAuthz §3),
kept in step.

Registration happens when the patient links, when a record set is created or a device
announces itself later, and again
on start (``sync_patient``), idempotently: the local ``uma_resource_id`` is the mapping, and
the AS's list for this patient's PAT is reconciled against it, so restarts never duplicate.
All of it runs under the patient lock (``pats.lock_patient``), so two workers cannot both
register the same record set.
"""

import logging
from contextlib import suppress

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .as_client import ASClient, ASUnavailable, NotRegistered, PatRejected
from .device_feed import online_devices
from .models import Device, IntrospectionCache, Patient, ProtectionLink, RecordSet
from .pats import NotLinked, lock_patient, with_pat
from .record_kinds import KINDS, SCOPES, TYPE_BASE

log = logging.getLogger(__name__)


FEED_TYPE = "https://uma-health.example/rsrc/device-feed/blood-pressure"

Protected = RecordSet | Device


def describe(thing: Protected, patient: Patient, public_url: str) -> dict:
    """The resource description (FedAuthz §3.1): only what the AS needs to show the owner."""
    icons = public_url.rstrip("/") + "/static/icons/"
    owner = patient.full_name or patient.username
    if isinstance(thing, Device):
        return {
            "name": f"Blood pressure readings from {thing.device_id} of {owner}",
            "type": FEED_TYPE,
            "resource_scopes": ["read"],
            "icon_uri": icons + "blood-pressure.svg",
            "description": f"Readings of {thing.model or 'a monitor'} as they arrive.",
        }
    kind = KINDS.get(thing.name, {})
    title = kind.get("title", thing.name.replace("-", " ").capitalize())
    return {
        "name": f"{title} of {owner}",
        "type": TYPE_BASE + thing.name,
        "resource_scopes": list(SCOPES),
        "icon_uri": icons + (thing.name if thing.name in KINDS else "record") + ".svg",
        "description": kind.get("description", ""),
    }


def sync_patient(session: Session, client: ASClient, patient: Patient, public_url: str, margin):
    """Register what is missing, update what exists, delete what the EHR no longer has."""

    def reconcile(pat: str) -> int:
        lock_patient(session, patient.id)
        registered = set(client.list_ids(pat))
        known = set()
        changed = 0
        for thing in protected_things(session, patient):
            description = describe(thing, patient, public_url)
            if thing.uma_resource_id in registered:
                client.update(pat, thing.uma_resource_id, description)
            else:
                thing.uma_resource_id = client.register(pat, description)
                changed += 1
            known.add(thing.uma_resource_id)
        # Registered by us for this patient but no longer (or never) mapped: a crash between
        # registering and committing leaves these; without them protection stays exact.
        for orphan in registered - known:
            client.delete(pat, orphan)
            changed += 1
        session.commit()
        return changed

    return with_pat(session, client, patient, reconcile, margin)


def register_one(
    session: Session, client: ASClient, thing: Protected, public_url: str, margin
) -> str | None:
    """Register a new record set or device feed if its patient is linked; None if not."""
    patient = thing.patient
    if patient.link is None or patient.link.broken_at is not None:
        return None

    def register(pat: str) -> str:
        lock_patient(session, patient.id)
        session.refresh(thing)
        if thing.uma_resource_id is None:
            thing.uma_resource_id = client.register(pat, describe(thing, patient, public_url))
        session.commit()
        return thing.uma_resource_id

    return with_pat(session, client, patient, register, margin)


def deregister_one(session: Session, client: ASClient, thing: Protected, margin) -> None:
    """End a resource's protection at the AS (a retired device); commits."""
    patient = thing.patient
    if thing.uma_resource_id is not None and patient.link and patient.link.broken_at is None:

        def deregister(pat: str) -> None:
            client.delete(pat, thing.uma_resource_id)

        with_pat(session, client, patient, deregister, margin)
    thing.uma_resource_id = None
    session.commit()


def unlink(session: Session, client: ASClient, patient: Patient, margin) -> None:
    """Deregister every record set, revoke the PAT, forget the link (the patient's choice).

    If the AS cannot be reached the link stays, so nothing is left registered behind her back.
    """

    def deregister(pat: str) -> None:
        lock_patient(session, patient.id)
        for thing in protected_things(session, patient):
            if thing.uma_resource_id:
                client.delete(pat, thing.uma_resource_id)
                thing.uma_resource_id = None
        session.commit()

    # A broken link (the AS refuses the PAT) can delete nothing; the link goes all the same.
    with suppress(NotLinked, PatRejected):
        with_pat(session, client, patient, deregister, margin)
    link = session.get(ProtectionLink, patient.link.id) if patient.link else None
    if link is not None:
        client.revoke(link.refresh_token or link.access_token, "refresh_token")
        session.delete(link)
    for thing in protected_things(session, patient):
        thing.uma_resource_id = None
    session.execute(delete(IntrospectionCache).where(IntrospectionCache.patient_id == patient.id))
    session.commit()


def sync_all(session: Session, client: ASClient, public_url: str, margin) -> None:
    """On start: reconcile every linked patient; one failing must not stop the others."""
    linked = session.scalars(
        select(Patient).join(ProtectionLink).where(ProtectionLink.broken_at.is_(None))
    ).all()
    for patient in linked:
        try:
            changed = sync_patient(session, client, patient, public_url, margin)
            log.info("registrations of %s in step (%d changes)", patient.username, changed)
        except (ASUnavailable, NotLinked, NotRegistered) as error:
            session.rollback()
            log.warning("could not sync %s with the AS: %s", patient.username, error)


def protected_things(session: Session, patient: Patient) -> list[Protected]:
    """What of this patient's is (or should be) a UMA resource: every record set, and every
    device feed that has announced itself and is not retired."""
    # populate_existing: callers hold the patient lock, and what another worker committed
    # before it must win over rows this session loaded earlier (else a stale None would
    # register again and the fresh ids would be deleted as orphans).
    fresh = {"populate_existing": True}
    record_sets = session.scalars(
        select(RecordSet)
        .where(RecordSet.patient_id == patient.id)
        .order_by(RecordSet.id)
        .execution_options(**fresh)
    )
    devices = session.scalars(online_devices(patient.id).execution_options(**fresh))
    return [*record_sets, *devices]
