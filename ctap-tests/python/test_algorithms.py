"""Credential algorithms: a passkey made by passgate with EdDSA (Ed25519), ES384 and ES256, each
registered and signed in with python-fido2 (client and Fido2Server) and py_webauthn (EdDSA and
ES256: py_webauthn 3.0.1 has no ES384), and its assertion verified by the relying party's library
through `POST /api/verify/assertion`, which must also refuse a flipped signature bit."""

from __future__ import annotations

import json

import pytest
from fido2 import cbor
from fido2.cose import CoseKey
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialParameters,
    PublicKeyCredentialType,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response, verify_registration_response

from helpers import ORIGIN, RP, RP_ID, to_json
from rp_support import API_TOKEN, RpServer, b64u, set_pin, uv_client

EDDSA, ES256, ES384 = -8, -7, -35


@pytest.fixture
def rp(tmp_path):
    server = RpServer(tmp_path, f"sqlite://{tmp_path}/rp.sqlite3", tmp_path / "receipt-key.p8")
    try:
        yield server
    finally:
        status = server.stop()
    assert status == 0, server.log_tail()


def test_get_info_lists_es256_eddsa_es384(passgate):
    info = Ctap2(passgate.device()).info
    assert info.algorithms == [
        {"alg": ES256, "type": "public-key"},
        {"alg": EDDSA, "type": "public-key"},
        {"alg": ES384, "type": "public-key"},
    ]


@pytest.mark.parametrize("alg", [EDDSA, ES384, ES256], ids=["EdDSA", "ES384", "ES256"])
def test_passkey_of_each_algorithm_signs_in_against_every_verifier(passgate, rp, alg):
    set_pin(passgate)
    server = Fido2Server(RP)
    # The client's order of preference decides: the algorithm under test first, ES256 after.
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=a)
        for a in (alg, ES256)
    ]
    options, state = server.register_begin(
        {"id": b"user-" + str(alg).encode(), "name": "alice", "displayName": "Alice"},
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    created = uv_client(passgate).make_credential(options.public_key)
    auth_data = server.register_complete(state, created)
    credential = auth_data.credential_data
    assert credential is not None
    public_key = credential.public_key
    assert public_key[3] == alg, public_key
    assert type(public_key) is CoseKey.for_alg(alg)
    # py_webauthn 3.0.1 knows no ES384 (COSE -35): it checks the EdDSA and ES256 passkeys.
    py_webauthn_knows = alg in (EDDSA, ES256)
    if py_webauthn_knows:
        registered = verify_registration_response(
            credential=to_json(created),
            expected_challenge=options.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            require_user_verification=True,
        )
        assert registered.credential_public_key == cbor.encode(public_key)

    request, state = server.authenticate_begin([credential], user_verification="required")
    assertion = uv_client(passgate).get_assertion(request.public_key).get_response(0)
    # python-fido2 verifies the signature with the stored key (and raises if it is wrong) ...
    server.authenticate_complete(state, [credential], assertion)
    # ... and so do py_webauthn ...
    if py_webauthn_knows:
        verified = verify_authentication_response(
            credential=to_json(assertion),
            expected_challenge=request.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=cbor.encode(public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
        assert verified.new_sign_count == assertion.response.authenticator_data.counter > 0

    # ... and passgate's relying-party library, which must also refuse a flipped signature bit.
    response = dict(to_json_dict(assertion))
    body = {
        "credential": {
            "id": b64u(credential.credential_id),
            "publicKey": b64u(cbor.encode(public_key)),
            "signCount": 0,
            "userHandle": b64u(b"user-" + str(alg).encode()),
        },
        "response": response,
        "expectedChallenge": b64u(request.public_key.challenge),
        "expectedOrigins": [ORIGIN],
        "expectedRpId": RP_ID,
        "requireUserVerification": True,
    }
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    result = rp.browser().post("/api/verify/assertion", body, headers=headers)
    assert result.status == 200 and result.body["verified"] is True, result
    verdict = result.body["verdict"]
    assert verdict["userVerified"] is True, verdict
    assert verdict["credentialId"] == b64u(credential.credential_id)
    assert verdict["signCount"] == assertion.response.authenticator_data.counter

    signature = bytearray(assertion.response.signature)
    signature[-1] ^= 1
    body["response"] = {**response, "response": {**response["response"], "signature": b64u(bytes(signature))}}
    tampered = rp.browser().post("/api/verify/assertion", body, headers=headers)
    assert (tampered.status, tampered.code) == (400, "bad_signature"), tampered


def to_json_dict(response) -> dict:
    return json.loads(to_json(response))
