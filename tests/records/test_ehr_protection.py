"""The EHR under UMA protection, with the real AS and the real EHR on free ports (checklist
sections 2–5 and 7): link, registration, 401 + ticket, RPT, read, write, revocation, AS down,
restart."""

import json
import re
import time

import pytest
import requests
from sqlalchemy import func, select, update

from authz_server import db as as_db
from authz_server.models import Resource
from records_server.models import AccessLog, Entry, ProtectionLink, RecordSet
from tests.authz.conftest import bearer
from tests.authz.test_uma_grant import grant, id_token_for, owner_call, share
from tests.records.conftest import protect

pytestmark = pytest.mark.live

CHALLENGE = re.compile(
    r'^UMA realm="(?P<realm>[^"]+)", as_uri="(?P<as_uri>[^"]+)", ticket="(?P<ticket>[^"]+)"$'
)
NOTE = {
    "resourceType": "DocumentReference",
    "status": "current",
    "description": "Right total knee replacement done; uneventful. Mobilise day 1.",
    "content": [{"attachment": {"contentType": "text/plain", "title": "Operative note"}}],
}


def record_sets(apps) -> dict[str, str | None]:
    session = apps.ehr_session()
    try:
        return {rs.name: rs.uma_resource_id for rs in session.scalars(select(RecordSet))}
    finally:
        session.close()


def pat_of_alice(apps) -> str:
    session = apps.ehr_session()
    try:
        return session.scalar(select(ProtectionLink.access_token))
    finally:
        session.close()


def registered_at_as(apps) -> list[str]:
    """What the AS lists for Alice's PAT, asked over HTTP as any RS would."""
    response = requests.get(
        apps.as_server.url + "/uma/resource_set", headers=bearer(pat_of_alice(apps)), timeout=5
    )
    assert response.status_code == 200
    return response.json()


def challenge_of(response) -> dict:
    """RS-2: 401 with exactly one UMA challenge of quoted auth-params."""
    assert response.status_code == 401, response.text
    match = CHALLENGE.match(response.headers["WWW-Authenticate"])
    assert match, response.headers["WWW-Authenticate"]
    return match.groupdict()


def rpt_for(apps, ticket: str, person: str) -> requests.Response:
    """The doctor app's part, through the AS's token endpoint: redeem a ticket for ``person``."""
    as_client = apps.as_app.test_client()
    id_token = id_token_for(as_client, person, redirect_uri=apps.doctor_url + "/auth/callback")
    return grant(as_client, ticket, claim_token=id_token)


def history_url(apps, name="history") -> str:
    return f"{apps.ehr_url}/api/patients/alice/records/{name}"


def test_linking_registers_every_record_set_at_the_as(apps, linked):
    """PAT-5 (code flow), RREG: each record set is one resource at the AS, with its type,
    scopes and icon; the PAT belongs to Alice."""
    mapping = record_sets(apps)
    assert set(mapping) == {"history", "labs", "prescriptions"}
    assert all(mapping.values())
    assert sorted(registered_at_as(apps)) == sorted(mapping.values())
    description = requests.get(
        f"{apps.as_server.url}/uma/resource_set/{mapping['labs']}",
        headers=bearer(pat_of_alice(apps)),
        timeout=5,
    ).json()
    assert description["type"] == "https://uma-health.example/rsrc/record-set/labs"
    assert description["resource_scopes"] == ["read", "write"]
    assert description["name"] == "Lab results of Alice Patient"
    assert description["icon_uri"] == f"{apps.ehr_url}/static/icons/labs.svg"
    assert requests.get(description["icon_uri"], timeout=5).status_code == 200
    directory = requests.get(f"{apps.ehr_url}/api/patients/alice", timeout=5).json()
    assert directory["as_uri"] == apps.as_server.url
    assert all(r["protected"] for r in directory["resources"])
    assert "Protected." in linked.get(apps.ehr_url + "/").text
    # Asked through a balancer that sent another Host: the URIs still name the public URL.
    seen_by_a_node = apps.ehr_app.test_client().get(
        "/api/patients/alice", base_url="http://ehr-node-2.internal:8401"
    )
    uris = [resource["uri"] for resource in seen_by_a_node.json["resources"]]
    assert uris and all(uri.startswith(apps.ehr_url + "/api/patients/alice/") for uri in uris)


def test_no_token_gets_401_with_a_ticket_then_an_rpt_reads(apps, linked):
    """RS-1, RS-2 (as_uri = issuer byte for byte), then the grant, then 200 (RS-6)."""
    share(
        apps.as_app.test_client(),
        {"type": "user", "username": "carol"},
        [record_sets(apps)["history"]],
    )
    first = requests.get(history_url(apps), timeout=5)
    challenge = challenge_of(first)
    issuer = requests.get(apps.as_server.url + "/.well-known/uma2-configuration").json()["issuer"]
    assert challenge["as_uri"] == issuer
    assert first.headers["Content-Type"].startswith("application/json")

    token = rpt_for(apps, challenge["ticket"], "carol")
    assert token.status_code == 200, token.json
    read = requests.get(history_url(apps), headers=bearer(token.json["access_token"]), timeout=5)
    assert read.status_code == 200
    bundle = read.json()
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == len(bundle["entry"]) > 0
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} <= {
        "Condition",
        "Procedure",
        "DocumentReference",
    }


def test_the_ticket_asks_for_exactly_what_the_request_needs(apps, linked):
    """PERM-6: a read asks for read on that record set only; a write asks for write."""
    mapping = record_sets(apps)
    as_client = apps.as_app.test_client()
    for method, url, scope in (
        ("GET", history_url(apps, "labs"), "read"),
        ("POST", history_url(apps, "labs") + "/entries", "write"),
    ):
        ticket = challenge_of(requests.request(method, url, json={}, timeout=5))["ticket"]
        # An RPT answer would say what was granted; a share of exactly that scope proves it:
        share(as_client, {"type": "user", "username": "dave"}, [mapping["labs"]], [scope])
        token = rpt_for(apps, ticket, "dave")
        info = as_client.post(
            "/introspect",
            data={"token": token.json["access_token"]},
            headers=bearer(pat_of_alice(apps)),
        ).json
        assert [p["resource_id"] for p in info["permissions"]] == [mapping["labs"]]
        assert info["permissions"][0]["resource_scopes"] == [scope]


def test_write_needs_write_and_records_its_author(apps, linked):
    """A read-only RPT cannot write (RS-4, RS-5: 401 + a new ticket); with write it can, and
    the entry carries its author. Alice then sees it on her page and in her access log."""
    mapping = record_sets(apps)
    as_client = apps.as_app.test_client()
    share(as_client, {"type": "user", "username": "carol"}, [mapping["history"]], ["read"])
    share(as_client, {"type": "user", "username": "bob"}, [mapping["history"]], ["read", "write"])
    entries_url = history_url(apps) + "/entries"

    ticket = challenge_of(requests.get(history_url(apps), timeout=5))["ticket"]
    carols = rpt_for(apps, ticket, "carol").json["access_token"]
    refused = requests.post(entries_url, json=NOTE, headers=bearer(carols), timeout=5)
    new_ticket = challenge_of(refused)["ticket"]
    assert new_ticket != ticket
    assert rpt_for(apps, new_ticket, "carol").json["error"] == "request_submitted"

    write_ticket = challenge_of(requests.post(entries_url, json=NOTE, timeout=5))["ticket"]
    bobs = rpt_for(apps, write_ticket, "bob").json["access_token"]
    created = requests.post(entries_url, json=NOTE, headers=bearer(bobs), timeout=5)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["subject"]["reference"] == "Patient/alice"
    assert stored["meta"]["source"] == "doctor-app"
    assert stored["meta"]["tag"][0]["code"] == "bob"

    session = apps.ehr_session()
    entry = session.scalar(select(Entry).where(Entry.fhir_id == stored["id"]))
    assert (entry.author_name, entry.client_id) == ("bob", "doctor-app")
    assert entry.author_sub and entry.author_sub != "bob"  # the AS's subject identifier
    outcomes = session.execute(
        select(AccessLog.subject, AccessLog.scope, AccessLog.outcome, AccessLog.status).order_by(
            AccessLog.id
        )
    ).all()
    session.close()
    assert ("carol", "write", "ticket", 401) in outcomes
    assert ("bob", "write", "granted", 201) in outcomes
    page = linked.get(apps.ehr_url + "/").text
    assert "Operative note" in page and "added by <strong>bob</strong>" in page


def test_revocation_bites_within_the_cache_ttl(apps, linked):
    """PRIV-TTL, "no means no": after Alice revokes the policy, the cached introspection runs
    out and the next request gets 401 + ticket."""
    apps.stop_ehr()
    apps.start_ehr(INTROSPECTION_CACHE_SECONDS=1)
    mapping = record_sets(apps)
    as_client = apps.as_app.test_client()
    policy = share(as_client, {"type": "user", "username": "carol"}, [mapping["history"]])
    ticket = challenge_of(requests.get(history_url(apps), timeout=5))["ticket"]
    rpt = rpt_for(apps, ticket, "carol").json["access_token"]
    assert requests.get(history_url(apps), headers=bearer(rpt), timeout=5).status_code == 200

    revoked = owner_call(as_client, "DELETE", f"/api/owner/policies/{policy}")
    assert revoked.status_code in (200, 204)
    time.sleep(1.2)  # the EHR's introspection cache (1 s here) runs out
    assert challenge_of(requests.get(history_url(apps), headers=bearer(rpt), timeout=5))


def test_unknown_and_garbage_rpts_get_a_ticket(apps, linked):
    """RS-5: an invalid RPT is answered as if no token came."""
    for header in ("Bearer not-a-token", "Bearer " + "x" * 2000, "Basic abc", "Bearer"):
        response = requests.get(history_url(apps), headers={"Authorization": header}, timeout=5)
        challenge_of(response)


def test_as_down_gives_403_with_the_warning(apps, linked):
    """RS-3: no ticket can be had → 403 + Warning: 199 - "UMA Authorization Server Unreachable"."""
    apps.as_server.stop()
    response = requests.get(history_url(apps), timeout=10)
    assert response.status_code == 403
    assert response.headers["Warning"] == '199 - "UMA Authorization Server Unreachable"'
    assert response.json()["error"] == "as_unreachable"
    assert "try again later" in response.json()["error_description"]
    # Also with an RPT that would have to be introspected.
    response = requests.get(history_url(apps), headers=bearer("some-rpt"), timeout=10)
    assert response.status_code == 403 and "Warning" in response.headers


def test_a_revoked_pat_gives_403_with_the_warning(apps, linked):
    """RS-3 for "PAT failure": Alice's PAT and its refresh token revoked at the AS."""
    session = apps.ehr_session()
    link = session.scalar(select(ProtectionLink))
    session.close()
    revoked = requests.post(
        apps.as_server.url + "/revoke",
        data={"token": link.refresh_token, "token_type_hint": "refresh_token"},
        auth=("ehr", "ehr-demo-secret"),
        timeout=5,
    )
    assert revoked.status_code == 200
    response = requests.get(history_url(apps), timeout=10)
    assert response.status_code == 403
    assert response.headers["Warning"] == '199 - "UMA Authorization Server Unreachable"'
    # Waiting will not help here, and the answer says so instead of "try again later".
    description = response.json()["error_description"]
    assert "no longer accepts" in description and "try again" not in description
    page = linked.get(apps.ehr_url + "/").text
    assert "stopped working" in page and "Protect my records" in page


def test_a_resource_the_as_lost_gives_403_saying_so(apps, linked):
    """RS-3 when the AS no longer knows the resource: still 403 + Warning, but the
    description names the cause, not an outage that would pass by itself."""
    history = record_sets(apps)["history"]
    deleted = requests.delete(
        f"{apps.as_server.url}/uma/resource_set/{history}",
        headers=bearer(pat_of_alice(apps)),
        timeout=5,
    )
    assert deleted.status_code in (200, 204)
    response = requests.get(history_url(apps), timeout=10)
    assert response.status_code == 403
    assert response.headers["Warning"] == '199 - "UMA Authorization Server Unreachable"'
    description = response.json()["error_description"]
    assert "no longer knows 'history'" in description and "try again" not in description


def test_an_expired_pat_is_refreshed_while_alice_is_offline(apps, linked):
    """PAT-7: the EHR refreshes the PAT by itself; Alice is signed out everywhere."""
    linked.post(
        apps.ehr_url + "/logout",
        data={"csrf_token": linked.form_token(linked.get(apps.ehr_url + "/").text)},
    )
    session = apps.ehr_session()
    old = session.scalar(select(ProtectionLink))
    old_pat, old_refresh = old.access_token, old.refresh_token
    session.execute(update(ProtectionLink).values(expires_at=func.current_timestamp()))
    session.commit()
    session.close()

    challenge_of(requests.get(history_url(apps), timeout=5))
    session = apps.ehr_session()
    fresh = session.scalar(select(ProtectionLink))
    session.close()
    assert fresh.access_token != old_pat and fresh.refresh_token != old_refresh
    assert fresh.broken_at is None


def test_restart_keeps_registrations_without_duplicates(apps, linked):
    """Re-sync on start is idempotent: same ids, same count at the AS, after two restarts."""
    before = record_sets(apps)
    for _ in range(2):
        apps.stop_ehr()
        apps.start_ehr()
    assert record_sets(apps) == before
    assert sorted(registered_at_as(apps)) == sorted(before.values())


def test_restart_repairs_what_the_as_lost_and_drops_orphans(apps, linked):
    """A registration deleted behind our back comes back; one we do not map is deleted."""
    mapping = record_sets(apps)
    pat = pat_of_alice(apps)
    rreg = apps.as_server.url + "/uma/resource_set"
    requests.delete(f"{rreg}/{mapping['labs']}", headers=bearer(pat), timeout=5)
    orphan = requests.post(
        rreg, json={"name": "stray", "resource_scopes": ["read"]}, headers=bearer(pat), timeout=5
    ).json()["_id"]
    apps.stop_ehr()
    apps.start_ehr()
    after = record_sets(apps)
    assert after["history"] == mapping["history"] and after["labs"] != mapping["labs"]
    listed = registered_at_as(apps)
    assert orphan not in listed and sorted(listed) == sorted(after.values())


def test_a_record_set_created_later_is_registered_at_once(apps, linked):
    page = linked.get(apps.ehr_url + "/").text
    response = linked.post(
        apps.ehr_url + "/record-sets",
        data={"kind": "immunizations", "csrf_token": linked.form_token(page)},
    )
    assert "Added immunizations" in response.text
    mapping = record_sets(apps)
    assert mapping["immunizations"] in registered_at_as(apps)


def test_unlinking_deletes_the_registrations(apps, linked):
    mapping = record_sets(apps)
    pat = pat_of_alice(apps)
    page = linked.get(apps.ehr_url + "/").text
    response = linked.post(apps.ehr_url + "/unlink", data={"csrf_token": linked.form_token(page)})
    assert "Unlinked" in response.text and "Protect my records" in response.text
    with apps.as_app.app_context():
        left = as_db.session().scalars(select(Resource.id)).all()
    assert not set(mapping.values()) & set(left)
    revoked = requests.get(apps.as_server.url + "/uma/resource_set", headers=bearer(pat), timeout=5)
    assert revoked.status_code == 401  # the PAT went with the link
    assert set(record_sets(apps).values()) == {None}
    assert requests.get(history_url(apps), timeout=5).status_code == 403
    # And linking again works from scratch.
    assert "Your records are now protected" in protect(linked, apps).text
    assert len(registered_at_as(apps)) == 3


def test_linking_as_someone_else_at_the_as_is_refused(apps, alice_browser):
    """Alice is signed in at the EHR, but consents at the AS as Mallory: no link."""
    page = alice_browser.get(apps.ehr_url + "/")
    # Sign out of the AS, so it asks who is there.
    as_page = alice_browser.get(apps.as_server.url + "/console/")
    alice_browser.post(
        apps.as_server.url + "/logout", data={"csrf_token": alice_browser.form_token(as_page.text)}
    )
    response = alice_browser.post(
        apps.ehr_url + "/protect", data={"csrf_token": alice_browser.form_token(page.text)}
    )
    landed = alice_browser.through_the_as(response, "mallory")
    assert "different account" in landed.text
    assert set(record_sets(apps).values()) == {None}


@pytest.mark.parametrize(
    "body, content_type, status, fragment",
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "a JSON object"),
        (json.dumps({"resourceType": "Patient"}).encode(), "application/json", 400, "holds"),
        (json.dumps(NOTE).encode(), "text/plain", 400, "Content-Type"),
        (
            json.dumps({**NOTE, "subject": {"reference": "Patient/bob"}}).encode(),
            "application/fhir+json",
            400,
            "subject",
        ),
        (b"[" * 100_000, "application/json", 413, ""),
        (json.dumps({**NOTE, "description": "x" * 70_000}).encode(), "application/json", 413, ""),
    ],
)
def test_bad_entries_are_clear_4xx_and_nothing_is_stored(
    apps, linked, body, content_type, status, fragment
):
    mapping = record_sets(apps)
    share(
        apps.as_app.test_client(),
        {"type": "user", "username": "bob"},
        [mapping["history"]],
        ["write"],
    )
    entries_url = history_url(apps) + "/entries"
    ticket = challenge_of(requests.post(entries_url, timeout=5))["ticket"]
    rpt = rpt_for(apps, ticket, "bob").json["access_token"]
    session = apps.ehr_session()
    before = session.scalar(select(func.count(Entry.id)))
    session.close()
    response = requests.post(
        entries_url,
        data=body,
        headers={**bearer(rpt), "Content-Type": content_type},
        timeout=5,
    )
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert fragment in response.json()["error_description"]
    session = apps.ehr_session()
    assert session.scalar(select(func.count(Entry.id))) == before
    session.close()


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/api/patients/nobody", 404),
        ("GET", "/api/patients/alice/records/nothing", 404),
        ("POST", "/api/patients/alice/records/nothing/entries", 404),
        ("DELETE", "/api/patients/alice/records/history", 405),
        ("GET", "/api/nowhere", 404),
    ],
)
def test_unknown_things_are_json_errors(apps, linked, method, path, status):
    response = requests.request(method, apps.ehr_url + path, timeout=5)
    assert response.status_code == status
    assert response.json()["error"] in ("not_found", "method_not_allowed")


def test_unprotected_records_are_refused_to_everyone(apps, alice_browser):
    """Default deny: before Alice links, nobody else gets in (and no ticket exists to give)."""
    response = requests.get(history_url(apps), timeout=5)
    assert response.status_code == 403 and response.json()["error"] == "not_protected"


def test_alice_saying_no_at_the_as_leaves_her_records_unlinked(apps, alice_browser):
    page = alice_browser.get(apps.ehr_url + "/")
    response = alice_browser.post(
        apps.ehr_url + "/protect", data={"csrf_token": alice_browser.form_token(page.text)}
    )
    landed = alice_browser.through_the_as(response, "alice", allow=False)
    assert landed.url.rstrip("/") == apps.ehr_url
    assert "were not linked" in landed.text and "Protect my records" in landed.text
    assert set(record_sets(apps).values()) == {None}


def test_a_forged_callback_is_refused_cleanly(apps, alice_browser):
    """The code-flow state lives in Alice's session: a callback she did not start fails
    with a message, not an error page of the framework."""
    landed = alice_browser.get(apps.ehr_url + "/protect/callback?code=abc&state=forged")
    assert landed.status_code == 200 and "were not linked" in landed.text
    signed_in = alice_browser.get(apps.ehr_url + "/auth/callback?code=abc&state=forged")
    assert signed_in.status_code == 400 and "Sign-in did not complete" in signed_in.text
