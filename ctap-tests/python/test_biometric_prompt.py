"""Tauri's biometric options shape passgate's trusted dialogs around a real fingerprint scan:
`passgate app serve` on the real fprintd with libfprint's virtual sensor, its prompt a scripted
pinentry (the Assuan protocol GnuPG's pinentry programs speak) that records every dialog.

- While the finger is awaited, a dialog shows passgate's line naming the caller, the app's
  reason and subtitle, its title, its cancel label and its fallback label.
- `confirmationRequired: true` asks for a confirmation after the match; `false` (and the
  default) completes on the match.
- The fallback button gives `userFallback` without `allowDeviceCredential`, the PIN with it;
  the cancel button gives `userCancel`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_app_api import CALLER, AppServe
from test_fprintd import _enroll, fprint  # noqa: F401  (fixture: fprintd on a virtual sensor)

SCRIPTED_PINENTRY = Path(__file__).resolve().parents[2] / "testkit" / "scripted-pinentry.py"
PIN = "482916"
OPTIONS = {"title": "Shop", "subtitle": "Order 66", "cancelTitle": "Not now", "fallbackTitle": "Type my PIN"}
REASON = "Pay 12.00 EUR"
HEAD = f"{CALLER} asks you to verify with your fingerprint.\nReason: {REASON}\nOrder 66\n\n"


class ScriptedPinentry:
    def __init__(self, tmp_path: Path):
        self.control = tmp_path / "pinentry.json"
        self.log = tmp_path / "pinentry.jsonl"
        self.program = tmp_path / "pinentry"
        self.program.write_text(
            f"#!/bin/sh\nexec {sys.executable} '{SCRIPTED_PINENTRY}' --control '{self.control}' --log '{self.log}'\n")
        self.program.chmod(0o755)
        self.script({})

    def script(self, script: dict) -> None:
        self.control.write_text(json.dumps({"getpin": PIN, "confirm": "cancel", "script": script}))

    def dialogs(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def prompted(tmp_path, fprint):  # noqa: F811
    _enroll(fprint, "finger-a")
    pinentry = ScriptedPinentry(tmp_path)
    serve = AppServe(tmp_path, fprint, tmp_path / "state", ["--pinentry", str(pinentry.program)])
    yield serve, pinentry
    serve.kill()


def authenticate(serve: AppServe, options: dict, touch: str | None = "finger-a") -> dict:
    return serve.call({"type": "biometric.authenticate", "reason": REASON, "options": {**OPTIONS, **options}},
                      touch=touch)


def new_dialogs(pinentry: ScriptedPinentry, before: int) -> list[dict]:
    return pinentry.dialogs()[before:]


def test_confirmation_required_asks_after_the_match_and_false_completes_on_it(prompted):
    serve, pinentry = prompted
    # The first call creates the proof key (presence is automatic here): no dialog.
    pinentry.script({"CONFIRM": [{"hang": True}, "ok"]})
    done = authenticate(serve, {"confirmationRequired": True})
    assert done.get("result", {}).get("method") == "biometric", f"{done}\n{serve.log_tail()}"
    waiting, confirmation = pinentry.dialogs()
    # The dialog shown while the finger was awaited (closed by passgate once it matched).
    assert waiting["command"] == "CONFIRM" and waiting["answer"] == "hang"
    assert waiting["title"] == "Shop"
    assert waiting["description"] == HEAD + "Touch the fingerprint sensor to confirm it is you."
    assert (waiting["ok"], waiting["cancel"]) == ("Type my PIN", "Not now")
    # The confirmation after the match.
    assert (confirmation["command"], confirmation["answer"]) == ("CONFIRM", "ok")
    assert confirmation["title"] == "Shop"
    assert confirmation["description"] == HEAD + "Your fingerprint was recognised. Confirm to continue."
    assert (confirmation["ok"], confirmation["cancel"]) == ("Confirm", "Not now")

    # Declined after the match: userCancel, although the finger matched.
    before = len(pinentry.dialogs())
    pinentry.script({"CONFIRM": [{"hang": True}, "cancel"]})
    refused = authenticate(serve, {"confirmationRequired": True})
    assert refused.get("error", {}).get("code") == "userCancel", refused
    assert [(d["command"], d["answer"]) for d in new_dialogs(pinentry, before)] == [
        ("CONFIRM", "hang"), ("CONFIRM", "cancel")]

    # false, and the default: the match completes the call; only the waiting dialog was shown.
    for options in ({"confirmationRequired": False}, {}):
        before = len(pinentry.dialogs())
        pinentry.script({"CONFIRM": [{"hang": True}]})
        direct = authenticate(serve, options)
        assert direct.get("result", {}).get("method") == "biometric", f"{options}: {direct}"
        assert [(d["command"], d["answer"]) for d in new_dialogs(pinentry, before)] == [("CONFIRM", "hang")]


def test_the_fallback_and_cancel_buttons_stop_the_scan(prompted):
    serve, pinentry = prompted
    # Without allowDeviceCredential the fallback button is the app's: userFallback.
    pinentry.script({"CONFIRM": ["ok"]})
    fallback = authenticate(serve, {"allowDeviceCredential": False}, touch=None)
    assert fallback.get("error", {}).get("code") == "userFallback", f"{fallback}\n{serve.log_tail()}"
    # The cancel button: userCancel.
    before = len(pinentry.dialogs())
    pinentry.script({"CONFIRM": ["cancel"]})
    cancelled = authenticate(serve, {}, touch=None)
    assert cancelled.get("error", {}).get("code") == "userCancel", cancelled
    assert [(d["command"], d["answer"], d["cancel"]) for d in new_dialogs(pinentry, before)] == [
        ("CONFIRM", "cancel", "Not now")]
    # An empty fallbackTitle without the PIN hides the fallback: both buttons cancel.
    before = len(pinentry.dialogs())
    pinentry.script({"CONFIRM": ["ok"]})
    hidden = authenticate(serve, {"fallbackTitle": ""}, touch=None)
    assert hidden.get("error", {}).get("code") == "userCancel", hidden
    assert [(d["ok"], d["cancel"]) for d in new_dialogs(pinentry, before)] == [("Not now", "Not now")]

    # With allowDeviceCredential the fallback button leads to the PIN: passgate has none yet,
    # so the person chooses one (typed twice) in the same prompt, and the call succeeds by PIN.
    before = len(pinentry.dialogs())
    pinentry.script({"CONFIRM": ["ok"]})
    by_pin = authenticate(serve, {"allowDeviceCredential": True}, touch=None)
    assert by_pin.get("result", {}).get("method") == "passcode", f"{by_pin}\n{serve.log_tail()}"
    shown = new_dialogs(pinentry, before)
    assert [(d["command"], d["answer"]) for d in shown] == [("CONFIRM", "ok"), ("GETPIN", "pin"), ("GETPIN", "pin")]
    assert shown[0]["ok"] == "Type my PIN"
    # Once a PIN is set, the fallback's PIN dialog carries the app's title, subtitle and cancel
    # label under passgate's line.
    before = len(pinentry.dialogs())
    pinentry.script({"CONFIRM": ["ok"]})
    again = authenticate(serve, {"allowDeviceCredential": True}, touch=None)
    assert again.get("result", {}).get("method") == "passcode", f"{again}\n{serve.log_tail()}"
    waiting, pin = new_dialogs(pinentry, before)
    assert (waiting["command"], waiting["answer"], waiting["ok"]) == ("CONFIRM", "ok", "Type my PIN")
    assert (pin["command"], pin["answer"], pin["title"], pin["cancel"], pin["ok"]) == (
        "GETPIN", "pin", "Shop", "Not now", "Verify")
    assert pin["description"] == (f"{CALLER} asks for your passgate PIN.\nReason: {REASON}\nOrder 66\n\n"
                                  "Enter the PIN to confirm it is you.")
