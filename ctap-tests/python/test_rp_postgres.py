"""Two `passgate rp` instances on one private PostgreSQL cluster: ceremonies begun on one finish on
the other, a challenge is single-use across instances, sessions are shared, and the same ceremony
finished on both instances at once succeeds exactly once.

The cluster is started by the test (initdb/pg_ctl as the `postgres` user, trust auth, 127.0.0.1 on
a free port) and stopped with `pg_ctl stop -m immediate` even when the test fails."""

from __future__ import annotations

import threading

import pytest

from rp_support import (
    Browser,
    PostgresCluster,
    RpServer,
    create,
    expect_error,
    get,
    response_json,
    set_pin,
    sha256,
    unb64u,
    uv_client,
)


@pytest.fixture
def cluster():
    pg = PostgresCluster()
    try:
        url = pg.start()
        yield pg, url
    finally:
        pg.stop()


@pytest.fixture
def pair(cluster, tmp_path):
    """Instances A and B on the same database and receipt key."""
    _, url = cluster
    key = tmp_path / "shared-receipt-key.p8"
    servers: list[RpServer] = []
    try:
        servers.append(RpServer(tmp_path, url, key, name="rp-a"))
        servers.append(RpServer(tmp_path, url, key, name="rp-b"))
        yield servers[0], servers[1]
    finally:
        statuses = [(s.name, s.stop()) for s in servers]
    assert all(status == 0 for _, status in statuses), (statuses, [s.log_tail() for s in servers])


@pytest.fixture
def client_factory(passgate):
    set_pin(passgate)
    return lambda: uv_client(passgate)


def on(server: RpServer, cookie: str | None) -> Browser:
    """A browser on `server` carrying `cookie`."""
    browser = server.browser()
    browser.cookie = cookie
    return browser


def race(calls) -> list:
    """Runs the calls at the same moment on threads; returns their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = []

    def run(i, call):
        try:
            barrier.wait(10)
            results[i] = call()
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads), "a racing request did not finish"
    return results


@pytest.mark.timeout(180)
def test_ceremonies_and_sessions_move_between_instances(cluster, pair, client_factory):
    pg, _ = cluster
    a, b = pair
    for server in (a, b):
        ready = server.browser().ok("GET", "/readyz")
        assert ready["status"] == "ready" and ready["database"] == "postgres", ready
    key_a, key_b = a.browser().ok("GET", "/api/receipts/key"), b.browser().ok("GET", "/api/receipts/key")
    assert key_a == key_b

    # Registration: options from A, verification on B.
    options = a.browser().ok("POST", "/api/register/options", {"username": "pat", "displayName": "Pat"})
    assert pg.psql(f"SELECT kind FROM ceremonies WHERE challenge = '{options['challenge']}'").strip() == "registration"
    created = response_json(create(client_factory(), options))
    on_b = b.browser()
    registered = on_b.ok("POST", "/api/register/verify", created)
    assert registered["user"]["name"] == "pat" and registered["credential"]["id"] == created["rawId"]
    assert pg.psql(f"SELECT count(*) FROM ceremonies WHERE challenge = '{options['challenge']}'").strip() == "0"
    assert pg.psql("SELECT name FROM users").split() == ["pat"]
    # The registration cannot be replayed on either instance.
    expect_error(a.browser().post("/api/register/verify", created), 400, "unknown_challenge")
    expect_error(b.browser().post("/api/register/verify", created), 400, "unknown_challenge")
    # The session B created is valid on A.
    assert on(a, on_b.cookie).ok("GET", "/api/session")["user"]["name"] == "pat"
    assert [c["id"] for c in on(a, on_b.cookie).ok("GET", "/api/credentials")["credentials"]] == [created["rawId"]]

    # Sign-in: options from B, verification on A; A's session is valid on B.
    options = b.browser().ok("POST", "/api/login/options", {"username": "pat"})
    assertion = response_json(get(client_factory(), options))
    on_a = a.browser()
    signed_in = on_a.ok("POST", "/api/login/verify", assertion)
    assert signed_in["user"]["name"] == "pat" and signed_in["verdict"]["userVerified"] is True
    assert on(b, on_a.cookie).ok("GET", "/api/session")["user"]["name"] == "pat"
    for server in (a, b):
        expect_error(server.browser().post("/api/login/verify", assertion), 400, "unknown_challenge")

    # A challenge issued by A and used on B cannot be replayed on A.
    options = a.browser().ok("POST", "/api/login/options", {})
    assertion = response_json(get(client_factory(), options))
    assert on(b, None).ok("POST", "/api/login/verify", assertion)["user"]["name"] == "pat"
    expect_error(a.browser().post("/api/login/verify", assertion), 400, "unknown_challenge")

    # Re-auth begun on A with A's session, finished on B with the same cookie.
    reauth = on_a.ok("POST", "/api/reauth/options", {})
    result = on(b, on_a.cookie).ok("POST", "/api/reauth/verify", response_json(get(client_factory(), reauth)))
    assert result["verified"] is True
    assert on_a.ok("GET", "/api/session")["recentlyVerified"] is True

    # A signed action begun on B, approved on A: the receipt verifies on B with the shared key.
    payload = "pay 42.00 EUR to Acme"
    started = on(b, on_a.cookie).ok("POST", "/api/actions/options", {"payload": payload})
    assert unb64u(started["publicKey"]["challenge"])[16:] == sha256(payload.encode())
    approved = on_a.ok("POST", "/api/actions/verify", response_json(get(client_factory(), started["publicKey"])))
    receipt = approved["receipt"]
    assert receipt["keyId"] == key_a["keyId"] and receipt["receipt"]["payload"] == payload
    assert b.browser().ok("POST", "/api/receipts/verify", {"receiptJson": receipt["receiptJson"],
                                                           "signature": receipt["signature"]})["valid"] is True
    stored = b.browser().ok("GET", f"/api/receipts/{receipt['receipt']['id']}")
    assert stored["receiptJson"] == receipt["receiptJson"]

    # Logout on B ends the session on A too.
    assert on(b, on_a.cookie).ok("POST", "/api/logout", {}) == {"signedOut": True}
    expect_error(on_a.get("/api/session"), 401, "not_signed_in")

    # An instance that stops leaves its ceremonies to the other one.
    options = a.browser().ok("POST", "/api/login/options", {"username": "pat"})
    assert a.stop() == 0, a.log_tail()
    assertion = response_json(get(client_factory(), options))
    assert b.browser().ok("POST", "/api/login/verify", assertion)["user"]["name"] == "pat"
    expect_error(b.browser().post("/api/login/verify", assertion), 400, "unknown_challenge")
    # A taken username: the options do not tell which names exist; the completed ceremony is
    # refused and nothing is stored.
    again = b.browser()
    taken = again.ok("POST", "/api/register/options", {"username": "pat"})
    expect_error(again.post("/api/register/verify", response_json(create(client_factory(), taken))), 409,
                 "username_taken")
    assert pg.psql("SELECT name FROM users").split() == ["pat"]


@pytest.mark.timeout(180)
def test_same_ceremony_finished_on_both_instances_at_once(cluster, pair, client_factory):
    pg, _ = cluster
    a, b = pair

    # Registration: the same response raced to A and B.
    options = a.browser().ok("POST", "/api/register/options", {"username": "race"})
    created = response_json(create(client_factory(), options))
    ra, rb = a.browser(), b.browser()
    results = race([lambda: ra.post("/api/register/verify", created), lambda: rb.post("/api/register/verify", created)])
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 400], results
    loser = next(r for r in results if r.status != 200)
    assert loser.code == "unknown_challenge", loser
    assert pg.psql("SELECT count(*) FROM credentials").strip() == "1"
    assert pg.psql("SELECT count(*) FROM users WHERE name = 'race'").strip() == "1"

    # Sign-in, several rounds: exactly one instance wins each, one session is created each time.
    sessions_before = int(pg.psql("SELECT count(*) FROM sessions"))
    rounds = 6
    for i in range(rounds):
        issuer = (a, b)[i % 2]
        options = issuer.browser().ok("POST", "/api/login/options", {"username": "race"} if i % 3 else {})
        assertion = response_json(get(client_factory(), options))
        ba, bb = a.browser(), b.browser()
        results = race([lambda: ba.post("/api/login/verify", assertion), lambda: bb.post("/api/login/verify", assertion)])
        assert sorted(r.status for r in results) == [200, 400], (i, results)
        winner_browser = ba if results[0].status == 200 else bb
        loser = results[1] if results[0].status == 200 else results[0]
        assert loser.code == "unknown_challenge", (i, loser)
        assert winner_browser.cookie is not None
        assert (ba.cookie is None) != (bb.cookie is None)
        assert pg.psql(f"SELECT count(*) FROM ceremonies WHERE challenge = '{options['challenge']}'").strip() == "0"
    assert int(pg.psql("SELECT count(*) FROM sessions")) == sessions_before + rounds

    # Two different sign-ins with the same credential raced: the stored counter never goes back.
    # Sequential acceptance, a counter regression or a concurrent-use refusal are all correct.
    credential_id = created["rawId"]
    first = a.browser().ok("POST", "/api/login/options", {"username": "race"})
    second = b.browser().ok("POST", "/api/login/options", {"username": "race"})
    older = response_json(get(client_factory(), first))
    newer = response_json(get(client_factory(), second))
    counters = {id(older): int.from_bytes(unb64u(older["response"]["authenticatorData"])[33:37], "big"),
                id(newer): int.from_bytes(unb64u(newer["response"]["authenticatorData"])[33:37], "big")}
    assert counters[id(newer)] > counters[id(older)]
    results = race([lambda: a.browser().post("/api/login/verify", older),
                    lambda: b.browser().post("/api/login/verify", newer)])
    outcomes = [(r.status, r.code) for r in results]
    assert outcomes in ([(200, None), (200, None)], [(403, "counter_regression"), (200, None)],
                        [(409, "concurrent_use"), (200, None)], [(200, None), (409, "concurrent_use")]), outcomes
    accepted = [counters[id(x)] for x, r in zip((older, newer), results) if r.status == 200]
    stored = int(pg.psql(f"SELECT sign_count FROM credentials WHERE id = '{credential_id}'"))
    assert stored == max(accepted), (stored, accepted, outcomes)

