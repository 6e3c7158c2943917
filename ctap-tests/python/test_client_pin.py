"""authenticatorClientPIN through python-fido2's ClientPin, and PIN-verified WebAuthn ceremonies
verified by py_webauthn with user verification required."""

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response, verify_registration_response

from helpers import ORIGIN, RP_ID, to_json


class _Pin(UserInteraction):
    def __init__(self, pin):
        self.pin = pin

    def prompt_up(self):
        pass

    def request_pin(self, permissions, rp_id):
        return self.pin

    def request_uv(self, permissions, rp_id):
        return True


@pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2])
def test_set_change_and_token(passgate, protocol):
    ctap = Ctap2(passgate.device())
    pin = ClientPin(ctap, protocol())
    # No PIN yet: getPINRetries is PIN_NOT_SET (as python-fido2's device suite expects).
    with pytest.raises(CtapError) as no_pin:
        pin.get_pin_retries()
    assert no_pin.value.code == CtapError.ERR.PIN_NOT_SET
    pin.set_pin("1234")
    assert pin.get_pin_retries()[0] == 8
    assert Ctap2(passgate.device()).get_info().options["clientPin"] is True
    token = pin.get_pin_token("1234", ClientPin.PERMISSION.MAKE_CREDENTIAL, RP_ID)
    assert len(token) == 32
    with pytest.raises(CtapError) as err:
        pin.get_pin_token("9999")
    assert err.value.code == CtapError.ERR.PIN_INVALID
    assert pin.get_pin_retries()[0] == 7
    pin.change_pin("1234", "24680")
    assert pin.get_pin_retries()[0] == 8
    with pytest.raises(CtapError) as err:
        pin.get_pin_token("1234")
    assert err.value.code == CtapError.ERR.PIN_INVALID
    assert len(pin.get_pin_token("24680")) == 32


def test_wrong_pin_lockout_survives_restart(passgate):
    pin = ClientPin(Ctap2(passgate.device()))
    pin.set_pin("1234")
    codes = []
    for _ in range(3):
        with pytest.raises(CtapError) as err:
            ClientPin(Ctap2(passgate.device())).get_pin_token("0000")
        codes.append(err.value.code)
    assert codes == [CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_AUTH_BLOCKED]
    # The retry counter is durable; the power-cycle block is not.
    passgate.restart()
    pin = ClientPin(Ctap2(passgate.device()))
    assert pin.get_pin_retries()[0] == 5
    assert len(pin.get_pin_token("1234")) == 32
    assert pin.get_pin_retries()[0] == 8


def test_pin_verified_registration_and_sign_in(passgate):
    ClientPin(Ctap2(passgate.device())).set_pin("1234")
    client = Fido2Client(passgate.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin("1234"))
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    user = PublicKeyCredentialUserEntity(id=b"pin-user", name="pin-user")
    options, state = server.register_begin(
        user, resident_key_requirement="required", user_verification=UserVerificationRequirement.REQUIRED
    )
    registration = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, registration)
    assert auth_data.is_user_verified()
    verified = verify_registration_response(
        credential=to_json(registration),
        expected_challenge=options.public_key.challenge,
        expected_origin=ORIGIN,
        expected_rp_id=RP_ID,
        require_user_verification=True,
    )
    options, state = server.authenticate_begin(user_verification=UserVerificationRequirement.REQUIRED)
    assertion = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [auth_data.credential_data], assertion)
    assert assertion.response.authenticator_data.is_user_verified()
    checked = verify_authentication_response(
        credential=to_json(assertion),
        expected_challenge=options.public_key.challenge,
        expected_origin=ORIGIN,
        expected_rp_id=RP_ID,
        credential_public_key=verified.credential_public_key,
        credential_current_sign_count=0,
        require_user_verification=True,
    )
    assert checked.user_verified is True

    # With the wrong PIN the client gets PIN_INVALID and no credential.
    bad = Fido2Client(passgate.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin("0000"))
    options, state = server.authenticate_begin(user_verification=UserVerificationRequirement.REQUIRED)
    with pytest.raises(ClientError) as err:
        bad.get_assertion(options.public_key)
    assert isinstance(err.value.cause, CtapError) and err.value.cause.code == CtapError.ERR.PIN_INVALID


def test_discoverable_registration_without_pin_needs_token(passgate):
    ClientPin(Ctap2(passgate.device())).set_pin("1234")
    ctap = Ctap2(passgate.device())
    with pytest.raises(CtapError) as err:
        ctap.make_credential(
            b"\x01" * 32,
            {"id": RP_ID},
            {"id": b"u"},
            [{"type": "public-key", "alg": -7}],
            options={"rk": True},
        )
    assert err.value.code == CtapError.ERR.PUAT_REQUIRED
