"""Fingerprint user verification with the real fprintd and libfprint's virtual device on a
private system bus (polkit mocked with python-dbusmock): a WebAuthn registration and sign-in
through python-fido2 that carry UV only after a matching scan."""

import os
import socket
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.hid import CtapHidDevice
from fido2.hid.base import HidDescriptor
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, UserVerificationRequirement
from webauthn import verify_authentication_response, verify_registration_response

from fprint_env import private_fprintd
from conftest import _binary
from helpers import ORIGIN, REPORT_SIZE, RP_ID, TcpCtapHidConnection, to_json
from test_tpm import swtpm_factory  # noqa: F401  (fixture: a private swtpm)

HERE = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def fprint(tmp_path):
    """A private system bus with mocked polkit and the real fprintd on a virtual sensor."""
    with private_fprintd(tmp_path) as env:
        yield env


def _enroll(fprint, finger, name="right-index-finger"):
    out = subprocess.run([SYSTEM_PYTHON, str(HERE / "fprint_enroll.py"), "root", str(fprint["vdev"]), finger, name],
                         env=fprint["env"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


class _Touch(UserInteraction):
    """Touches the virtual sensor with `finger` whenever passgate asks for verification."""

    def __init__(self, vdev, finger):
        self.vdev, self.finger = vdev, finger

    def prompt_up(self):
        pass

    def request_uv(self, permissions, rd_id):
        def touch():
            time.sleep(0.3)
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(self.vdev))
            s.sendall(f"SCAN {self.finger}".encode())
            s.close()
        threading.Thread(target=touch, daemon=True).start()
        return True


def _spawn(spawn, fprint, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"])
    return spawn(extra=["--user-verifier", "fprintd", "--fprint-user", "root", "--presence-timeout", "10"])


def test_uv_only_after_a_matching_scan(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    info = Ctap2(pg.device()).get_info()
    assert info.options.get("uv") is False, "a sensor without enrolled fingers is not usable UV"
    _enroll(fprint, "finger-a")
    info = Ctap2(pg.device()).get_info()
    assert info.options.get("uv") is True and info.uv_modality == 2

    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    user = PublicKeyCredentialUserEntity(id=b"fp-user", name="fp")
    client = Fido2Client(pg.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Touch(fprint["vdev"], "finger-a"))
    options, state = server.register_begin(user, resident_key_requirement="required", user_verification=UserVerificationRequirement.REQUIRED)
    registration = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, registration)
    assert auth_data.is_user_verified()
    verified = verify_registration_response(credential=to_json(registration), expected_challenge=options.public_key.challenge,
                                            expected_origin=ORIGIN, expected_rp_id=RP_ID, require_user_verification=True)

    options, state = server.authenticate_begin(user_verification=UserVerificationRequirement.REQUIRED)
    response = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [auth_data.credential_data], response)
    checked = verify_authentication_response(credential=to_json(response), expected_challenge=options.public_key.challenge,
                                             expected_origin=ORIGIN, expected_rp_id=RP_ID,
                                             credential_public_key=verified.credential_public_key,
                                             credential_current_sign_count=0, require_user_verification=True)
    assert checked.user_verified is True

    # A finger that is not enrolled: no UV, no assertion.
    wrong = Fido2Client(pg.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Touch(fprint["vdev"], "finger-b"))
    options, state = server.authenticate_begin(user_verification=UserVerificationRequirement.REQUIRED)
    with pytest.raises(ClientError) as err:
        wrong.get_assertion(options.public_key)
    assert isinstance(err.value.cause, CtapError) and err.value.cause.code == CtapError.ERR.UV_INVALID


class _Scanner:
    """Touches the virtual sensor with `finger` every 0.25 s while active (once `after()` is
    true, when given: e.g. once passgate's dialog is up)."""

    def __init__(self, vdev, finger, after=None):
        self.vdev, self.finger, self.stop = vdev, finger, threading.Event()
        self.after = after
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while self.after is not None and not self.after():
            if self.stop.wait(0.05):
                return
        while not self.stop.wait(0.25):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(str(self.vdev))
                s.sendall(f"SCAN {self.finger}".encode())
                s.close()
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_status_lockout_pin_fallback_and_cancel(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    _enroll(fprint, "finger-a")
    def status() -> dict:
        out = subprocess.run([str(pg.binary), "status", "--user-verifier", "fprintd", "--fprint-user", "root",
                              "--state-dir", str(pg.state_dir), "--json"],
                             capture_output=True, text=True, timeout=30, env=fprint["env"])
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    before = status()
    assert before["userVerification"] == {"isAvailable": True, "biometryType": "Fingerprint", "enrolled": True,
                                          "errorCode": None}, before
    assert before["pin"] == {"set": False, "retries": 8, "uvRetries": 8, "errorCode": "passcodeNotSet"}, before

    ctap = Ctap2(pg.device())
    with _Scanner(fprint["vdev"], "finger-a"):
        made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"u"}, [{"type": "public-key", "alg": -7}],
                                    options={"rk": True, "uv": True})
    assert made.auth_data.is_user_verified()
    allow = [{"type": "public-key", "id": made.auth_data.credential_data.credential_id}]

    # Eight non-matching scans: UV_INVALID seven times, then UV_BLOCKED, durably.
    codes = []
    with _Scanner(fprint["vdev"], "finger-b"):
        for _ in range(9):
            with pytest.raises(CtapError) as err:
                ctap.get_assertion(RP_ID, b"\2" * 32, allow, options={"uv": True})
            codes.append(err.value.code)
    assert codes == [CtapError.ERR.UV_INVALID] * 7 + [CtapError.ERR.UV_BLOCKED] * 2
    from fido2.ctap2.pin import ClientPin
    pin = ClientPin(ctap)
    assert pin.get_uv_retries() == 0
    pg.restart()
    ctap = Ctap2(pg.device())
    pin = ClientPin(ctap)
    assert pin.get_uv_retries() == 0, "the UV lockout survives a restart"
    locked = status()
    assert locked["userVerification"] == {"isAvailable": False, "biometryType": "Fingerprint", "enrolled": True,
                                          "errorCode": "biometryLockout"}, locked
    assert locked["pin"]["uvRetries"] == 0, locked
    # Fallback to the PIN: it works and unblocks the sensor.
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
    got = ctap.get_assertion(RP_ID, b"\3" * 32, allow,
                             pin_uv_param=pin.protocol.authenticate(token, b"\3" * 32), pin_uv_protocol=pin.protocol.VERSION)
    assert got.auth_data.is_user_verified()
    assert pin.get_uv_retries() == 8
    unlocked = status()
    assert unlocked["userVerification"]["errorCode"] is None and unlocked["userVerification"]["isAvailable"], unlocked
    assert unlocked["pin"] == {"set": True, "retries": 8, "uvRetries": 8, "errorCode": None}, unlocked

    # Cancel mid-scan: nobody touches the sensor, the client cancels, passgate answers
    # KEEPALIVE_CANCEL and releases the sensor; the next scan works.
    event = threading.Event()
    threading.Timer(0.8, event.set).start()
    started = time.time()
    with pytest.raises(CtapError) as err:
        ctap.get_assertion(RP_ID, b"\4" * 32, allow, options={"uv": True}, event=event)
    assert err.value.code == CtapError.ERR.KEEPALIVE_CANCEL
    assert time.time() - started < 5
    with _Scanner(fprint["vdev"], "finger-a"):
        ok = ctap.get_assertion(RP_ID, b"\5" * 32, allow, options={"uv": True})
    assert ok.auth_data.is_user_verified()


def test_enrollment_change_invalidates_bound_credentials(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    _enroll(fprint, "finger-a")
    ctap = Ctap2(pg.device())
    params = [{"type": "public-key", "alg": -7}]
    with _Scanner(fprint["vdev"], "finger-a"):
        bound = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"bound"}, params,
                                     extensions={"passgateBiometricSet": True}, options={"rk": True, "uv": True})
        free = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"free"}, params, options={"rk": True, "uv": True})
    assert bound.auth_data.extensions == {"passgateBiometricSet": True}
    allow = lambda made: [{"type": "public-key", "id": made.auth_data.credential_data.credential_id}]
    with _Scanner(fprint["vdev"], "finger-a"):
        assert ctap.get_assertion(RP_ID, b"\2" * 32, allow(bound), options={"uv": True}).auth_data.is_user_verified()
    # Binding needs a biometric verification in the same ceremony.
    with pytest.raises(CtapError) as err:
        ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"x"}, params, extensions={"passgateBiometricSet": True})
    assert err.value.code == CtapError.ERR.INVALID_OPTION

    _enroll(fprint, "finger-c", "left-index-finger")
    with pytest.raises(CtapError) as err:
        ctap.get_assertion(RP_ID, b"\3" * 32, allow(bound))
    assert err.value.code == CtapError.ERR.INVALID_CREDENTIAL
    with _Scanner(fprint["vdev"], "finger-a"):
        still = ctap.get_assertion(RP_ID, b"\4" * 32, allow(free), options={"uv": True})
    assert still.auth_data.is_user_verified(), "credentials without the binding keep working"


def _send(vdev, command):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(vdev))
    s.sendall(command.encode())
    s.close()


def test_retry_results_keep_waiting_and_sensor_errors_are_reported(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    _enroll(fprint, "finger-a")
    ctap = Ctap2(pg.device())
    with _Scanner(fprint["vdev"], "finger-a"):
        made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"u"}, [{"type": "public-key", "alg": -7}],
                                    options={"rk": True, "uv": True})
    allow = [{"type": "public-key", "id": made.auth_data.credential_data.credential_id}]

    # A retry result (swipe too short) keeps the same attempt waiting; a good scan then matches.
    def retry_then_match():
        time.sleep(0.3)
        _send(fprint["vdev"], "RETRY 1")
        time.sleep(0.3)
        _send(fprint["vdev"], "SCAN finger-a")
    threading.Thread(target=retry_then_match, daemon=True).start()
    got = ctap.get_assertion(RP_ID, b"\2" * 32, allow, options={"uv": True})
    assert got.auth_data.is_user_verified()
    from fido2.ctap2.pin import ClientPin
    assert ClientPin(ctap).get_uv_retries() == 8, "a retry is not a failed attempt"

    # The sensor reports an error: the attempt ends without UV and does not count.
    def error():
        time.sleep(0.3)
        _send(fprint["vdev"], "ERROR 0")
    threading.Thread(target=error, daemon=True).start()
    with pytest.raises(CtapError) as err:
        ctap.get_assertion(RP_ID, b"\3" * 32, allow, options={"uv": True})
    assert err.value.code == CtapError.ERR.OPERATION_DENIED
    assert ClientPin(ctap).get_uv_retries() == 8

    # The sensor is unplugged mid-scan: no UV, a clear error, nothing counted.
    def unplug():
        time.sleep(0.3)
        _send(fprint["vdev"], "UNPLUG")
    threading.Thread(target=unplug, daemon=True).start()
    with pytest.raises(CtapError) as err:
        ctap.get_assertion(RP_ID, b"\4" * 32, allow, options={"uv": True})
    assert err.value.code in (CtapError.ERR.OPERATION_DENIED, CtapError.ERR.INVALID_OPTION)
    # With the sensor gone, UV is no longer offered.
    assert "uv" not in Ctap2(pg.device()).get_info().options


def test_max_attempts_sets_the_failed_scan_limit(spawn, fprint, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"])
    pg = spawn(extra=["--user-verifier", "fprintd", "--fprint-user", "root", "--presence-timeout", "10",
                      "--max-attempts", "3"])
    _enroll(fprint, "finger-a")
    ctap = Ctap2(pg.device())
    from fido2.ctap2.pin import ClientPin
    pin = ClientPin(ctap)
    assert pin.get_uv_retries() == 3
    pg_1 = spawn(extra=["--user-verifier", "fprintd", "--fprint-user", "root", "--max-attempts", "1"])
    info = Ctap2(pg_1.device()).get_info()
    assert info.preferred_platform_uv_attempts == 1, "never more than the lockout limit"
    pg_1.kill()
    with _Scanner(fprint["vdev"], "finger-a"):
        made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"u"}, [{"type": "public-key", "alg": -7}],
                                    options={"rk": True, "uv": True})
    allow = [{"type": "public-key", "id": made.auth_data.credential_data.credential_id}]

    # Three non-matching scans: biometryLockout (UV_BLOCKED) after the third; uvRetries counts down.
    codes, retries = [], []
    with _Scanner(fprint["vdev"], "finger-b"):
        for _ in range(4):
            with pytest.raises(CtapError) as err:
                ctap.get_assertion(RP_ID, b"\2" * 32, allow, options={"uv": True})
            codes.append(err.value.code)
            retries.append(pin.get_uv_retries())
    assert codes == [CtapError.ERR.UV_INVALID] * 2 + [CtapError.ERR.UV_BLOCKED] * 2
    assert retries == [2, 1, 0, 0]
    with pytest.raises(CtapError) as err:
        pin.get_uv_token(ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
    assert err.value.code == CtapError.ERR.UV_BLOCKED
    # The limit and the lockout hold across a restart with the same option.
    pg.restart()
    ctap = Ctap2(pg.device())
    pin = ClientPin(ctap)
    assert pin.get_uv_retries() == 0
    # PIN fallback: a correct PIN restores the configured number, not the default 8.
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
    got = ctap.get_assertion(RP_ID, b"\3" * 32, allow,
                             pin_uv_param=pin.protocol.authenticate(token, b"\3" * 32), pin_uv_protocol=pin.protocol.VERSION)
    assert got.auth_data.is_user_verified()
    assert pin.get_uv_retries() == 3
    with _Scanner(fprint["vdev"], "finger-a"):
        ok = ctap.get_assertion(RP_ID, b"\4" * 32, allow, options={"uv": True})
    assert ok.auth_data.is_user_verified()


def test_tpm_keys_are_released_by_a_fingerprint_match_only_with_the_verifier_configured(
        spawn, fprint, monkeypatch, swtpm_factory):  # noqa: F811
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"])
    tcti = swtpm_factory("tpm-fp")
    tpm = ["--key-store", "tpm", "--tcti", tcti]
    fp = ["--user-verifier", "fprintd", "--fprint-user", "root", "--presence-timeout", "10"]
    pg = spawn(extra=tpm + fp)
    _enroll(fprint, "finger-a")
    ctap = Ctap2(pg.device())
    from fido2.ctap2.pin import ClientPin
    ClientPin(ctap).set_pin("1234")
    assert ctap.get_info().options["alwaysUv"] is True
    params = [{"type": "public-key", "alg": -7}]
    with _Scanner(fprint["vdev"], "finger-a"):
        made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"u"}, params, options={"rk": True, "uv": True})
        cred = made.auth_data.credential_data
        allow = [{"type": "public-key", "id": cred.credential_id}]
        got = ctap.get_assertion(RP_ID, b"\2" * 32, allow, options={"uv": True})
    assert got.auth_data.is_user_verified()
    cred.public_key.verify(got.auth_data + b"\2" * 32, got.signature)

    # Served once without the fingerprint verifier: the daemon-held release copy is erased,
    # so afterwards a fingerprint match alone no longer unlocks the TPM keys ...
    pg.stop()
    pg.extra = tpm
    pg.start()
    pg.stop()
    pg.extra = tpm + fp
    pg.start()
    ctap = Ctap2(pg.device())
    with _Scanner(fprint["vdev"], "finger-a"):
        with pytest.raises(CtapError) as err:
            ctap.get_assertion(RP_ID, b"\3" * 32, allow, options={"uv": True})
    assert err.value.code == CtapError.ERR.PUAT_REQUIRED
    # ... until the PIN (checked by the TPM) has been entered once.
    pin = ClientPin(ctap)
    token = pin.get_pin_token("1234", ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
    got = ctap.get_assertion(RP_ID, b"\4" * 32, allow,
                             pin_uv_param=pin.protocol.authenticate(token, b"\4" * 32), pin_uv_protocol=pin.protocol.VERSION)
    assert got.auth_data.is_user_verified()
    with _Scanner(fprint["vdev"], "finger-a"):
        got = ctap.get_assertion(RP_ID, b"\5" * 32, allow, options={"uv": True})
    assert got.auth_data.is_user_verified()
    cred.public_key.verify(got.auth_data + b"\5" * 32, got.signature)


class _UnixCtapHidConnection(TcpCtapHidConnection):
    """CTAPHID reports on passgate's Unix socket (the default listener, same user only)."""

    def __init__(self, path, timeout=15.0):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))


def test_auto_detect_makes_an_enrolled_finger_the_presence_and_the_uv(fprint, tmp_path):
    """`--presence auto-detect` (the uhid default) with a finger enrolled in fprintd: the finger
    answers presence checks (an unknown finger declines) and verifies the user."""
    _enroll(fprint, "finger-a")
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"],
               PASSGATE_LOG="info")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "PASSGATE_PINENTRY"):
        env.pop(name, None)
    log_path = tmp_path / "auto-detect.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(_binary()), "authenticator", "serve", "--presence", "auto-detect",
                                 "--fprint-user", "root", "--presence-timeout", "10",
                                 "--state-dir", str(tmp_path / "auto-state")],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("listening on unix:"), line + log_path.read_text()
        assert "presence and user verification: a fingerprint (fprintd), else this terminal" in log_path.read_text()
        descriptor = HidDescriptor("passgate-unix", 0, 0, REPORT_SIZE, REPORT_SIZE, "passgate", None)
        ctap = Ctap2(CtapHidDevice(descriptor, _UnixCtapHidConnection(line.split("unix:", 1)[1].strip())))
        assert ctap.info.options.get("uv") is True
        params = [{"type": "public-key", "alg": -7}]

        with _Scanner(fprint["vdev"], "finger-a"):
            made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"u"}, params)
        assert made.auth_data.is_user_present() and not made.auth_data.is_user_verified()
        with _Scanner(fprint["vdev"], "finger-a"):
            verified = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"v"}, params, options={"uv": True})
        assert verified.auth_data.is_user_verified()

        # A finger that is not enrolled is someone else: the request is declined.
        with _Scanner(fprint["vdev"], "finger-b"), pytest.raises(CtapError) as err:
            ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"w"}, params)
        assert err.value.code == CtapError.ERR.OPERATION_DENIED
    finally:
        proc.kill()
        proc.wait()
