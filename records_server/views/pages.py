"""The patient's pages: sign in with the AS, see her records, link them to the AS
("Protect my records"), add a record set, unlink, and see who accessed what."""

from authlib.integrations.base_client import OAuthError
from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms.fields.choices import SelectChoice

from health_fhir import summarize

from .. import db
from ..as_client import ASUnavailable, NotRegistered
from ..auth import ButtonForm, NewRecordSetForm
from ..entries import entries_of
from ..models import AccessLog, Patient, RecordSet
from ..oidc import PROTECT_SCOPE, SIGN_IN_SCOPE, authz
from ..pats import NotLinked, store_link
from ..record_kinds import KINDS
from ..registration import register_one, sync_patient, unlink
from . import public_url

bp = Blueprint("pages", __name__)

AS_DOWN = "The authorization server cannot be reached right now; nothing was changed. Try again."


def _public(endpoint: str) -> str:
    return public_url(endpoint)


def _margin() -> int:
    return current_app.config["PAT_REFRESH_MARGIN"]


@bp.get("/healthz")
def healthz():
    body, status = current_app.extensions["ehr_db"].health()
    return jsonify(body), status


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return render_template("welcome.html")
    patient: Patient = current_user
    session = db.session()
    record_sets = [
        (
            rs,
            KINDS.get(rs.name, {}),
            [summarize(e.resource) | {"entry": e} for e in entries_of(session, rs)],
        )
        for rs in patient.record_sets
    ]
    present = {rs.name for rs in patient.record_sets}
    missing = [SelectChoice(k, v["title"]) for k, v in KINDS.items() if k not in present]
    new_form = NewRecordSetForm()
    new_form.kind.choices = missing
    accesses = session.scalars(
        select(AccessLog)
        .where(AccessLog.patient_id == patient.id)
        .order_by(AccessLog.at.desc(), AccessLog.id.desc())
        .limit(50)
    ).all()
    return render_template(
        "records.html",
        patient=patient,
        link=patient.link,
        record_sets=record_sets,
        new_form=new_form,
        button=ButtonForm(),
        accesses=accesses,
        as_issuer=current_app.config["AS_ISSUER"],
    )


@bp.get("/login")
def login():
    try:
        return authz().authorize_redirect(_public("pages.signed_in"), scope=SIGN_IN_SCOPE)
    except (OAuthError, OSError, ValueError):
        return _as_trouble()


@bp.get("/auth/callback")
def signed_in():
    try:
        token = authz().authorize_access_token()
    except (OAuthError, OSError, ValueError) as error:
        return _sign_in_failed(error)
    claims = token.get("userinfo") or {}
    session = db.session()
    patient = session.scalar(
        select(Patient).where(Patient.username == claims.get("preferred_username"))
    )
    if patient is None:
        return render_template("no_records.html", name=claims.get("name") or claims.get("sub"))
    if patient.sub is None:
        patient.sub = claims["sub"]  # pinned at first sign-in
        session.commit()
    elif patient.sub != claims["sub"]:
        return _sign_in_failed("a different account than the one these records belong to")
    login_user(patient)
    return redirect(url_for("pages.index"))


@bp.post("/logout")
def logout():
    if ButtonForm().validate_on_submit():
        logout_user()
        flash("You are signed out of the EHR.", "info")
    return redirect(url_for("pages.index"))


@bp.post("/protect")
@login_required
def protect():
    """Start the code flow for a PAT: the AS asks Alice to consent to ``uma_protection``."""
    if not ButtonForm().validate_on_submit():
        return _form_expired()
    try:
        return authz().authorize_redirect(_public("pages.protected"), scope=PROTECT_SCOPE)
    except (OAuthError, OSError, ValueError):
        return _as_trouble()


@bp.get("/protect/callback")
@login_required
def protected():
    try:
        token = authz().authorize_access_token()
    except (OAuthError, OSError, ValueError) as error:
        flash(f"Your records were not linked: {_reason(error)}", "error")
        return redirect(url_for("pages.index"))
    patient: Patient = current_user
    if "uma_protection" not in (token.get("scope") or "").split():
        flash(
            "The authorization server did not grant the protection scope; your records "
            "were not linked. Press Protect again and allow it.",
            "error",
        )
        return redirect(url_for("pages.index"))
    if (token.get("userinfo") or {}).get("sub") != patient.sub:
        # She consented at the AS as someone else: that account must not guard her records.
        authz_client = current_app.extensions["ehr_as"]
        authz_client.revoke(token.get("refresh_token") or token["access_token"], "refresh_token")
        flash(
            "You signed in at the authorization server with a different account; "
            "your records were not linked.",
            "error",
        )
        return redirect(url_for("pages.index"))
    session = db.session()
    store_link(session, patient, dict(token))
    session.commit()
    try:
        sync_patient(
            session,
            current_app.extensions["ehr_as"],
            patient,
            current_app.config["PUBLIC_URL"],
            _margin(),
        )
    except (ASUnavailable, NotLinked, NotRegistered):
        session.rollback()
        flash(
            "Linked, but registering your records failed; they will be registered on the "
            "next start or when you press Protect again.",
            "error",
        )
        return redirect(url_for("pages.index"))
    flash("Your records are now protected by your authorization server.", "info")
    return redirect(url_for("pages.index"))


@bp.post("/unlink")
@login_required
def unlink_records():
    if not ButtonForm().validate_on_submit():
        return _form_expired()
    patient: Patient = current_user
    try:
        unlink(db.session(), current_app.extensions["ehr_as"], patient, _margin())
    except (ASUnavailable, NotRegistered):
        db.session().rollback()
        flash(AS_DOWN, "error")
        return redirect(url_for("pages.index"))
    flash(
        "Unlinked: your records are no longer registered at the authorization server, "
        "and nobody can reach them through it.",
        "info",
    )
    return redirect(url_for("pages.index"))


@bp.post("/record-sets")
@login_required
def new_record_set():
    patient: Patient = current_user
    form = NewRecordSetForm()
    form.kind.choices = [SelectChoice(k, v["title"]) for k, v in KINDS.items()]
    if not form.validate_on_submit():
        return _form_expired()
    session = db.session()
    record_set = RecordSet(patient_id=patient.id, name=form.kind.data)
    session.add(record_set)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        flash("You already have that record set.", "error")
        return redirect(url_for("pages.index"))
    try:
        register_one(
            session,
            current_app.extensions["ehr_as"],
            record_set,
            current_app.config["PUBLIC_URL"],
            _margin(),
        )
    except (ASUnavailable, NotLinked, NotRegistered):
        session.rollback()
        flash(
            "Added, but not yet registered at the authorization server (it could not be "
            "reached); it will be registered on the next start.",
            "error",
        )
        return redirect(url_for("pages.index"))
    flash(f"Added {KINDS[record_set.name]['title'].lower()}.", "info")
    return redirect(url_for("pages.index"))


def _shown(entry) -> dict:
    return summarize(entry.resource) | {"entry": entry}


def _reason(error) -> str:
    if isinstance(error, OAuthError):
        return error.description or error.error or "the authorization server refused"
    return str(error)


def _sign_in_failed(error):
    return render_template(
        "error.html",
        title="Sign-in did not complete",
        message=f"Sign-in did not complete: {_reason(error)}. Please start again.",
    ), 400


def _as_trouble():
    return render_template(
        "error.html", title="Authorization server unreachable", message=AS_DOWN
    ), 503


def _form_expired():
    flash("That form had expired; please try again.", "error")
    return redirect(url_for("pages.index"))
