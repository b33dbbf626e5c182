"""Fixtures for the EHR: the real AS and the real EHR on free ports, and a browser-like
session that signs people in and clicks through the pages over real HTTP."""

import re
from urllib.parse import urlsplit

import pytest
import requests

from authz_server.seed import demo_clients, ensure_client
from records_server import create_app
from records_server import db as ehr_db
from records_server.seed import seed_demo
from tests.authz.conftest import build_app
from tests.conftest import LiveServer, free_port

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class Browser(requests.Session):
    """A person's browser: cookies for every app, forms filled as a person would."""

    def form_token(self, html: str) -> str:
        match = CSRF_RE.search(html)
        assert match, "page has no CSRF token"
        return match.group(1)

    def through_the_as(self, response, username: str, allow: bool = True):
        """Sign in and answer the consent page at the AS as needed; return where we land."""
        for _ in range(4):
            path = urlsplit(response.url).path
            if path.endswith("/login") and 'name="password"' in response.text:
                response = self.post(
                    response.url,
                    data={
                        "username": username,
                        "password": username,
                        "csrf_token": self.form_token(response.text),
                    },
                )
            elif path.endswith("/rqp/claims") and 'name="proceed"' in response.text:
                response = self.post(
                    response.url,
                    data={"csrf_token": self.form_token(response.text), "proceed": "1"},
                )
            elif path.endswith("/authorize") and 'name="allow"' in response.text:
                choice = "allow" if allow else "deny"
                response = self.post(
                    response.url,
                    data={"csrf_token": self.form_token(response.text), choice: "1"},
                )
            else:
                return response
        return response


class Apps:
    """The AS and the EHR as running servers, and ways to restart the EHR."""

    def __init__(self, as_server, as_app, ehr_port, ehr_config, doctor_port):
        self.as_server, self.as_app = as_server, as_app
        self.ehr_port, self.ehr_config = ehr_port, ehr_config
        self.ehr_url = f"http://127.0.0.1:{ehr_port}"
        # The doctor app's port is chosen here, so the AS registers its redirect URIs.
        self.doctor_port = doctor_port
        self.doctor_url = f"http://127.0.0.1:{doctor_port}"
        self.ehr_server = None
        self.ehr_app = None

    def start_ehr(self, **overrides):
        self.ehr_app = create_app({**self.ehr_config, **overrides})
        self.ehr_server = LiveServer(self.ehr_app, self.ehr_port).start()
        return self.ehr_app

    def stop_ehr(self):
        if self.ehr_server is not None:
            self.ehr_server.stop()
            self.ehr_app.extensions["ehr_db"].engine.dispose()
            self.ehr_server = None

    def ehr_session(self):
        return self.ehr_app.extensions["ehr_db"].scoped()


@pytest.fixture
def ehr_database_url(database_url):
    """The EHR's own database: beside the AS's (SQLite) or its schema-less twin (PostgreSQL
    runs both apps in one throwaway database; their table names do not overlap)."""
    if database_url.startswith("sqlite:///"):
        return database_url.replace("test.db", "ehr.db")
    return database_url


@pytest.fixture
def apps(database_url, ehr_database_url, signing_jwk, monkeypatch):
    ehr_port = free_port()
    ehr_url = f"http://127.0.0.1:{ehr_port}"
    as_port = free_port()
    doctor_port = free_port()
    monkeypatch.setenv("EHR_URL", ehr_url)
    monkeypatch.setenv("DOCTOR_URL", f"http://127.0.0.1:{doctor_port}")
    as_app = build_app(database_url, signing_jwk, ISSUER=f"http://127.0.0.1:{as_port}")
    with as_app.app_context():
        from authz_server import db as as_db

        for spec in demo_clients():
            ensure_client(as_db.session(), spec["client_id"], spec["secret"], spec["metadata"])
        as_db.session().commit()
    as_server = LiveServer(as_app, as_port).start()
    config = {
        "TESTING": True,
        "MIGRATE_ON_START": True,
        "DATABASE_URL": ehr_database_url,
        "AS_ISSUER": as_server.url,
        "PUBLIC_URL": ehr_url,
        "SECRET_KEY": "ehr-test-secret",
        "AS_TIMEOUT": 3,
    }
    running = Apps(as_server, as_app, ehr_port, config, doctor_port)
    app = running.start_ehr()
    with app.app_context():
        seed_demo(ehr_db.session())
    yield running
    running.stop_ehr()
    as_server.stop()
    as_app.extensions["authz_db"].engine.dispose()


@pytest.fixture
def alice_browser(apps):
    """Alice, signed in at the EHR (OIDC against the AS)."""
    browser = Browser()
    page = browser.through_the_as(browser.get(apps.ehr_url + "/login"), "alice")
    assert page.status_code == 200 and "Protect my records" in page.text, page.text[:500]
    return browser


def protect(browser: Browser, apps: Apps):
    """Alice clicks "Protect my records" and consents at the AS."""
    page = browser.get(apps.ehr_url + "/")
    response = browser.post(
        apps.ehr_url + "/protect", data={"csrf_token": browser.form_token(page.text)}
    )
    return browser.through_the_as(response, "alice")


@pytest.fixture
def linked(apps, alice_browser):
    """Alice's records, linked: a PAT at the EHR and every record set registered."""
    page = protect(alice_browser, apps)
    assert "Your records are now protected" in page.text, page.text[:800]
    return alice_browser
