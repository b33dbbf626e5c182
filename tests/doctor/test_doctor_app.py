"""The doctor app as a UMA client (checklist 6.4, 6.5, 6.7, SEC-CSRF-C, SEC-RPT-CONF), with the
real AS, the real EHR and the real doctor app on free ports, driven like a browser."""

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from sqlalchemy import func, select, update

from doctor_client.db import utcnow
from doctor_client.models import PendingAction, Person, Wallet
from records_server.models import AccessLog
from tests.authz.test_uma_grant import owner_call, share
from tests.records.test_ehr_protection import record_sets

pytestmark = pytest.mark.live


def open_url(apps, name: str) -> str:
    return f"{apps.ehr_url}/api/patients/alice/records/{name}"


def open_page(apps, browser, name: str):
    return browser.get(f"{apps.doctor_url}/open?url={quote(open_url(apps, name))}")


def grant_count(apps) -> int:
    """How many times the EHR referred a client to the AS (401 + ticket)."""
    session = apps.ehr_session()
    try:
        return session.scalar(select(func.count()).where(AccessLog.outcome == "ticket"))
    finally:
        session.close()


def poll_now(doctor) -> None:
    """Skip the polling interval (the waiting page would reload by itself after it)."""
    session = doctor.extensions["doctor_db"].scoped()
    session.execute(update(PendingAction).values(next_poll_at=utcnow()))
    session.commit()
    session.close()


def pending_requests(apps) -> list[dict]:
    response = owner_call(apps.as_app.test_client(), "GET", "/api/owner/requests")
    assert response.status_code == 200
    return response.json["requests"] if isinstance(response.json, dict) else response.json


def share_history_with_carol(apps) -> None:
    """Alice's standing policy: Carol may read her history."""
    share(
        apps.as_app.test_client(),
        {"type": "user", "username": "carol"},
        [record_sets(apps)["history"]],
    )


def forget_id_tokens(doctor) -> None:
    """No claims to push any more, so the AS must ask the person (need_info)."""
    session = doctor.extensions["doctor_db"].scoped()
    session.execute(Person.__table__.update().values(id_token=None))
    session.commit()
    session.close()


def the_wallet(doctor) -> Wallet:
    session = doctor.extensions["doctor_db"].scoped()
    wallet = session.scalar(select(Wallet))
    session.close()
    return wallet


def test_carol_reads_with_her_standing_policy(apps, doctor, sign_in):
    share_history_with_carol(apps)
    carol = sign_in("carol")
    directory = carol.get(f"{apps.doctor_url}/patients?name=alice")
    assert "Medical history" in directory.text and "Open" in directory.text
    page = open_page(apps, carol, "history")
    assert page.status_code == 200
    assert "Essential hypertension" in page.text and "Pre-operative assessment" in page.text
    home = carol.get(apps.doctor_url + "/")
    assert "you have access" in home.text  # Shared with me


def test_the_rpt_never_reaches_the_browser(apps, doctor, sign_in):
    """SEC-RPT-CONF: the RPT and the PCT stay on the server."""
    share_history_with_carol(apps)
    carol = sign_in("carol")
    page = open_page(apps, carol, "history")
    wallet = the_wallet(doctor)
    assert wallet.rpt and wallet.pct
    for secret in (wallet.rpt, wallet.pct):
        assert secret not in page.text
        assert all(secret not in c.value for c in carol.cookies)


def test_bob_waits_then_alice_approves_and_his_page_completes(apps, doctor, sign_in):
    """request_submitted → a waiting page that polls with the new ticket → Alice's Share."""
    bob = sign_in("bob")
    page = open_page(apps, bob, "labs")
    assert "Waiting for the patient" in page.text
    waiting_url = page.url
    refresh = re.search(r'http-equiv="refresh" content="(\d+)"', page.text)
    assert refresh and int(refresh.group(1)) >= 1
    assert "Waiting for the patient" in bob.get(waiting_url).text  # still waiting

    (pending,) = [r for r in pending_requests(apps) if r.get("status", "pending") == "pending"]
    approved = owner_call(
        apps.as_app.test_client(), "POST", f"/api/owner/requests/{pending['id']}/approve", {}
    )
    assert approved.status_code in (200, 201), approved.json
    poll_now(doctor)
    done = bob.get(waiting_url)
    assert "CBC panel" in done.text, done.text[:600]


def test_mallory_is_denied(apps, doctor, sign_in):
    """request_denied → a clear page; she asked, Alice said no."""
    mallory = sign_in("mallory")
    assert "Waiting for the patient" in open_page(apps, mallory, "history").text
    (pending,) = pending_requests(apps)
    denied = owner_call(
        apps.as_app.test_client(), "POST", f"/api/owner/requests/{pending['id']}/deny", {}
    )
    assert denied.status_code in (200, 201, 204)
    page = open_page(apps, mallory, "history")
    assert page.status_code == 403 and "Not shared with you" in page.text


def test_need_info_claims_interaction_then_rpt(apps, doctor, sign_in):
    """No usable claims (the ID token is gone) → need_info → the AS's claims page → back with
    a new ticket and our state → RPT → the record."""
    share_history_with_carol(apps)
    carol = sign_in("carol")
    forget_id_tokens(doctor)
    first = carol.get(
        f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}", allow_redirects=False
    )
    assert first.status_code == 302
    target = urlsplit(first.headers["Location"])
    params = parse_qs(target.query)
    assert target.path == "/rqp/claims"
    assert params["client_id"] == ["doctor-app"]
    assert params["claims_redirect_uri"] == [apps.doctor_url + "/uma/claims-callback"]
    assert len(params["state"][0]) >= 32 and params["ticket"][0]
    page = carol.through_the_as(carol.get(first.headers["Location"]), "carol")
    assert "Essential hypertension" in page.text, page.text[:600]


def test_a_forged_or_replayed_state_is_refused(apps, doctor, sign_in):
    """SEC-CSRF-C: an unknown state is an error, and a used one cannot be used again."""
    carol = sign_in("carol")
    forged = carol.get(f"{apps.doctor_url}/uma/claims-callback?ticket=abc&state=forged")
    assert forged.status_code == 400 and "not expected" in forged.text

    share_history_with_carol(apps)
    forget_id_tokens(doctor)
    first = carol.get(
        f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}", allow_redirects=False
    )
    landed = carol.through_the_as(carol.get(first.headers["Location"]), "carol")
    assert landed.status_code == 200
    back = landed.history[-1].headers.get("Location") if landed.history else None
    assert back and "/uma/claims-callback" in back
    replay = carol.get(back)
    assert replay.status_code == 400 and "not expected" in replay.text


def test_rpt_upgrade_across_two_resources(apps, doctor, sign_in):
    """UPG: the second resource's grant sends rpt=; the upgraded RPT opens both, so going
    back to the first needs no new ticket."""
    mapping = record_sets(apps)
    share(
        apps.as_app.test_client(),
        {"type": "user", "username": "carol"},
        [mapping["history"], mapping["labs"]],
    )
    carol = sign_in("carol")
    assert "Essential hypertension" in open_page(apps, carol, "history").text
    assert "CBC panel" in open_page(apps, carol, "labs").text
    tickets = grant_count(apps)
    assert "Essential hypertension" in open_page(apps, carol, "history").text
    assert "CBC panel" in open_page(apps, carol, "labs").text
    assert grant_count(apps) == tickets


def test_bob_writes_a_surgery_note_with_write(apps, doctor, sign_in):
    mapping = record_sets(apps)
    share(
        apps.as_app.test_client(),
        {"type": "user", "username": "bob"},
        [mapping["history"]],
        ["read", "write"],
    )
    bob = sign_in("bob")
    page = open_page(apps, bob, "history")
    assert "Add a note" in page.text
    token = bob.form_token(page.text)
    saved = bob.post(
        f"{apps.doctor_url}/note?url={quote(open_url(apps, 'history'))}",
        data={"csrf_token": token, "title": "Operative note", "text": "Right TKA, uneventful."},
    )
    assert "Your note was added" in saved.text and "Operative note" in saved.text


def test_a_write_without_the_scope_waits_and_keeps_the_note(apps, doctor, sign_in):
    """Carol may read, not write: her note waits for Alice; once Alice shares write, it is
    added by itself."""
    mapping = record_sets(apps)
    share(apps.as_app.test_client(), {"type": "user", "username": "carol"}, [mapping["history"]])
    carol = sign_in("carol")
    page = open_page(apps, carol, "history")
    waiting = carol.post(
        f"{apps.doctor_url}/note?url={quote(open_url(apps, 'history'))}",
        data={"csrf_token": carol.form_token(page.text), "title": "Follow-up", "text": "Seen."},
    )
    assert "Waiting for the patient" in waiting.text and "Your note is kept" in waiting.text
    assert "/waiting/" in waiting.url  # its own address: reloading it polls
    poll_now(doctor)
    still = carol.get(waiting.url)  # a poll while Alice has not answered yet
    assert still.url == waiting.url and "Your note is kept" in still.text
    (pending,) = pending_requests(apps)
    approved = owner_call(
        apps.as_app.test_client(), "POST", f"/api/owner/requests/{pending['id']}/approve", {}
    )
    assert approved.status_code in (200, 201), approved.json
    poll_now(doctor)
    done = carol.get(waiting.url)
    assert "Your note was added" in done.text and "Follow-up" in done.text


def test_only_the_configured_ehr_is_fetched(apps, doctor, sign_in):
    carol = sign_in("carol")
    for url in ("http://169.254.169.254/latest", apps.as_server.url + "/jwks", ""):
        response = carol.get(f"{apps.doctor_url}/open?url={quote(url)}")
        assert response.status_code == 400


def test_signed_out_people_are_sent_to_sign_in(apps, doctor):
    from tests.records.conftest import Browser

    browser = Browser()
    page = browser.get(f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}")
    assert "Sign in with the authorization server" in page.text


def test_the_device_feed_shows_as_a_chart(apps, doctor, sign_in):
    """The monitor's readings, ingested over MQTT (embedded broker), as the doctor sees them:
    an SVG chart with the latest reading, on a page that reloads itself."""
    import uuid

    from records_server.ingest import Ingestor
    from records_server.seed import provision
    from tests.conftest import free_port
    from tests.records.test_ingest import feed_id, simulate, stored, wait_for
    from uma_demo.broker import EmbeddedBroker

    device_id = f"bp-chart-{uuid.uuid4().hex[:8]}"
    with apps.ehr_app.app_context():
        session = apps.ehr_session()
        provision(session, device_id, "alice")
        session.commit()
    with EmbeddedBroker(port=free_port()) as broker:
        ingestor = Ingestor(apps.ehr_app, broker.url, f"ehr-{device_id}").start()
        try:
            simulate(broker.url, device_id, 12)
            wait_for(lambda: len(stored(apps, device_id)) == 12, what="12 readings")
        finally:
            ingestor.stop()
    share(
        apps.as_app.test_client(), {"type": "user", "username": "carol"}, [feed_id(apps, device_id)]
    )
    carol = sign_in("carol")
    directory = carol.get(f"{apps.doctor_url}/patients?name=alice")
    assert "device feed" in directory.text and device_id in directory.text
    url = f"{apps.ehr_url}/api/patients/alice/devices/{device_id}/readings"
    page = carol.get(f"{apps.doctor_url}/open?url={quote(url)}")
    assert page.status_code == 200
    assert "<svg" in page.text and page.text.count("<polyline") == 3
    assert "12 readings" in page.text and "Latest:" in page.text
    # It refreshes itself, marked so a refresh does not start a new "How did I get this?" flow
    assert re.search(r'http-equiv="refresh" content="\d+;url=[^"]*auto=1"', page.text)


def test_sign_out(apps, doctor, sign_in):
    carol = sign_in("carol")
    home = carol.get(apps.doctor_url + "/")
    out = carol.post(apps.doctor_url + "/logout", data={"csrf_token": carol.form_token(home.text)})
    assert "You are signed out" in out.text and "Sign in with the authorization server" in out.text


def test_cancelling_at_the_as_ends_the_request(apps, doctor, sign_in):
    carol = sign_in("carol")
    session = doctor.extensions["doctor_db"].scoped()
    session.execute(update(Person).values(id_token=None))
    session.commit()
    session.close()
    first = carol.get(
        f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}", allow_redirects=False
    )
    state = parse_qs(urlsplit(first.headers["Location"]).query)["state"][0]
    back = carol.get(f"{apps.doctor_url}/uma/claims-callback?error=access_denied&state={state}")
    assert back.status_code == 403 and "nothing was shared" in back.text
    session = doctor.extensions["doctor_db"].scoped()
    assert session.scalar(select(PendingAction.status)) == "denied"
    session.close()
    replay = carol.get(f"{apps.doctor_url}/uma/claims-callback?ticket=t&state={state}")
    assert replay.status_code == 400


def test_a_claims_redirect_back_with_the_old_ticket_is_refused(apps, doctor, sign_in):
    """TKT-4 (C, SHOULD): the ticket on the way back from the claims interaction endpoint
    must differ from the one sent there; the same one ends the request, nothing is redeemed."""
    share_history_with_carol(apps)
    carol = sign_in("carol")
    forget_id_tokens(doctor)
    first = carol.get(
        f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}", allow_redirects=False
    )
    sent = parse_qs(urlsplit(first.headers["Location"]).query)
    ticket, state = sent["ticket"][0], sent["state"][0]
    back = carol.get(f"{apps.doctor_url}/uma/claims-callback?ticket={ticket}&state={state}")
    assert back.status_code == 502 and "instead of a new one" in back.text
    session = doctor.extensions["doctor_db"].scoped()
    assert session.scalar(select(PendingAction.status)) == "failed"
    session.close()
    assert the_wallet(doctor).rpt is None


def test_an_unknown_authorization_server_gets_nothing(apps, doctor, sign_in):
    """Only the configured AS receives the client secret and the person's tokens."""
    doctor.extensions["doctor_uma"].trusted = frozenset(["http://127.0.0.1:9"])
    carol = sign_in("carol")
    page = open_page(apps, carol, "history")
    assert page.status_code == 502 and "does not know" in page.text


def test_a_cross_site_link_does_not_ask_on_the_doctors_behalf(apps, doctor, sign_in):
    """Sec-Fetch-Site: cross-site → a confirmation page; nothing reaches the EHR or the AS."""
    carol = sign_in("carol")
    tickets = grant_count(apps)
    page = carol.get(
        f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}",
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert page.status_code == 200 and "Another website sent you here" in page.text
    assert grant_count(apps) == tickets
