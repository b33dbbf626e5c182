from tests.authz.conftest import bearer


def test_pat_registers(client, alice_pat, register):
    rid = register(alice_pat)
    assert client.get(f"/uma/resource_set/{rid}", headers=bearer(alice_pat)).json["_id"] == rid
