"""authenticatorCredentialManagement through python-fido2's CredentialManagement."""

import hashlib

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin
from fido2.webauthn import PublicKeyCredentialDescriptor, PublicKeyCredentialType

PIN = "1234"
R = CredentialManagement.RESULT


def _register(ctap, pin, rp_id, user_id, name):
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.MAKE_CREDENTIAL, rp_id)
    cdh = hashlib.sha256(user_id).digest()
    resp = ctap.make_credential(
        cdh,
        {"id": rp_id, "name": rp_id.upper()},
        {"id": user_id, "name": name, "displayName": name.title()},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
        pin_uv_param=pin.protocol.authenticate(token, cdh),
        pin_uv_protocol=pin.protocol.VERSION,
    )
    return resp.auth_data.credential_data


def _credman(ctap, pin):
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    return CredentialManagement(ctap, pin.protocol, token)


def test_metadata_enumerate_update_delete(passgate):
    ctap = Ctap2(passgate.device())
    assert ctap.info.options.get("credMgmt") is True
    pin = ClientPin(ctap)
    pin.set_pin(PIN)
    alice = _register(ctap, pin, "a.example", b"alice", "alice")
    _register(ctap, pin, "a.example", b"bob", "bob")
    _register(ctap, pin, "b.example", b"carol", "carol")

    cm = _credman(ctap, pin)
    meta = cm.get_metadata()
    assert meta[R.EXISTING_CRED_COUNT] == 3
    assert meta[R.MAX_REMAINING_COUNT] > 0

    rps = cm.enumerate_rps()
    assert sorted(r[R.RP]["id"] for r in rps) == ["a.example", "b.example"]
    assert {r[R.RP]["id"]: r[R.RP_ID_HASH] for r in rps}["a.example"] == hashlib.sha256(b"a.example").digest()

    creds = cm.enumerate_creds(hashlib.sha256(b"a.example").digest())
    assert sorted(c[R.USER]["name"] for c in creds) == ["alice", "bob"]
    by_user = {c[R.USER]["id"]: c for c in creds}
    assert by_user[b"alice"][R.CREDENTIAL_ID]["id"] == alice.credential_id
    assert by_user[b"alice"][R.PUBLIC_KEY] == dict(alice.public_key)

    descriptor = PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=alice.credential_id)
    cm.update_user_info(descriptor, {"id": b"alice", "name": "alice2", "displayName": "Alice Two"})
    creds = cm.enumerate_creds(hashlib.sha256(b"a.example").digest())
    assert {c[R.USER]["id"]: c[R.USER].get("name") for c in creds}[b"alice"] == "alice2"
    with pytest.raises(CtapError) as err:
        cm.update_user_info(descriptor, {"id": b"mallory", "name": "x"})
    assert err.value.code == CtapError.ERR.INVALID_PARAMETER

    cm.delete_cred(descriptor)
    assert cm.get_metadata()[R.EXISTING_CRED_COUNT] == 2
    with pytest.raises(CtapError) as err:
        cm.delete_cred(descriptor)
    assert err.value.code == CtapError.ERR.NO_CREDENTIALS
    # The deleted credential can no longer sign.
    with pytest.raises(CtapError) as err:
        ctap.get_assertion("a.example", b"\0" * 32, [{"type": "public-key", "id": alice.credential_id}])
    assert err.value.code == CtapError.ERR.NO_CREDENTIALS


def test_token_without_cm_permission_is_refused(passgate):
    ctap = Ctap2(passgate.device())
    pin = ClientPin(ctap)
    pin.set_pin(PIN)
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, "a.example")
    cm = CredentialManagement(ctap, pin.protocol, token)
    with pytest.raises(CtapError) as err:
        cm.get_metadata()
    assert err.value.code == CtapError.ERR.PIN_AUTH_INVALID
    # And without any token at all.
    with pytest.raises(CtapError) as err:
        ctap.credential_mgmt(CredentialManagement.CMD.GET_CREDS_METADATA)
    assert err.value.code == CtapError.ERR.PUAT_REQUIRED
