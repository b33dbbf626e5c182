"""HTTP views, one blueprint per concern."""

from . import auth, claims, console, discovery, oauth, owner_api, protection


def init_app(app, csrf) -> None:
    app.register_blueprint(auth.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(claims.bp)
    app.register_blueprint(owner_api.bp)  # session + CSRF header, so not exempt
    # Machine-to-machine endpoints authenticate with client credentials or tokens, never
    # with the browser session, so CSRF does not apply to them.
    for blueprint in (oauth.bp, discovery.bp, discovery.keycloak_bp, protection.bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
