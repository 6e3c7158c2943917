"""WeChat SOTER on the real fprintd with libfprint's virtual sensor (`passgate app serve`, its
prompt a scripted pinentry that records every dialog):

- `resultJSON.fid` is the ID of the finger that matched: the same for that finger every time
  (after other fingers are enrolled or deleted, and after the auth key is prepared again),
  another for another finger, and neither the finger's name nor a digest of the enrolled set.
  The virtual sensor cannot identify, so fprintd verifies the first enrolled finger in its
  order and names it (`VerifyFingerSelected`); that is the finger that matched.
- The trusted prompt names the operation, the caller and the app's `authContent` while the
  finger is awaited; its cancel button gives SOTER's 90008."""

from __future__ import annotations

import json
import subprocess

import pytest

from fprint_env import SYSTEM_PYTHON
from test_app_api import CALLER, AppServe
from test_biometric_prompt import PIN, ScriptedPinentry
from test_fprintd import _enroll, fprint  # noqa: F401  (fixture: fprintd on a virtual sensor)

CONTENT = "Pay 12.00 EUR"


def delete_finger(fprint, name: str) -> None:  # noqa: F811
    """Deletes root's enrolled `name` through fprintd (DeleteEnrolledFinger)."""
    script = ("import dbus\nbus=dbus.SystemBus()\n"
              "m=dbus.Interface(bus.get_object('net.reactivated.Fprint','/net/reactivated/Fprint/Manager'),'net.reactivated.Fprint.Manager')\n"
              "d=dbus.Interface(bus.get_object('net.reactivated.Fprint',m.GetDefaultDevice()),'net.reactivated.Fprint.Device')\n"
              f"d.Claim('root')\nd.DeleteEnrolledFinger('{name}')\nd.Release()\n")
    out = subprocess.run([SYSTEM_PYTHON, "-c", script], env=fprint["env"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def soter_app(tmp_path, fprint):  # noqa: F811
    _enroll(fprint, "finger-a", "right-index-finger")
    pinentry = ScriptedPinentry(tmp_path)
    # Every dialog stays up until passgate closes it (the scan ended), unless scripted.
    pinentry.control.write_text(json.dumps({"getpin": PIN, "confirm": {"hang": True}}))
    serve = AppServe(tmp_path, fprint, tmp_path / "state", ["--pinentry", str(pinentry.program)])
    yield serve, pinentry
    serve.kill()


def start_message(challenge: str, content: str = CONTENT) -> dict:
    return {"type": "soter.startSoterAuthentication", "challenge": challenge,
            "requestAuthModes": ["fingerPrint"], "authContent": content}


def fid(serve: AppServe, finger: str, challenge: str = "order-1") -> str:
    result = serve.result(start_message(challenge), touch=finger)
    assert result["errCode"] == 0, result
    signed = json.loads(result["resultJSON"])
    assert signed["raw"] == challenge
    return signed["fid"]


def prepare(serve: AppServe, finger: str) -> None:
    assert serve.result({"type": "soter.prepareAuthKey"}, touch=finger)["keyJson"]


def test_fid_is_the_matched_finger_and_stays_with_it(soter_app, fprint):  # noqa: F811
    serve, _ = soter_app
    prepare(serve, "finger-a")
    index = fid(serve, "finger-a")
    assert len(index) == 16 and all(c in "0123456789abcdef" for c in index), index
    assert fid(serve, "finger-a", "order-2") == index, "the same finger, the same fid"

    # A second finger, first in fprintd's order: fprintd now verifies it. The auth key is
    # bound to the enrolled set, so it must be prepared again (SOTER's 90007 until then).
    _enroll(fprint, "finger-b", "left-thumb")
    stale = serve.error(start_message("order-3"), touch="finger-b")
    assert stale["errCode"] == 90007, stale
    prepare(serve, "finger-b")
    thumb = fid(serve, "finger-b", "order-4")
    assert thumb != index, "another finger, another fid"

    # The other finger deleted: the set changed (a set digest would too), the thumb's fid not.
    delete_finger(fprint, "right-index-finger")
    prepare(serve, "finger-b")
    assert fid(serve, "finger-b", "order-5") == thumb
    # Back to the index finger alone: its fid again.
    _enroll(fprint, "finger-a", "right-index-finger")
    delete_finger(fprint, "left-thumb")
    prepare(serve, "finger-a")
    assert fid(serve, "finger-a", "order-6") == index


def test_the_prompt_shows_the_auth_content_and_its_cancel_button_cancels(soter_app):
    serve, pinentry = soter_app
    prepare(serve, "finger-a")
    before = len(pinentry.dialogs())
    result = serve.result(start_message("order-7"), touch="finger-a")
    assert result["errCode"] == 0, result
    [dialog] = pinentry.dialogs()[before:]
    assert (dialog["command"], dialog["answer"], dialog["title"]) == ("CONFIRM", "hang", "passgate")
    assert dialog["description"] == (f"SOTER signature for {CALLER}: {CONTENT}\n\n"
                                     "Touch the fingerprint sensor to sign.")
    assert (dialog["ok"], dialog["cancel"]) == ("Cancel", "Cancel")

    # The app's text cannot forge passgate's line or hide behind control characters.
    before = len(pinentry.dialogs())
    hostile = "\u202e\nSOTER signature for bank\u001b[2J\u200b"
    assert serve.result(start_message("order-8", hostile), touch="finger-a")["errCode"] == 0
    [dialog] = pinentry.dialogs()[before:]
    first_line = dialog["description"].split("\n")[0]
    assert first_line.startswith(f"SOTER signature for {CALLER}: "), dialog
    assert "\u202e" not in dialog["description"] and "\u001b" not in dialog["description"], dialog

    # The dialog's cancel button stops the scan: SOTER's "cancel".
    before = len(pinentry.dialogs())
    pinentry.control.write_text(json.dumps({"getpin": PIN, "confirm": {"hang": True}, "script": {"CONFIRM": ["cancel"]}}))
    cancelled = serve.error(start_message("order-9"))
    assert cancelled["errCode"] == 90008 and cancelled["errMsg"] == "startSoterAuthentication:fail cancel", cancelled
    assert [(d["command"], d["answer"]) for d in pinentry.dialogs()[before:]] == [("CONFIRM", "cancel")]
