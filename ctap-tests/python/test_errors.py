"""Error paths as a real client sees them: exact CTAP status codes."""

import os

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.webauthn import PublicKeyCredentialDescriptor, UserVerificationRequirement

from helpers import ES256, RP_ID, make_server, register


def _cause_code(excinfo) -> int:
    cause = excinfo.value.cause
    assert isinstance(cause, CtapError), f"expected a CTAP error as the cause, got {cause!r}"
    return cause.code


@pytest.mark.parametrize("resident", [True, False], ids=["discoverable", "non-discoverable"])
def test_exclude_list_with_existing_credential(passgate, resident):
    client = passgate.client()
    server = make_server()
    reg = register(client, server, user_name="alice", resident=resident)

    with pytest.raises(ClientError) as excinfo:
        register(
            client, server, user_name="alice", resident=resident, exclude=[reg.credential]
        )
    assert _cause_code(excinfo) == CtapError.ERR.CREDENTIAL_EXCLUDED == 0x19


def test_exclude_list_with_unknown_credential_still_registers(passgate):
    client = passgate.client()
    server = make_server()
    unknown = PublicKeyCredentialDescriptor(type="public-key", id=os.urandom(32))
    reg = register(client, server, user_name="alice", resident=False, exclude=[unknown])
    assert reg.credential_id != unknown.id


def test_allow_list_with_unknown_credential(passgate):
    client = passgate.client()
    server = make_server()
    register(client, server, user_name="alice", resident=True)
    options, _ = server.authenticate_begin(
        credentials=[PublicKeyCredentialDescriptor(type="public-key", id=os.urandom(32))],
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    with pytest.raises(ClientError) as excinfo:
        client.get_assertion(options.public_key)
    assert _cause_code(excinfo) == CtapError.ERR.NO_CREDENTIALS == 0x2E


def test_no_discoverable_credentials_for_rp(passgate):
    client = passgate.client()
    server = make_server()
    register(client, server, user_name="alice", resident=False)
    options, _ = server.authenticate_begin(
        user_verification=UserVerificationRequirement.DISCOURAGED
    )
    with pytest.raises(ClientError) as excinfo:
        client.get_assertion(options.public_key)
    assert _cause_code(excinfo) == CtapError.ERR.NO_CREDENTIALS


def test_raw_ctap2_error_codes(passgate):
    """The same codes without python-fido2's client layer in between."""
    ctap2 = Ctap2(passgate.device())
    rp = {"id": RP_ID, "name": "Example"}
    user = {"id": b"user-1", "name": "alice"}
    params = [{"type": "public-key", "alg": ES256}]
    made = ctap2.make_credential(os.urandom(32), rp, user, params)
    cred_id = made.auth_data.credential_data.credential_id

    with pytest.raises(CtapError) as excinfo:
        ctap2.make_credential(
            os.urandom(32), rp, user, params, exclude_list=[{"type": "public-key", "id": cred_id}]
        )
    assert excinfo.value.code == CtapError.ERR.CREDENTIAL_EXCLUDED

    with pytest.raises(CtapError) as excinfo:
        ctap2.get_assertion(
            RP_ID, os.urandom(32), [{"type": "public-key", "id": os.urandom(48)}]
        )
    assert excinfo.value.code == CtapError.ERR.NO_CREDENTIALS

    # The credential is bound to its RP: another RP ID does not find it.
    with pytest.raises(CtapError) as excinfo:
        ctap2.get_assertion("other.example", os.urandom(32), [{"type": "public-key", "id": cred_id}])
    assert excinfo.value.code == CtapError.ERR.NO_CREDENTIALS

    with pytest.raises(CtapError) as excinfo:
        ctap2.make_credential(
            os.urandom(32), rp, user, [{"type": "public-key", "alg": -257}]  # RS256: not offered
        )
    assert excinfo.value.code == CtapError.ERR.UNSUPPORTED_ALGORITHM
