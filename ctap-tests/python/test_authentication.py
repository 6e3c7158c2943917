"""getAssertion through Fido2Client, verified by Fido2Server and py_webauthn."""

from helpers import assert_flags, authenticate, make_server, register


def test_allow_list_assertions_have_increasing_sign_counts(passgate):
    client = passgate.client()
    server = make_server()
    reg = register(client, server, user_name="alice", resident=False)

    counts = [reg.webauthn_sign_count]
    for _ in range(3):
        [auth] = authenticate(
            client, server, [reg], allow=[reg], current_sign_count=counts[-1]
        )
        assert auth.credential_id == reg.credential_id
        assert_flags(auth.auth_data, attested=False)
        assert auth.auth_data.rp_id_hash == server.rp.id_hash
        counts.append(auth.sign_count)

    assert all(a < b for a, b in zip(counts[1:], counts[2:])), f"counters {counts}"
    assert counts[1] > counts[0] or counts[0] == 0, f"counters {counts}"
    # passgate counts per passkey: 0 at registration, then 1, 2, 3 (not a store-wide value).
    assert counts == [0, 1, 2, 3], f"counters {counts}"


def test_allow_list_with_discoverable_credential(passgate):
    client = passgate.client()
    server = make_server()
    reg = register(client, server, user_name="alice", resident=True)
    [auth] = authenticate(client, server, [reg], allow=[reg])
    assert auth.credential_id == reg.credential_id
    assert_flags(auth.auth_data, attested=False)


def test_discoverable_two_accounts_give_two_assertions(passgate):
    client = passgate.client()
    server = make_server()
    alice = register(client, server, user_name="alice", resident=True)
    bob = register(client, server, user_name="bob", resident=True)
    # A non-discoverable credential of the same RP must not show up without an allowList.
    hidden = register(client, server, user_name="carol", resident=False)

    auths = authenticate(client, server, [alice, bob, hidden], allow=None)

    assert len(auths) == 2
    assert {a.credential_id for a in auths} == {alice.credential_id, bob.credential_id}
    by_id = {a.credential_id: a for a in auths}
    assert by_id[alice.credential_id].user_handle == alice.user_id
    assert by_id[bob.credential_id].user_handle == bob.user_id
    for auth in auths:
        assert_flags(auth.auth_data, attested=False)


def test_discoverable_assertions_count_up(passgate):
    client = passgate.client()
    server = make_server()
    reg = register(client, server, user_name="alice", resident=True)
    [first] = authenticate(client, server, [reg], allow=None)
    [second] = authenticate(
        client, server, [reg], allow=None, current_sign_count=first.sign_count
    )
    assert second.sign_count > first.sign_count
