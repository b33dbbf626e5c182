"""Sign in, sign out, and the authorization (consent) page of the code flow."""

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core.errors import ConsentRequiredError
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..auth import ConsentForm, LoginForm, LogoutForm, authenticate, safe_next
from ..oauth2 import authorization, non_ascii_parameter

bp = Blueprint("auth", __name__)

# What each scope lets the client do, in words a patient understands. {client} is its name.
SCOPE_EXPLANATIONS = {
    "openid": "know who you are on this server (your account identifier)",
    "profile": "see your name and username",
    "email": "see your email address",
    "uma_protection": (
        "let {client} register your records here so this server can protect them while you are away"
    ),
}


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    next_url = safe_next(request.args.get("next"), url_for("console.index"))
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            session.clear()  # a fresh session id on sign-in: no session fixation
            login_user(user)
            return redirect(next_url)
        flash("Wrong username or password.", "error")
        return render_template("login.html", form=form, next_url=next_url), 401
    if request.method == "POST":
        return render_template("login.html", form=form, next_url=next_url), 400
    return render_template("login.html", form=form, next_url=next_url)


@bp.route("/logout", methods=["POST"])
def logout():
    if LogoutForm().validate_on_submit():
        logout_user()
        session.clear()
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _without_prompt_login() -> str:
    """The authorize URL minus ``prompt=login``, so signing in again does not loop."""
    args = [
        (k, v) for k, v in request.args.items(multi=True) if not (k == "prompt" and "login" in v)
    ]
    return url_for("auth.authorize") + "?" + urlencode(args)


def _error_page(error: OAuth2Error):
    """Errors that must not redirect (unknown client, bad redirect_uri) are shown here."""
    status, body, headers = error()
    if status == 302:
        return authorization().handle_response(status, body, headers)
    return (
        render_template(
            "error.html",
            title="This sign-in request cannot be completed",
            message=error.description or error.error,
            code=error.error,
        ),
        400,
    )


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    """RFC 6749 §4.1.1 / OIDC Core §3.1.2: authenticate the person, then ask for consent."""
    server = authorization()
    user = current_user if current_user.is_authenticated else None
    bad = non_ascii_parameter(request.args)
    if bad:
        return _error_page(
            OAuth2Error(
                f"The parameter '{bad}' holds characters that OAuth "
                "does not allow (RFC 6749 Appendix A)."
            )
        )
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return _error_page(error)

    if user is None or (request.method == "GET" and grant.prompt == "login"):
        if user is not None:
            logout_user()
        return redirect(url_for("auth.login", next=_without_prompt_login()))

    prompts = (request.args.get("prompt") or "").split()
    if "none" in prompts:
        # We ask every time, so "no UI" can never be honoured (OIDC Core §3.1.2.6).
        error = ConsentRequiredError(redirect_uri=grant.redirect_uri)
        error.state = request.args.get("state")
        return _error_page(error)

    form = ConsentForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return _error_page(
                OAuth2Error("The consent form expired. Please start again from the app.")
            )
        grant_user = user if form.allow.data else None
        return server.create_authorization_response(grant_user=grant_user, grant=grant)

    client = grant.client
    scopes = scope_to_list(client.get_allowed_scope(grant.request.payload.scope)) or []
    explanations = [SCOPE_EXPLANATIONS.get(s, s).format(client=client.display_name) for s in scopes]
    return render_template(
        "consent.html", form=form, client=client, explanations=explanations, user=user
    )
