"""The doctor's pages: sign in with the AS, open a patient, read a record or a device feed,
add a note; the UMA grant runs behind every "Open" (``access.Requests``)."""

from datetime import UTC, datetime
from urllib.parse import quote

import requests
from authlib.integrations.base_client import OAuthError
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from app_support.trace import tracer
from health_fhir import summarize

from .. import db, flows
from ..access import Requests, SignInRedirect, WaitingPage
from ..auth import ButtonForm, NoteForm
from ..chart import readings_from
from ..chart import render as render_chart
from ..db import utcnow
from ..flow_story import LANE_NAMES, LANES
from ..models import PendingAction, Person, Visit
from ..oidc import SIGN_IN_SCOPE, authz
from ..uma import Answered, Denied, Failed

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _current_flow():
    """The flow that produced this page, for its "How did I get this?" link."""
    return {"trace_flow": tracer().current_flow()}


def _requests() -> Requests:
    config = current_app.config
    return Requests(
        db.session(),
        current_app.extensions["doctor_uma"],
        current_user,
        config["AS_ISSUER"],
        config["PUBLIC_URL"] + url_for("pages.claims_callback"),
    )


def _ehr_api(path: str = "") -> str:
    return current_app.config["EHR_URL"] + "/api/patients/" + path


def _checked(url: str | None) -> str:
    """Only the configured EHR's patient API: the app must not fetch arbitrary URLs."""
    if not url or not url.startswith(_ehr_api()) or ".." in url:
        abort(400, description="That address is not a resource of the EHR this app works with.")
    return url


@bp.get("/healthz")
def healthz():
    body, status = current_app.extensions["doctor_db"].health()
    return jsonify(body), status


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return render_template("welcome.html")
    session = db.session()
    visits = session.scalars(
        select(Visit).where(Visit.person_id == current_user.id).order_by(Visit.at.desc())
    ).all()
    waiting = session.scalars(
        select(PendingAction).where(
            PendingAction.person_id == current_user.id,
            PendingAction.kind == "waiting",
            PendingAction.status == "open",
        )
    ).all()
    return render_template("home.html", visits=visits, waiting=waiting)


@bp.get("/login")
def login():
    try:
        return authz().authorize_redirect(
            current_app.config["PUBLIC_URL"] + url_for("pages.signed_in"), scope=SIGN_IN_SCOPE
        )
    except (OAuthError, OSError, ValueError):
        return _message("Authorization server unreachable", "Please try again shortly.", 503)


@bp.get("/auth/callback")
def signed_in():
    try:
        token = authz().authorize_access_token()
    except (OAuthError, OSError, ValueError) as error:
        detail = getattr(error, "description", None) or str(error)
        return _message("Sign-in did not complete", f"{detail}. Please start again.", 400)
    claims = token["userinfo"]
    session = db.session()
    person = session.scalar(select(Person).where(Person.sub == claims["sub"]))
    if person is None:
        person = Person(sub=claims["sub"])
        session.add(person)
    person.username = claims.get("preferred_username", "")
    person.name = claims.get("name", "")
    person.id_token = token["id_token"]
    person.id_token_expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    session.commit()
    login_user(person)
    return redirect(url_for("pages.index"))


@bp.post("/logout")
def logout():
    if ButtonForm().validate_on_submit():
        logout_user()
        flash("You are signed out.", "info")
    return redirect(url_for("pages.index"))


@bp.get("/patients")
@login_required
def patient():
    name = (request.args.get("name") or "").strip().lower()
    if not name or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 80:
        flash("Type a patient's username, e.g. alice.", "error")
        return redirect(url_for("pages.index"))
    try:
        response = requests.get(_ehr_api(quote(name)), timeout=current_app.config["HTTP_TIMEOUT"])
    except requests.RequestException:
        return _message("EHR unreachable", "The EHR cannot be reached right now.", 502)
    if response.status_code == 404:
        flash(f"The EHR has no patient called {name}.", "error")
        return redirect(url_for("pages.index"))
    if response.status_code != 200:
        return _message("EHR error", f"The EHR answered {response.status_code}.", 502)
    return render_template("patient.html", directory=response.json())


@bp.get("/open")
@login_required
def open_resource():
    url = _checked(request.args.get("url"))
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        # Another site sent the browser here: asking a patient for access must be the
        # person's own click, not a link on someone else's page (a GET-borne CSRF).
        return render_template("confirm_open.html", url=url), 200
    title = request.args.get("title", "")
    if not request.args.get("auto"):  # the feed's own refresh is not a new story
        flows.begin(f"Open {title or url}")
    result = _requests().perform("GET", url, title=title)
    flows.remember(result)
    return _show(result, url)


@bp.post("/note")
@login_required
def add_note():
    url = _checked(request.args.get("url"))
    form = NoteForm()
    if not form.validate_on_submit():
        flash("The note needs a title and a text (and the form may have expired).", "error")
        return redirect(url_for("pages.open_resource", url=url))
    note = {
        "resourceType": "DocumentReference",
        "status": "current",
        "date": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "author": [{"display": current_user.name or current_user.username}],
        "description": form.text.data,
        "content": [{"attachment": {"contentType": "text/plain", "title": form.title.data}}],
    }
    flows.begin(f"Note “{form.title.data}”")
    result = _requests().perform("POST", url + "/entries", body=note)
    flows.remember(result)
    return _show(result, url)


@bp.get("/uma/claims-callback")
@login_required
def claims_callback():
    """UMA Grant §3.3.3: back from the AS with a new ticket and our ``state``."""
    state, ticket = request.args.get("state"), request.args.get("ticket")
    if state:
        flows.resume(flows.claims_key(state))
    if request.args.get("error"):
        if state:
            _requests().sign_in_refused(state, "You stopped at the authorization server.")
        return _message(
            "Not continued",
            "You stopped at the authorization server, so nothing was shared. "
            f"({request.args.get('error_description') or request.args['error']})",
            403,
        )
    if not state or not ticket:
        return _message(
            "Sign-in at the authorization server did not complete",
            "The answer lacked its ticket or state. Open the record again to retry.",
            400,
        )
    result = _requests().resume_after_sign_in(state, ticket)
    flows.remember(result)
    if result is None:
        return _message(
            "This answer was not expected",
            "The authorization server's answer does not match a request of yours (an unknown "
            "or reused state). Nothing was done; open the record again if you meant to.",
            400,
        )
    return _show(result, None)


@bp.get("/waiting/<int:pending_id>")
@login_required
def waiting(pending_id: int):
    access = _requests()
    pending = access.pending(pending_id)
    if pending is None:
        abort(404, description="No such request of yours.")
    if pending.status == "denied":
        return _message("Not shared with you", pending.message or "The owner said no.", 403)
    flows.resume(flows.waiting_key(pending_id), record_request=False)
    result = access.poll(pending)
    flows.remember(result)
    return _show(result, None)


@bp.get("/how")
@login_required
def how_latest():
    """ "How did I get this?" for the last thing this person did."""
    flow = flows.latest()
    if flow is None:
        return render_template("how.html", flow=None, steps=[], missing=[], recent=[])
    return redirect(url_for("pages.how", flow_id=flow.id))


@bp.get("/how/<flow_id>")
@login_required
def how(flow_id: str):
    flow, told, missing = flows.told(flow_id)
    if flow is None:
        abort(404, description="No such flow of yours.")
    return render_template(
        "how.html",
        flow=flow,
        steps=told,
        missing=missing,
        recent=flows.recent(),
        lanes=LANES,
        lane_names=LANE_NAMES,
    )


@bp.get("/how/<flow_id>.json")
@login_required
def how_json(flow_id: str):
    flow, told, missing = flows.told(flow_id)
    if flow is None:
        return jsonify(error="not_found", error_description="No such flow of yours."), 404
    return jsonify(
        flow_id=flow.id,
        title=flow.title,
        steps=[step.as_dict() for step in told],
        unreachable=missing,
    )


def _show(result, url: str | None):
    """What the person sees after a request went as far as it could."""
    if isinstance(result, SignInRedirect):
        return redirect(result.url)
    if isinstance(result, WaitingPage):
        pending = result.pending
        if pending.status == "done":
            return redirect(url_for("pages.open_resource", url=_record_url(pending.url)))
        if pending.status in ("denied", "failed"):
            return _message("Not shared with you", pending.message or "It did not work.", 403)
        if request.endpoint != "pages.waiting":  # its own address, so reloading polls
            return redirect(url_for("pages.waiting", pending_id=pending.id))
        seconds = max(1, int((pending.next_poll_at - utcnow()).total_seconds()) + 1)
        return render_template("waiting.html", pending=pending, seconds=seconds)
    if isinstance(result, Denied):
        return _message("Not shared with you", result.description, 403)
    if isinstance(result, Failed):
        return _message("That did not work", result.description, 502)
    assert isinstance(result, Answered)
    response = result.response
    request_url = response.request.url
    if response.request.method == "POST":
        if response.status_code == 201:
            flash("Your note was added to the record.", "info")
        else:
            flash(f"The EHR refused the note: {_description(response)}", "error")
        return redirect(url_for("pages.open_resource", url=_record_url(request_url)))
    if response.status_code != 200:
        return _message("The EHR could not show this", _description(response), response.status_code)
    bundle = response.json()
    if "/devices/" in request_url:
        return _feed(bundle, request_url)
    entries = [summarize(e.get("resource", {})) for e in bundle.get("entry", [])]
    return render_template(
        "record.html",
        bundle=bundle,
        entries=entries,
        url=request_url,
        form=NoteForm(),
        writable=request_url.endswith("/records/history"),
    )


def _feed(bundle: dict, url: str):
    points = readings_from(bundle)
    return render_template(
        "feed.html",
        bundle=bundle,
        chart=render_chart(points),
        latest=points[-1] if points else None,
        url=url,
        refresh=current_app.config["FEED_REFRESH_SECONDS"],
    )


def _record_url(url: str) -> str:
    """The page to show after a write or a wait: the record itself, not its entries URL."""
    return url.removesuffix("/entries")


def _description(response) -> str:
    try:
        return response.json().get("error_description") or str(response.status_code)
    except ValueError:
        return str(response.status_code)


def _message(title: str, message: str, status: int):
    return render_template("message.html", title=title, message=message, kind="error"), status
