"""The EHR's API (DESIGN.md): a public directory per patient, and record sets under UMA.

Each view parses, asks ``protector.require`` for the scope this request needs, and answers.
"""

from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, jsonify, request
from sqlalchemy import select

from .. import db
from ..device_feed import MAX_LIMIT, feed_bundle, online_devices, readings_of
from ..entries import InvalidEntry, add_entry, bundle, entries_of, parse_entry
from ..models import Device, Patient, RecordSet
from ..protector import require
from ..record_kinds import KINDS, SCOPES, TYPE_BASE
from ..registration import FEED_TYPE
from . import public_url

bp = Blueprint("api", __name__, url_prefix="/api")


def _patient(username: str) -> Patient:
    patient = db.session().scalar(select(Patient).where(Patient.username == username))
    if patient is None:
        abort(404, description=f"There is no patient '{username}' here.")
    return patient


def _record_set(patient: Patient, name: str) -> RecordSet:
    for record_set in patient.record_sets:
        if record_set.name == name:
            return record_set
    abort(404, description=f"{patient.username} has no record set '{name}'.")


@bp.get("/patients/<username>")
def directory(username: str):
    """What a doctor's app may ask for: names, types, URIs and scopes, never contents."""
    patient = _patient(username)
    protected = patient.link is not None and patient.link.broken_at is None
    resources = [
        {
            "name": KINDS.get(rs.name, {}).get("title", rs.name),
            "kind": "record_set",
            "record_set": rs.name,
            "type": TYPE_BASE + rs.name,
            "uri": public_url("api.read_records", username=username, name=rs.name),
            "resource_scopes": list(SCOPES),
            "protected": protected and rs.uma_resource_id is not None,
        }
        for rs in patient.record_sets
    ]
    resources += [
        {
            "name": f"Blood pressure monitor {device.device_id}",
            "kind": "device_feed",
            "device_id": device.device_id,
            "type": FEED_TYPE,
            "uri": public_url("api.read_readings", username=username, device_id=device.device_id),
            "resource_scopes": ["read"],
            "protected": protected and device.uma_resource_id is not None,
        }
        for device in _online_devices(patient)
    ]
    return jsonify(
        patient=patient.username,
        name=patient.full_name,
        as_uri=current_app.config["AS_ISSUER"] if protected else None,
        resources=resources,
    )


@bp.get("/patients/<username>/records/<name>")
def read_records(username: str, name: str):
    patient = _patient(username)
    record_set = _record_set(patient, name)
    require(patient, record_set.uma_resource_id, record_set.name, "read")
    response = jsonify(bundle(record_set, entries_of(db.session(), record_set)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/patients/<username>/records/<name>/entries")
def add_record_entry(username: str, name: str):
    patient = _patient(username)
    record_set = _record_set(patient, name)
    requester = require(patient, record_set.uma_resource_id, record_set.name, "write")
    try:
        resource = parse_entry(request.get_data(), request.content_type, record_set)
    except InvalidEntry as error:
        abort(400, description=str(error))
    entry = add_entry(
        db.session(),
        record_set,
        resource,
        requester.sub,
        requester.username or requester.sub,
        requester.client_id,
    )
    response = jsonify(entry.resource)
    response.status_code = 201
    response.headers["Location"] = public_url("api.read_records", username=username, name=name)
    return response


def _online_devices(patient: Patient) -> list[Device]:
    return list(db.session().scalars(online_devices(patient.id)))


@bp.get("/patients/<username>/devices/<device_id>/readings")
def read_readings(username: str, device_id: str):
    """A device feed (UMA scope ``read``): ``since`` (RFC 3339) and ``limit`` (1–1000)."""
    patient = _patient(username)
    device = next((d for d in _online_devices(patient) if d.device_id == device_id), None)
    if device is None:
        abort(404, description=f"{username} has no device '{device_id}' online.")
    since = _since(request.args.get("since"))
    limit = _limit(request.args.get("limit"))
    require(patient, device.uma_resource_id, device.device_id, "read")
    readings = readings_of(db.session(), device, since, limit)
    response = jsonify(feed_bundle(device, readings))
    response.headers["Cache-Control"] = "no-store"
    return response


def _since(raw: str | None):
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        abort(400, description="since must be an RFC 3339 time, e.g. 2026-11-23T08:00:00Z.")
    if moment.tzinfo is None:
        abort(400, description="since needs a time zone (end it with Z for UTC).")
    return moment.astimezone(UTC)


def _limit(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        abort(400, description=f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)
