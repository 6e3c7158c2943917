"""passgate with its keys in a TPM 2.0 (swtpm started here): a WebAuthn registration and
sign-in through python-fido2, verified by py_webauthn; the key never leaves the TPM, so a copy
of the state directory next to another TPM is useless. Once a PIN is set, keys sign only after
verification, and the PIN is checked by the TPM: wrong guesses hit its dictionary-attack
lockout."""

import json
import shutil
import socket
import subprocess
import time

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin

from helpers import RP_ID, authenticate, make_server, register


def _free_port_pair():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            try:
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


@pytest.fixture
def swtpm_factory(tmp_path):
    procs = []

    def start(name):
        state = tmp_path / name
        state.mkdir(exist_ok=True)
        port = _free_port_pair()
        proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, "swtpm did not start"
                time.sleep(0.05)
        return f"swtpm:host=127.0.0.1,port={port}"

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_webauthn_with_tpm_keys(spawn, swtpm_factory, tmp_path):
    tcti = swtpm_factory("tpm-a")
    pg = spawn(extra=["--key-store", "tpm", "--tcti", tcti])
    status = subprocess.run([str(pg.binary), "status", "--key-store", "tpm", "--tcti", tcti, "--json"],
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stdout + status.stderr
    assert '"backend":"tpm"' in status.stdout and "IBM" in status.stdout

    server = make_server()
    reg = register(pg.client(), server, user_name="tpm-user", resident=True)
    [auth] = authenticate(pg.client(), server, [reg], allow=[reg])
    assert auth.sign_count > 0
    [found] = authenticate(pg.client(), server, [reg], allow=None)
    assert found.credential_id == reg.credential_id

    # The same state directory served with another TPM cannot use the key.
    pg.kill()
    copy = tmp_path / "copied-state"
    shutil.copytree(pg.state_dir, copy)
    other = spawn(state_dir=copy, extra=["--key-store", "tpm", "--tcti", swtpm_factory("tpm-b")])
    with pytest.raises(CtapError):
        Ctap2(other.device()).get_assertion(
            "example.com", b"\0" * 32, [{"type": "public-key", "id": reg.credential_id}]
        )


def test_status_reports_unreachable_tpm(spawn):
    pg = spawn()
    result = subprocess.run([str(pg.binary), "status", "--key-store", "tpm", "--tcti", "swtpm:host=127.0.0.1,port=1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stdout and "no TPM reachable" in result.stdout


def _dictionary_lockout(tcti, *args):
    """tpm2_dictionarylockout against the swtpm (run while no passgate is connected)."""
    out = subprocess.run(["tpm2_dictionarylockout", "-T", tcti, *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def _status(pg, tcti, *extra):
    return subprocess.run([str(pg.binary), "status", "--key-store", "tpm", "--tcti", tcti, *extra],
                          capture_output=True, text=True, timeout=30)


def _pin_code(call):
    with pytest.raises(CtapError) as err:
        call()
    return err.value.code


def test_pin_in_the_tpm_gates_signing_and_wrong_pins_hit_the_tpm_lockout(spawn, swtpm_factory):
    tcti = swtpm_factory("tpm-da")
    # Four failed authorizations lock the TPM out; a failure is forgotten only after 600 s.
    _dictionary_lockout(tcti, "--setup-parameters", "--max-tries=4", "--recovery-time=600",
                        "--lockout-recovery-time=1")
    _dictionary_lockout(tcti, "--clear-lockout")
    pg = spawn(extra=["--key-store", "tpm", "--tcti", tcti])
    ctap = Ctap2(pg.device())
    info = ctap.get_info()
    assert info.options["alwaysUv"] is False and info.options["makeCredUvNotRqd"] is True
    params = [{"type": "public-key", "alg": -7}]
    made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"u", "name": "u"}, params, options={"rk": True})
    cred = made.auth_data.credential_data
    allow = [{"type": "public-key", "id": cred.credential_id}]
    # No PIN yet: nothing to verify with, presence is enough.
    got = ctap.get_assertion(RP_ID, b"\2" * 32, allow)
    cred.public_key.verify(got.auth_data + b"\2" * 32, got.signature)

    pin = ClientPin(ctap)
    pin.set_pin("1234")
    info = ctap.get_info()
    assert info.options["clientPin"] is True
    assert info.options["alwaysUv"] is True and info.options["makeCredUvNotRqd"] is False, \
        "with a PIN the TPM keys sign only after verification: advertised as alwaysUv"
    # Without verification the TPM cannot sign: PUAT_REQUIRED, for a silent probe too.
    assert _pin_code(lambda: ctap.get_assertion(RP_ID, b"\3" * 32, allow)) == CtapError.ERR.PUAT_REQUIRED
    assert _pin_code(lambda: ctap.get_assertion(RP_ID, b"\3" * 32, allow, options={"up": False})) \
        == CtapError.ERR.PUAT_REQUIRED
    assert _pin_code(lambda: ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"v"}, params)) \
        == CtapError.ERR.PUAT_REQUIRED

    def assert_with_pin(pin, ctap, value):
        token = pin.get_pin_token(value, ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
        cdh = b"\4" * 32
        started = time.monotonic()
        got = ctap.get_assertion(RP_ID, cdh, allow, pin_uv_param=pin.protocol.authenticate(token, cdh),
                                 pin_uv_protocol=pin.protocol.VERSION)
        elapsed = time.monotonic() - started
        assert got.auth_data.is_user_verified()
        cred.public_key.verify(got.auth_data + cdh, got.signature)
        return elapsed

    elapsed = assert_with_pin(pin, ctap, "1234")
    print(f"getAssertion with a TPM key and its authValue: {elapsed * 1000:.1f} ms")

    # Wrong PINs: each is a TPM authorization failure. Three in a row also trip CTAP's
    # power-cycle rule.
    codes = [_pin_code(lambda: pin.get_pin_token("0000")) for _ in range(3)]
    assert codes == [CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_INVALID, CtapError.ERR.PIN_AUTH_BLOCKED]
    pg.restart()
    ctap = Ctap2(pg.device())
    pin = ClientPin(ctap)
    # The fourth failure reaches the TPM's maxTries: the TPM locks out ...
    assert _pin_code(lambda: pin.get_pin_token("0000")) == CtapError.ERR.PIN_INVALID
    # ... and refuses the correct PIN too, without spending a CTAP retry.
    assert _pin_code(lambda: pin.get_pin_token("1234")) == CtapError.ERR.PIN_AUTH_BLOCKED
    assert _pin_code(lambda: pin.get_pin_token("1234")) == CtapError.ERR.PIN_AUTH_BLOCKED
    assert pin.get_pin_retries()[0] == 4
    # A restart of passgate does not lift a TPM lockout.
    pg.restart()
    ctap = Ctap2(pg.device())
    pin = ClientPin(ctap)
    assert _pin_code(lambda: pin.get_pin_token("1234")) == CtapError.ERR.PIN_AUTH_BLOCKED

    # passgate status reports the lockout.
    pg.stop()
    status = _status(pg, tcti, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    da = json.loads(status.stdout)["keyStore"]["dictionaryAttack"]
    assert da == {"failedTries": 4, "maxTries": 4, "recoveryTime": 600, "lockoutRecovery": 1, "lockedOut": True}
    text = _status(pg, tcti)
    assert "LOCKED OUT" in text.stdout and "4 of 4" in text.stdout, text.stdout

    # The lockout hierarchy's owner recovers the TPM; the correct PIN works again.
    _dictionary_lockout(tcti, "--clear-lockout")
    pg.start()
    ctap = Ctap2(pg.device())
    pin = ClientPin(ctap)
    assert_with_pin(pin, ctap, "1234")
    assert pin.get_pin_retries()[0] == 8
    pin.change_pin("1234", "5678")
    assert _pin_code(lambda: pin.get_pin_token("1234")) == CtapError.ERR.PIN_INVALID
    assert_with_pin(pin, ctap, "5678")

    # Reset: the PIN and the release key are gone; the old credential is gone with them.
    pg.restart()
    ctap = Ctap2(pg.device())
    ctap.reset()
    assert ctap.get_info().options["alwaysUv"] is False
    assert _pin_code(lambda: ctap.get_assertion(RP_ID, b"\5" * 32, allow)) == CtapError.ERR.NO_CREDENTIALS
