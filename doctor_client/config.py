"""Configuration: demo defaults, then ``DOCTOR_*`` environment variables, then test_config."""

from app_support.config import read_environ

DEFAULTS = {
    # Where browsers reach this app; the AS sends people back here.
    "PUBLIC_URL": "http://localhost:8402",
    # The AS this app signs people in with (OIDC). UMA tokens come from whichever AS the
    # EHR names in its challenge (as_uri), discovered at run time.
    "AS_ISSUER": "http://localhost:8400",
    # The EHR whose patient directory "Open a patient" reads; resources elsewhere are refused.
    "EHR_URL": "http://localhost:8401",
    "CLIENT_ID": "doctor-app",
    "CLIENT_SECRET": "doctor-demo-secret",
    "DATABASE_URL": "sqlite:///instance/doctor_client.db",
    # Run the schema migrations when the app is built (the CLIs and the tests do). Off, a
    # served app only checks the schema and refuses to start on one its code does not match.
    "MIGRATE_ON_START": False,
    "SECRET_KEY": None,
    "SESSION_COOKIE_NAME": "uma_doctor_session",
    # Lax: the cookie rides along top-level navigations (the OAuth redirects between the
    # apps) but not cross-site subrequests or form posts, on top of the CSRF tokens.
    "SESSION_COOKIE_SAMESITE": "Lax",
    "HTTP_TIMEOUT": 10,
    # The device-feed page reloads itself this often (seconds) to show new readings.
    "FEED_REFRESH_SECONDS": 10,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # The teaching layer: record this app's share of each UMA flow and serve it at
    # /_trace/flows/<flow id> ("How did I get this?"). Off → nothing recorded or served.
    "TRACE_ENABLED": True,
}


def from_environ(environ=None) -> dict:
    """``DOCTOR_<NAME>`` over the defaults; ``AS_ISSUER``, ``EHR_URL`` and ``DOCTOR_URL`` are
    shared with the other apps."""
    shared = {"AS_ISSUER": "AS_ISSUER", "EHR_URL": "EHR_URL", "DOCTOR_URL": "PUBLIC_URL"}
    return read_environ(DEFAULTS, "DOCTOR", shared, environ)
