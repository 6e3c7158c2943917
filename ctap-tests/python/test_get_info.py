"""authenticatorGetInfo and the CTAPHID basics, through python-fido2."""

from fido2.ctap2 import Ctap2
from fido2.hid import CAPABILITY

from helpers import ES256


def test_get_info_fields(passgate):
    info = Ctap2(passgate.device()).get_info()

    assert "FIDO_2_0" in info.versions
    assert "FIDO_2_1" in info.versions

    aaguid = bytes(info.aaguid)
    assert len(aaguid) == 16
    assert aaguid != bytes(16), "the AAGUID must identify passgate, not be all zeros"

    assert info.options.get("rk") is True
    assert info.options.get("up") is True
    # No built-in user verification with --presence auto; a PIN is supported but not set.
    assert "uv" not in info.options or info.options["uv"] is False
    assert info.options.get("clientPin") is False
    assert info.options.get("pinUvAuthToken") is True
    assert list(info.pin_uv_protocols) == [2, 1]
    assert info.min_pin_length == 4

    assert {"type": "public-key", "alg": ES256} in [dict(a) for a in info.algorithms]
    # attestationFormats (CTAP 2.2, 0x16): sent, not python-fido2's default for an absent
    # member; a store that cannot attest self-attests ("none" is implied, never listed).
    assert info.attestation_formats == ["packed"]
    assert Ctap2(passgate.device()).send_cbor(Ctap2.CMD.GET_INFO)[0x16] == ["packed"]


def test_aaguid_is_stable_across_connections_and_restarts(passgate):
    first = bytes(Ctap2(passgate.device()).get_info().aaguid)
    second = bytes(Ctap2(passgate.device()).get_info().aaguid)
    passgate.restart()
    third = bytes(Ctap2(passgate.device()).get_info().aaguid)
    assert first == second == third


def test_ctaphid_init_and_ping(passgate):
    device = passgate.device()
    assert device.capabilities & CAPABILITY.CBOR, "CTAPHID_INIT must advertise CBOR"
    # A ping longer than one report exercises continuation packets both ways.
    payload = bytes(range(256)) * 2
    assert device.ping(payload) == payload


def test_two_connections_get_distinct_channels(passgate):
    a = passgate.device()
    b = passgate.device()
    assert a._channel_id != b._channel_id
    assert a.ping(b"one") == b"one"
    assert b.ping(b"two") == b"two"
