"""The claims interaction endpoint (UMA Grant §3.3.2–3.3.3, checklist 6.7).

The requesting party signs in here, sees which app asks for what on whose behalf, and is
sent back to the client's pre-registered claims redirect URI with a new ticket. Nothing
completes without a signed-in person pressing Continue on a CSRF-protected form
(SEC-CSRF-AS), and nothing ever redirects to a URI the client did not register (CI-1..3).
"""

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SubmitField

from .. import db
from ..discovery import PATHS
from ..models import Resource, User
from ..oauth2 import query_client
from ..tickets import TicketUnusable, find_ticket, redeem_ticket, rotate_ticket

bp = Blueprint("claims", __name__)


class ClaimsForm(FlaskForm):
    proceed = SubmitField("Continue")
    cancel = SubmitField("Cancel")


def _refuse(message: str):
    """CI-3: a bad client or redirect URI is shown to the person, never redirected to."""
    return (
        render_template(
            "error.html",
            title="This request cannot be completed",
            message=message,
            code="invalid_request",
        ),
        400,
    )


def _back(uri: str, **params):
    """Back to the client: CI-4/CI-5, with ``state`` only if the client sent one."""
    state = request.args.get("state")
    if state is not None:
        params["state"] = state
    return redirect(add_params_to_uri(uri, list(params.items())), code=302)


def _redirect_uri(client) -> str | None:
    registered = client.claims_redirect_uris
    given = request.args.get("claims_redirect_uri")
    if not registered:
        return None  # CI-1: pre-registration is required of every client
    if given:
        return given if given in registered else None  # exact string match
    return registered[0] if len(registered) == 1 else None


@bp.route(PATHS["claims_interaction_endpoint"], methods=["GET", "POST"])
def claims_interaction():
    client_id = request.args.get("client_id")
    client = query_client(client_id) if client_id else None
    if client is None:
        return _refuse("The requesting app is unknown to this server (missing or bad client_id).")
    redirect_uri = _redirect_uri(client)
    if redirect_uri is None:
        return _refuse(
            f"{client.display_name} did not send a claims redirect URI it registered here."
        )

    session = db.session()
    value = request.args.get("ticket")
    ticket = find_ticket(session, value) if value else None
    if ticket is None:
        return _back(
            redirect_uri,
            error="invalid_request",
            error_description="The ticket is missing or unknown.",
        )

    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path))

    form = ClaimsForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return _refuse(
                "This form expired or did not come from this page. Please start again from the app."
            )
        if form.cancel.data:
            return _back(
                redirect_uri, error="access_denied", error_description="The person cancelled."
            )
        try:
            redeem_ticket(session, value)  # TKT-3: presented here, so invalidated here
        except TicketUnusable as error:
            return _back(
                redirect_uri,
                error="invalid_request",
                error_description=f"The ticket cannot be used: {error.reason}.",
            )
        new_ticket = rotate_ticket(
            session,
            ticket,
            current_app.config["TICKET_TTL"],
            requester_id=current_user.id,
            bound_client_pk=client.id,
            claims_gathered=True,
        )
        return _back(redirect_uri, ticket=new_ticket)  # CI-5: no claims go to the client

    ids = [p["resource_id"] for p in ticket.permissions]
    resources = {r.id: r for r in session.scalars(select(Resource).where(Resource.id.in_(ids)))}
    asked = [
        (resources[p["resource_id"]], p["resource_scopes"])
        for p in ticket.permissions
        if p["resource_id"] in resources
    ]
    return render_template(
        "claims.html",
        form=form,
        client=client,
        owner=session.get(User, ticket.owner_id),
        asked=asked,
        usable=ticket.used_at is None,
    )
