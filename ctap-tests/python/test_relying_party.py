"""`passgate rp` with peers we did not write: python-fido2's Fido2Client (over CTAPHID/TCP to
our authenticator) as the browser, py_webauthn as a second verifier, `cryptography` checking
receipts, and two server instances sharing one PostgreSQL cluster."""

from __future__ import annotations

import base64
import glob
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.webauthn import (
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
)
from webauthn import verify_authentication_response
from webauthn.helpers import base64url_to_bytes

from conftest import _binary
from helpers import ORIGIN, RP_ID, to_json

PIN = "4321"
TOKEN = "interop-token"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Pin(UserInteraction):
    """The PIN a person would type into the client: the authenticator then sets UV."""

    def prompt_up(self):
        pass

    def request_pin(self, permissions, rp_id):
        return PIN

    def request_uv(self, permissions, rp_id):
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rp:
    """One `passgate rp` process and a cookie-carrying HTTP client for it."""

    def __init__(self, database: str, workdir: Path, receipt_key: Path, extra: list[str] | None = None):
        self.port = free_port()
        self.log = open(workdir / f"rp-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(_binary()), "rp",
                "--listen", f"127.0.0.1:{self.port}",
                "--database", database,
                "--rp-id", RP_ID,
                "--origin", ORIGIN,
                "--api-token", TOKEN,
                "--receipt-key", str(receipt_key),
                "--rate-limit-per-sec", "0",
                *(extra or []),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("listening on http://"), f"unexpected first line {line!r}"
        self.cookie: str | None = None

    def request(self, method: str, path: str, body=None, headers=None, cookie=True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        h = {"content-type": "application/json"}
        if cookie and self.cookie:
            h["cookie"] = self.cookie
        h.update(headers or {})
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        conn.request(method, path, data, h)
        resp = conn.getresponse()
        raw = resp.read()
        set_cookie = resp.getheader("set-cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        conn.close()
        return resp.status, (json.loads(raw) if raw else None)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, {} if body is None else body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def rp(tmp_path):
    server = Rp(f"sqlite://{tmp_path}/rp.sqlite3", tmp_path, tmp_path / "receipt-key.p8")
    yield server
    assert server.stop() == 0, "passgate rp did not shut down cleanly on SIGTERM"


@pytest.fixture
def browser(passgate):
    """python-fido2 as the browser, on our authenticator with a PIN set (so UV is real)."""
    ClientPin(Ctap2(passgate.device())).set_pin(PIN)
    return lambda: Fido2Client(
        passgate.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin()
    )


def register(rp: Rp, client: Fido2Client, username: str, path=("/api/register/options", "/api/register/verify")):
    status, options = rp.post(path[0], {"username": username, "displayName": username.title()})
    assert status == 200, options
    options = {k: v for k, v in options.items() if k not in ("status", "errorMessage")}
    created = client.make_credential(PublicKeyCredentialCreationOptions.from_dict(options))
    status, result = rp.post(path[1], to_json(created))
    assert status == 200, result
    return created, result


def sign_in(rp: Rp, client: Fido2Client, options_path: str, verify_path: str, body=None):
    status, options = rp.post(options_path, body or {})
    assert status == 200, options
    public_key = options.get("publicKey", options)
    public_key = {k: v for k, v in public_key.items() if k not in ("status", "errorMessage")}
    selection = client.get_assertion(PublicKeyCredentialRequestOptions.from_dict(public_key))
    assertion = selection.get_response(0)
    status, result = rp.post(verify_path, to_json(assertion))
    return status, result, options, assertion


@pytest.mark.timeout(120)
def test_fido2_client_registers_signs_in_reauthenticates_and_approves_an_action(rp, browser):
    created, result = register(rp, browser(), "alice")
    assert result["user"]["name"] == "alice"
    credential_id = result["credential"]["id"]
    assert credential_id == b64u(created.raw_id)
    assert rp.get("/api/session")[1]["user"]["name"] == "alice"

    # Sign in with the username, then discoverably (no allowCredentials), on a new session.
    rp.cookie = None
    status, result, options, _ = sign_in(rp, browser(), "/api/login/options", "/api/login/verify", {"username": "alice"})
    assert status == 200, result
    assert [c["id"] for c in options["allowCredentials"]] == [credential_id]
    assert result["verdict"]["userVerified"] is True
    rp.cookie = None
    status, result, options, _ = sign_in(rp, browser(), "/api/login/options", "/api/login/verify")
    assert status == 200, result
    assert options["allowCredentials"] == []
    assert result["user"]["name"] == "alice"
    assert result["credential"]["signCount"] >= 2

    # Re-authentication on the signed-in session.
    status, result, _, _ = sign_in(rp, browser(), "/api/reauth/options", "/api/reauth/verify")
    assert status == 200, result

    # A signed action: the challenge commits to the payload, the receipt is verifiable by anyone.
    payload = json.dumps({"transfer": "250.00 EUR", "to": "DE89 3704 0044 0532 0130 00"})
    status, result, options, assertion = sign_in(
        rp, browser(), "/api/actions/options", "/api/actions/verify", {"payload": payload}
    )
    assert status == 200, result
    challenge = unb64u(options["publicKey"]["challenge"])
    assert challenge[16:] == hashlib.sha256(payload.encode()).digest()
    receipt_json = result["receipt"]["receiptJson"]
    receipt = json.loads(receipt_json)
    assert receipt["payload"] == payload
    assert receipt["payloadSha256"] == b64u(hashlib.sha256(payload.encode()).digest())
    assert receipt["userVerified"] is True
    assert receipt["credentialId"] == credential_id
    assert receipt["assertion"]["signature"] == b64u(assertion.response.signature)

    _, key = rp.get("/api/receipts/key")
    jwk = key["jwk"]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64u(jwk["x"]), "big"), int.from_bytes(unb64u(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    signature = unb64u(result["receipt"]["signature"])
    public.verify(signature, receipt_json.encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, receipt_json.replace("250.00", "950.00").encode(), ec.ECDSA(hashes.SHA256()))

    # The assertion inside the receipt verifies with py_webauthn against the key in the receipt.
    verified = verify_authentication_response(
        credential={
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "response": {
                "clientDataJSON": receipt["assertion"]["clientDataJSON"],
                "authenticatorData": receipt["assertion"]["authenticatorData"],
                "signature": receipt["assertion"]["signature"],
            },
        },
        expected_challenge=unb64u(receipt["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=unb64u(receipt["credentialPublicKey"]),
        credential_current_sign_count=0,
        require_user_verification=True,
    )
    assert verified.user_verified

    # Logout ends the session.
    assert rp.post("/api/logout")[0] == 200
    status, body = rp.get("/api/credentials")
    assert status == 401 and body["error"]["code"] == "not_signed_in"


@pytest.mark.timeout(120)
def test_fido_conformance_endpoints_with_fido2_client(rp, browser):
    register(rp, browser(), "conf-user", ("/attestation/options", "/attestation/result"))
    rp.cookie = None
    status, result, _, _ = sign_in(rp, browser(), "/assertion/options", "/assertion/result", {"username": "conf-user"})
    assert status == 200 and result == {"status": "ok", "errorMessage": ""}, result


def _tamper_cases(response: dict) -> list[tuple[str, dict]]:
    def clone():
        return json.loads(json.dumps(response))

    def with_client_data(**changes):
        r = clone()
        cd = json.loads(unb64u(r["response"]["clientDataJSON"]))
        cd.update(changes)
        r["response"]["clientDataJSON"] = b64u(json.dumps(cd).encode())
        return r

    def with_auth_data(mutate):
        r = clone()
        ad = bytearray(unb64u(r["response"]["authenticatorData"]))
        mutate(ad)
        r["response"]["authenticatorData"] = b64u(bytes(ad))
        return r

    def with_signature(mutate):
        r = clone()
        r["response"]["signature"] = b64u(mutate(unb64u(r["response"]["signature"])))
        return r

    def flip(i):
        def m(ad):
            ad[i] ^= 0x01
        return m

    cases = [
        ("valid", clone()),
        ("origin changed", with_client_data(origin="https://evil.example")),
        ("challenge changed", with_client_data(challenge=b64u(b"\x00" * 32))),
        ("type webauthn.create", with_client_data(type="webauthn.create")),
        ("crossOrigin true", with_client_data(crossOrigin=True)),
        ("rpIdHash bit flipped", with_auth_data(flip(0))),
        ("UP cleared", with_auth_data(lambda ad: ad.__setitem__(32, ad[32] & ~0x01))),
        ("UV cleared", with_auth_data(lambda ad: ad.__setitem__(32, ad[32] & ~0x04))),
        ("counter changed", with_auth_data(flip(36))),
        ("authData truncated", with_auth_data(lambda ad: ad.__delitem__(slice(30, None)))),
        ("signature bit flipped", with_signature(lambda s: s[:-1] + bytes([s[-1] ^ 1]))),
        ("signature truncated", with_signature(lambda s: s[:20])),
        ("signature empty", with_signature(lambda s: b"")),
    ]
    r = clone()
    r["type"] = "password"
    cases.append(("credential type", r))
    r = clone()
    r["response"]["clientDataJSON"] = b64u(b"{not json")
    cases.append(("clientDataJSON not JSON", r))
    return cases


@pytest.mark.timeout(180)
def test_verify_endpoint_agrees_with_py_webauthn(rp, browser, passgate):
    created, result = register(rp, browser(), "diff-user")
    credential_id = result["credential"]["id"]
    from fido2 import cbor

    cose = cbor.encode(created.response.attestation_object.auth_data.credential_data.public_key)
    public_key = b64u(cose)
    user_handle = _user_id(rp)

    agreed = []
    for round_ in range(3):
        challenge = os.urandom(32)
        options = PublicKeyCredentialRequestOptions.from_dict(
            {"challenge": b64u(challenge), "rpId": RP_ID, "userVerification": "required",
             "allowCredentials": [{"type": "public-key", "id": credential_id}]}
        )
        assertion = browser().get_assertion(options).get_response(0)
        response = json.loads(to_json(assertion))
        for name, candidate in _tamper_cases(response):
            try:
                verify_authentication_response(
                    credential=json.dumps(candidate),
                    expected_challenge=challenge,
                    expected_rp_id=RP_ID,
                    expected_origin=ORIGIN,
                    credential_public_key=cose,
                    credential_current_sign_count=0,
                    require_user_verification=True,
                )
                theirs = True
            except Exception:  # py_webauthn raises several exception types for a rejection
                theirs = False
            status, body = rp.post(
                "/api/verify/assertion",
                {
                    "credential": {"id": credential_id, "publicKey": public_key, "signCount": 0,
                                   "userHandle": user_handle},
                    "response": candidate,
                    "expectedChallenge": b64u(challenge),
                    "expectedOrigins": [ORIGIN],
                    "expectedRpId": RP_ID,
                },
                headers={"authorization": f"Bearer {TOKEN}"},
                cookie=False,
            )
            ours = status == 200
            assert status in (200, 400, 403), (name, status, body)
            if not ours:
                assert body["error"]["code"] and body["error"]["message"], body
            assert ours == theirs, f"{name}: passgate {'accepts' if ours else 'rejects: ' + json.dumps(body)}, py_webauthn {'accepts' if theirs else 'rejects'}"
            agreed.append((round_, name, ours))
    assert len(agreed) >= 45
    assert sum(1 for _, _, ok in agreed if ok) == 3, agreed  # exactly the untampered ones

    for headers in ({}, {"authorization": "Bearer wrong"}):
        status, body = rp.post("/api/verify/assertion", {}, headers=headers, cookie=False)
        assert status == 401 and body["error"]["code"] == "invalid_api_token"


def _user_id(rp: Rp) -> str:
    status, body = rp.get("/api/session")
    assert status == 200, body
    return body["user"]["id"]


# -- two instances on one PostgreSQL --------------------------------------------------------------


class Postgres:
    def __init__(self) -> None:
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb:
            pytest.fail("PostgreSQL is not installed (cargo xtask test installs `postgresql`)", pytrace=False)
        self.bin = Path(initdb[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="passgate-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self.port = free_port()

    def run(self, *args: str) -> None:
        out = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    def start(self) -> str:
        data = self.dir / "data"
        self.run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        self.run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start",
        )
        self.run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "passgate")
        return f"postgres://postgres@127.0.0.1:{self.port}/passgate"

    def stop(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"),
             "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres():
    pg = Postgres()
    try:
        yield pg.start()
    finally:
        pg.stop()


@pytest.mark.timeout(180)
def test_two_instances_on_one_postgres(postgres, tmp_path, browser):
    key = tmp_path / "shared-receipt-key.p8"
    a = Rp(postgres, tmp_path, key)
    b = Rp(postgres, tmp_path, key)
    try:
        assert a.get("/readyz")[1]["database"] == "postgres"
        assert b.get("/readyz")[1]["database"] == "postgres"
        assert a.get("/api/receipts/key")[1]["keyId"] == b.get("/api/receipts/key")[1]["keyId"]

        # Registration: options from A, verification on B.
        status, options = a.post("/api/register/options", {"username": "pg-user"})
        assert status == 200
        created = browser().make_credential(PublicKeyCredentialCreationOptions.from_dict(options))
        status, result = b.post("/api/register/verify", to_json(created))
        assert status == 200, result
        # The session B created is valid on A.
        a.cookie = b.cookie
        assert a.get("/api/session")[1]["user"]["name"] == "pg-user"
        a.cookie = b.cookie = None

        # Sign-in: options from B, verification on A; replaying it on A or B is refused.
        status, options = b.post("/api/login/options", {"username": "pg-user"})
        assertion = browser().get_assertion(PublicKeyCredentialRequestOptions.from_dict(options)).get_response(0)
        status, result = a.post("/api/login/verify", to_json(assertion))
        assert status == 200, result
        for server in (a, b):
            status, body = server.post("/api/login/verify", to_json(assertion), cookie=False)
            assert status == 400 and body["error"]["code"] == "unknown_challenge", body

        # The same ceremony finished on both instances at once: exactly one wins.
        status, options = a.post("/api/login/options", {"username": "pg-user"})
        body = to_json(browser().get_assertion(PublicKeyCredentialRequestOptions.from_dict(options)).get_response(0))
        outcomes = []
        barrier = threading.Barrier(2)

        def finish(server):
            barrier.wait()
            outcomes.append(server.post("/api/login/verify", body, cookie=False))

        threads = [threading.Thread(target=finish, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(s for s, _ in outcomes)
        assert statuses == [200, 400], outcomes
        loser = next(body for s, body in outcomes if s == 400)
        assert loser["error"]["code"] == "unknown_challenge"

        # Both see the same credential record, with the counter of the last sign-in.
        a.cookie = None
        status, options = a.post("/api/login/options", {"username": "pg-user"})
        assertion = browser().get_assertion(PublicKeyCredentialRequestOptions.from_dict(options)).get_response(0)
        status, result = b.post("/api/login/verify", to_json(assertion))
        assert status == 200
        a.cookie = b.cookie
        creds_a = a.get("/api/credentials")[1]["credentials"]
        creds_b = b.get("/api/credentials")[1]["credentials"]
        assert creds_a == creds_b and len(creds_a) == 1
        assert creds_a[0]["signCount"] == result["verdict"]["signCount"]
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
