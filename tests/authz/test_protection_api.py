"""The UMA protection API: PAT rules (section 2), resource registration (3), permission
endpoint (4), introspection of access tokens (7)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from authz_server import db
from authz_server.models import PermissionTicket, Resource, User
from authz_server.seed import ensure_client
from tests.authz.conftest import (
    EHR_AUTH,
    RECORD,
    bearer,
    code_flow_tokens,
    login,
    refresh,
)

SPEC_EXAMPLE = {
    "resource_scopes": [
        "read-public",
        "post-updates",
        "read-private",
        "http://www.example.com/scopes/all",
    ],
    "icon_uri": "http://www.example.com/icons/sharesocial.png",
    "name": "Tweedl Social Service",
    "type": "http://www.example.com/rsrcs/socialstream/140-compatible",
}


def create(client, pat, body=None):
    return client.post("/uma/resource_set", json=body or RECORD, headers=bearer(pat))


# --- section 2: the PAT --------------------------------------------------------------


def test_no_pat_is_401_with_bearer_challenge(client):
    """PAT-2, PAT-3: RFC 6750 behaviour without a token."""
    response = client.get("/uma/resource_set")
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_without_uma_protection_is_403_insufficient_scope(client):
    """PAT-2: a valid access token that is not a PAT."""
    token = code_flow_tokens(client, "alice", scope="openid profile")["access_token"]
    response = client.get("/uma/resource_set", headers=bearer(token))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"


def test_pat_from_code_flow_is_owned_by_the_consenting_person(client, alice_pat, register):
    """PAT-4, PAT-5: the owner of the registration is the person who consented."""
    rid = register(alice_pat)
    with client.application.app_context():
        resource = db.session().get(Resource, rid)
        assert resource.owner.username == "alice"
        assert resource.client.client_id == "ehr"


def test_pat_from_client_credentials_is_owned_by_the_service_account(client, alice_pat):
    """PAT-5, organization case: the RS's own service account owns what it registers."""
    pat = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "uma_protection"},
        auth=EHR_AUTH,
    ).json
    assert pat["scope"] == "uma_protection"
    rid = create(client, pat["access_token"]).json["_id"]
    with client.application.app_context():
        owner = db.session().get(Resource, rid).owner
        assert owner.is_service_account and owner.username == "service-account-ehr"
    # Alice's PAT at the same RS does not see the organization's resources.
    assert client.get("/uma/resource_set", headers=bearer(alice_pat)).json == []


def test_pat_refreshes_while_the_owner_is_offline(client):
    """PAT-7: the RS keeps protecting with a refreshed PAT; Alice is not signed in."""
    tokens = code_flow_tokens(client, "alice")
    refreshed = refresh(client, tokens["refresh_token"]).json
    assert "uma_protection" in refreshed["scope"].split()
    assert create(client, refreshed["access_token"]).status_code == 201


# --- section 3: resource registration ------------------------------------------------


def test_create_is_201_with_location_id_and_policy_uri(client, alice_pat):
    """RREG create: 201, Location, _id, user_access_policy_uri (FedAuthz §3.2.1)."""
    response = create(client, alice_pat, SPEC_EXAMPLE)
    assert response.status_code == 201
    rid = response.json["_id"]
    assert response.headers["Location"] == f"http://localhost/uma/resource_set/{rid}"
    assert response.json["user_access_policy_uri"] == f"http://localhost/console/resources/{rid}"
    read = client.get(response.headers["Location"], headers=bearer(alice_pat))
    assert read.status_code == 200


def test_urls_handed_out_name_the_issuer_not_the_node(client, alice_pat):
    """Behind a balancer that rewrites Host, the request names one node; the URLs the AS
    hands out must still be the issuer's (several nodes, one issuer)."""
    response = client.post(
        "/uma/resource_set",
        json=SPEC_EXAMPLE,
        headers=bearer(alice_pat),
        base_url="https://as-node-2.internal:8400",
    )
    rid = response.json["_id"]
    assert response.headers["Location"] == f"http://localhost/uma/resource_set/{rid}"
    assert response.json["user_access_policy_uri"] == f"http://localhost/console/resources/{rid}"


def test_read_returns_the_description_plus_id(client, alice_pat, register):
    """RREG read: 200 with the full description and _id."""
    rid = register(
        alice_pat,
        {**SPEC_EXAMPLE, "description#fr": "Service social", "name#de": "Tweedl", "x_ext": 1},
    )
    body = client.get(f"/uma/resource_set/{rid}", headers=bearer(alice_pat)).json
    assert body == {
        "_id": rid,
        **SPEC_EXAMPLE,
        "description#fr": "Service social",
        "name#de": "Tweedl",
    }


def test_update_is_a_complete_replacement(client, alice_pat, register):
    """RREG update: 200 {_id}; members left out of the new description are gone."""
    rid = register(alice_pat, SPEC_EXAMPLE)
    response = client.put(
        f"/uma/resource_set/{rid}", json={"resource_scopes": ["view"]}, headers=bearer(alice_pat)
    )
    assert response.status_code == 200
    assert response.json["_id"] == rid
    body = client.get(f"/uma/resource_set/{rid}", headers=bearer(alice_pat)).json
    assert body == {"_id": rid, "resource_scopes": ["view"]}


def test_delete_is_204_and_ends_protection(client, alice_pat, register):
    """RREG delete, RREG-5: then 404 on read and invalid_resource_id at the permission endpoint."""
    rid = register(alice_pat)
    response = client.delete(f"/uma/resource_set/{rid}", headers=bearer(alice_pat))
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/uma/resource_set/{rid}", headers=bearer(alice_pat)).status_code == 404
    perm = client.post(
        "/uma/permission",
        json={"resource_id": rid, "resource_scopes": []},
        headers=bearer(alice_pat),
    )
    assert perm.status_code == 400 and perm.json["error"] == "invalid_resource_id"


def test_list_holds_only_this_owners_ids(client, alice_pat, carol_pat, register):
    """RREG list, RREG-6: a JSON array of _id strings, for the PAT's owner only."""
    mine = [register(alice_pat), register(alice_pat, SPEC_EXAMPLE)]
    theirs = register(carol_pat)
    assert client.get("/uma/resource_set", headers=bearer(alice_pat)).json == mine
    assert client.get("/uma/resource_set/", headers=bearer(carol_pat)).json == [theirs]


def test_list_filters_that_keycloak_clients_send(client, alice_pat, register):
    first = register(alice_pat, {**RECORD, "name": "history"})
    register(alice_pat, {**RECORD, "name": "labs"})
    by_name = client.get(
        "/uma/resource_set?name=history&exactName=true&first=0&max=1", headers=bearer(alice_pat)
    )
    assert by_name.json == [first]


def test_another_owners_resource_is_not_found(client, alice_pat, carol_pat, register):
    """PAT-6: every call maps to the PAT's owner; Carol's resource does not exist for Alice."""
    rid = register(carol_pat)
    for method in ("get", "put", "delete"):
        response = getattr(client, method)(
            f"/uma/resource_set/{rid}", json=RECORD, headers=bearer(alice_pat)
        )
        assert response.status_code == 404, method
        assert response.json["error"] == "not_found"
    assert client.get(f"/uma/resource_set/{rid}", headers=bearer(carol_pat)).status_code == 200


def test_registrations_are_per_resource_server(client, alice_pat, register):
    """PAT-4: a PAT is unique to (owner, RS, AS); another RS of Alice's sees its own only."""
    with client.application.app_context():
        ensure_client(
            db.session(),
            "lab-portal",
            "lab-secret",
            {
                "client_name": "Lab portal",
                "redirect_uris": ["http://localhost:8403/cb"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "scope": "openid uma_protection",
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        db.session().commit()
    rid = register(alice_pat)
    lab_pat = code_flow_tokens(
        client,
        "alice",
        client_auth=("lab-portal", "lab-secret"),
        redirect_uri="http://localhost:8403/cb",
    )["access_token"]
    assert client.get("/uma/resource_set", headers=bearer(lab_pat)).json == []
    assert client.get(f"/uma/resource_set/{rid}", headers=bearer(lab_pat)).status_code == 404


def test_policy_page_is_the_owners_only(client, alice_pat, register):
    """user_access_policy_uri leads Alice to her resource page; Carol sees nothing."""
    rid = register(alice_pat)
    login(client, "alice")
    page = client.get(f"/console/resources/{rid}")
    assert page.status_code == 200 and b"Alice&#39;s medical history" in page.data
    client.post("/logout", data={"csrf_token": ""})
    client.delete_cookie("uma_as_session")
    login(client, "carol")
    assert client.get(f"/console/resources/{rid}").status_code == 404


# --- section 4: permission endpoint --------------------------------------------------


def test_single_permission_gives_one_ticket(client, alice_pat, register):
    """PERM-2, PERM-3: one object → 201 {ticket}."""
    rid = register(alice_pat)
    response = client.post(
        "/uma/permission",
        json={"resource_id": rid, "resource_scopes": ["read"]},
        headers=bearer(alice_pat),
    )
    assert response.status_code == 201
    assert set(response.json) == {"ticket"}
    assert response.headers["Cache-Control"] == "no-store"


def test_array_of_permissions_gives_exactly_one_ticket(client, alice_pat, register):
    """PERM-3: many permissions, one ticket, representing exactly what was requested."""
    a, b = register(alice_pat), register(alice_pat, SPEC_EXAMPLE)
    body = [
        {"resource_id": a, "resource_scopes": ["read", "write"]},
        {"resource_id": b, "resource_scopes": ["http://www.example.com/scopes/all"]},
        {"resource_id": a, "resource_scopes": []},
    ]
    response = client.post("/uma/permission", json=body, headers=bearer(alice_pat))
    assert response.status_code == 201
    with client.application.app_context():
        ticket = db.session().scalars(select(PermissionTicket)).one()
        assert ticket.permissions == [
            {"resource_id": a, "resource_scopes": ["read", "write"]},
            {"resource_id": b, "resource_scopes": ["http://www.example.com/scopes/all"]},
        ]


def test_permission_with_no_scopes_is_valid(client, alice_pat, register):
    """PERM-2: an empty resource_scopes array is "a permission with no scopes"."""
    rid = register(alice_pat)
    response = client.post(
        "/uma/permission",
        json={"resource_id": rid, "resource_scopes": []},
        headers=bearer(alice_pat),
    )
    assert response.status_code == 201


def test_permission_for_another_owner_is_invalid_resource_id(
    client, alice_pat, carol_pat, register
):
    """PERM-4, PERM-5: even one foreign resource in the array fails the whole request."""
    mine, theirs = register(alice_pat), register(carol_pat)
    body = [
        {"resource_id": mine, "resource_scopes": ["read"]},
        {"resource_id": theirs, "resource_scopes": ["read"]},
    ]
    response = client.post("/uma/permission", json=body, headers=bearer(alice_pat))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_resource_id"
    with client.application.app_context():
        assert db.session().scalars(select(PermissionTicket)).all() == []


def test_permission_with_unregistered_scope_is_invalid_scope(client, alice_pat, register):
    """PERM-4: scopes must have been registered for that resource."""
    rid = register(alice_pat)
    response = client.post(
        "/uma/permission",
        json={"resource_id": rid, "resource_scopes": ["read", "delete"]},
        headers=bearer(alice_pat),
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_scope"


def test_tickets_are_unguessable_stored_hashed_and_expire(app, client, alice_pat, register):
    """TKT-1, SEC-GUESS: 256-bit URL-safe values, only a digest at rest, TTL from config."""
    rid = register(alice_pat)
    tickets = [
        client.post(
            "/uma/permission",
            json={"resource_id": rid, "resource_scopes": ["read"]},
            headers=bearer(alice_pat),
        ).json["ticket"]
        for _ in range(5)
    ]
    assert len(set(tickets)) == 5
    assert all(len(t) >= 43 and t.replace("-", "").replace("_", "").isalnum() for t in tickets)
    with app.app_context():
        rows = db.session().scalars(select(PermissionTicket)).all()
        stored = {r.ticket_digest for r in rows}
        assert not stored & set(tickets)
        for row in rows:
            assert row.expires_at - row.created_at == timedelta(seconds=300)
            assert row.used_at is None
            assert row.owner_id == db.session().scalar(
                select(User.id).where(User.username == "alice")
            )


# --- section 7: introspection (plain access tokens; RPTs come with the grant) ---------


def test_introspection_by_pat_of_own_token(client, alice_pat):
    """INT-2, INT-4: PAT as Bearer authorises; the caller's own token is described."""
    response = client.post("/introspect", data={"token": alice_pat}, headers=bearer(alice_pat))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["active"] is True
    assert body["client_id"] == "ehr" and body["username"] == "alice"
    assert "uma_protection" in body["scope"].split()
    assert body["exp"] > body["iat"]


def test_introspection_with_client_credentials(client, alice_pat):
    response = client.post("/introspect", data={"token": alice_pat}, auth=EHR_AUTH)
    assert response.json["active"] is True


def test_introspection_of_unknown_token_is_inactive_only(client, alice_pat):
    """INT-3: not an error, and nothing but active:false."""
    response = client.post("/introspect", data={"token": "unknown"}, headers=bearer(alice_pat))
    assert response.status_code == 200 and response.json == {"active": False}


def test_introspection_of_another_clients_token_is_inactive(client, alice_pat):
    """INT-3: a token that is not the caller's to know about looks unknown."""
    doctor_token = code_flow_tokens(
        client,
        "bob",
        client_auth=("doctor-app", "doctor-demo-secret"),
        redirect_uri="http://localhost:8402/auth/callback",
        scope="openid",
    )["access_token"]
    response = client.post("/introspect", data={"token": doctor_token}, headers=bearer(alice_pat))
    assert response.json == {"active": False}


def test_introspection_of_a_revoked_token_is_inactive(client, alice_pat):
    other = code_flow_tokens(client, "alice")["access_token"]
    client.post("/revoke", data={"token": other}, auth=EHR_AUTH)
    response = client.post("/introspect", data={"token": other}, headers=bearer(alice_pat))
    assert response.json == {"active": False}


def test_introspection_without_authorization_is_401(client, alice_pat):
    """INT-2: the endpoint requires authorization (no token scanning)."""
    response = client.post("/introspect", data={"token": alice_pat})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("path", ["/uma/resource_set", "/token", "/introspect", "/login"])
def test_plain_http_to_a_public_host_is_refused(client, path):
    """PAT-1, INT-5: outside loopback the protocol needs TLS; a clear 400, never a 500."""
    response = client.post(path, base_url="http://as.example.com")
    assert response.status_code == 400
    https = client.get("/.well-known/uma2-configuration", base_url="https://as.example.com")
    assert https.status_code == 200


def test_introspection_hint_is_only_a_hint(client, alice_pat):
    """INT-1: a wrong token_type_hint still finds the token."""
    response = client.post(
        "/introspect",
        data={"token": alice_pat, "token_type_hint": "refresh_token"},
        headers=bearer(alice_pat),
    )
    assert response.json["active"] is True
