"""One real browser (Debian's Chromium, driven by Playwright) and the three apps running for
real on free ports: the stories of the demo, clicked through as people would.

Each person gets a browser context of their own (their own cookies), all in one browser.
Screenshots of the key pages go to test-artifacts/ (CI keeps them)."""

import os
import shutil
from pathlib import Path

import pytest

from authz_server import db as as_db
from authz_server.seed import demo_clients, ensure_client
from doctor_client import create_app as create_doctor
from records_server import create_app as create_ehr
from records_server import db as ehr_db
from records_server.seed import seed_demo as seed_ehr
from tests.authz.conftest import build_app
from tests.conftest import LiveServer, free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Stack:
    def __init__(self, tmp: Path, signing_jwk):
        ports = {name: free_port() for name in ("as", "ehr", "doctor")}
        self.as_url, self.ehr_url, self.doctor_url = (
            f"http://127.0.0.1:{ports[n]}" for n in ("as", "ehr", "doctor")
        )
        os.environ["EHR_URL"], os.environ["DOCTOR_URL"] = self.ehr_url, self.doctor_url
        self.as_app = build_app(
            f"sqlite:///{tmp / 'as.db'}", signing_jwk, ISSUER=self.as_url, UMA_POLL_INTERVAL=1
        )
        with self.as_app.app_context():
            for spec in demo_clients():
                ensure_client(as_db.session(), spec["client_id"], spec["secret"], spec["metadata"])
            as_db.session().commit()
        self.ehr_app = create_ehr(
            {
                "MIGRATE_ON_START": True,
                "DATABASE_URL": f"sqlite:///{tmp / 'ehr.db'}",
                "AS_ISSUER": self.as_url,
                "PUBLIC_URL": self.ehr_url,
                "SECRET_KEY": "browser-ehr",
                "INTROSPECTION_CACHE_SECONDS": 1,
            }
        )
        with self.ehr_app.app_context():
            seed_ehr(ehr_db.session())
        self.doctor_app = create_doctor(
            {
                "MIGRATE_ON_START": True,
                "DATABASE_URL": f"sqlite:///{tmp / 'doctor.db'}",
                "AS_ISSUER": self.as_url,
                "EHR_URL": self.ehr_url,
                "PUBLIC_URL": self.doctor_url,
                "SECRET_KEY": "browser-doctor",
            }
        )
        self.servers = [
            LiveServer(self.as_app, ports["as"]).start(),
            LiveServer(self.ehr_app, ports["ehr"]).start(),
            LiveServer(self.doctor_app, ports["doctor"]).start(),
        ]

    def stop(self):
        for server in self.servers:
            server.stop()
        for app, key in (
            (self.as_app, "authz_db"),
            (self.ehr_app, "ehr_db"),
            (self.doctor_app, "doctor_db"),
        ):
            app.extensions[key].engine.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, signing_jwk):
    saved = {k: os.environ.get(k) for k in ("EHR_URL", "DOCTOR_URL")}
    running = Stack(tmp_path_factory.mktemp("stack"), signing_jwk)
    yield running
    running.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api as playwright_api  # a test extra: never skipped

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "Chromium is missing: `make test` installs Debian's chromium package "
            "(apt-get install chromium) before the browser tests"
        )
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


OPEN_PAGES: dict[str, object] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing story leaves a screenshot of every person's page, named after the test."""
    report = yield
    if report.when == "call" and report.failed:
        for name, page in OPEN_PAGES.items():
            try:
                shot(page, f"FAILED-{item.name}-{name}")
            except Exception:  # a page that is gone has nothing to show
                pass
    return report


@pytest.fixture(scope="module")
def people(browser):
    """people("alice") → that person's page, in a context of their own, kept for the module."""
    contexts = {}

    def person(name: str):
        if name not in contexts:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_default_timeout(15_000)
            contexts[name] = OPEN_PAGES[name] = context.new_page()
        return contexts[name]

    yield person
    OPEN_PAGES.clear()
    for page in contexts.values():
        page.context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in_at_as(page, username: str) -> None:
    """On the AS's sign-in page (wherever an app sent us): type the demo credentials."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", username)
    page.click("input[type=submit][value='Sign in'], button:has-text('Sign in')")
