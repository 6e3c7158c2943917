"""The app-facing APIs end to end: `passgate app serve` (the JSON host channel) on passgate's
authenticator with the real fprintd on libfprint's virtual sensor (private system bus, polkit
mocked), the SOTER key in software or in a real swtpm, results verified by `passgate rp` and
independently with `cryptography` (RSASSA-PSS, salt 20) and py_webauthn.

Each touch of the virtual sensor is an explicit `SCAN <finger>` sent while passgate waits for a
verification: finger-a is enrolled, finger-b is not."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from webauthn import verify_authentication_response

from conftest import _binary
from rp_support import API_TOKEN, RpServer, expect_error
from state_copy import open_vault_offline
from test_fprintd import _enroll, fprint  # noqa: F401  (fixture: fprintd on a virtual sensor)
from test_tpm import swtpm_factory  # noqa: F401  (fixture: a private swtpm)

CALLER = "https://shop.example"
REPLY_TIMEOUT = 30.0


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AppServe:
    """One `passgate app serve` process: JSON lines in, JSON lines out."""

    def __init__(self, tmp_path: Path, fprint, state: Path, extra: list[str] | None = None, name: str = "app"):
        self.vdev = fprint["vdev"]
        self.log_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        cmd = [str(_binary()), "app", "serve", "--state-dir", str(state), "--presence", "auto",
               "--user-verifier", "fprintd", "--fprint-user", "root", "--presence-timeout", "8"]
        cmd += extra or []
        with open(self.log_path, "wb") as log:
            # A new session: no controlling terminal, so no PIN prompt can reach a developer's.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env={**fprint["env"], "RUST_BACKTRACE": "1"}, start_new_session=True)
        self.buffer = b""
        ready = self.read_line(20)
        assert ready.get("ready") is True, f"{ready}\n{self.log_tail()}"
        assert "vault.unlock" in ready["messageTypes"]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "--- passgate app serve log ---\n" + "\n".join(text.splitlines()[-lines:])

    def read_line(self, timeout: float = REPLY_TIMEOUT) -> dict:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no reply within {timeout} s\n{self.log_tail()}"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, f"passgate app serve exited ({self.proc.wait(5)})\n{self.log_tail()}"
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, message: dict, caller: str = CALLER) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"caller": caller, "message": message}) + "\n").encode())
        self.proc.stdin.flush()

    def call(self, message: dict, touch: str | None = None, caller: str = CALLER) -> dict:
        """Sends `message`; with `touch`, puts that finger on the sensor once passgate waits."""
        self.send(message, caller)
        if touch is None:
            return self.read_line()
        stop = threading.Event()

        def toucher():
            # Once after the scan has started; again if the first touch came too early.
            for delay in (0.5, 2.5, 2.5):
                if stop.wait(delay):
                    return
                scan(self.vdev, touch)

        thread = threading.Thread(target=toucher, daemon=True)
        thread.start()
        try:
            return self.read_line()
        finally:
            stop.set()
            thread.join()

    def result(self, message: dict, touch: str | None = None, caller: str = CALLER):
        reply = self.call(message, touch, caller)
        assert "error" not in reply, f"{message['type']}: {reply}\n{self.log_tail()}"
        return reply["result"]

    def error(self, message: dict, touch: str | None = None, caller: str = CALLER) -> dict:
        reply = self.call(message, touch, caller)
        assert "error" in reply, f"{message['type']} should fail: {reply}"
        return reply["error"]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def scan(vdev: Path, finger: str) -> None:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(vdev))
        s.sendall(f"SCAN {finger}".encode())
    finally:
        s.close()


@pytest.fixture
def app(tmp_path, fprint):  # noqa: F811
    """A factory of `passgate app serve` processes on one state directory, with finger-a enrolled."""
    _enroll(fprint, "finger-a")
    started: list[AppServe] = []

    def start(extra: list[str] | None = None, state: Path | None = None) -> AppServe:
        serve = AppServe(tmp_path, fprint, state or tmp_path / "state", extra)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.kill()


def vault_files(state: Path) -> list[Path]:
    # The vault files (each keeps an attempt counter, `.attempts`, beside it, even once cleared).
    return sorted(p for p in (state / "app").rglob("*.vault") if p.is_file() and "/vaults/" in str(p))


def open_vault(serve: AppServe, vault_id: str = "session", **options) -> dict:
    return serve.result({"type": "vault.open", "vaultId": vault_id, "username": "alice", **options})


def test_vault_unlocks_with_the_matching_finger_and_refuses_another(app, tmp_path):
    serve = app()
    opened = open_vault(serve, authMode="BiometricOnly")
    assert opened == {"config": {"vaultId": "session", "username": "alice",
                                 "descriptor": {"vaultId": "session", "username": "alice"},
                                 "authMode": "BiometricOnly", "lockAfter": 0, "maxAttempts": 5,
                                 "hideScreenOnBackground": False, "isBiometricsEnabled": True,
                                 "isPasscodeEnabled": False, "isPasscodeSetupNeeded": False,
                                 "hasAppPasscode": False},
                      "isLocked": False, "isInUse": False, "remainingAttempts": 5}
    secret = "refresh-token-3f9a7c"
    assert serve.result({"type": "vault.storeValue", "vaultId": "session", "key": "token", "value": secret},
                        touch="finger-a") is None
    [vault_file] = vault_files(tmp_path / "state")
    assert secret.encode() not in vault_file.read_bytes()
    assert vault_file.stat().st_mode & 0o777 == 0o600
    assert serve.result({"type": "vault.lock", "vaultId": "session"}) is None
    assert serve.error({"type": "vault.getValue", "vaultId": "session", "key": "token"})["code"] == "VaultLocked"

    wrong = serve.error({"type": "vault.unlock", "vaultId": "session"}, touch="finger-b")
    assert wrong["code"] == "AuthFailed", wrong
    assert serve.result({"type": "vault.remainingAttempts", "vaultId": "session"}) == 4
    assert serve.result({"type": "vault.isLocked", "vaultId": "session"}) is True

    reply = serve.call({"type": "vault.unlock", "vaultId": "session"}, touch="finger-a")
    assert reply["result"] is None, reply
    assert any(e["event"] == "unlock" and e["vaultId"] == "session" and e["username"] == "alice"
               for e in reply["events"]), reply
    assert serve.result({"type": "vault.getValue", "vaultId": "session", "key": "token"}) == secret
    assert serve.result({"type": "vault.remainingAttempts", "vaultId": "session"}) == 5

    # A restarted host finds the vault on disk, locked; the finger opens it again.
    serve.close()
    again = app()
    assert open_vault(again)["isLocked"] is True
    again.result({"type": "vault.unlock", "vaultId": "session"}, touch="finger-a")
    assert again.result({"type": "vault.getKeys", "vaultId": "session"}) == ["token"]
    # Another caller (origin) cannot reach this vault: it gets its own, empty one.
    other = again.result({"type": "vault.open", "vaultId": "session", "username": "mallory"},
                         caller="https://evil.example")
    assert other["isInUse"] is False and other["isLocked"] is False


def test_vault_locks_after_idle_time(app):
    serve = app()
    open_vault(serve, lockAfter=1500)
    serve.result({"type": "vault.storeValue", "vaultId": "session", "key": "k", "value": {"n": 1}},
                 touch="finger-a")
    for _ in range(3):
        time.sleep(0.6)
        assert serve.result({"type": "vault.getValue", "vaultId": "session", "key": "k"}) == {"n": 1}
    time.sleep(2.2)
    reply = serve.call({"type": "vault.isLocked", "vaultId": "session"})
    assert reply["result"] is True, reply
    assert {"event": "lock", "vaultId": "session", "username": "alice", "timeout": True,
            "saved": True} in reply["events"], reply
    assert serve.error({"type": "vault.getValue", "vaultId": "session", "key": "k"})["code"] == "VaultLocked"


def test_too_many_failed_unlocks_clear_the_vault(app, tmp_path):
    serve = app()
    open_vault(serve, maxAttempts=3)
    serve.result({"type": "vault.storeValue", "vaultId": "session", "key": "k", "value": "v"}, touch="finger-a")
    serve.result({"type": "vault.lock", "vaultId": "session"})
    codes = [serve.error({"type": "vault.unlock", "vaultId": "session"}, touch="finger-b")["code"] for _ in range(3)]
    assert codes == ["AuthFailed", "AuthFailed", "TooManyFailedAttempts"]
    assert serve.result({"type": "vault.isInUse", "vaultId": "session"}) is False
    assert vault_files(tmp_path / "state") == []
    assert serve.result({"type": "vault.getValue", "vaultId": "session", "key": "k"}) is None


def test_an_enrollment_change_invalidates_a_biometric_only_vault(app, fprint):  # noqa: F811
    serve = app()
    open_vault(serve, "bound", authMode="BiometricOnly")
    open_vault(serve, "free", authMode="BiometricAndPasscode")
    serve.result({"type": "vault.storeValue", "vaultId": "bound", "key": "k", "value": 1}, touch="finger-a")
    serve.result({"type": "vault.storeValue", "vaultId": "free", "key": "k", "value": 2}, touch="finger-a")
    serve.result({"type": "vault.lock", "vaultId": "bound"})
    serve.result({"type": "vault.lock", "vaultId": "free"})
    _enroll(fprint, "finger-c", "left-index-finger")
    err = serve.error({"type": "vault.unlock", "vaultId": "bound"})
    assert err["code"] == "InvalidatedCredential", err
    assert serve.result({"type": "vault.remainingAttempts", "vaultId": "bound"}) == 5
    serve.result({"type": "vault.unlock", "vaultId": "free"}, touch="finger-a")
    assert serve.result({"type": "vault.getValue", "vaultId": "free", "key": "k"}) == 2


def test_a_vault_killed_mid_write_is_the_old_or_the_new_one(app, tmp_path):
    serve = app()
    open_vault(serve)
    serve.result({"type": "vault.storeValue", "vaultId": "session", "key": "base", "value": "kept"},
                 touch="finger-a")
    big = "x" * 200_000
    # Pipeline writes (each rewrites the whole vault), then SIGKILL in the middle of them.
    for i in range(40):
        serve.send({"type": "vault.storeValue", "vaultId": "session", "key": f"k{i}", "value": f"{i}-{big}"})
    acknowledged = []
    deadline = time.monotonic() + 20
    while len(acknowledged) < 6 and time.monotonic() < deadline:
        reply = serve.read_line()
        assert "error" not in reply, reply
        acknowledged.append(len(acknowledged))
    serve.kill()
    assert len(acknowledged) == 6
    again = app()
    open_vault(again)
    again.result({"type": "vault.unlock", "vaultId": "session"}, touch="finger-a")
    keys = again.result({"type": "vault.getKeys", "vaultId": "session"})
    assert "base" in keys
    for i in acknowledged:
        assert f"k{i}" in keys, f"acknowledged write k{i} lost: {keys}"
    # Writes are applied in order: the keys present are exactly a prefix.
    present = sorted(int(k[1:]) for k in keys if k != "base")
    assert present == list(range(len(present)))
    for i in present:
        assert again.result({"type": "vault.getValue", "vaultId": "session", "key": f"k{i}"}) == f"{i}-{big}"
    leftovers = [p for p in (tmp_path / "state" / "app").rglob(".tmp-*")]
    assert leftovers == [], leftovers


def test_biometric_status_and_a_proof_py_webauthn_verifies(app, fprint):  # noqa: F811
    serve = app()
    status = serve.result({"type": "biometric.checkStatus"})
    assert status == {"isAvailable": True, "biometryType": "Fingerprint"}
    challenge = os.urandom(32)
    challenge_b64 = base64.urlsafe_b64encode(challenge).rstrip(b"=").decode()
    done = serve.result({"type": "biometric.authenticate", "reason": "Approve the order",
                         "options": {"challenge": challenge_b64, "title": "Shop"}}, touch="finger-a")
    assert done["method"] == "biometric"
    proof = done["proof"]
    key = proof["key"]
    assert key["rpId"] == f"passgate-app:{CALLER}" and key["origin"] == CALLER
    checked = verify_authentication_response(
        credential=proof["credential"], expected_challenge=challenge, expected_origin=CALLER,
        expected_rp_id=key["rpId"], credential_public_key=b64u_decode(key["publicKeyCose"]),
        credential_current_sign_count=0, require_user_verification=True)
    assert checked.user_verified is True
    err = serve.error({"type": "biometric.authenticate", "reason": "Approve",
                       "options": {"challenge": challenge_b64, "maxAttempts": 1}}, touch="finger-b")
    assert err["code"] == "authenticationFailed", err
    bad = serve.error({"type": "biometric.authenticate", "reason": "", "options": {}})
    assert bad["code"] == "invalidContext"


def cryptography_verify(pem: str, message: str, signature_b64: str, salt: int) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    assert key.key_size == 2048
    try:
        key.verify(base64.b64decode(signature_b64), message.encode(),
                   padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def soter_start(serve: AppServe, challenge: str, touch: str = "finger-a") -> dict:
    return serve.result({"type": "soter.startSoterAuthentication", "challenge": challenge,
                         "requestAuthModes": ["fingerPrint"], "authContent": "Pay 12.00"}, touch=touch)


@pytest.fixture
def rp(tmp_path):
    server = RpServer(tmp_path, f"sqlite://{tmp_path / 'rp.sqlite3'}", tmp_path / "receipt.p8")
    yield server
    server.kill()


def soter_roundtrip(serve: AppServe, rp: RpServer, key_store: str) -> None:
    assert serve.result({"type": "soter.checkIsSupportSoterAuthentication"})["supportMode"] == ["fingerPrint"]
    assert serve.result({"type": "soter.checkIsSoterEnrolledInDevice", "checkAuthMode": "fingerPrint"})["isEnrolled"]
    auth_key = serve.result({"type": "soter.prepareAuthKey"}, touch="finger-a")
    assert auth_key["keyStore"] == key_store
    key_json = json.loads(auth_key["keyJson"])
    assert list(key_json) == ["pub_key", "cpu_id", "counter", "uid"] and key_json["uid"] == CALLER
    assert cryptography_verify(key_json["pub_key"], auth_key["keyJson"], auth_key["keyJsonSignature"], 20)

    backend = rp.browser()
    bearer = {"authorization": f"Bearer {API_TOKEN}"}
    registered = backend.ok("POST", "/api/soter/devices",
                            {"keyJson": auth_key["keyJson"], "keyJsonSignature": auth_key["keyJsonSignature"]},
                            headers=bearer)
    assert registered["counter"] == key_json["counter"]

    challenge = backend.ok("POST", "/api/soter/challenge", {"uid": CALLER}, headers=bearer)["challenge"]
    result = soter_start(serve, challenge)
    assert result["errCode"] == 0 and result["errMsg"] == "startSoterAuthentication:ok"
    fields = json.loads(result["resultJSON"])
    assert list(fields) == ["raw", "fid", "counter", "tee_n", "tee_v", "fp_n", "fp_v", "cpu_id", "uid"]
    assert fields["raw"] == challenge and fields["cpu_id"] == key_json["cpu_id"]
    assert fields["counter"] > key_json["counter"]
    # Independent check with `cryptography`: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 20 (and
    # not the digest-length salt a TPM's own PSS would use).
    assert cryptography_verify(key_json["pub_key"], result["resultJSON"], result["resultJSONSignature"], 20)
    assert not cryptography_verify(key_json["pub_key"], result["resultJSON"], result["resultJSONSignature"], 32)
    verified = backend.ok("POST", "/api/soter/verify",
                          {"resultJSON": result["resultJSON"], "resultJSONSignature": result["resultJSONSignature"]},
                          headers=bearer)
    assert verified["verified"] is True and verified["counter"] == fields["counter"]

    # Replayed: refused.
    replay = backend.post("/api/soter/verify", {"resultJSON": result["resultJSON"],
                                                "resultJSONSignature": result["resultJSONSignature"]},
                          headers=bearer)
    expect_error(replay, 403, "soter_counter_not_increasing")
    # Out of order: two results, the newer verified first; the older one is then refused.
    c1 = backend.ok("POST", "/api/soter/challenge", {}, headers=bearer)["challenge"]
    c2 = backend.ok("POST", "/api/soter/challenge", {}, headers=bearer)["challenge"]
    first = soter_start(serve, c1)
    second = soter_start(serve, c2)
    assert json.loads(second["resultJSON"])["counter"] > json.loads(first["resultJSON"])["counter"]
    backend.ok("POST", "/api/soter/verify", {"resultJSON": second["resultJSON"],
                                            "resultJSONSignature": second["resultJSONSignature"]}, headers=bearer)
    late = backend.post("/api/soter/verify", {"resultJSON": first["resultJSON"],
                                             "resultJSONSignature": first["resultJSONSignature"]}, headers=bearer)
    expect_error(late, 403, "soter_counter_not_increasing")
    # A wrong finger gets SOTER's "not recognised".
    err = serve.error({"type": "soter.startSoterAuthentication", "challenge": c1,
                       "requestAuthModes": ["fingerPrint"]}, touch="finger-b")
    assert err["errCode"] == 90009 and err["errMsg"] == "startSoterAuthentication:fail", err


def test_soter_result_verified_by_the_rp_and_by_cryptography(app, rp):
    soter_roundtrip(app(), rp, "software")


def test_soter_key_in_swtpm(app, rp, swtpm_factory, tmp_path):  # noqa: F811
    tcti = swtpm_factory("soter-tpm")
    serve = app(["--soter-key-store", "tpm", "--soter-tcti", tcti])
    soter_roundtrip(serve, rp, "tpm")
    stored = json.loads(next((tmp_path / "state" / "app").rglob("auth-key.json")).read_text())
    assert stored["key"]["backend"] == "tpm" and stored["key"]["private"]
    assert "sealed" not in stored["key"], "no software copy of the key"
    serve.close()
    # The same state next to another TPM: the wrapped key does not load there.
    other = app(["--soter-key-store", "tpm", "--soter-tcti", swtpm_factory("other-tpm")])
    err = other.error({"type": "soter.startSoterAuthentication", "challenge": "c",
                       "requestAuthModes": ["fingerPrint"]}, touch="finger-a")
    assert err["errCode"] == 90007 and "TPM" in err["detail"], err


def test_a_tpm_vault_does_not_open_from_a_copy_of_the_state_directory(app, spawn, swtpm_factory, tmp_path):  # noqa: F811
    """The vault key is the credential's hmac-secret output with UV, which the TPM computes: a
    copy of the state directory (device.key included) opens nothing, offline or next to another
    TPM, even with the right PIN or finger. The same offline attack opens a vault of the software
    key store (the control: the attack works)."""
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    # The control: software key store, the with-UV key is a software value in the record.
    soft_state = tmp_path / "soft-state"
    soft = app(state=soft_state)
    open_vault(soft, "soft", authMode="BiometricAndPasscode")
    soft.result({"type": "vault.storeValue", "vaultId": "soft", "key": "k", "value": "soft-secret"},
                touch="finger-a")
    soft.close()
    [soft_file] = vault_files(soft_state)
    assert open_vault_offline(soft_state, soft_file) == {"k": '"soft-secret"'}

    tcti = swtpm_factory("vault-tpm")
    state = tmp_path / "state"
    tpm_args = ["--key-store", "tpm", "--tcti", tcti, "--soter-key-store", "software"]
    authenticator = spawn(state_dir=state, extra=["--key-store", "tpm", "--tcti", tcti])
    ClientPin(Ctap2(authenticator.device())).set_pin("314159")
    authenticator.stop()
    pin_file = tmp_path / "pin"
    pin_file.write_text("314159\n")
    serve = app([*tpm_args, "--pin-file", str(pin_file)])
    open_vault(serve, "pin", authMode="PasscodeOnly")
    serve.result({"type": "vault.storeValue", "vaultId": "pin", "key": "k", "value": "pin-secret"})
    open_vault(serve, "finger", authMode="BiometricOnly")
    serve.result({"type": "vault.storeValue", "vaultId": "finger", "key": "k", "value": "finger-secret"},
                 touch="finger-a")
    serve.close()
    files = {header_vault_id(f): f for f in vault_files(state)}
    assert set(files) == {"pin", "finger"}

    # Offline, with every byte of every credential record: no key opens either vault.
    copy = tmp_path / "copied-state"
    shutil.copytree(state, copy)
    for vault_id, path in files.items():
        assert open_vault_offline(copy, copy / path.relative_to(state)) is None, vault_id

    # The copy next to another TPM, with the right PIN and the enrolled finger: still locked.
    other = app(["--key-store", "tpm", "--tcti", swtpm_factory("vault-other"), "--soter-key-store", "software",
                 "--pin-file", str(pin_file)], state=copy)
    assert open_vault(other, "pin")["isLocked"] is True
    # The PIN object does not load in that TPM (CTAP2_ERR_OTHER: the TPM judged no PIN).
    err = other.error({"type": "vault.unlock", "vaultId": "pin"})
    assert err["code"] == "Unknown" and "status 0x7f" in err["message"], err
    assert other.error({"type": "vault.getValue", "vaultId": "pin", "key": "k"})["code"] == "VaultLocked"
    open_vault(other, "finger")
    # The finger matches, but the credential's HMAC key does not load in that TPM.
    err = other.error({"type": "vault.unlock", "vaultId": "finger"}, touch="finger-a")
    assert err["code"] == "Unknown" and "status 0x7f" in err["message"], err
    assert other.result({"type": "vault.isLocked", "vaultId": "finger"}) is True
    other.close()

    # The original, on its own TPM, still unlocks both.
    again = app([*tpm_args, "--pin-file", str(pin_file)])
    open_vault(again, "pin")
    again.result({"type": "vault.unlock", "vaultId": "pin"})
    assert again.result({"type": "vault.getValue", "vaultId": "pin", "key": "k"}) == "pin-secret"
    open_vault(again, "finger")
    again.result({"type": "vault.unlock", "vaultId": "finger"}, touch="finger-a")
    assert again.result({"type": "vault.getValue", "vaultId": "finger", "key": "k"}) == "finger-secret"


def header_vault_id(path: Path) -> str:
    data = path.read_bytes()
    return cbor2.loads(data[12:12 + int.from_bytes(data[8:12], "big")])[2]


def test_the_pin_unlocks_when_the_sensor_locks_out_and_passcode_only_vaults(app, spawn, tmp_path):
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    state = tmp_path / "state"
    authenticator = spawn(state_dir=state)
    ClientPin(Ctap2(authenticator.device())).set_pin("314159")
    authenticator.stop()
    pin_file = tmp_path / "pin"
    pin_file.write_text("314159\n")
    serve = app(["--pin-file", str(pin_file), "--max-attempts", "2"])
    open_vault(serve, "both", authMode="BiometricAndPasscode")
    serve.result({"type": "vault.storeValue", "vaultId": "both", "key": "k", "value": "both"}, touch="finger-a")
    serve.result({"type": "vault.lock", "vaultId": "both"})
    assert serve.error({"type": "vault.unlock", "vaultId": "both"}, touch="finger-b")["code"] == "AuthFailed"
    # The second failed scan locks the sensor out (--max-attempts 2): the PIN unlocks instead.
    assert serve.result({"type": "vault.unlock", "vaultId": "both"}, touch="finger-b") is None
    assert serve.result({"type": "vault.getValue", "vaultId": "both", "key": "k"}) == "both"
    # The right PIN lifted the lockout: the finger works again.
    assert serve.result({"type": "biometric.checkStatus"})["isAvailable"] is True

    open_vault(serve, "pin", authMode="PasscodeOnly")
    serve.result({"type": "vault.storeValue", "vaultId": "pin", "key": "k", "value": 7})
    serve.result({"type": "vault.lock", "vaultId": "pin"})
    pin_file.write_text("000000\n")
    assert serve.error({"type": "vault.unlock", "vaultId": "pin"})["code"] == "AuthFailed"
    assert serve.result({"type": "vault.remainingAttempts", "vaultId": "pin"}) == 4
    pin_file.unlink()
    assert serve.error({"type": "vault.unlock", "vaultId": "pin"})["code"] == "UserCanceledInteraction"
    pin_file.write_text("314159\n")
    serve.result({"type": "vault.unlock", "vaultId": "pin"})
    assert serve.result({"type": "vault.getValue", "vaultId": "pin", "key": "k"}) == 7


def oneshot(fprint, state: Path, args: list[str], touch: str | None = None) -> tuple[int, dict]:  # noqa: F811
    """One `passgate app ...` command in its own process; touches the sensor while it runs."""
    cmd = [str(_binary()), "app", *args, "--state-dir", str(state), "--presence", "auto",
           "--user-verifier", "fprintd", "--fprint-user", "root", "--presence-timeout", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fprint["env"],
                            start_new_session=True)
    if touch is not None:
        for delay in (0.8, 2.5, 2.5):
            try:
                proc.wait(delay)
                break
            except subprocess.TimeoutExpired:
                scan(fprint["vdev"], touch)
    out, err = proc.communicate(timeout=30)
    assert out, err.decode(errors="replace")
    return proc.returncode, json.loads(out)


def test_the_one_shot_commands_work_across_processes(fprint, spawn, tmp_path):  # noqa: F811
    _enroll(fprint, "finger-a")
    state = tmp_path / "state"
    code, status = oneshot(fprint, state, ["biometric", "status", "--caller", "com.example.cli"])
    assert (code, status) == (0, {"result": {"isAvailable": True, "biometryType": "Fingerprint"}})
    code, stored = oneshot(fprint, state, ["vault", "store", "--caller", "com.example.cli", "--vault-id", "v",
                                           "token", '"t-42"'], touch="finger-a")
    assert (code, stored["result"]) == (0, None), stored
    assert [(e["event"], e["vaultId"], e["username"]) for e in stored["events"]] == [("unlock", "v", "user")], stored
    code, status = oneshot(fprint, state, ["vault", "status", "--caller", "com.example.cli", "--vault-id", "v"])
    assert code == 0 and status["result"]["isLocked"] is True and status["result"]["isInUse"] is True
    code, got = oneshot(fprint, state, ["vault", "get", "--caller", "com.example.cli", "--vault-id", "v", "token"],
                        touch="finger-a")
    assert (code, got["result"]) == (0, "t-42"), got
    code, refused = oneshot(fprint, state, ["vault", "get", "--caller", "com.example.cli", "--vault-id", "v",
                                            "token"], touch="finger-b")
    assert code == 1 and refused["error"]["code"] == "AuthFailed", refused
    code, keys = oneshot(fprint, state, ["vault", "keys", "--caller", "another.app", "--vault-id", "v"])
    assert (code, keys["result"]) == (0, []), "another caller's vault of the same ID is empty"

    challenge = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    code, proof = oneshot(fprint, state, ["biometric", "authenticate", "--caller", "com.example.cli",
                                          "--reason", "Sign in", "--challenge", challenge], touch="finger-a")
    assert code == 0 and proof["result"]["method"] == "biometric", proof
    key = proof["result"]["proof"]["key"]
    checked = verify_authentication_response(
        credential=proof["result"]["proof"]["credential"], expected_challenge=b64u_decode(challenge),
        expected_origin="com.example.cli", expected_rp_id=key["rpId"],
        credential_public_key=b64u_decode(key["publicKeyCose"]), credential_current_sign_count=0,
        require_user_verification=True)
    assert checked.user_verified

    code, prepared = oneshot(fprint, state, ["soter", "prepare", "--caller", "com.example.cli"], touch="finger-a")
    assert code == 0, prepared
    code, again = oneshot(fprint, state, ["soter", "auth-key", "--caller", "com.example.cli"])
    assert again["result"] == prepared["result"], "the prepared key is kept"
    pem = json.loads(prepared["result"]["keyJson"])["pub_key"]
    code, started = oneshot(fprint, state, ["soter", "start", "--caller", "com.example.cli", "--challenge", "order-9"],
                            touch="finger-a")
    assert code == 0, started
    result = started["result"]
    assert json.loads(result["resultJSON"])["raw"] == "order-9"
    assert cryptography_verify(pem, result["resultJSON"], result["resultJSONSignature"], 20)
    code, bad = oneshot(fprint, state, ["soter", "start", "--caller", "com.example.cli", "--challenge", "x" * 513])
    assert code == 1 and bad["error"]["errCode"] == 90004


def on_terminal(args: list[str], answer: str | None, timeout: float = 30) -> tuple[int, str]:
    """Runs `passgate app ...` on a pseudo-terminal, types `answer` at the PIN prompt (or
    nothing, for None)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.execv(str(_binary()), [str(_binary()), "app", *args])
    output = b""
    answered = False
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no end within {timeout} s: {output!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if not answered and answer is not None and b"an empty line cancels)" in output:
            time.sleep(0.2)  # let passgate turn echo off first
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_the_pin_is_asked_on_the_terminal_without_echo(spawn, tmp_path):
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    state = tmp_path / "state"
    authenticator = spawn(state_dir=state)
    ClientPin(Ctap2(authenticator.device())).set_pin("314159")
    authenticator.stop()
    common = ["--state-dir", str(state), "--presence", "auto", "--caller", "com.example.tty",
              "--vault-id", "p", "--auth-mode", "PasscodeOnly"]
    code, out = on_terminal(["vault", "store", *common, "k", '"kept"'], "314159")
    assert code == 0, out
    assert "com.example.tty asks for your passgate PIN.\r\nReason: open the vault “p” of user" in out, out
    assert "314159" not in out, f"the PIN was echoed: {out!r}"
    code, out = on_terminal(["vault", "get", *common, "k"], "271828")
    assert code == 1 and '"AuthFailed"' in out, out
    code, out = on_terminal(["vault", "get", *common, "k"], "")
    assert code == 1 and '"UserCanceledInteraction"' in out, out
    code, out = on_terminal(["vault", "get", *common, "k"], "314159")
    assert code == 0 and '"result": "kept"' in out, out
    assert "314159" not in out


def test_an_unanswered_terminal_pin_prompt_gives_up_after_the_timeout(spawn, tmp_path):
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    state = tmp_path / "state"
    authenticator = spawn(state_dir=state)
    ClientPin(Ctap2(authenticator.device())).set_pin("314159")
    authenticator.stop()
    common = ["--state-dir", str(state), "--presence", "auto", "--caller", "com.example.tty",
              "--vault-id", "p", "--auth-mode", "PasscodeOnly", "--presence-timeout", "2"]
    started = time.monotonic()
    code, out = on_terminal(["vault", "store", *common, "k", '"kept"'], None, timeout=20)
    took = time.monotonic() - started
    assert code == 1 and '"UserCanceledInteraction"' in out, out
    assert "nobody answered in time" in out, out
    assert took >= 2, f"gave up before the timeout: {took:.1f} s"
    stored = [p for p in (state / "app").rglob("*") if p.is_file() and "/vaults/" in str(p)]
    assert stored == [], f"nothing is stored without the PIN: {stored}"
