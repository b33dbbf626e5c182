"""The EHR's blueprints: the patient's pages and the UMA-protected API."""


def init_app(app, csrf) -> None:
    from . import api, pages

    csrf.exempt(api.bp)  # a bearer-token API: no cookies, so no CSRF to guard against
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
