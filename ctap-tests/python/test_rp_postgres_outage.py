"""PostgreSQL killed and restarted under load on two `passgate rp` instances sharing it.

Workers run full sign-in ceremonies (options on one instance, verify on the other) with a
software authenticator (ES256 through `cryptography`) while the database is stopped with
`pg_ctl -m immediate` (a crash: no checkpoint, recovery on restart) and started again:

- a request begun and ended while the database is down is answered 503
  `database_unavailable` (after the store's 3 s wait for a connection), never a success and
  never a 500; one begun while it is down may wait until it is back and then succeed;
- the instances recover by themselves (no restart): both `/readyz` answer 200 again and
  ceremonies succeed on both;
- nothing is half-applied or lost: every sign-in answered 200 has its session in the
  database, and the sessions in the database are exactly those (plus the sign-ups');
- no challenge is used twice: every successful assertion replayed on the other instance is
  refused `unknown_challenge`, and for every tenth ceremony the verify is sent to both
  instances at the same moment and exactly one succeeds.

Then PASSGATE_PG_CEREMONIES ceremonies (default 2,000 in the suite; `cargo xtask soak
--postgres` runs 10,000) across both instances, with the same checks; the figures are
printed (ceremonies, seconds, per second, failures).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor

from helpers import ORIGIN, RP_ID
from rp_support import RpServer, b64u
from test_rp_postgres import cluster, pair  # noqa: F401  (fixtures: a private cluster, two instances)

CEREMONIES = int(os.environ.get("PASSGATE_PG_CEREMONIES", "2000"))
WORKERS = 8


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class SoftPasskey:
    """A software authenticator with one ES256 passkey: UP and UV set, counter per signature."""

    def __init__(self, name: str):
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.counter = 0
        self.user_handle = None
        self.lock = threading.Lock()

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": False},
                          separators=(",", ":")).encode()

    def registration(self, options: dict) -> dict:
        numbers = self.key.public_key().public_numbers()
        cose = cbor.encode({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        auth_data = (sha256(RP_ID.encode()) + bytes([0x45]) + (0).to_bytes(4, "big") + bytes(16)
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose)
        self.user_handle = options["user"]["id"]
        return {
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
            "response": {
                "clientDataJSON": b64u(self._client_data("webauthn.create", options["challenge"])),
                "attestationObject": b64u(cbor.encode({"fmt": "none", "attStmt": {}, "authData": auth_data})),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def assertion(self, options: dict) -> dict:
        with self.lock:
            self.counter += 1
            counter = self.counter
        client_data = self._client_data("webauthn.get", options["challenge"])
        auth_data = sha256(RP_ID.encode()) + bytes([0x05]) + counter.to_bytes(4, "big")
        signature = self.key.sign(auth_data + sha256(client_data), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client_data), "authenticatorData": b64u(auth_data),
                "signature": b64u(signature), "userHandle": self.user_handle,
            },
            "clientExtensionResults": {},
        }


def sign_up(server: RpServer, name: str) -> tuple[SoftPasskey, str]:
    passkey = SoftPasskey(name)
    browser = server.browser()
    options = browser.ok("POST", "/api/register/options", {"username": name, "displayName": name})
    browser.ok("POST", "/api/register/verify", passkey.registration(options))
    return passkey, browser.cookie


def token_hash(cookie: str) -> str:
    token = cookie.split("=", 1)[1]
    return base64.urlsafe_b64encode(sha256(token.encode())).rstrip(b"=").decode()


class Load:
    """Sign-in ceremonies on worker threads, one account per worker (so each credential's
    counter is used in order), every outcome recorded with the phase its request began in."""

    def __init__(self, servers: list[RpServer], passkeys: list[SoftPasskey]):
        self.servers = servers
        self.passkeys = passkeys
        self.phase = "before"
        self.outcomes: list[tuple[str, str, int, str | None]] = []
        self.successes: list[tuple[int, dict, str]] = []  # (verifier, assertion, cookie)
        self.races: list[list[int]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.budget: int | None = None
        self.done = 0

    def _record(self, phase: str, step: str, status: int, code: str | None) -> None:
        # A request begun while the database was down may wait for a connection until it is
        # back, and then succeed; it counts as "down" only if it also ended then.
        if phase != self.phase:
            phase = f"{phase}->{self.phase}"
        with self.lock:
            self.outcomes.append((phase, step, status, code))

    def _take(self) -> bool:
        with self.lock:
            if self.budget is not None:
                if self.done >= self.budget:
                    return False
                self.done += 1
            return True

    def ceremony(self, worker: int, n: int) -> None:
        passkey = self.passkeys[worker]
        issuer, verifier = (n + worker) % 2, (n + worker + 1) % 2
        phase = self.phase
        try:
            options = self.servers[issuer].browser().post("/api/login/options", {"username": passkey.name})
        except OSError:
            self._record(phase, "options", 0, "connection")
            return
        self._record(phase, "options", options.status, options.code)
        if options.status != 200:
            time.sleep(0.05)
            return
        assertion = passkey.assertion(options.body)
        phase = self.phase
        if n % 10 == 0:
            # Both instances at once: exactly one may take the challenge.
            browsers = [s.browser() for s in self.servers]
            results: list = [None, None]
            barrier = threading.Barrier(2)

            def finish(i: int) -> None:
                barrier.wait()
                results[i] = browsers[i].post("/api/login/verify", assertion)

            threads = [threading.Thread(target=finish, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for i, r in enumerate(results):
                self._record(phase, "verify", r.status, r.code)
                if r.status == 200:
                    with self.lock:
                        self.successes.append((i, assertion, browsers[i].cookie))
            with self.lock:
                self.races.append([r.status for r in results])
            return
        browser = self.servers[verifier].browser()
        result = browser.post("/api/login/verify", assertion)
        self._record(phase, "verify", result.status, result.code)
        if result.status == 200:
            with self.lock:
                self.successes.append((verifier, assertion, browser.cookie))

    def run(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set() and self._take():
            self.ceremony(worker, n)
            n += 1

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.run, args=(w,), daemon=True) for w in range(len(self.passkeys))]
        for t in threads:
            t.start()
        return threads


def ready(server: RpServer) -> bool:
    try:
        return server.browser().get("/readyz").status == 200
    except OSError:
        return False


def check_nothing_lost_or_reused(pg, servers, load: Load, sign_up_sessions: int) -> None:
    # Every success has its session; the database has no session nobody was told about.
    hashes_ = [token_hash(cookie) for _, _, cookie in load.successes]
    assert len(set(hashes_)) == len(hashes_)
    stored = set(pg.psql("SELECT token_hash FROM sessions").split())
    missing = [h for h in hashes_ if h not in stored]
    assert not missing, f"{len(missing)} sign-ins answered 200 have no session (lost)"
    assert len(stored) == len(hashes_) + sign_up_sessions, \
        f"{len(stored)} sessions stored, {len(hashes_)} sign-ins + {sign_up_sessions} sign-ups answered 200"
    # No challenge twice: a raced verify succeeded at most once, and exactly once when the
    # database was up; every success replayed on the other instance is refused.
    assert all(statuses.count(200) <= 1 for statuses in load.races), load.races
    for verifier, assertion, _ in load.successes:
        replay = servers[1 - verifier].browser().post("/api/login/verify", assertion)
        assert (replay.status, replay.code) == (400, "unknown_challenge"), replay


@pytest.mark.timeout(1800)
def test_postgres_killed_and_restarted_under_load_on_two_instances(cluster, pair):  # noqa: F811
    pg, _ = cluster
    a, b = pair
    servers = [a, b]
    passkeys = []
    for w in range(WORKERS):
        passkey, _ = sign_up(servers[w % 2], f"load-{w}")
        passkeys.append(passkey)
    load = Load(servers, passkeys)
    threads = load.start()
    time.sleep(2)
    # Kill: no clean shutdown, recovery on restart. Requests begun while it is being killed
    # or restarted may go either way; only those begun while it is down must all fail.
    load.phase = "killing"
    pg._as_postgres(str(pg.bin / "pg_ctl"), "-D", str(pg.data), "-m", "immediate", "-w", "stop")
    load.phase = "down"
    # Longer than the store's 3 s wait for a connection, so that requests begin and end
    # inside the outage.
    time.sleep(8)
    load.phase = "restarting"
    pg._as_postgres(
        str(pg.bin / "pg_ctl"), "-D", str(pg.data), "-l", str(pg.root / "postgres.log"), "-w", "-t", "60", "-o",
        f"-p {pg.port} -k {pg.sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
    )
    deadline = time.monotonic() + 30
    while not (ready(a) and ready(b)):
        assert time.monotonic() < deadline, "the instances did not recover within 30 s of the restart"
        time.sleep(0.2)
    load.phase = "after"
    time.sleep(3)
    load.stop.set()
    for t in threads:
        t.join(60)

    down = [o for o in load.outcomes if o[0] == "down"]
    assert down, "no request was made while the database was down"
    assert all((status, code) == (503, "database_unavailable") for _, _, status, code in down), \
        sorted(set((step, s, c) for _, step, s, c in down))
    assert not [o for o in load.outcomes if o[2] == 500], [o for o in load.outcomes if o[2] == 500][:5]
    after = [o for o in load.outcomes if o[0] == "after" and o[1] == "verify" and o[2] == 200]
    assert len(after) >= 4, f"only {len(after)} sign-ins succeeded after the restart"
    assert {v for v, _, _ in load.successes} == {0, 1}
    unexpected = sorted({(s, c) for p, _, s, c in load.outcomes
                         if p in ("before", "after") and s != 200 and not (s == 400 and c == "unknown_challenge")})
    assert not unexpected, f"failures while the database was up: {unexpected}"
    check_nothing_lost_or_reused(pg, servers, load, sign_up_sessions=WORKERS)
    print(f"\noutage: {len(down)} requests while down, all 503; "
          f"{len(load.successes)} sign-ins, {len(load.races)} raced verifies")

    # Then the long run across both instances.
    pg.psql("DELETE FROM sessions")
    bulk = Load(servers, passkeys)
    bulk.budget = CEREMONIES
    started = time.monotonic()
    for t in bulk.start():
        t.join()
    elapsed = time.monotonic() - started
    failures = [o for o in bulk.outcomes if o[2] != 200 and not (o[2] == 400 and o[3] == "unknown_challenge")]
    assert not failures, sorted(set((s, c) for _, _, s, c in failures))
    assert len(bulk.successes) == CEREMONIES, f"{len(bulk.successes)} of {CEREMONIES} ceremonies succeeded"
    assert all(statuses.count(200) == 1 for statuses in bulk.races), bulk.races
    check_nothing_lost_or_reused(pg, servers, bulk, sign_up_sessions=0)
    print(f"ceremonies: {CEREMONIES} across 2 instances in {elapsed:.1f} s ({CEREMONIES / elapsed:.0f}/s), "
          f"0 lost, 0 double-used ({len(bulk.races)} raced on both instances)")
