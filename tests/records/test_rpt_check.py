"""The RS's reading of an introspection answer, alone (RS-4, RS-6, INT-U2)."""

import pytest

from records_server.rpt_check import grants

NOW = 1_800_000_000


def answer(*permissions, **token):
    return {"active": True, "exp": NOW + 300, "permissions": list(permissions), **token}


def perm(resource_id="r1", scopes=("read",), **times):
    return {"resource_id": resource_id, "resource_scopes": list(scopes), **times}


@pytest.mark.parametrize(
    "introspection, expected",
    [
        (answer(perm()), True),
        (answer(perm(scopes=("read", "write"))), True),
        (answer(perm(resource_id="r2")), False),  # another resource
        (answer(perm(scopes=("write",))), False),  # another scope
        (answer(perm(scopes=())), False),  # a permission with no scopes grants no scope
        ({**answer(perm()), "active": False}, False),
        ({"active": "true", "permissions": [perm()]}, False),  # not a boolean
        ({"active": True, "scope": "read"}, False),  # no permissions: not a UMA answer
        (answer(perm(exp=NOW - 1)), False),  # the permission expired
        (answer(perm(), exp=NOW), False),  # the token expired (exp is exclusive)
        (answer(perm(exp=NOW + 900), exp=NOW - 5), False),  # the token's earlier exp wins
        (answer(perm(nbf=NOW + 10)), False),  # not yet valid
        (answer(perm(nbf=NOW - 10), nbf=NOW + 10), False),  # the token's later nbf wins
        (answer(perm(nbf=NOW - 10, exp=NOW + 10)), True),
        (answer(perm(exp="soon")), False),  # malformed: default deny
        (answer("junk", perm()), True),  # junk beside a good permission is skipped
        (answer({"resource_id": "r1", "resource_scopes": "read"}), False),
    ],
)
def test_grants(introspection, expected):
    assert grants(introspection, "r1", "read", NOW) is expected


def test_an_answer_without_exp_is_bounded_by_the_permission_alone():
    assert grants({"active": True, "permissions": [perm(exp=NOW + 1)]}, "r1", "read", NOW)
