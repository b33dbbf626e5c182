"""Configuration: demo defaults, then ``EHR_*`` environment variables, then test_config."""

from app_support.config import read_environ

# Every setting, its default, and how to read it from the environment (EHR_<NAME>). The
# defaults make `make demo` work on a laptop.
DEFAULTS = {
    # Where this EHR is reachable by browsers; the AS redirects people back here.
    "PUBLIC_URL": "http://localhost:8401",
    # The authorization server's issuer: every endpoint is discovered from it (DISC-*).
    "AS_ISSUER": "http://localhost:8400",
    # This EHR's OAuth client at the AS (seeded by the AS's `seed-demo`).
    "CLIENT_ID": "ehr",
    "CLIENT_SECRET": "ehr-demo-secret",
    "DATABASE_URL": "sqlite:///instance/records_server.db",
    # Run the schema migrations when the app is built (the CLIs and the tests do). Off, a
    # served app only checks the schema and refuses to start on one its code does not match.
    "MIGRATE_ON_START": False,
    # None → a random key generated once and kept in the database, shared by all workers.
    "SECRET_KEY": None,
    "SESSION_COOKIE_NAME": "uma_ehr_session",
    # Lax: the cookie rides along top-level navigations (the OAuth redirects between the
    # apps) but not cross-site subrequests or form posts, on top of the CSRF tokens.
    "SESSION_COOKIE_SAMESITE": "Lax",
    # How long an RPT introspection answer is reused. Short, so a revocation at the AS bites
    # within seconds (RFC 7662 §4 trade-off); 0 introspects on every request.
    "INTROSPECTION_CACHE_SECONDS": 5,
    # Seconds to wait for the AS before answering 403 + Warning (RS-3).
    "AS_TIMEOUT": 5,
    # A PAT this close to its expiry is refreshed before use rather than after a 401.
    "PAT_REFRESH_MARGIN": 30,
    # The realm in WWW-Authenticate: UMA challenges.
    "REALM": "uma-health-ehr",
    # Register record sets with the AS (idempotently) when the app starts.
    "SYNC_ON_START": True,
    # FHIR entries are small documents; anything larger is refused with 413.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # The teaching layer: record this app's share of each UMA flow and serve it at
    # /_trace/flows/<flow id> ("How did I get this?"). Off → nothing recorded or served.
    "TRACE_ENABLED": True,
}


def from_environ(environ=None) -> dict:
    """``EHR_<NAME>`` variables over the defaults; ``AS_ISSUER`` and ``EHR_URL`` are shared
    with the other apps."""
    return read_environ(
        DEFAULTS, "EHR", {"AS_ISSUER": "AS_ISSUER", "EHR_URL": "PUBLIC_URL"}, environ
    )
