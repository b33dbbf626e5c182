"""The teaching layer (issue 8): every app records its share of a flow, the doctor app
puts the flow back together as "How did I get this?", tokens are never shown whole."""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from app_support.database import utcnow
from doctor_client.models import Flow, Person
from tests.authz.test_uma_grant import owner_call
from tests.doctor.test_doctor_app import (
    forget_id_tokens,
    open_page,
    open_url,
    pending_requests,
    poll_now,
    share_history_with_carol,
    the_wallet,
)

pytestmark = pytest.mark.live


def how(browser, apps, page) -> dict:
    """The flow behind ``page``, through its own "How did I get this?" link."""
    link = re.search(r'href="(/how/[A-Za-z0-9_-]+)"', page.text)
    assert link, "the page has no How did I get this? link"
    html = browser.get(apps.doctor_url + link.group(1))
    assert html.status_code == 200 and "sequence" in html.text
    answer = browser.get(apps.doctor_url + link.group(1) + ".json")
    assert answer.status_code == 200
    return answer.json()


def arrows(flow) -> list[tuple[str, str, str]]:
    return [(step["from"], step["to"], step["message"]) for step in flow["steps"]]


def test_a_first_read_is_told_across_all_five_parties(apps, doctor, sign_in):
    """need_info → claims interaction → RPT: the page shows the permission request and the
    introspection between EHR and AS, which the client itself never sees."""
    share_history_with_carol(apps)
    carol = sign_in("carol")
    forget_id_tokens(doctor)  # so the AS must ask
    first = carol.get(
        f"{apps.doctor_url}/open?url={quote(open_url(apps, 'history'))}", allow_redirects=False
    )
    page = carol.through_the_as(carol.get(first.headers["Location"]), "carol")
    assert "Essential hypertension" in page.text

    flow = how(carol, apps, page)
    told = arrows(flow)
    specs = [step["spec"] for step in flow["steps"]]
    assert flow["unreachable"] == []
    assert [n["n"] for n in flow["steps"]] == list(range(1, len(told) + 1))
    expected_in_order = [
        ("party", "client", "GET /open"),  # Carol clicks Open
        ("client", "ehr", "GET /api/patients/alice/records/history"),  # no token: RS-1
        ("ehr", "as", "POST /uma/permission"),  # PERM-2
        ("as", "ehr", "201"),  # the ticket
        ("ehr", "client", "401"),  # RS-2
        ("client", "as", "POST /token"),  # the grant
        ("as", "client", "403 need_info"),
        ("client", "party", "302"),  # to the claims interaction endpoint
        ("party", "as", "GET /rqp/claims"),
        ("party", "client", "GET /uma/claims-callback"),
        ("client", "as", "POST /token"),
        ("as", "client", "200"),  # the RPT
        ("client", "ehr", "GET /api/patients/alice/records/history"),
        ("ehr", "as", "POST /introspect"),  # INT-1
        ("as", "ehr", "200"),
        ("ehr", "client", "200"),
        ("client", "party", "200"),
    ]
    position = 0
    for want in expected_in_order:
        while position < len(told) and not (
            told[position][:2] == want[:2] and told[position][2].startswith(want[2])
        ):
            position += 1
        assert position < len(told), f"{want} missing or out of order in {told}"
        position += 1
    for spec in ("RS-1", "PERM-2", "PERM-3", "RS-2", "checklist 6.7", "CI-5", "INT-1", "INT-4"):
        assert any(spec in s for s in specs), spec

    # Token values are shortened everywhere: in the JSON and on the page.
    wallet = the_wallet(doctor)
    page_html = carol.get(apps.doctor_url + f"/how/{flow['flow_id']}").text
    for secret in (wallet.rpt, wallet.pct):
        assert secret[:20] not in str(flow) and secret[:20] not in page_html


def test_a_wait_for_alice_is_one_flow_with_her_answer_in_it(apps, doctor, sign_in):
    """request_submitted, polls (counted, not drawn again), Alice's approval, the RPT."""
    bob = sign_in("bob")
    waiting = open_page(apps, bob, "labs")
    assert "Waiting for the patient" in waiting.text
    poll_now(doctor)
    bob.get(waiting.url)  # one poll: still waiting
    (pending,) = pending_requests(apps)
    approved = owner_call(
        apps.as_app.test_client(), "POST", f"/api/owner/requests/{pending['id']}/approve", {}
    )
    assert approved.status_code in (200, 201)
    poll_now(doctor)
    done = bob.get(waiting.url)
    assert "CBC panel" in done.text

    flow = bob.get(apps.doctor_url + "/how", allow_redirects=True)
    assert flow.status_code == 200 and "Alice (owner)" in flow.text
    data = bob.get(flow.url + ".json").json()
    steps = data["steps"]
    submitted = [s for s in steps if s["message"].startswith("403 request_submitted")]
    assert submitted and "Alice has been asked" in submitted[0]["explanation"]
    assert any("no policy covers it; the owner has been asked" in (s["note"] or "") for s in steps)
    assert any(s["from"] == "alice" and s["to"] == "as" for s in steps), [
        (s["from"], s["to"], s["message"]) for s in steps
    ]
    assert any(
        s["from"] == "as" and s["to"] == "client" and s["message"].startswith("200") for s in steps
    )


def test_flows_are_private_and_bad_ids_are_clear(apps, doctor, sign_in):
    share_history_with_carol(apps)
    carol = sign_in("carol")
    page = open_page(apps, carol, "history")
    flow_id = re.search(r'href="/how/([A-Za-z0-9_-]+)"', page.text).group(1)
    mallory = sign_in("mallory")
    assert mallory.get(f"{apps.doctor_url}/how/{flow_id}").status_code == 404
    assert mallory.get(f"{apps.doctor_url}/how/{flow_id}.json").status_code == 404
    assert mallory.get(f"{apps.doctor_url}/how/not a flow!").status_code == 404
    empty = mallory.get(f"{apps.doctor_url}/how")
    assert empty.status_code == 200 and "Nothing yet" in empty.text
    # Each app's own trace endpoint answers only for well-formed ids, and knows no others.
    assert carol.get(f"{apps.ehr_url}/_trace/flows/short").status_code == 404
    unknown = carol.get(f"{apps.as_server.url}/_trace/flows/{'x' * 22}")
    assert unknown.status_code == 200 and unknown.json()["messages"] == []


def test_a_new_flow_drops_the_persons_flows_whose_trace_is_gone(apps, doctor, sign_in):
    """Trace rows are pruned after a day (Tracer.keep); the flows that told them go too."""
    share_history_with_carol(apps)
    carol = sign_in("carol")
    sign_in("mallory")
    session = doctor.extensions["doctor_db"].scoped()
    people = {p.username: p.id for p in session.scalars(select(Person))}
    two_days_ago = utcnow() - timedelta(days=2)
    for name in ("carol", "mallory"):
        session.add(
            Flow(id=f"old-{name}-{'x' * 16}", person_id=people[name], started_at=two_days_ago)
        )
    session.commit()
    session.close()

    first = how(carol, apps, open_page(apps, carol, "history"))
    how(carol, apps, open_page(apps, carol, "history"))

    session = doctor.extensions["doctor_db"].scoped()
    left = {(f.person_id, f.id) for f in session.scalars(select(Flow))}
    session.close()
    assert (people["mallory"], f"old-mallory-{'x' * 16}") in left  # only one's own flows
    assert (people["carol"], f"old-carol-{'x' * 16}") not in left
    assert first["flow_id"] in {flow_id for _, flow_id in left}
