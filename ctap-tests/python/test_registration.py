"""makeCredential through Fido2Client, verified by Fido2Server and py_webauthn."""

import os

import pytest
from fido2.attestation import AttestationType, PackedAttestation
from fido2.ctap2 import AttestationResponse, Ctap2
from fido2.ctap2.base import args

from helpers import ES256, RP_ID, assert_flags, decode_cose, make_server, register


@pytest.mark.parametrize("resident", [True, False], ids=["discoverable", "non-discoverable"])
@pytest.mark.parametrize("attestation", ["none", "packed"])
def test_register_verified_by_both_servers(spawn, attestation, resident):
    passgate = spawn(attestation=attestation)
    client = passgate.client()
    server = make_server(attestation)

    reg = register(client, server, user_name="alice", resident=resident)

    # Both verifiers accepted it (register() raises otherwise); now compare what they saw.
    assert reg.fmt == attestation
    assert reg.webauthn_fmt == attestation
    assert decode_cose(reg.webauthn_public_key) == dict(reg.credential.public_key)
    cose = dict(reg.credential.public_key)
    assert cose[3] == ES256 and cose[1] == 2 and cose[-1] == 1
    assert_flags(reg.auth_data, attested=True)
    assert reg.auth_data.rp_id_hash == server.rp.id_hash
    assert len(reg.credential_id) >= 16

    if attestation == "none":
        assert reg.att_stmt == {}
    else:
        assert reg.att_stmt["alg"] == ES256
        assert "x5c" not in reg.att_stmt, "self attestation carries no certificate"
        assert isinstance(reg.att_stmt["sig"], bytes)
        info = client.info
        assert bytes(reg.credential.aaguid) == bytes(info.aaguid)


def test_two_registrations_have_distinct_ids_and_keys(passgate):
    client = passgate.client()
    server = make_server()
    a = register(client, server, user_name="alice", resident=True)
    b = register(client, server, user_name="bob", resident=True)
    assert a.credential_id != b.credential_id
    assert dict(a.credential.public_key) != dict(b.credential.public_key)


def _raw_make_credential(ctap2, formats=None):
    """makeCredential with the CTAP 2.2 attestationFormatsPreference (key 0x0B)."""
    request = args(
        os.urandom(32),  # 0x01 clientDataHash
        {"id": RP_ID, "name": "Example"},  # 0x02 rp
        {"id": os.urandom(16), "name": "carol"},  # 0x03 user
        [{"type": "public-key", "alg": ES256}],  # 0x04 pubKeyCredParams
        None,  # 0x05 excludeList
        None,  # 0x06 extensions
        None,  # 0x07 options
        None,  # 0x08 pinUvAuthParam
        None,  # 0x09 pinUvAuthProtocol
        None,  # 0x0A enterpriseAttestation
        formats,  # 0x0B attestationFormatsPreference
    )
    cdh = request[1]
    response = AttestationResponse.from_dict(
        ctap2.send_cbor(Ctap2.CMD.MAKE_CREDENTIAL, request)
    )
    return cdh, response


def test_attestation_formats_preference_selects_packed(spawn):
    ctap2 = Ctap2(spawn(attestation="none").device())

    cdh, response = _raw_make_credential(ctap2, ["packed"])
    assert response.fmt == "packed"
    result = PackedAttestation().verify(response.att_stmt, response.auth_data, cdh)
    assert result.attestation_type == AttestationType.SELF

    _, default = _raw_make_credential(ctap2, None)
    assert default.fmt == "none"
    assert dict(default.att_stmt) == {}


def test_packed_self_attestation_by_default_and_none_on_request(passgate):
    # As a security key answers: packed unless the client prefers none (CTAP 2.2
    # attestationFormatsPreference); OpenSSH and libfido2 refuse `none`.
    ctap2 = Ctap2(passgate.device())

    cdh, default = _raw_make_credential(ctap2, None)
    assert default.fmt == "packed"
    result = PackedAttestation().verify(default.att_stmt, default.auth_data, cdh)
    assert result.attestation_type == AttestationType.SELF

    _, none = _raw_make_credential(ctap2, ["none"])
    assert none.fmt == "none"
    assert dict(none.att_stmt) == {}
