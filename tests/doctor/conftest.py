"""Fixtures for the doctor app: the real AS, the real EHR (Alice linked) and the real doctor
app on free ports, and people's browsers."""

import pytest

from doctor_client import create_app
from tests.conftest import LiveServer
from tests.records.conftest import (  # fixtures shared with the EHR's tests
    Browser,
    alice_browser,
    apps,
    ehr_database_url,
    linked,
)


@pytest.fixture
def doctor(apps, linked, ehr_database_url, tmp_path):
    """The doctor app, running; Alice's records are linked to her AS."""
    database = (
        f"sqlite:///{tmp_path / 'doctor.db'}"
        if ehr_database_url.startswith("sqlite")
        else ehr_database_url
    )
    app = create_app(
        {
            "TESTING": True,
            "MIGRATE_ON_START": True,
            "DATABASE_URL": database,
            "AS_ISSUER": apps.as_server.url,
            "EHR_URL": apps.ehr_url,
            "PUBLIC_URL": apps.doctor_url,
            "SECRET_KEY": "doctor-test-secret",
            "HTTP_TIMEOUT": 5,
        }
    )
    server = LiveServer(app, apps.doctor_port).start()
    yield app
    server.stop()
    app.extensions["doctor_db"].engine.dispose()


@pytest.fixture
def sign_in(apps, doctor):
    """sign_in("carol") → a browser signed in to the doctor app (OIDC at the AS)."""

    def _sign_in(username: str) -> Browser:
        browser = Browser()
        page = browser.through_the_as(browser.get(apps.doctor_url + "/login"), username)
        assert page.status_code == 200 and "Open a patient" in page.text, page.text[:400]
        return browser

    return _sign_in
