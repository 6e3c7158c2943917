#!/usr/bin/env python3
"""A scripted pinentry for passgate's tests: a real Assuan speaker (the protocol GnuPG's
pinentry programs speak) that stands in for the person at the prompt.

    scripted-pinentry.py --control CONTROL.json --log LOG.jsonl

CONTROL.json says how to answer, and is read afresh for every dialog (every run):

    {"getpin": "482916",            # default GETPIN answer: a PIN, or "cancel"
     "confirm": "ok",               # default CONFIRM answer: "ok", "cancel" or "notok"
     "script": {"GETPIN": [...], "CONFIRM": [...]}}   # answers used first, one per dialog

A scripted answer may also be {"answer": ..., "delay_ms": N} or {"hang": true} (never answers:
for cancellation tests, where passgate must kill this program). Each dialog appends one JSON
line to LOG.jsonl: the command, the texts passgate set (title, description, prompt, error,
buttons) and the answer given.
"""

import argparse
import fcntl
import json
import os
import sys
import time

CANCELLED = "ERR 83886179 Operation cancelled <Pinentry>"
NOT_CONFIRMED = "ERR 83886194 Not confirmed <Pinentry>"


def unescape(text):
    out = bytearray()
    data = text.encode("utf-8")
    i = 0
    while i < len(data):
        if data[i] == 0x25 and i + 2 < len(data):
            try:
                out.append(int(data[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(data[i])
        i += 1
    return out.decode("utf-8", "replace")


def escape(text):
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def next_answer(control_path, command):
    """The scripted answer for `command` (consumed), else the default."""
    with open(control_path, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        control = json.load(f)
        queue = control.get("script", {}).get(command, [])
        if queue:
            answer = queue.pop(0)
            f.seek(0)
            f.truncate()
            json.dump(control, f)
            f.flush()
            os.fsync(f.fileno())
        else:
            answer = control.get(command.lower())
    if not isinstance(answer, dict):
        answer = {"answer": answer}
    return answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    texts = {}

    def say(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def log(command, answer):
        entry = {"command": command, "answer": answer, "pid": os.getpid(), "at": time.time()}
        entry.update(texts)
        with open(args.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    setters = {
        "SETTITLE": "title", "SETDESC": "description", "SETPROMPT": "prompt",
        "SETERROR": "error", "SETOK": "ok", "SETCANCEL": "cancel", "SETNOTOK": "notok",
        "SETTIMEOUT": "timeout", "SETREPEAT": "repeat",
    }
    say("OK Pleased to meet you (passgate's scripted pinentry)")
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        command, _, rest = line.partition(" ")
        command = command.upper()
        if command in setters:
            texts[setters[command]] = unescape(rest)
            say("OK")
        elif command == "OPTION":
            say("OK")
        elif command in ("GETPIN", "CONFIRM"):
            answer = next_answer(args.control, command)
            if answer.get("hang"):
                log(command, "hang")
                while True:
                    time.sleep(1)
            if answer.get("delay_ms"):
                time.sleep(answer["delay_ms"] / 1000)
            value = answer.get("answer")
            if command == "GETPIN":
                if value is None or value == "cancel":
                    log(command, "cancel")
                    say(CANCELLED)
                else:
                    log(command, "pin")
                    say("D " + escape(str(value)))
                    say("OK")
            else:
                if value == "ok":
                    log(command, "ok")
                    say("OK")
                elif value == "notok":
                    log(command, "notok")
                    say(NOT_CONFIRMED)
                else:
                    log(command, "cancel")
                    say(CANCELLED)
        elif command == "BYE":
            say("OK closing connection")
            return
        elif command in ("NOP", "RESET", ""):
            say("OK")
        else:
            say("ERR 536871187 Unknown IPC command <User defined source 1>")


if __name__ == "__main__":
    main()
