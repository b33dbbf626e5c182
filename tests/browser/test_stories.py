"""The demo's stories (issue 7), in one real browser across the AS, the EHR and the doctor
app. The tests run in order and build on each other, as the story does."""

import re

import pytest

from tests.browser.conftest import shot, sign_in_at_as

pytestmark = pytest.mark.live


def doctor_signs_in(page, stack, name: str) -> None:
    page.goto(stack.doctor_url + "/")
    page.click("text=Sign in with the authorization server")
    sign_in_at_as(page, name)
    if page.locator("input[name=allow]").count():  # first time: consent for the doctor app
        page.click("input[name=allow]")
    page.wait_for_selector("text=Open a patient")


def open_record(page, stack, title: str) -> None:
    page.goto(stack.doctor_url + "/")
    page.fill("input[name=name]", "alice")
    page.click("button:has-text('Open')")
    row = page.locator("tr", has_text=title)
    row.locator("a:has-text('Open')").click()


def console_share(page, stack, resource: str, who: str, kind: str, scopes, duration: str):
    page.goto(stack.as_url + "/console/")
    page.get_by_label(f"select {resource}").check()
    page.click("text=Share selected…")
    page.check(f"input[name=subject_type][value={kind}]")
    page.fill("input[name=subject]", who)
    for scope in ("read", "write"):
        box = page.locator(f"input[name=scopes][value={scope}]")
        box.check() if scope in scopes else box.uncheck()
    page.select_option("select[name=duration]", duration)
    page.click("input[type=submit][value=Share]")
    page.wait_for_selector("text=It takes effect at once")


def test_1_alice_links_her_ehr_and_shares(stack, people):
    alice = people("alice")
    alice.goto(stack.ehr_url + "/")
    shot(alice, "01-ehr-welcome")
    alice.click("text=Sign in with the authorization server")
    sign_in_at_as(alice, "alice")
    alice.click("input[name=allow]")
    alice.wait_for_selector("text=Not protected yet")
    shot(alice, "02-ehr-records-unprotected")
    alice.click("button:has-text('Protect my records')")
    shot(alice, "03-as-consent-uma-protection")
    alice.click("input[name=allow]")
    alice.wait_for_selector("text=Your records are now protected")
    console_share(
        alice, stack, "Medical history of Alice Patient", "bob", "user", ("read", "write"), "30d"
    )
    console_share(
        alice, stack, "Medical history of Alice Patient", "carol", "user", ("read",), "forever"
    )
    alice.goto(stack.as_url + "/console/")
    assert alice.locator("text=Dr. Bob Surgeon (bob): read, write").count() == 1
    assert alice.locator("text=Dr. Carol Physician (carol): read").count() == 1
    shot(alice, "04-console-my-resources")


def test_2_carol_reads_alices_history(stack, people):
    carol = people("carol")
    doctor_signs_in(carol, stack, "carol")
    open_record(carol, stack, "Medical history")
    carol.wait_for_selector("text=Essential hypertension")
    assert carol.locator("text=Waiting for the patient").count() == 0
    shot(carol, "05-doctor-carol-reads-history")
    # The teaching layer: the record page's own flow, as a sequence diagram.
    carol.click("main >> text=How did I get this?")
    carol.wait_for_selector(".sequence .step")
    assert carol.locator("text=POST /uma/permission").count() >= 1
    assert carol.locator("text=POST /introspect").count() >= 1
    shot(carol, "05b-doctor-how-did-i-get-this")


def test_3_the_surgery_center_group_reads(stack, people):
    console_share(
        people("alice"),
        stack,
        "Prescriptions of Alice Patient",
        "surgery-center",
        "group",
        ("read",),
        "7d",
    )
    for name in ("dave", "erin"):
        page = people(name)
        doctor_signs_in(page, stack, name)
        open_record(page, stack, "Prescriptions")
        page.wait_for_selector("text=lisinopril")
    shot(people("erin"), "06-doctor-erin-reads-prescriptions")


def test_4_mallory_asks_and_alice_denies(stack, people):
    mallory = people("mallory")
    doctor_signs_in(mallory, stack, "mallory")
    open_record(mallory, stack, "Medical history")
    mallory.wait_for_selector("text=Waiting for the patient")
    alice = people("alice")
    alice.goto(stack.as_url + "/console/requests")
    assert alice.locator(".badge").inner_text() == "1"
    shot(alice, "07-console-pending-request")
    request = alice.locator("section", has_text="Mallory Stranger")
    request.locator("input[value=Deny]").click()
    alice.wait_for_selector("text=Denied mallory")
    mallory.wait_for_selector("text=Not shared with you", timeout=20_000)
    shot(mallory, "08-doctor-mallory-denied")


def test_5_bob_waits_for_labs_until_alice_shares(stack, people):
    bob = people("bob")
    doctor_signs_in(bob, stack, "bob")
    open_record(bob, stack, "Lab results")
    bob.wait_for_selector("text=Waiting for the patient")
    shot(bob, "09-doctor-bob-waiting")
    alice = people("alice")
    alice.goto(stack.as_url + "/console/requests")
    request = alice.locator("section", has_text="Dr. Bob Surgeon")
    request.locator("input[value=Share]").click()
    alice.wait_for_selector("text=Shared with bob")
    bob.wait_for_selector("text=CBC panel", timeout=20_000)  # the page finished by itself
    shot(bob, "10-doctor-bob-labs-after-approval")


def test_6_bob_writes_a_surgery_note(stack, people):
    bob = people("bob")
    open_record(bob, stack, "Medical history")
    bob.fill("input[name=title]", "Operative note: right total knee replacement")
    bob.fill("textarea[name=text]", "Uneventful. Cemented implant. Mobilise on day 1.")
    bob.click("input[value='Add to the record']")
    bob.wait_for_selector("text=Your note was added")
    shot(bob, "11-doctor-bob-note-added")
    alice = people("alice")
    alice.goto(stack.ehr_url + "/")
    alice.wait_for_selector("text=Operative note: right total knee replacement")
    assert alice.locator("#access-log", has_text="bob").count() == 1
    shot(alice, "12-ehr-alice-sees-the-note")
    alice.goto(stack.as_url + "/console/history?requester=bob")
    assert alice.locator("td.outcome-granted").count() >= 1
    shot(alice, "13-console-history-bob")


def test_7_alice_revokes_bob(stack, people):
    alice = people("alice")
    alice.goto(stack.as_url + "/console/policies")
    policy = alice.locator("section", has_text="Dr. Bob Surgeon").filter(has_text="Medical history")
    policy.locator("input[value=Revoke]").click()
    alice.wait_for_selector("text=Revoked")
    shot(alice, "14-console-revoked")
    bob = people("bob")
    bob.wait_for_timeout(1500)  # the EHR's introspection cache (1 s here) runs out
    open_record(bob, stack, "Medical history")
    bob.wait_for_selector("text=Waiting for the patient")
    assert bob.locator("text=Essential hypertension").count() == 0
    assert re.search(r"/waiting/\d+", bob.url)
    shot(bob, "15-doctor-bob-refused-after-revoke")
