"""`passgate demo` verifying users by fingerprint: the real fprintd on libfprint's virtual
sensor (private system bus, polkit mocked), the demo's in-process authenticator behind its local
HTTP bridge, and the demo's relying party. With a finger enrolled, `--user-verifier auto` picks
fprintd; a matching scan verifies the user with no PIN typed, a foreign finger verifies nobody.
py_webauthn checks the registration and the assertion independently of passgate."""

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

from webauthn import verify_authentication_response, verify_registration_response

from conftest import _binary
from test_fprintd import _Scanner, _enroll, fprint  # noqa: F401  (fixture: fprintd on a private bus)

REPO = Path(__file__).resolve().parents[2]
SCRIPTED_PINENTRY = REPO / "bridge" / "tests" / "scripted-pinentry.py"


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

    def rp_post(self, path, body):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "Host": f"localhost:{self.port}"},
                                         method="POST")
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
