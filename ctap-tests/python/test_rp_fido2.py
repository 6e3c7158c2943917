"""`passgate rp` driven end to end by python-fido2's Fido2Client (the browser) talking CTAPHID/TCP
to our authenticator (PIN set, so UV is real), over plain HTTP with the session cookie carried by
hand. Receipts are checked independently with `cryptography`."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from fido2 import cbor
from fido2.client import ClientError
from fido2.ctap2 import Ctap2

from helpers import ORIGIN, RP_ID, cose_to_cryptography, ecdsa_valid
from rp_support import (
    RpServer,
    b64u,
    create,
    ec_public_from_jwk,
    es256_verify,
    expect_error,
    get,
    response_json,
    set_pin,
    sha256,
    unb64u,
    uv_client,
)


@pytest.fixture
def rp(tmp_path):
    server = RpServer(tmp_path, f"sqlite://{tmp_path}/rp.sqlite3", tmp_path / "receipt-key.p8")
    try:
        yield server
    finally:
        status = server.stop()
    assert status == 0, f"passgate rp exited with {status} on SIGTERM\n{server.log_tail()}"


@pytest.fixture
def browser_client(passgate):
    """Factory for Fido2Clients on our authenticator, after setting its PIN."""
    set_pin(passgate)
    return lambda **kw: uv_client(passgate, **kw)


def register(rp: RpServer, client, username: str, display: str | None = None):
    """Sign up: options → Fido2Client.make_credential → verify. Returns (browser, options, created, result)."""
    browser = rp.browser()
    options = browser.ok("POST", "/api/register/options", {"username": username, "displayName": display or username})
    created = create(client, options)
    result = browser.ok("POST", "/api/register/verify", response_json(created))
    return browser, options, created, result


@pytest.mark.timeout(120)
def test_register_then_sign_in_by_username_and_discoverably(rp, browser_client, passgate):
    browser = rp.browser()
    options = browser.ok("POST", "/api/register/options", {"username": "alice", "displayName": "Alice Liddell"})
    # The creation options as the server sent them.
    assert options["rp"]["id"] == RP_ID
    assert options["user"]["name"] == "alice" and options["user"]["displayName"] == "Alice Liddell"
    user_handle = unb64u(options["user"]["id"])
    user_handle_b64 = options["user"]["id"]
    assert len(user_handle) == 16
    assert len(unb64u(options["challenge"])) >= 16
    assert {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["extensions"]["credProps"] is True
    assert options.get("excludeCredentials", []) == []

    created = create(browser_client(), options)
    auth_data = created.response.attestation_object.auth_data
    assert auth_data.is_user_present() and auth_data.is_user_verified(), auth_data.flags
    # python-fido2 asked for a resident key (residentKey preferred, the authenticator has room).
    assert created.client_extension_results["credProps"]["rk"] is True

    result = browser.ok("POST", "/api/register/verify", response_json(created))
    credential_id = b64u(created.raw_id)
    assert result["verified"] is True
    assert result["user"] == {"id": options["user"]["id"], "name": "alice", "displayName": "Alice Liddell"}
    cred = result["credential"]
    assert cred["id"] == credential_id
    assert cred["algorithm"] == -7
    assert cred["signCount"] == auth_data.counter
    assert cred["aaguid"].replace("-", "") == Ctap2(passgate.device()).info.aaguid.hex()
    assert cred["deviceType"] == "singleDevice" and cred["backupEligible"] is False
    # The session cookie: HttpOnly, SameSite=Strict, scoped to /.
    assert browser.cookie is not None
    attrs = [a.strip() for a in browser.set_cookie_headers[-1].split(";")]
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs, attrs
    session = browser.ok("GET", "/api/session")
    assert session["user"]["name"] == "alice" and session["credentialId"] == credential_id
    listed = browser.ok("GET", "/api/credentials")["credentials"]
    assert [(c["id"], c["current"]) for c in listed] == [(credential_id, True)]


    # Sign in with the username on a fresh browser profile.
    fresh = rp.browser()
    options = fresh.ok("POST", "/api/login/options", {"username": "alice"})
    assert options["rpId"] == RP_ID and options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [credential_id]
    assertion = get(browser_client(), options)
    assert assertion.raw_id == created.raw_id
    assert assertion.response.authenticator_data.is_user_verified()
    body = response_json(assertion)
    result = fresh.ok("POST", "/api/login/verify", body)
    assert result["user"]["name"] == "alice"
    verdict = result["verdict"]
    assert verdict["userVerified"] is True and verdict["userPresent"] is True
    assert verdict["credentialId"] == credential_id and verdict["origin"] == ORIGIN
    assert verdict["signCount"] == assertion.response.authenticator_data.counter
    assert verdict["counter"]["status"] == "increased"
    assert result["credential"]["signCount"] == verdict["signCount"] > cred["signCount"]
    assert fresh.cookie is not None and fresh.cookie != browser.cookie
    assert fresh.ok("GET", "/api/session")["user"]["name"] == "alice"
    # The same assertion again: its challenge was used.
    expect_error(rp.browser().post("/api/login/verify", body), 400, "unknown_challenge")

    # Discoverable sign-in: no username, no allowCredentials; the user handle names the account.
    anonymous = rp.browser()
    options = anonymous.ok("POST", "/api/login/options", {})
    assert options["allowCredentials"] == []
    assertion = get(browser_client(), options)
    assert assertion.response.user_handle == user_handle
    result = anonymous.ok("POST", "/api/login/verify", response_json(assertion))
    assert result["user"]["name"] == "alice" and result["verdict"]["userHandle"] == b64u(user_handle)
    assert result["credential"]["signCount"] > verdict["signCount"]

    # A discoverable sign-in without the user handle is refused (the account is unknown).
    options = anonymous.ok("POST", "/api/login/options", {})
    body = response_json(get(browser_client(), options))
    body["response"].pop("userHandle", None)
    expect_error(rp.browser().post("/api/login/verify", body), 400, "user_handle_missing")

    # An unknown username answers like a known one: decoy descriptors, stable per name, that no
    # authenticator holds (python-fido2's client finds no credential for them).
    nobody = rp.browser().ok("POST", "/api/login/options", {"username": "nobody"})
    known = rp.browser().ok("POST", "/api/login/options", {"username": "alice"})
    assert set(nobody) == set(known) and nobody["userVerification"] == known["userVerification"]
    assert 1 <= len(nobody["allowCredentials"]) <= 3
    assert [c["id"] for c in rp.browser().ok("POST", "/api/login/options", {"username": "nobody"})["allowCredentials"]] \
        == [c["id"] for c in nobody["allowCredentials"]]
    with pytest.raises(ClientError) as refused:
        get(browser_client(), nobody)
    assert refused.value.code == ClientError.ERR.DEVICE_INELIGIBLE
    # Logout ends the session.
    assert anonymous.ok("POST", "/api/logout", {}) == {"signedOut": True}
    assert anonymous.cookie is None
    expect_error(anonymous.get("/api/session"), 401, "not_signed_in")
    # The other sessions are unaffected.
    assert fresh.ok("GET", "/api/session")["user"]["name"] == "alice"
    # The same username cannot sign up again, but the options do not say so (that would tell
    # anyone which names exist): only a completed ceremony is refused, and alice is untouched.
    again = rp.browser()
    taken = again.ok("POST", "/api/register/options", {"username": "alice", "displayName": "Not Alice"})
    free = rp.browser().ok("POST", "/api/register/options", {"username": "nobody-yet", "displayName": "Not Alice"})
    assert set(taken) == set(free) and set(taken["user"]) == set(free["user"]) and taken["user"]["name"] == "alice"
    assert taken["user"]["id"] != user_handle_b64
    expect_error(again.post("/api/register/verify", response_json(create(browser_client(), taken))), 409,
                 "username_taken")
    expect_error(again.get("/api/session"), 401, "not_signed_in")


@pytest.mark.timeout(120)
def test_reauthentication_marks_the_session_verified(rp, browser_client):
    browser, _, created, _ = register(rp, browser_client(), "bob")

    expect_error(rp.browser().post("/api/reauth/options", {}), 401, "not_signed_in")
    options = browser.ok("POST", "/api/reauth/options", {})
    assert options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [b64u(created.raw_id)]
    assertion = response_json(get(browser_client(), options))

    # Finishing another session's re-authentication is refused…
    other, _, _, _ = register(rp, browser_client(), "mallory")
    expect_error(other.post("/api/reauth/verify", assertion), 401, "not_signed_in")
    # …and that consumed the challenge (single use, whoever presents it).
    expect_error(browser.post("/api/reauth/verify", assertion), 400, "unknown_challenge")

    options = browser.ok("POST", "/api/reauth/options", {})
    assertion = response_json(get(browser_client(), options))
    # A re-auth challenge is not a sign-in challenge.
    expect_error(rp.browser().post("/api/login/verify", assertion), 400, "wrong_ceremony")

    options = browser.ok("POST", "/api/reauth/options", {})
    result = browser.ok("POST", "/api/reauth/verify", response_json(get(browser_client(), options)))
    assert result["verified"] is True and result["verdict"]["userVerified"] is True
    session = browser.ok("GET", "/api/session")
    assert session["recentlyVerified"] is True and session["verifiedAt"] >= session["createdAt"]


@pytest.mark.timeout(120)
def test_signed_action_receipt_verifies_independently(rp, browser_client):
    browser, reg_options, created, _ = register(rp, browser_client(), "carol")
    credential_id = b64u(created.raw_id)
    payload = json.dumps({"transfer": {"amount": "1250.00", "currency": "EUR"},
                          "to": "NL91 ABNA 0417 1643 00", "memo": "rent \u00e9t\u00e9 \u2713"},
                         ensure_ascii=False)

    expect_error(rp.browser().post("/api/actions/options", {"payload": payload}), 401, "not_signed_in")
    expect_error(browser.post("/api/actions/options", {}), 400, "malformed_request")
    expect_error(browser.post("/api/actions/options", {"payload": ""}), 400, "invalid_payload")

    started = browser.ok("POST", "/api/actions/options", {"payload": payload})
    assert started["payload"] == payload
    options = started["publicKey"]
    assert options["userVerification"] == "required"
    challenge = unb64u(options["challenge"])
    # The challenge binds the payload: 16-byte nonce || SHA-256(payload).
    assert len(challenge) == 48 and challenge[16:] == sha256(payload.encode())
    assertion = get(browser_client(), options)
    sent = response_json(assertion)
    result = browser.ok("POST", "/api/actions/verify", sent)
    assert result["verified"] is True
    signed = result["receipt"]
    receipt_json: str = signed["receiptJson"]
    signature = unb64u(signed["signature"])

    # The server's key, published two ways, is one key with the advertised ID.
    key = rp.browser().ok("GET", "/api/receipts/key")
    assert key["alg"] == "ES256" and key["jwk"]["alg"] == "ES256" and key["jwk"]["kid"] == key["keyId"]
    spki = unb64u(key["spki"])
    from_spki = serialization.load_der_public_key(spki)
    from_jwk = ec_public_from_jwk(key["jwk"])
    assert from_spki.public_numbers() == from_jwk.public_numbers()
    assert key["keyId"] == b64u(hashlib.sha256(spki).digest()[:16]) == signed["keyId"]

    # ES256 over the exact bytes of receiptJson.
    es256_verify(from_spki, receipt_json.encode(), signature)

    receipt = json.loads(receipt_json)
    assert receipt == signed["receipt"]
    assert receipt["type"] == "passgate.action-receipt.v1"
    assert receipt["rpId"] == RP_ID and receipt["origin"] == ORIGIN
    assert receipt["userId"] == reg_options["user"]["id"] and receipt["userName"] == "carol"
    assert receipt["credentialId"] == credential_id
    assert receipt["payload"] == payload
    assert receipt["payloadSha256"] == b64u(sha256(payload.encode()))
    assert receipt["challenge"] == options["challenge"]
    assert unb64u(receipt["challenge"])[16:] == unb64u(receipt["payloadSha256"])
    assert receipt["userVerified"] is True
    assert receipt["assertion"] == {
        "authenticatorData": sent["response"]["authenticatorData"],
        "clientDataJSON": sent["response"]["clientDataJSON"],
        "signature": sent["response"]["signature"],
    }
    # The user's own approval inside the receipt verifies with the credential key it carries,
    # and its clientDataJSON names the receipt's challenge.
    client_data = json.loads(unb64u(receipt["assertion"]["clientDataJSON"]))
    assert client_data["type"] == "webauthn.get" and client_data["challenge"] == receipt["challenge"]
    assert client_data["origin"] == receipt["origin"]
    credential_key = cose_to_cryptography(dict(cbor.decode(unb64u(receipt["credentialPublicKey"]))))
    signed_base = unb64u(receipt["assertion"]["authenticatorData"]) + sha256(unb64u(receipt["assertion"]["clientDataJSON"]))
    assert ecdsa_valid(credential_key, signed_base, unb64u(receipt["assertion"]["signature"]))
    assert unb64u(receipt["assertion"]["authenticatorData"])[32] & 0x05 == 0x05  # UP and UV

    # Tampering: any changed byte of the receipt, or of the signature, fails.
    tampered_payload = receipt_json.replace("1250.00", "9250.00")
    tampered_user = receipt_json.replace('"userVerified":true', '"userVerified":false')
    assert tampered_payload != receipt_json and tampered_user != receipt_json
    bad_sig = signature[:-1] + bytes([signature[-1] ^ 0x01])
    for text, sig in ((tampered_payload, signature), (tampered_user, signature), (receipt_json + " ", signature),
                      (receipt_json, bad_sig)):
        with pytest.raises(InvalidSignature):
            es256_verify(from_spki, text.encode(), sig)
        assert rp.browser().ok("POST", "/api/receipts/verify",
                               {"receiptJson": text, "signature": b64u(sig)})["valid"] is False
    assert rp.browser().ok("POST", "/api/receipts/verify",
                           {"receiptJson": receipt_json, "signature": signed["signature"]}) == {
        "valid": True, "keyId": key["keyId"]}

    # The stored receipt is byte-for-byte what was returned.
    stored = rp.browser().ok("GET", f"/api/receipts/{receipt['id']}")
    assert stored["receiptJson"] == receipt_json and stored["signature"] == signed["signature"]
    expect_error(rp.browser().get("/api/receipts/AAAAAAAAAAAAAAAAAAAAAA"), 404, "unknown_receipt")

    # An action challenge cannot be finished by another session, nor reused, nor as a re-auth.
    started = browser.ok("POST", "/api/actions/options", {"payload": "delete account"})
    other_assertion = response_json(get(browser_client(), started["publicKey"]))
    other, _, _, _ = register(rp, browser_client(), "eve")
    expect_error(other.post("/api/actions/verify", other_assertion), 401, "not_signed_in")
    expect_error(browser.post("/api/actions/verify", other_assertion), 400, "unknown_challenge")
    started = browser.ok("POST", "/api/actions/options", {"payload": "close account"})
    expect_error(browser.post("/api/reauth/verify", response_json(get(browser_client(), started["publicKey"]))),
                 400, "wrong_ceremony")

    # A JSON (non-string) payload is approved as its compact serialisation.
    started = browser.ok("POST", "/api/actions/options", {"payload": {"b": [1, 2], "a": "x"}})
    assert json.loads(started["payload"]) == {"b": [1, 2], "a": "x"}
    result = browser.ok("POST", "/api/actions/verify", response_json(get(browser_client(), started["publicKey"])))
    second = json.loads(result["receipt"]["receiptJson"])
    assert second["payload"] == started["payload"]
    assert unb64u(second["challenge"])[16:] == sha256(started["payload"].encode())
    es256_verify(from_jwk, result["receipt"]["receiptJson"].encode(), unb64u(result["receipt"]["signature"]))
    assert second["id"] != receipt["id"]


@pytest.mark.timeout(120)
def test_fido_conformance_endpoints_register_and_sign_in(rp, browser_client):
    conf = rp.browser()
    options = conf.post("/attestation/options", {
        "username": "conformance-user", "displayName": "Conformance User",
        "authenticatorSelection": {"residentKey": "preferred", "userVerification": "required"},
        "attestation": "none",
    })
    assert options.status == 200, options
    assert options.body["status"] == "ok" and options.body["errorMessage"] == ""
    assert options.body["user"]["name"] == "conformance-user"
    created = create(browser_client(), options.body)
    result = conf.post("/attestation/result", response_json(created))
    assert (result.status, result.body) == (200, {"status": "ok", "errorMessage": ""}), result

    options = conf.post("/assertion/options", {"username": "conformance-user", "userVerification": "required"})
    assert options.status == 200 and options.body["status"] == "ok", options
    assert [c["id"] for c in options.body["allowCredentials"]] == [b64u(created.raw_id)]
    assert options.body["userVerification"] == "required"
    assertion = response_json(get(browser_client(), options.body))
    anonymous = rp.browser()
    result = anonymous.post("/assertion/result", assertion)
    assert (result.status, result.body) == (200, {"status": "ok", "errorMessage": ""}), result
    assert anonymous.cookie is None and not anonymous.set_cookie_headers  # the conformance shape sets no cookie

    # Failures keep the conformance shape: status "failed" and the code in errorMessage.
    replay = rp.browser().post("/assertion/result", assertion)
    assert replay.status == 400 and replay.body["status"] == "failed", replay
    assert replay.body["errorMessage"].startswith("unknown_challenge:"), replay
    # The conformance endpoints do not tell which names exist either: a taken name gets
    # options (only a completed ceremony is refused), an unknown one decoy credentials.
    taken_browser = rp.browser()
    taken = taken_browser.post("/attestation/options", {"username": "conformance-user"})
    assert taken.status == 200 and taken.body["status"] == "ok", taken
    refused = taken_browser.post("/attestation/result", response_json(create(browser_client(), taken.body)))
    assert refused.status == 409 and refused.body["status"] == "failed", refused
    assert refused.body["errorMessage"].startswith("username_taken:"), refused
    unknown = rp.browser().post("/assertion/options", {"username": "no-such-user"})
    assert unknown.status == 200 and unknown.body["status"] == "ok", unknown
    assert 1 <= len(unknown.body["allowCredentials"]) <= 3, unknown


@pytest.mark.timeout(120)
def test_second_passkey_exclusion_and_client_data_checks(rp, browser_client):
    from fido2.client import ClientError

    from rp_support import ScriptedCollector

    browser, _, created, _ = register(rp, browser_client(), "dave")
    credential_id = b64u(created.raw_id)

    # Adding a passkey while signed in: the existing one is excluded, so the same authenticator
    # refuses to make a second one (CTAP2_ERR_CREDENTIAL_EXCLUDED → DEVICE_INELIGIBLE).
    options = browser.ok("POST", "/api/register/options", {})
    assert options["user"]["name"] == "dave"
    assert [c["id"] for c in options["excludeCredentials"]] == [credential_id]
    with pytest.raises(ClientError) as excluded:
        create(browser_client(), options)
    assert excluded.value.code == ClientError.ERR.DEVICE_INELIGIBLE

    # A registration finished by a signed-out browser for a signed-in user's ceremony is refused.
    options = browser.ok("POST", "/api/register/options", {})
    options["excludeCredentials"] = []
    # (not discoverable: a discoverable one for the same user handle would replace the first)
    options["authenticatorSelection"]["residentKey"] = "discouraged"
    other = create(browser_client(), options)
    assert other.client_extension_results["credProps"]["rk"] is False
    expect_error(rp.browser().post("/api/register/verify", response_json(other)), 401, "not_signed_in")

    # clientDataJSON signed by the authenticator but from the wrong origin or of the wrong type.
    for fields, code in (({"origin": "https://evil.example"}, "origin_not_allowed"),
                         ({"type": "webauthn.create"}, "wrong_ceremony_type")):
        options = rp.browser().ok("POST", "/api/login/options", {"username": "dave"})
        assertion = get(browser_client(collector=ScriptedCollector(fields=fields)), options)
        expect_error(rp.browser().post("/api/login/verify", response_json(assertion)), 400, code)
        # The refused attempt consumed the challenge.
        expect_error(rp.browser().post("/api/login/verify", response_json(assertion)), 400, "unknown_challenge")
    # A challenge the server never issued.
    options = {"challenge": b64u(bytes(32)), "rpId": RP_ID, "userVerification": "required",
               "allowCredentials": [{"type": "public-key", "id": credential_id}]}
    expect_error(rp.browser().post("/api/login/verify", response_json(get(browser_client(), options))), 400,
                 "unknown_challenge")
    # The sign-in still works afterwards and the account still has exactly one passkey.
    options = browser.ok("POST", "/api/login/options", {"username": "dave"})
    assert browser.ok("POST", "/api/login/verify", response_json(get(browser_client(), options)))["verified"] is True
    assert [c["id"] for c in browser.ok("GET", "/api/credentials")["credentials"]] == [credential_id]
