"""The EHR's blueprints: the patient's pages and the UMA-protected API."""

from flask import current_app, url_for


def public_url(endpoint: str, **values) -> str:
    """An absolute URL of this EHR as browsers, clients and the AS know it (``EHR_URL``), not
    the request's Host, which behind a balancer may name one node."""
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


def init_app(app, csrf) -> None:
    from . import api, pages

    csrf.exempt(api.bp)  # a bearer-token API: no cookies, so no CSRF to guard against
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
