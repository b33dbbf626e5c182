"""The authorization assessment on its own (authz_server/policy.py): no Flask, no database.

UMA Grant §3.3.4 (checklist 6.2): RequestedScopes per resource, policy evaluation, the
CandidateGrantedScopes, and the grant's answer; default deny (ASMT-1, SEC-DEFAULT-DENY).
"""

from datetime import UTC, datetime, timedelta

import pytest

from authz_server.policy import (
    ASK,
    DENY,
    SUBJECT_EMAIL_DOMAIN,
    SUBJECT_GROUP,
    SUBJECT_USER,
    Decision,
    InvalidScopeRequest,
    Requester,
    ResourceInfo,
    Rule,
    assess,
    decide,
    requested_scopes,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SOON = NOW + timedelta(hours=1)
LATER = NOW + timedelta(days=1)
PAST = NOW - timedelta(seconds=1)

SURGERY = 7  # a group id
BOB = Requester(
    user_id=2,
    username="bob",
    email="bob@surgery.example",
    email_verified=True,
    group_ids=frozenset({SURGERY}),
)
MALLORY = Requester(user_id=6, username="mallory", email="mallory@elsewhere.example")

RECORD = "record"
LABS = "labs"


def user_rule(user_id=BOB.user_id, resources=(RECORD,), scopes=("read",), **kw) -> Rule:
    return Rule(
        id=kw.pop("id", 1),
        subject_type=SUBJECT_USER,
        resource_ids=frozenset(resources),
        scopes=frozenset(scopes),
        user_id=user_id,
        **kw,
    )


def domain_rule(domain: str | None) -> Rule:
    return Rule(
        id=1,
        subject_type=SUBJECT_EMAIL_DOMAIN,
        resource_ids=frozenset({RECORD}),
        scopes=frozenset({"read"}),
        email_domain=domain,
    )


def info(rid: str, *scopes: str, uncovered: str = ASK) -> ResourceInfo:
    return ResourceInfo(rid, frozenset(scopes), uncovered)


# --- who a rule covers -------------------------------------------------------------------


def test_user_rule_covers_only_that_user():
    rule = user_rule()
    assert rule.covers(BOB)
    assert not rule.covers(MALLORY)


def test_group_rule_covers_members_only():
    rule = Rule(
        id=1,
        subject_type=SUBJECT_GROUP,
        resource_ids=frozenset({RECORD}),
        scopes=frozenset({"read"}),
        group_id=SURGERY,
    )
    assert rule.covers(BOB)
    assert not rule.covers(MALLORY)
    assert not rule.covers(Requester(user_id=9, username="x", group_ids=frozenset({SURGERY + 1})))


@pytest.mark.parametrize(
    ("email", "verified", "domain", "covered"),
    [
        ("bob@surgery.example", True, "surgery.example", True),
        ("Bob@SURGERY.Example", True, "surgery.example", True),
        ("bob@surgery.example", True, "Surgery.EXAMPLE", True),
        ("bob@surgery.example", True, "@surgery.example", True),
        # The '@' is part of the match: a look-alike domain is not the domain.
        ("x@evilsurgery.example", True, "surgery.example", False),
        ("x@mail.surgery.example", True, "surgery.example", False),
        ("x@surgery.example.evil", True, "surgery.example", False),
        ("surgery.example@elsewhere.example", True, "surgery.example", False),
        # Only a verified address proves membership of a domain.
        ("bob@surgery.example", False, "surgery.example", False),
        (None, True, "surgery.example", False),
        ("", True, "surgery.example", False),
        # A rule without a domain covers nobody.
        ("bob@surgery.example", True, "", False),
        ("bob@surgery.example", True, None, False),
        ("bob@surgery.example", True, "@", False),
    ],
)
def test_email_domain_rule(email, verified, domain, covered):
    requester = Requester(user_id=2, username="bob", email=email, email_verified=verified)
    assert domain_rule(domain).covers(requester) is covered


def test_unknown_subject_kind_covers_nobody():
    """SEC-DEFAULT-DENY: a subject kind the code does not know grants nothing."""
    rule = Rule(
        id=1,
        subject_type="everyone",
        resource_ids=frozenset({RECORD}),
        scopes=frozenset({"read"}),
        user_id=BOB.user_id,
    )
    assert not rule.covers(BOB)
    assert assess({RECORD: {"read"}}, [rule], BOB, NOW).granted == {RECORD: set()}


def test_rule_is_live_until_its_expiry():
    assert user_rule().is_live(NOW)
    assert user_rule(expires_at=SOON).is_live(NOW)
    assert not user_rule(expires_at=NOW).is_live(NOW)
    assert not user_rule(expires_at=PAST).is_live(NOW)


# --- assess: default deny and which rules count --------------------------------------------


def test_no_requester_gets_nothing():
    """ASMT-1, SEC-DEFAULT-DENY: an empty claim set never passes, even with a policy."""
    result = assess({RECORD: {"read"}, LABS: set()}, [user_rule()], None, NOW)
    assert result.granted == {}
    assert not result.covered
    assert not result.anything_granted
    assert not result.complete
    assert result.missing() == {RECORD: {"read"}, LABS: set()}


def test_no_rules_grant_nothing():
    """ASMT-1: an owner with no policy → never success."""
    result = assess({RECORD: {"read"}}, [], BOB, NOW)
    assert result.granted == {RECORD: set()}
    assert not result.anything_granted
    assert result.missing() == {RECORD: {"read"}}
    decision = decide(result, {RECORD: info(RECORD, "read", uncovered=DENY)})
    assert decision.outcome == "denied"


def test_expired_rule_is_ignored():
    result = assess({RECORD: {"read"}}, [user_rule(expires_at=PAST)], BOB, NOW)
    assert result.granted == {RECORD: set()}
    assert RECORD not in result.covered


def test_rule_on_another_resource_is_ignored():
    result = assess({RECORD: {"read"}}, [user_rule(resources=(LABS,))], BOB, NOW)
    assert result.granted == {RECORD: set()}
    assert RECORD not in result.covered


def test_rule_for_another_person_is_ignored():
    result = assess({RECORD: {"read"}}, [user_rule(user_id=MALLORY.user_id)], BOB, NOW)
    assert result.granted == {RECORD: set()}


def test_only_scopes_a_rule_names_are_granted():
    result = assess({RECORD: {"read", "write"}}, [user_rule(scopes=("read",))], BOB, NOW)
    assert result.granted == {RECORD: {"read"}}
    assert result.missing() == {RECORD: {"write"}}
    assert result.anything_granted
    assert not result.complete


def test_several_rules_add_up():
    rules = [
        user_rule(id=1, scopes=("read",)),
        Rule(
            id=2,
            subject_type=SUBJECT_GROUP,
            resource_ids=frozenset({RECORD, LABS}),
            scopes=frozenset({"write"}),
            group_id=SURGERY,
        ),
    ]
    result = assess({RECORD: {"read", "write"}, LABS: {"write"}}, rules, BOB, NOW)
    assert result.granted == {RECORD: {"read", "write"}, LABS: {"write"}}
    assert result.covered == {RECORD, LABS}
    assert result.complete
    assert result.missing() == {}


def test_a_rule_grants_no_more_than_was_requested():
    result = assess({RECORD: {"read"}}, [user_rule(scopes=("read", "write"))], BOB, NOW)
    assert result.granted == {RECORD: {"read"}}


# --- a permission that asks for no scopes -------------------------------------------------


def test_permission_without_scopes_is_granted_when_a_live_rule_covers_it():
    """A ticket entry with resource_scopes [] is satisfied by any live rule on the resource."""
    result = assess({RECORD: set()}, [user_rule(scopes=("read",))], BOB, NOW)
    assert result.covered == {RECORD}
    assert result.granted == {RECORD: set()}
    assert result.missing() == {}
    assert result.complete
    assert result.anything_granted
    assert decide(result, {RECORD: info(RECORD, "read")}) == Decision("granted")


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param([], id="no-rule"),
        pytest.param([user_rule(expires_at=PAST)], id="expired-rule"),
        pytest.param([user_rule(resources=(LABS,))], id="other-resource"),
        pytest.param([user_rule(user_id=MALLORY.user_id)], id="other-person"),
    ],
)
def test_permission_without_scopes_is_missing_when_not_covered(rules):
    result = assess({RECORD: set()}, rules, BOB, NOW)
    assert RECORD not in result.covered
    assert result.missing() == {RECORD: set()}
    assert not result.complete
    assert not result.anything_granted
    decision = decide(result, {RECORD: info(RECORD, "read")})
    assert decision == Decision("submitted", {RECORD: set()})


def test_permission_without_scopes_and_no_requester_is_not_covered():
    result = assess({RECORD: set()}, [user_rule()], None, NOW)
    assert result.missing() == {RECORD: set()}
    assert not result.anything_granted


# --- requested_scopes: TicketScopes ∪ (Registered ∩ Requested) ----------------------------


def test_requested_scopes_without_scope_parameter_is_the_ticket():
    resources = {RECORD: info(RECORD, "read", "write")}
    assert requested_scopes([(RECORD, ["read"])], resources, {"write"}, None) == {RECORD: {"read"}}
    assert requested_scopes([(RECORD, ["read"])], resources, {"write"}, set()) == {RECORD: {"read"}}


def test_registered_and_requested_scope_is_added():
    """6.2 step 2: a scope the client is registered for and asks for joins the ticket's."""
    resources = {RECORD: info(RECORD, "read", "write")}
    result = requested_scopes([(RECORD, ["read"])], resources, {"write"}, {"write"})
    assert result == {RECORD: {"read", "write"}}


def test_extra_scope_goes_only_to_resources_that_have_it():
    """6.2 step 2 (inferred): added only where the resource registered that scope."""
    resources = {RECORD: info(RECORD, "read", "write"), LABS: info(LABS, "read")}
    result = requested_scopes(
        [(RECORD, ["read"]), (LABS, ["read"])], resources, {"write"}, {"write"}
    )
    assert result == {RECORD: {"read", "write"}, LABS: {"read"}}


def test_scope_the_client_is_not_registered_for_is_ignored():
    """ASMT-2: not pre-registered → ignored in the calculation (not an error)."""
    resources = {RECORD: info(RECORD, "read", "write")}
    result = requested_scopes([(RECORD, ["read"])], resources, {"print"}, {"write"})
    assert result == {RECORD: {"read"}}
    # Even when it also fits no resource: ignoring wins over invalid_scope.
    result = requested_scopes([(RECORD, ["read"])], resources, set(), {"launch"})
    assert result == {RECORD: {"read"}}


def test_registered_scope_that_fits_no_resource_is_invalid_scope():
    """Checklist 6.4 invalid_scope: a requested scope matches no scope of any ticket resource."""
    resources = {RECORD: info(RECORD, "read", "write"), LABS: info(LABS, "read")}
    with pytest.raises(InvalidScopeRequest, match="print"):
        requested_scopes(
            [(RECORD, ["read"]), (LABS, ["read"])], resources, {"print", "write"}, {"print"}
        )
    with pytest.raises(InvalidScopeRequest):
        # One good scope does not excuse a bad one.
        requested_scopes([(RECORD, ["read"])], resources, {"print", "write"}, {"print", "write"})


def test_client_registration_alone_adds_nothing():
    """Only Registered ∩ Requested counts: a registered scope not asked for is not added."""
    resources = {RECORD: info(RECORD, "read", "write")}
    result = requested_scopes([(RECORD, ["read"])], resources, {"write"}, {"read"})
    assert result == {RECORD: {"read"}}


def test_ticket_entry_without_scopes_gets_the_extra_scope():
    resources = {RECORD: info(RECORD, "read", "write")}
    assert requested_scopes([(RECORD, [])], resources, {"write"}, {"write"}) == {RECORD: {"write"}}
    assert requested_scopes([(RECORD, [])], resources, {"write"}, None) == {RECORD: set()}


# --- permission expiry ----------------------------------------------------------------------


def test_scope_expiry_is_the_latest_of_the_rules_granting_it():
    rules = [user_rule(id=1, expires_at=SOON), user_rule(id=2, expires_at=LATER)]
    result = assess({RECORD: {"read"}}, rules, BOB, NOW)
    assert result.expiry == {(RECORD, "read"): LATER}
    assert result.permission_expiry(RECORD) == LATER


def test_scope_without_expiry_when_any_granting_rule_has_none():
    rules = [user_rule(id=1, expires_at=SOON), user_rule(id=2, expires_at=None)]
    result = assess({RECORD: {"read"}}, rules, BOB, NOW)
    assert result.expiry == {(RECORD, "read"): None}
    assert result.permission_expiry(RECORD) is None


def test_permission_lasts_as_long_as_its_shortest_lived_scope():
    rules = [
        user_rule(id=1, scopes=("read",), expires_at=LATER),
        user_rule(id=2, scopes=("write",), expires_at=SOON),
        user_rule(id=3, scopes=("print",), expires_at=None),
    ]
    result = assess({RECORD: {"read", "write", "print"}}, rules, BOB, NOW)
    assert result.expiry == {
        (RECORD, "read"): LATER,
        (RECORD, "write"): SOON,
        (RECORD, "print"): None,
    }
    # An unbounded scope does not lengthen the permission; the bounded ones set its end.
    assert result.permission_expiry(RECORD) == SOON


def test_rules_that_grant_nothing_do_not_bound_the_expiry():
    """A short rule for a scope that was not requested does not shorten the permission."""
    rules = [
        user_rule(id=1, scopes=("read",), expires_at=None),
        user_rule(id=2, scopes=("write",), expires_at=SOON),
    ]
    result = assess({RECORD: {"read"}}, rules, BOB, NOW)
    assert result.permission_expiry(RECORD) is None


def test_expired_rule_does_not_count_toward_expiry():
    rules = [user_rule(id=1, expires_at=PAST), user_rule(id=2, expires_at=SOON)]
    result = assess({RECORD: {"read"}}, rules, BOB, NOW)
    assert result.permission_expiry(RECORD) == SOON


def test_no_expiry_for_a_permission_with_nothing_granted():
    result = assess({RECORD: {"read"}}, [], BOB, NOW)
    assert result.permission_expiry(RECORD) is None
    assert result.permission_expiry("never-asked") is None
    covered = assess({RECORD: set()}, [user_rule(expires_at=SOON)], BOB, NOW)
    assert covered.permission_expiry(RECORD) is None


# --- decide: the grant's answer -------------------------------------------------------------


def test_decide_everything_granted():
    result = assess({RECORD: {"read"}}, [user_rule()], BOB, NOW)
    assert decide(result, {RECORD: info(RECORD, "read", "write")}) == Decision("granted")


def test_decide_partial_asks_only_for_ask_resources_not_denied_before():
    """6.2 step 5: an RPT with the partial CandidateGrantedScopes; the lacking rest goes to
    the owner only where the resource says "ask" and the owner has not refused already."""
    asked_before, refused, closed = "asked", "refused", "closed"
    requested = {
        RECORD: {"read", "write"},
        asked_before: {"read"},
        refused: {"read"},
        closed: {"read"},
    }
    resources = {
        RECORD: info(RECORD, "read", "write"),
        asked_before: info(asked_before, "read"),
        refused: info(refused, "read"),
        closed: info(closed, "read", uncovered=DENY),
    }
    result = assess(requested, [user_rule(scopes=("read",))], BOB, NOW)
    decision = decide(result, resources, denied_before={refused})
    assert decision.outcome == "partial"
    assert decision.to_ask == {RECORD: {"write"}, asked_before: {"read"}}


def test_decide_partial_with_nothing_to_ask():
    requested = {RECORD: {"read"}, LABS: {"read"}}
    resources = {RECORD: info(RECORD, "read"), LABS: info(LABS, "read", uncovered=DENY)}
    result = assess(requested, [user_rule()], BOB, NOW)
    assert decide(result, resources) == Decision("partial", {})


def test_decide_submitted_when_nothing_granted_and_owner_asks():
    result = assess({RECORD: {"read"}, LABS: {"read"}}, [], BOB, NOW)
    resources = {RECORD: info(RECORD, "read"), LABS: info(LABS, "read", uncovered=DENY)}
    assert decide(result, resources) == Decision("submitted", {RECORD: {"read"}})


@pytest.mark.parametrize(
    ("uncovered", "denied_before"),
    [
        pytest.param(DENY, set(), id="resource-says-deny"),
        pytest.param(ASK, {RECORD}, id="owner-refused-before"),
    ],
)
def test_decide_denied(uncovered, denied_before):
    result = assess({RECORD: {"read"}}, [], BOB, NOW)
    decision = decide(result, {RECORD: info(RECORD, "read", uncovered=uncovered)}, denied_before)
    assert decision == Decision("denied")
    assert decision.to_ask == {}


def test_decide_without_requester_never_grants():
    """SEC-DEFAULT-DENY: with no requester the answer is never an RPT."""
    result = assess({RECORD: {"read"}}, [user_rule()], None, NOW)
    assert decide(result, {RECORD: info(RECORD, "read")}).outcome not in ("granted", "partial")


# --- the worked example of UMA Grant §3.3.4 ------------------------------------------------


def test_spec_worked_example():
    """Checklist 6.2 worked example: photo1/photo2 {view, resize, print, download}, album
    {view, edit, download}; the client is pre-registered for download; the ticket holds
    album:{edit}, photo1:{view}, photo2:{view}; the client asks scope=download. Policy allows
    only photo1:view → Candidate album:{}, photo1:{view}, photo2:{} and a partial grant."""
    photo_scopes = ("view", "resize", "print", "download")
    resources = {
        "photo1": info("photo1", *photo_scopes),
        "photo2": info("photo2", *photo_scopes),
        "album": info("album", "view", "edit", "download"),
    }
    ticket = [("album", ["edit"]), ("photo1", ["view"]), ("photo2", ["view"])]

    requested = requested_scopes(ticket, resources, {"download"}, {"download"})
    assert requested == {
        "album": {"edit", "download"},
        "photo1": {"view", "download"},
        "photo2": {"view", "download"},
    }

    policy = [user_rule(resources=("photo1",), scopes=("view",))]
    result = assess(requested, policy, BOB, NOW)
    assert result.granted == {"album": set(), "photo1": {"view"}, "photo2": set()}
    assert not result.complete
    assert result.missing() == {
        "album": {"edit", "download"},
        "photo1": {"download"},
        "photo2": {"view", "download"},
    }

    decision = decide(result, resources)
    assert decision.outcome == "partial"
    assert decision.to_ask == result.missing()
