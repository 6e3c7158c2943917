"""`passgate demo` verifying users by fingerprint: the real fprintd on libfprint's virtual
sensor (private system bus, polkit mocked), the demo's in-process authenticator behind its local
HTTP bridge, and the demo's relying party. With a finger enrolled, `--user-verifier auto` picks
fprintd; a matching scan verifies the user with no PIN typed, a foreign finger verifies nobody.
py_webauthn checks the registration and the assertion independently of passgate.

The app APIs ride the same bridge, on the same authenticator: a biometric proof (py_webauthn
and the RP's /api/verify/assertion check it), a BiometricOnly vault, and a SOTER result that
the demo RP's /api/soter/verify accepts once and `cryptography` checks (RSASSA-PSS, salt 20)."""

import base64
import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from webauthn import verify_authentication_response, verify_registration_response

from conftest import _binary
from test_fprintd import _Scanner, _enroll, fprint  # noqa: F401  (fixture: fprintd on a private bus)

REPO = Path(__file__).resolve().parents[2]
SCRIPTED_PINENTRY = REPO / "testkit" / "scripted-pinentry.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, tmp_path, env):
        self.port = _free_port()
        self.origin = f"http://localhost:{self.port}"
        control = tmp_path / "pinentry.json"
        control.write_text(json.dumps({"getpin": "482916", "confirm": "ok"}))
        self.control = control
        self.pinentry_log = tmp_path / "pinentry.jsonl"
        program = tmp_path / "pinentry"
        program.write_text(f"#!/bin/sh\nexec {sys.executable} '{SCRIPTED_PINENTRY}' --control '{control}' --log '{self.pinentry_log}'\n")
        program.chmod(0o755)
        self.proc = subprocess.Popen(
            [str(_binary()), "demo", "--listen", f"127.0.0.1:{self.port}", "--bridge-listen", "127.0.0.1:0",
             "--state-dir", str(tmp_path / "demo"), "--static-dir", str(REPO / "web-demo" / "site"),
             "--prompt", "pinentry", "--pinentry", str(program), "--user-verifier", "auto", "--fprint-user", "root"],
            env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "demo.log", "wb"), text=True)
        self.output = []
        deadline = time.time() + 30
        while not any(line.startswith("Stop with Ctrl-C") for line in self.output):
            assert time.time() < deadline, "passgate demo did not start:\n" + "".join(self.output)
            line = self.proc.stdout.readline()
            assert line, "passgate demo exited:\n" + "".join(self.output) + (tmp_path / "demo.log").read_text()
            self.output.append(line)
        text = "".join(self.output)
        self.bridge = next(l.split("local bridge: ")[1].strip() for l in self.output if "local bridge: " in l)
        self.code = next(l.split("pairing code: ")[1].strip() for l in self.output if "pairing code: " in l)
        self.api_token = next(l.split("backend API token: ")[1].strip() for l in self.output if "backend API token: " in l)
        self.text = text
        self.rp = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.token = None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def dialogs(self):
        if not self.pinentry_log.exists():
            return []
        return [json.loads(l) for l in self.pinentry_log.read_text().splitlines() if l]

    def bridge_post(self, path, body, token=None):
        headers = {"Origin": self.origin, "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.bridge}{path}", data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def message(self, body):
        return self.bridge_post("/v1/message", body, self.token)

    def app(self, body):
        """An app-API message through the bridge: the app router's reply (`result` or `error`)."""
        reply = self.message(body)
        assert reply["ok"] is True, reply
        return reply["result"]

    def rp_post(self, path, body, bearer=None):
        headers = {"Content-Type": "application/json", "Host": f"localhost:{self.port}"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        try:
            with self.rp.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def _b64(data: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def test_the_demo_verifies_by_fingerprint_through_its_local_bridge(fprint, tmp_path):  # noqa: F811
    _enroll(fprint, "finger-a")
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"])
    demo = Demo(tmp_path, env)
    try:
        assert "User verification: fingerprint (fprintd), PIN as fallback" in demo.text, demo.text
        demo.token = demo.bridge_post("/v1/pair", {"code": demo.code})["token"]
        assert demo.message({"type": "isUvpaa", "requestId": 1})["result"] is True

        status, options = demo.rp_post("/api/register/options", {"username": "fp-demo", "displayName": "FP Demo"})
        assert status == 200, options
        assert options["authenticatorSelection"]["userVerification"] == "required"
        with _Scanner(fprint["vdev"], "finger-a"):
            reply = demo.message({"type": "create", "requestId": "c", "options": options})
        assert reply["ok"] is True, reply
        credential = reply["result"]
        flags = _b64(credential["response"]["authenticatorData"])[32]
        assert flags & 0x05 == 0x05, "UP and UV from the scan"
        # The finger was the deliberate act and the verification: no PIN, no extra approval.
        assert demo.dialogs() == []
        client_data = json.loads(_b64(credential["response"]["clientDataJSON"]))
        assert client_data["origin"] == demo.origin
        verified = verify_registration_response(credential=json.dumps(credential), expected_challenge=_b64(options["challenge"]),
                                                expected_origin=demo.origin, expected_rp_id="localhost",
                                                require_user_verification=True)
        status, registered = demo.rp_post("/api/register/verify", credential)
        assert status == 200, registered
        assert registered["credential"]["authenticator"] == "passgate"

        status, login = demo.rp_post("/api/login/options", {"username": "fp-demo"})
        assert status == 200, login
        with _Scanner(fprint["vdev"], "finger-a"):
            reply = demo.message({"type": "get", "requestId": "g", "options": login})
        assert reply["ok"] is True, reply
        checked = verify_authentication_response(credential=json.dumps(reply["result"]), expected_challenge=_b64(login["challenge"]),
                                                 expected_origin=demo.origin, expected_rp_id="localhost",
                                                 credential_public_key=verified.credential_public_key,
                                                 credential_current_sign_count=0, require_user_verification=True)
        assert checked.user_verified is True
        status, verdict = demo.rp_post("/api/login/verify", reply["result"])
        assert status == 200, verdict
        assert verdict["verdict"]["userVerified"] is True

        # A finger that is not enrolled verifies nobody: no assertion.
        status, login = demo.rp_post("/api/login/options", {"username": "fp-demo"})
        with _Scanner(fprint["vdev"], "finger-b"):
            reply = demo.message({"type": "get", "requestId": "w", "options": login})
        assert reply["ok"] is False, reply
        assert reply["error"]["name"] == "NotAllowedError"
        assert demo.dialogs() == []
    finally:
        demo.stop()


def test_the_demo_serves_the_app_apis_on_its_authenticator_with_a_real_finger(fprint, tmp_path):  # noqa: F811
    _enroll(fprint, "finger-a")
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"])
    demo = Demo(tmp_path, env)
    try:
        demo.token = demo.bridge_post("/v1/pair", {"code": demo.code})["token"]
        assert demo.app({"type": "biometric.checkStatus", "requestId": 1}) == \
            {"result": {"isAvailable": True, "biometryType": "Fingerprint"}}

        # A proof over the backend's challenge, by a matching finger. The first prompt approves
        # making the proof key; the second is the dialog shown while the finger is awaited
        # (left open: the match closes it).
        demo.control.write_text(json.dumps({"getpin": "482916", "confirm": "ok",
                                            "script": {"CONFIRM": ["ok", {"hang": True}, {"hang": True}]}}))
        challenge = os.urandom(32)
        with _Scanner(fprint["vdev"], "finger-a"):
            done = demo.app({"type": "biometric.authenticate", "requestId": 2, "reason": "Sign in",
                             "options": {"challenge": base64.urlsafe_b64encode(challenge).rstrip(b"=").decode()}})
        assert done["result"]["method"] == "biometric", done
        proof = done["result"]["proof"]
        key = proof["key"]
        assert key["origin"] == demo.origin and key["rpId"] == f"passgate-app:{demo.origin}"
        checked = verify_authentication_response(
            credential=proof["credential"], expected_challenge=challenge, expected_origin=demo.origin,
            expected_rp_id=key["rpId"], credential_public_key=_b64(key["publicKeyCose"]),
            credential_current_sign_count=0, require_user_verification=True)
        assert checked.user_verified is True
        status, verdict = demo.rp_post("/api/verify/assertion", {
            "credential": {"id": key["credentialId"], "publicKey": key["publicKeyCose"], "signCount": 0,
                           "userHandle": proof["credential"]["response"]["userHandle"]},
            "response": proof["credential"], "expectedChallenge": proof["challenge"],
            "expectedOrigins": [demo.origin], "expectedRpId": key["rpId"]}, bearer=demo.api_token)
        assert status == 200 and verdict["verdict"]["userVerified"] is True, verdict
        with _Scanner(fprint["vdev"], "finger-b"):
            refused = demo.app({"type": "biometric.authenticate", "requestId": 3, "reason": "Sign in",
                                "options": {"maxAttempts": 1}})
        assert refused["error"]["code"] == "authenticationFailed", refused

        # A BiometricOnly vault: written and reopened by the finger, refused to another one.
        assert "error" not in demo.app({"type": "vault.open", "vaultId": "s", "username": "fp",
                                        "authMode": "BiometricOnly"})
        with _Scanner(fprint["vdev"], "finger-a"):
            stored = demo.app({"type": "vault.storeValue", "vaultId": "s", "key": "k", "value": "kept"})
        assert stored["result"] is None, stored
        [unlocked] = stored["events"]
        assert (unlocked["event"], unlocked["vaultId"], unlocked["username"]) == ("unlock", "s", "fp"), stored
        assert unlocked["config"]["authMode"] == "BiometricOnly", stored
        assert unlocked["config"]["descriptor"] == {"username": "fp", "vaultId": "s"}, stored
        demo.app({"type": "vault.lock", "vaultId": "s"})
        with _Scanner(fprint["vdev"], "finger-b"):
            wrong = demo.app({"type": "vault.unlock", "vaultId": "s"})
        assert wrong["error"]["code"] == "AuthFailed", wrong
        with _Scanner(fprint["vdev"], "finger-a"):
            assert "error" not in demo.app({"type": "vault.unlock", "vaultId": "s"})
        assert demo.app({"type": "vault.getValue", "vaultId": "s", "key": "k"})["result"] == "kept"

        # SOTER: the device key registered with the demo RP, a result verified there once.
        assert demo.app({"type": "soter.checkIsSupportSoterAuthentication"})["result"]["supportMode"] == ["fingerPrint"]
        with _Scanner(fprint["vdev"], "finger-a"):
            auth_key = demo.app({"type": "soter.prepareAuthKey"})["result"]
        status, registered = demo.rp_post("/api/soter/devices", {"keyJson": auth_key["keyJson"],
                                                                 "keyJsonSignature": auth_key["keyJsonSignature"]},
                                          bearer=demo.api_token)
        assert status == 200 and registered["uid"] == demo.origin, registered
        status, issued = demo.rp_post("/api/soter/challenge", {"uid": demo.origin}, bearer=demo.api_token)
        assert status == 200, issued
        # The dialog shown while the finger is awaited names the operation, the page and the
        # authContent (left open: the match closes it).
        # The finger is put on the sensor only once the dialog is up: what it shows is asserted.
        demo.control.write_text(json.dumps({"getpin": "482916", "confirm": "ok", "script": {"CONFIRM": [{"hang": True}]}}))
        shown = len(demo.dialogs())
        with _Scanner(fprint["vdev"], "finger-a", after=lambda: len(demo.dialogs()) > shown):
            result = demo.app({"type": "soter.startSoterAuthentication", "challenge": issued["challenge"],
                               "requestAuthModes": ["fingerPrint"], "authContent": "Pay 12.00 EUR"})["result"]
        signed = json.loads(result["resultJSON"])
        assert signed["raw"] == issued["challenge"] and signed["uid"] == demo.origin
        pem = json.loads(auth_key["keyJson"])["pub_key"]
        serialization.load_pem_public_key(pem.encode()).verify(
            base64.b64decode(result["resultJSONSignature"]), result["resultJSON"].encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256())
        body = {"resultJSON": result["resultJSON"], "resultJSONSignature": result["resultJSONSignature"]}
        status, verified = demo.rp_post("/api/soter/verify", body, bearer=demo.api_token)
        assert status == 200 and verified["verified"] is True and verified["counter"] == signed["counter"], verified
        status, replay = demo.rp_post("/api/soter/verify", body, bearer=demo.api_token)
        assert status == 403 and replay["error"]["code"] == "soter_counter_not_increasing", replay
        status, anonymous = demo.rp_post("/api/soter/verify", body)
        assert status == 401 and anonymous["error"]["code"] == "invalid_api_token", anonymous

        # The finger was every verification: no PIN asked. One prompt approved making the proof
        # key (made without verification, usable only with it); the two biometric checks and the
        # SOTER signature each showed a dialog naming the page while the finger was awaited,
        # closed by the scan.
        dialogs = demo.dialogs()
        assert [(d["command"], d["answer"]) for d in dialogs] == [
            ("CONFIRM", "ok"), ("CONFIRM", "hang"), ("CONFIRM", "hang"), ("CONFIRM", "hang")], dialogs
        assert dialogs[3]["description"] == (
            f"SOTER signature for {demo.origin}: Pay 12.00 EUR\n\nTouch the fingerprint sensor to sign."), dialogs
        assert dialogs[0]["description"].startswith(
            f"The page {demo.origin} asks to create a key as \u201cproof key\u201d for its biometric checks or vault."), dialogs
        assert dialogs[1]["description"].startswith(
            f"{demo.origin} asks you to verify with your fingerprint.\nReason: Sign in\n"), dialogs
    finally:
        demo.stop()
