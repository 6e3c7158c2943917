"""passgate with its keys in a TPM 2.0 (swtpm started here): a WebAuthn registration and
sign-in through python-fido2, verified by py_webauthn; the key never leaves the TPM, so a copy
of the state directory next to another TPM is useless. Once a PIN is set, keys sign only after
verification, and the PIN is checked by the TPM: wrong guesses hit its dictionary-attack
lockout. The PRF (hmac-secret) output with user verification is computed by the TPM too, so a
copy of the state directory cannot compute it (state_copy.py plays that attacker)."""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.cose import ES384
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import (
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from helpers import ORIGIN, RP_ID, authenticate, make_server, register
from state_copy import offline_hmac_outputs, prf_salt


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


def test_es384_passkey_in_the_tpm(spawn, swtpm_factory):
    """swtpm implements NIST P-384: getInfo lists ES384 beside ES256, a passkey asked for with
    alg -35 is a P-384 key in the TPM, and python-fido2's server verifies its packed
    self-attestation and its assertion (py_webauthn 3.0.1 has no ES384)."""
    tcti = swtpm_factory("tpm-es384")
    pg = spawn(extra=["--key-store", "tpm", "--tcti", tcti])
    info = Ctap2(pg.device()).info
    assert [a["alg"] for a in info.algorithms] == [-7, -35]

    server = make_server("packed")
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=-35)
    ]
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"p384-user", name="p384", display_name="P-384"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    created = pg.client().make_credential(options.public_key)
    assert created.response.attestation_object.fmt == "packed"
    assert created.response.attestation_object.att_stmt["alg"] == -35
    auth_data = server.register_complete(state, created)
    credential = auth_data.credential_data
    assert type(credential.public_key) is ES384
    assert credential.public_key[-1] == 2, "COSE crv P-384"

    request, state = server.authenticate_begin([credential], user_verification="discouraged")
    assertion = pg.client().get_assertion(request.public_key).get_response(0)
    server.authenticate_complete(state, [credential], assertion)  # raises on a bad signature
    forged = bytearray(assertion.response.signature)
    forged[-1] ^= 1
    with pytest.raises(Exception):
        credential.public_key.verify(
            bytes(assertion.response.authenticator_data) + assertion.response.client_data.hash,
            bytes(forged),
        )
    credential.public_key.verify(
        bytes(assertion.response.authenticator_data) + assertion.response.client_data.hash,
        assertion.response.signature,
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


class _Pin(UserInteraction):
    """A person who types `pin` whenever the client asks for the PIN (presence is automatic)."""

    def __init__(self, pin: str | None):
        self.pin = pin

    def prompt_up(self) -> None:
        pass

    def request_pin(self, permissions, rp_id):
        return self.pin


def _prf_client(pg, pin: str | None = None) -> Fido2Client:
    return Fido2Client(pg.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_Pin(pin))


def _b(value) -> bytes:
    return value if isinstance(value, bytes) else websafe_decode(value)


def _prf_register(client, server, user_id: bytes, uv: str, first: bytes):
    user = PublicKeyCredentialUserEntity(id=user_id, name=user_id.decode())
    options, state = server.register_begin(user, resident_key_requirement="required", user_verification=uv)
    options = options.public_key
    options = type(options).from_dict({**dict(options), "extensions": {"prf": {"eval": {"first": first}}}})
    registration = client.make_credential(options)
    credential = server.register_complete(state, registration).credential_data
    prf = registration.client_extension_results["prf"]
    assert prf["enabled"] is True
    return credential, registration.response.attestation_object.auth_data.is_user_verified(), \
        _b(prf["results"]["first"])


def _prf_eval(client, server, credential, uv: str, first: bytes, second: bytes | None = None):
    """PRF outputs of one assertion, and whether the assertion carried UV."""
    request, state = server.authenticate_begin([credential], user_verification=uv)
    request = request.public_key
    ev = {"first": first} if second is None else {"first": first, "second": second}
    request = type(request).from_dict({**dict(request), "extensions": {"prf": {"eval": ev}}})
    response = client.get_assertion(request).get_response(0)
    server.authenticate_complete(state, [credential], response)
    results = response.client_extension_results["prf"]["results"]
    return {k: _b(v) for k, v in results.items()}, response.response.authenticator_data.is_user_verified()


# A long composite test (two swtpms, a restart, a lockout count, a copied state directory): it
# ran out of the default 60 s once on a machine at a load average of 8. The timeout is there to
# catch a hang, not to time the TPM.
@pytest.mark.timeout(180)
def test_prf_with_user_verification_is_computed_by_the_tpm(spawn, swtpm_factory, tmp_path):
    tcti = swtpm_factory("tpm-prf")
    _dictionary_lockout(tcti, "--setup-parameters", "--max-tries=8", "--recovery-time=600",
                        "--lockout-recovery-time=1")
    _dictionary_lockout(tcti, "--clear-lockout")
    pg = spawn(extra=["--key-store", "tpm", "--tcti", tcti])
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    first, second = os.urandom(32), os.urandom(32)

    # No PIN yet: a credential made and used without verification gives the without-UV outputs.
    credential, uv_at_creation, mc_plain = _prf_register(_prf_client(pg), server, b"prf-tpm", "discouraged", first)
    assert uv_at_creation is False
    plain, uv = _prf_eval(_prf_client(pg), server, credential, "discouraged", first, second)
    assert uv is False and plain["first"] == mc_plain, "hmac-secret-mc without UV = a later non-UV output"
    assert plain["first"] != plain["second"]

    # With the PIN, which the TPM checks: the with-UV outputs, computed by the TPM.
    ClientPin(Ctap2(pg.device())).set_pin("1234")
    started = time.monotonic()
    verified, uv = _prf_eval(_prf_client(pg, "1234"), server, credential, "required", first, second)
    elapsed = time.monotonic() - started
    assert uv is True
    assert len(verified["first"]) == 32 and verified["first"] != verified["second"]
    assert verified["first"] != plain["first"] and verified["second"] != plain["second"], \
        "UV and non-UV outputs differ"
    again, _ = _prf_eval(_prf_client(pg, "1234"), server, credential, "required", first, second)
    assert again == verified, "same salt, same output"
    print(f"python-fido2 PRF sign-in with a PIN, TPM key store (PIN token + getAssertion): {elapsed * 1000:.1f} ms")
    # hmac-secret-mc in a ceremony verified by the PIN gives the with-UV output.
    credential2, uv_at_creation, mc_verified = _prf_register(_prf_client(pg, "1234"), server, b"prf-tpm-2",
                                                             "required", first)
    assert uv_at_creation is True
    later, _ = _prf_eval(_prf_client(pg, "1234"), server, credential2, "required", first)
    assert later["first"] == mc_verified, "hmac-secret-mc with UV = a later UV output"
    assert mc_verified != verified["first"], "each credential has its own key"

    # After a restart of the authenticator: the same outputs.
    pg.restart()
    after, _ = _prf_eval(_prf_client(pg, "1234"), server, credential, "required", first, second)
    assert after == verified

    # A wrong PIN gives no output; the TPM counts it against its dictionary-attack lockout.
    pg.stop()
    before = json.loads(_status(pg, tcti, "--json").stdout)["keyStore"]["dictionaryAttack"]["failedTries"]
    pg.start()
    with pytest.raises(ClientError) as refused:
        _prf_eval(_prf_client(pg, "0000"), server, credential, "required", first)
    assert isinstance(refused.value.cause, CtapError) and refused.value.cause.code == CtapError.ERR.PIN_INVALID
    pg.stop()
    da = json.loads(_status(pg, tcti, "--json").stdout)["keyStore"]["dictionaryAttack"]
    assert da["failedTries"] == before + 1, da

    # A copy of the state directory, device.key included: the without-UV outputs can be computed
    # offline (those keys are software values by design) -- the attack works -- but not the
    # with-UV ones: no byte of any record is their key.
    copy = tmp_path / "copied-state"
    shutil.copytree(pg.state_dir, copy)
    for salt, name in ((prf_salt(first), "first"), (prf_salt(second), "second")):
        offline = offline_hmac_outputs(copy, salt)
        assert plain[name] in offline, "the control: the attack finds the software key"
        assert verified[name] not in offline
    assert mc_verified not in offline_hmac_outputs(copy, prf_salt(first))

    # The copy next to another TPM: the right PIN opens nothing there (the PIN object and the
    # keys load only in their own TPM).
    other = spawn(state_dir=copy, extra=["--key-store", "tpm", "--tcti", swtpm_factory("tpm-prf-other")])
    with pytest.raises(ClientError) as foreign:
        _prf_eval(_prf_client(other, "1234"), server, credential, "required", first)
    assert isinstance(foreign.value.cause, CtapError) and foreign.value.cause.code == CtapError.ERR.OTHER
    other.stop()

    # The original still gives the same output.
    pg.start()
    assert _prf_eval(_prf_client(pg, "1234"), server, credential, "required", first)[0]["first"] == verified["first"]
