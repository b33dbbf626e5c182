"""Configuration: demo defaults, then ``AS_*`` environment variables, then test_config."""

from app_support.config import read_environ

# Every setting, its default, and how to read it from the environment. The defaults make
# `make demo` work on a laptop; every one of them can be moved with an environment variable.
DEFAULTS = {
    # The issuer may carry a path (http://host/realms/x); every route then lives under it.
    "ISSUER": "http://localhost:8400",
    "DATABASE_URL": "sqlite:///instance/authz_server.db",
    # Run the schema migrations when the app is built (the CLIs and the tests do). Off, a
    # served app only checks the schema and refuses to start on one its code does not match.
    "MIGRATE_ON_START": False,
    # None → a random key generated once and kept in the database, shared by all workers.
    "SECRET_KEY": None,
    "SESSION_COOKIE_NAME": "uma_as_session",
    # Lax: the cookie rides along top-level navigations (the OAuth redirects between the
    # apps) but not cross-site subrequests or form posts, on top of the CSRF tokens.
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Lifetimes in seconds. Short access tokens, longer refresh tokens so an RS can keep a
    # PAT alive while its owner is offline (UMA FedAuthz §1.3).
    "ACCESS_TOKEN_TTL": 900,
    "REFRESH_TOKEN_TTL": 30 * 24 * 3600,
    "ID_TOKEN_TTL": 900,
    "AUTHORIZATION_CODE_TTL": 120,
    "TICKET_TTL": 300,
    # RPTs are short-lived (SEC-USER-SWITCH); PCTs spare the requester repeated sign-ins.
    "RPT_TTL": 300,
    "PCT_TTL": 30 * 24 * 3600,
    # Expired tickets, RPTs, PCTs, tokens and codes stay this long before
    # `uma-health-as purge-expired` deletes them (see housekeeping.py).
    "KEEP_EXPIRED_SECONDS": 24 * 3600,
    # Seconds a client should wait between request_submitted polls.
    "UMA_POLL_INTERVAL": 5,
    # A superseded signing key stays in the JWKS this long, so tokens it signed still verify.
    "KEY_GRACE_SECONDS": 24 * 3600,
    # Keycloak-shaped aliases (/realms/<name>/...) for clients such as python-keycloak.
    "KEYCLOAK_REALM": "uma-health",
    # RFC 7591 open registration: anyone may register a client (a demo choice; see README).
    "OPEN_REGISTRATION": True,
    # How many reverse proxies in front may set X-Forwarded-* (0: trust none).
    "TRUSTED_PROXIES": 0,
    # Largest request body any endpoint accepts; protection API documents are small.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # The teaching layer: record this app's share of each UMA flow and serve it at
    # /_trace/flows/<flow id> ("How did I get this?"). Off → nothing recorded or served.
    "TRACE_ENABLED": True,
}


def from_environ(environ=None) -> dict:
    """``AS_<NAME>`` variables (and plain ``DATABASE_URL``) over the defaults."""
    config = read_environ(DEFAULTS, "AS", {"DATABASE_URL": "DATABASE_URL"}, environ)
    config["ISSUER"] = config["ISSUER"].rstrip("/")
    return config
