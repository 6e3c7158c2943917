"""authenticatorBioEnrollment with python-fido2's FPBioEnrollment against the real fprintd and
libfprint's virtual device (private system bus, polkit mocked; fixtures from test_fprintd):
enroll a finger in the sensor's number of samples, list it, name it, verify with it (and not
with another finger), remove it."""

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.bio import BioEnrollment, FPBioEnrollment
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, UserVerificationRequirement

from helpers import ORIGIN, RP_ID
from test_fprintd import _Scanner, _spawn, _Touch, fprint  # noqa: F401  (fixture)
from test_tpm import swtpm_factory  # noqa: F401  (test_fprintd's fixture dependency)

PIN = "271828"


def _bio(pg):
    ctap = Ctap2(pg.device())
    client_pin = ClientPin(ctap)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.BIO_ENROLL)
    return ctap, FPBioEnrollment(ctap, client_pin.protocol, token)


def test_enroll_list_rename_verify_and_remove(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    info = Ctap2(pg.device()).get_info()
    assert info.options.get("bioEnroll") is False, info.options
    assert BioEnrollment.is_supported(info)
    ClientPin(Ctap2(pg.device())).set_pin(PIN)

    # Without the `be` permission: refused.
    ctap = Ctap2(pg.device())
    pin = ClientPin(ctap)
    mc_token = pin.get_pin_token(PIN, ClientPin.PERMISSION.MAKE_CREDENTIAL)
    with pytest.raises(CtapError) as err:
        FPBioEnrollment(ctap, pin.protocol, mc_token).enumerate_enrollments()
    assert err.value.code == CtapError.ERR.PIN_AUTH_INVALID

    ctap, bio = _bio(pg)
    sensor = bio.get_fingerprint_sensor_info()
    assert sensor[BioEnrollment.RESULT.MODALITY] == BioEnrollment.MODALITY.FINGERPRINT
    assert sensor[BioEnrollment.RESULT.FINGERPRINT_KIND] == 1
    samples = sensor[BioEnrollment.RESULT.MAX_SAMPLES_REQUIRED]
    assert samples >= 1
    assert bio.enumerate_enrollments() == {}

    statuses = []
    with _Scanner(fprint["vdev"], "finger-a"):
        template_id, status, remaining = bio.enroll_begin(timeout=10000)
        statuses.append((status, remaining))
        while remaining > 0:
            status, remaining = bio.enroll_capture_next(template_id, timeout=10000)
            statuses.append((status, remaining))
    assert [s for s, _ in statuses] == [FPBioEnrollment.FEEDBACK.FP_GOOD] * samples, statuses
    assert [r for _, r in statuses] == list(range(samples - 1, -1, -1)), statuses
    assert Ctap2(pg.device()).get_info().options["bioEnroll"] is True

    assert bio.enumerate_enrollments() == {template_id: ""}
    bio.set_name(template_id, "Right index")
    assert bio.enumerate_enrollments() == {template_id: "Right index"}
    with pytest.raises(CtapError) as err:
        bio.set_name(b"\x09", "not enrolled")
    assert err.value.code == CtapError.ERR.INVALID_OPTION

    # UV with the enrolled finger only.
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    user = {"id": b"bio-user", "name": "bio"}
    client = Fido2Client(pg.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Touch(fprint["vdev"], "finger-a"))
    options, state = server.register_begin(user, user_verification=UserVerificationRequirement.REQUIRED)
    auth_data = server.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.is_user_verified()
    wrong = Fido2Client(pg.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Touch(fprint["vdev"], "finger-b"))
    options, state = server.authenticate_begin([auth_data.credential_data], user_verification="required")
    with pytest.raises(ClientError) as err:
        wrong.get_assertion(options.public_key)
    assert isinstance(err.value.cause, CtapError) and err.value.cause.code == CtapError.ERR.UV_INVALID

    ctap, bio = _bio(pg)
    bio.remove_enrollment(template_id)
    assert bio.enumerate_enrollments() == {}
    with pytest.raises(CtapError) as err:
        bio.remove_enrollment(template_id)
    assert err.value.code == CtapError.ERR.INVALID_OPTION
    assert Ctap2(pg.device()).get_info().options["bioEnroll"] is False


def test_cancel_ends_the_enrollment(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    ClientPin(Ctap2(pg.device())).set_pin(PIN)
    ctap, bio = _bio(pg)
    with _Scanner(fprint["vdev"], "finger-a"):
        template_id, status, remaining = bio.enroll_begin(timeout=10000)
    assert status == FPBioEnrollment.FEEDBACK.FP_GOOD and remaining > 0
    bio.enroll_cancel()
    with pytest.raises(CtapError) as err:
        bio.enroll_capture_next(template_id, timeout=1000)
    assert err.value.code == CtapError.ERR.INVALID_OPTION
    assert bio.enumerate_enrollments() == {}
