"""largeBlobKey + authenticatorLargeBlobs, credBlob, and authenticatorConfig through python-fido2."""

import os

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.blob import LargeBlobs
from fido2.ctap2.config import Config
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from helpers import ORIGIN, RP_ID
from test_client_pin import _Pin

PIN = "1234"


def _bytes(value):
    return value if isinstance(value, bytes) else websafe_decode(value)


def test_large_blob_written_and_read_back_through_webauthn(passgate):
    ClientPin(Ctap2(passgate.device())).set_pin(PIN)
    client = Fido2Client(passgate.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin(PIN))
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    user = PublicKeyCredentialUserEntity(id=b"blob-user", name="blob")
    options, state = server.register_begin(user, resident_key_requirement="required", user_verification="required")
    options = options.public_key
    options = type(options).from_dict({**dict(options), "extensions": {"largeBlob": {"support": "required"}}})
    registration = client.make_credential(options)
    credential = server.register_complete(state, registration).credential_data
    assert registration.client_extension_results["largeBlob"]["supported"] is True

    data = os.urandom(300)

    def assertion(extension):
        request, st = server.authenticate_begin([credential], user_verification="required")
        request = request.public_key
        request = type(request).from_dict({**dict(request), "extensions": {"largeBlob": extension}})
        response = client.get_assertion(request).get_response(0)
        server.authenticate_complete(st, [credential], response)
        return response.client_extension_results["largeBlob"]

    assert assertion({"write": data})["written"] is True
    assert _bytes(assertion({"read": True})["blob"]) == data
    passgate.restart()
    client = Fido2Client(passgate.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin(PIN))
    assert _bytes(assertion({"read": True})["blob"]) == data


def test_large_blob_array_integrity_and_permissions(passgate):
    ctap = Ctap2(passgate.device())
    # Without a PIN the array is writable without a token; initially it is empty.
    blobs = LargeBlobs(ctap)
    assert blobs.read_blob_array() == []
    blobs.write_blob_array([{1: b"x" * 20, 2: b"n" * 12, 3: 20}])
    assert blobs.read_blob_array() == [{1: b"x" * 20, 2: b"n" * 12, 3: 20}]
    # A write whose checksum is wrong is refused and changes nothing.
    body = b"\x81\x01" + bytes(16)
    with pytest.raises(CtapError) as err:
        ctap.large_blobs(0, set=body, length=len(body))
    assert err.value.code == CtapError.ERR.INTEGRITY_FAILURE
    assert blobs.read_blob_array() == [{1: b"x" * 20, 2: b"n" * 12, 3: 20}]
    # Too large for the advertised maximum.
    with pytest.raises(CtapError) as err:
        ctap.large_blobs(0, set=b"\x80", length=ctap.info.max_large_blob + 1)
    assert err.value.code == CtapError.ERR.LARGE_BLOB_STORAGE_FULL
    # With a PIN, writing needs a token with the lbw permission.
    pin = ClientPin(ctap)
    pin.set_pin(PIN)
    with pytest.raises(CtapError) as err:
        LargeBlobs(ctap).write_blob_array([])
    assert err.value.code == CtapError.ERR.PUAT_REQUIRED
    wrong = pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    with pytest.raises(CtapError) as err:
        LargeBlobs(ctap, pin.protocol, wrong).write_blob_array([])
    assert err.value.code == CtapError.ERR.PIN_AUTH_INVALID
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.LARGE_BLOB_WRITE)
    LargeBlobs(ctap, pin.protocol, token).write_blob_array([])
    assert LargeBlobs(ctap).read_blob_array() == []


def test_cred_blob_round_trip(passgate):
    ctap = Ctap2(passgate.device())
    assert ctap.info.max_cred_blob_length == 32
    made = ctap.make_credential(
        b"\x01" * 32, {"id": RP_ID}, {"id": b"u"}, [{"type": "public-key", "alg": -7}],
        extensions={"credBlob": b"hello blob"}, options={"rk": True},
    )
    assert made.auth_data.extensions == {"credBlob": True}
    too_big = ctap.make_credential(
        b"\x01" * 32, {"id": RP_ID}, {"id": b"v"}, [{"type": "public-key", "alg": -7}],
        extensions={"credBlob": b"x" * 33}, options={"rk": True},
    )
    assert too_big.auth_data.extensions == {"credBlob": False}
    cred_id = made.auth_data.credential_data.credential_id
    got = ctap.get_assertion(RP_ID, b"\x02" * 32, [{"type": "public-key", "id": cred_id}], extensions={"credBlob": True})
    assert got.auth_data.extensions == {"credBlob": b"hello blob"}


def test_config_min_pin_length_always_uv_and_enterprise(passgate):
    ctap = Ctap2(passgate.device())
    assert ctap.info.options.get("authnrCfg") is True
    # Without a PIN, config needs no token.
    Config(ctap).set_min_pin_length(min_pin_length=6, rp_ids=[RP_ID])
    ctap = Ctap2(passgate.device())
    assert ctap.info.min_pin_length == 6
    pin = ClientPin(ctap)
    with pytest.raises(CtapError) as err:
        pin.set_pin("12345")
    assert err.value.code == CtapError.ERR.PIN_POLICY_VIOLATION
    pin.set_pin("123456")
    token = pin.get_pin_token("123456", ClientPin.PERMISSION.AUTHENTICATOR_CFG)
    config = Config(ctap, pin.protocol, token)
    with pytest.raises(CtapError) as err:
        config.set_min_pin_length(min_pin_length=4)
    assert err.value.code == CtapError.ERR.PIN_POLICY_VIOLATION
    with pytest.raises(CtapError) as err:
        config.enable_enterprise_attestation()
    assert err.value.code == CtapError.ERR.INVALID_SUBCOMMAND
    config.toggle_always_uv()
    info = Ctap2(passgate.device()).get_info()
    assert info.options["alwaysUv"] is True and info.options["makeCredUvNotRqd"] is False
    # alwaysUv: a non-discoverable registration without a token is now refused.
    with pytest.raises(CtapError) as err:
        ctap.make_credential(b"\x01" * 32, {"id": RP_ID}, {"id": b"w"}, [{"type": "public-key", "alg": -7}])
    assert err.value.code == CtapError.ERR.PUAT_REQUIRED
    # Raising the minimum forces a PIN change before the next token: the right PIN is refused
    # with PIN_INVALID (CTAP 2.1 §6.5.5.7), its retries reset.
    config.set_min_pin_length(min_pin_length=8)
    with pytest.raises(CtapError) as err:
        pin.get_pin_token("123456")
    assert err.value.code == CtapError.ERR.PIN_INVALID
    assert pin.get_pin_retries()[0] == 8
    pin.change_pin("123456", "12345678")
    assert len(pin.get_pin_token("12345678")) == 32
    # The minPinLength extension reports the minimum to the listed RP only.
    token = pin.get_pin_token("12345678", ClientPin.PERMISSION.MAKE_CREDENTIAL, RP_ID)
    made = ctap.make_credential(
        b"\x03" * 32, {"id": RP_ID}, {"id": b"m"}, [{"type": "public-key", "alg": -7}],
        extensions={"minPinLength": True},
        pin_uv_param=pin.protocol.authenticate(token, b"\x03" * 32), pin_uv_protocol=pin.protocol.VERSION,
    )
    assert made.auth_data.extensions == {"minPinLength": 8}
