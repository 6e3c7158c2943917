"""WeChat's and Taro's documented SOTER snippets (web-demo/site/seed/soter.html), unchanged, in
headless Chromium through the webview shim, against `passgate demo` whose authenticator
verifies by the real fprintd on libfprint's virtual sensor (issue 24's fingerprint half; the
Chromium suite runs the same page on a demo without a sensor).

The page pairs with the demo's local bridge, asks once for the device key (WeChat makes it by
itself; on passgate it is `passgateSoter.prepareAuthKey`), then runs the six snippets. Their
documented results must come out: support `['fingerPrint']`, `isEnrolled: true`, and
`startSoterAuthentication` succeeding with a `resultJSON` over the snippet's challenge, signed
by the prepared key (RSASSA-PSS, salt 20, checked here by `cryptography`), each signature
awaited in passgate's dialog naming the page and the snippet's `authContent`."""

import base64
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from test_demo_fingerprint import Demo
from test_fprintd import _enroll, fprint  # noqa: F401  (fixture: fprintd on a private bus)

REPO = Path(__file__).resolve().parents[2]
WEB_DEMO = REPO / "web-demo"
DRIVER = WEB_DEMO / "tests" / "soter-fingerprint-snippets.mjs"


def _web_demo_node_modules():
    """playwright-core from web-demo's lockfile (the browser suite installs the same)."""
    if not (WEB_DEMO / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB_DEMO, check=True,
                       capture_output=True, timeout=300)


class _Finger(threading.Thread):
    """Puts `finger` on the virtual sensor every 0.25 s while `wanted()` is true."""

    def __init__(self, vdev, finger, wanted):
        super().__init__(daemon=True)
        self.vdev, self.finger, self.wanted, self.done = vdev, finger, wanted, threading.Event()

    def run(self):
        import socket
        while not self.done.wait(0.25):
            if not self.wanted():
                continue
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.vdev))
                    s.sendall(f"SCAN {self.finger}".encode())
            except OSError:
                pass


@pytest.mark.skipif(shutil.which("node") is None or not Path("/usr/bin/chromium").exists(),
                    reason="needs node and Chromium (the python suite's packages)")
def test_wechat_and_taro_soter_snippets_sign_with_a_real_finger(fprint, tmp_path):  # noqa: F811
    _web_demo_node_modules()
    _enroll(fprint, "finger-a")
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"])
    demo = Demo(tmp_path, env)
    # Every SOTER dialog stays open until the finger closes it (an answered CONFIRM cancels).
    demo.control.write_text(json.dumps({"getpin": "482916", "confirm": "ok",
                                        "script": {"CONFIRM": [{"hang": True}, {"hang": True}]}}))
    step = {"now": None}

    def soter_dialogs():
        return [d for d in demo.dialogs() if d.get("description", "").startswith("SOTER signature for ")]

    def wanted():
        # The key is made with a scan and no dialog; a signature's scan starts only once its
        # dialog is up, so what the dialog shows is asserted, not raced.
        if step["now"] == "prepare":
            return True
        return step["now"] == "snippets" and len(soter_dialogs()) > 0

    finger = _Finger(fprint["vdev"], "finger-a", wanted)
    finger.start()
    try:
        driver = subprocess.Popen(
            ["node", str(DRIVER)], cwd=WEB_DEMO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, DEMO_BASE=demo.origin, BRIDGE_URL=demo.bridge, PAIRING_CODE=demo.code))
        lines = []
        for line in driver.stdout:
            lines.append(line)
            if line.startswith("step "):
                step["now"] = line.split()[1]
        driver.wait(timeout=30)
        stderr = driver.stderr.read()
    finally:
        finger.done.set()
        finger.join()
        demo.stop()
    results = [l for l in lines if l.startswith("result ")]
    assert driver.returncode == 0 and results, "".join(lines) + stderr
    outcome = json.loads(results[0][len("result "):])

    how, auth_key = outcome["prepared"]
    assert how == "resolved", auth_key
    public_key = serialization.load_pem_public_key(json.loads(auth_key["keyJson"])["pub_key"].encode())
    seen = outcome["seen"]
    for ns in ("wx", "Taro"):
        support = {"errMsg": "checkIsSupportSoterAuthentication:ok", "supportMode": ["fingerPrint"]}
        assert seen[f"{ns}.checkIsSupportSoterAuthentication"] == [["success", support], ["complete", support]], ns
        enrolled = {"errMsg": "checkIsSoterEnrolledInDevice:ok", "isEnrolled": True}
        assert seen[f"{ns}.checkIsSoterEnrolledInDevice"] == [["success", enrolled], ["complete", enrolled]], ns
        calls = seen[f"{ns}.startSoterAuthentication"]
        assert [kind for kind, _ in calls] == ["success", "complete"], calls
        result = calls[0][1]
        assert calls[1][1] == result and seen[f"{ns}.startSoterAuthentication.promise"] == ["resolved", result]
        assert result["errCode"] == 0 and result["errMsg"] == "startSoterAuthentication:ok", result
        assert result["authMode"] == "fingerPrint", result
        signed = json.loads(result["resultJSON"])
        # The snippet's challenge is the business string signed as `raw`; fid names the finger.
        assert signed["raw"] == "123456" and signed["uid"] == demo.origin, signed
        assert re.fullmatch(r"[0-9a-f]{16}", signed["fid"]), signed
        public_key.verify(base64.b64decode(result["resultJSONSignature"]), result["resultJSON"].encode(),
                          padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256())
    wx_signed = json.loads(seen["wx.startSoterAuthentication"][0][1]["resultJSON"])
    taro_signed = json.loads(seen["Taro.startSoterAuthentication"][0][1]["resultJSON"])
    assert wx_signed["fid"] == taro_signed["fid"], "one finger, one fid"
    assert int(taro_signed["counter"]) > int(wx_signed["counter"]), (wx_signed, taro_signed)
    # The two enrolled-check snippets log isEnrolled.
    assert outcome["logged"].count("true") == 2, outcome["logged"]
    # Each signature was awaited in passgate's dialog: the page and the snippet's authContent.
    dialogs = [d for d in demo.dialogs() if d.get("description", "").startswith("SOTER signature for ")]
    assert len(dialogs) >= 1, demo.dialogs()
    for d in dialogs:
        assert d["description"] == (f"SOTER signature for {demo.origin}: 请用指纹解锁\n\n"
                                    "Touch the fingerprint sensor to sign."), d
