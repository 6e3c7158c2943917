"""The `passgate demo` soak (`cargo xtask soak --minutes N`): one demo process, driven for N
minutes by scripted ceremonies exactly as a page would do them (the RP's HTTP API for options
and verification, the local bridge's /v1/message for the authenticator, the scripted pinentry as
the person at the prompt), while the demo's resident memory (VmRSS) and open file descriptors are
sampled every 30 s.

Two phases (`--phase`):
- `mixed`: a sign-up, then three sign-ins, over and over. Every sign-up adds an account and a
  passkey that the RP and the authenticator keep, so RSS may rise with the data kept.
- `sign-in`: a fixed set of accounts (`--accounts`, created before the clock starts), then only
  sign-ins over them, with a passkey rename (a step-up-guarded write) every `--rename-every`
  sign-ins. Nothing is added, so RSS and descriptors must stay flat: the least-squares slope of
  RSS against sign-ins after the warm-up is reported (KiB per 1,000 sign-ins) and must stay
  under `--max-slope-kib` (default 64: a leak of 64 bytes per sign-in).

Both pass when, after a warm-up, neither grows: the last quarter's median RSS is within 10% +
4 MiB of the first post-warm-up quarter's, and its median descriptor count within 8. RSS is also
sampled in its two parts, anonymous (heap, stacks: where a leak would show) and file-backed (the
mapped binary, which grows only as code runs for the first time). Slopes per 1,000 sign-ins are
reported after the warm-up and over the last `--tail-minutes` (30), each with its standard error
and whether it is within noise of zero (|slope| ≤ 2 standard errors). Once the demo has stopped,
its RP database's rows are counted per table (and when the clock starts); in the sign-in phase,
sessions and ceremonies must not pile up (at most one more than at the start). `--pace R` holds the run to at most R sign-ins a second. Prints
the series and a summary (first/last/max RSS and fds, ceremonies done, slopes, rows), writes it
as JSON with --json.

    python demo_soak.py --binary target/debug/passgate --minutes 60 [--phase sign-in] [--pace 2] [--json out.json]
"""

import argparse
import http.cookiejar
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTED_PINENTRY = REPO / "testkit" / "scripted-pinentry.py"
SAMPLE_EVERY = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample(pid):
    """`pid`'s resident memory in KiB (`rssKiB`, and its parts: `anonKiB`, the heap, stacks and
    other private memory a leak would grow; `fileKiB`, the mapped binary and libraries, which
    only grows as code runs for the first time and is bounded by their size) and its open
    descriptors (`fds`)."""
    fields = {"VmRSS:": "rssKiB", "RssAnon:": "anonKiB", "RssFile:": "fileKiB"}
    found = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            name = line.split(maxsplit=1)[0] if line.strip() else ""
            if name in fields:
                found[fields[name]] = int(line.split()[1])
    found["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return found


class Demo:
    def __init__(self, binary, work):
        self.port = free_port()
        self.origin = f"http://localhost:{self.port}"
        control = work / "pinentry.json"
        control.write_text(json.dumps({"getpin": "482916", "confirm": "ok"}))
        program = work / "pinentry"
        # The log goes nowhere: an hour of dialogs would only fill the disk.
        program.write_text(f"#!/bin/sh\nexec {sys.executable} '{SCRIPTED_PINENTRY}' --control '{control}' --log /dev/null\n")
        program.chmod(0o755)
        self.log = open(work / "demo.log", "wb")
        self.proc = subprocess.Popen(
            [str(binary), "demo", "--listen", f"127.0.0.1:{self.port}", "--bridge-listen", "127.0.0.1:0",
             "--state-dir", str(work / "demo"), "--static-dir", str(REPO / "web-demo" / "site"),
             "--prompt", "pinentry", "--pinentry", str(program), "--user-verifier", "pin"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        lines = []
        deadline = time.time() + 60
        while not any(line.startswith("Stop with Ctrl-C") for line in lines):
            if time.time() > deadline:
                raise SystemExit("passgate demo did not start:\n" + "".join(lines))
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("passgate demo exited:\n" + "".join(lines))
            lines.append(line)
        self.bridge = next(l.split("local bridge: ")[1].strip() for l in lines if "local bridge: " in l)
        code = next(l.split("pairing code: ")[1].strip() for l in lines if "pairing code: " in l)
        self.token = self.bridge_post("/v1/pair", {"code": code})["token"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def bridge_post(self, path, body, token=None):
        headers = {"Origin": self.origin, "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.bridge}{path}", data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def message(self, body):
        reply = self.bridge_post("/v1/message", body, self.token)
        if reply.get("ok") is not True:
            raise RuntimeError(f"the bridge refused {body['type']}: {reply}")
        return reply["result"]

    def rp_post(self, opener, path, body):
        return self.rp_request(opener, "POST", path, body)

    def expect(self, opener, path, body):
        status, answer = self.rp_post(opener, path, body)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {answer}")
        return answer

    def sign_up(self, username):
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        options = self.expect(opener, "/api/register/options", {"username": username, "displayName": username})
        credential = self.message({"type": "create", "requestId": "c", "options": options})
        self.expect(opener, "/api/register/verify", credential)

    def sign_in(self, username, rename_to=None):
        """Signs in (with UV, so the session counts as recently verified) and out; with
        `rename_to`, renames the account's passkey in between and checks the new name is kept."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        options = self.expect(opener, "/api/login/options", {"username": username})
        assertion = self.message({"type": "get", "requestId": "g", "options": options})
        done = self.expect(opener, "/api/login/verify", assertion)
        if done["verdict"]["userVerified"] is not True:
            raise RuntimeError(f"sign-in without UV: {done}")
        # The session cookie is `Secure` (as on a real origin), which the cookie jar keeps off
        # plain http: the session-bound calls below carry it themselves.
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        if rename_to is not None:
            self.rename_current(opener, cookie, rename_to)
        status, answer = self.rp_request(opener, "POST", "/api/logout", {}, cookie)
        if status != 200:
            raise RuntimeError(f"/api/logout: {status} {answer}")

    def credentials(self, opener, cookie):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/credentials",
                                         headers={"Host": f"localhost:{self.port}", "Cookie": cookie})
        with opener.open(request, timeout=60) as response:
            return json.loads(response.read())["credentials"]

    def rename_current(self, opener, cookie, name):
        current = next(c for c in self.credentials(opener, cookie) if c["current"])
        status, answer = self.rp_request(opener, "PATCH", f"/api/credentials/{current['id']}", {"name": name}, cookie)
        if status != 200 or answer.get("name") != name:
            raise RuntimeError(f"rename: {status} {answer}")
        names = [c.get("name") for c in self.credentials(opener, cookie) if c["current"]]
        if names != [name]:
            raise RuntimeError(f"the rename was not kept: {names}")

    def rp_request(self, opener, method, path, body, cookie=None):
        headers = {"Content-Type": "application/json", "Host": f"localhost:{self.port}"}
        if cookie:
            headers["Cookie"] = cookie
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers=headers, method=method)
        try:
            with opener.open(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def table_rows(database):
    """Rows per table of the demo's RP database once it has stopped: in the sign-in phase,
    sessions and ceremonies must not pile up (each sign-out deletes its session, each verify
    its challenge, and the purge the expired rest)."""
    if not database.exists():
        return None
    db = sqlite3.connect(database)
    try:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in sorted(tables)}
    finally:
        db.close()


def slope(xs, ys):
    """The least-squares slope of ys against xs (None with fewer than 2 distinct xs)."""
    if len(set(xs)) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def quarter_median(values, which):
    n = max(1, len(values) // 4)
    part = values[:n] if which == "first" else values[-n:]
    return statistics.median(part)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="samples ignored by the growth check (default: a tenth of the run, at most 5)")
    parser.add_argument("--json")
    parser.add_argument("--phase", choices=["mixed", "sign-in"], default="mixed")
    parser.add_argument("--accounts", type=int, default=20, help="the fixed accounts of the sign-in phase")
    parser.add_argument("--rename-every", type=int, default=50,
                        help="sign-ins between passkey renames in the sign-in phase")
    parser.add_argument("--max-slope-kib", type=float, default=64.0,
                        help="the sign-in phase fails when RSS grows faster, KiB per 1,000 sign-ins")
    parser.add_argument("--pace", type=float, default=None,
                        help="at most this many sign-ins a second on average (default: as fast as it goes)")
    parser.add_argument("--tail-minutes", type=float, default=30.0,
                        help="the window at the end for the tail slopes (default: the last 30 minutes)")
    args = parser.parse_args()
    warmup = args.warmup_minutes if args.warmup_minutes is not None else min(5.0, args.minutes / 10)
    with tempfile.TemporaryDirectory(prefix="passgate-soak-") as tmp:
        work = Path(tmp)
        demo = Demo(Path(args.binary), work)
        users = []
        if args.phase == "sign-in":
            # The fixed set, made before the clock starts: the phase itself adds nothing.
            for i in range(args.accounts):
                demo.sign_up(f"fixed-{i}")
                users.append(f"fixed-{i}")
        # The rows the clock starts with (the fixed accounts' sign-ups leave their sessions);
        # SQLite's WAL lets this read run beside the demo.
        rows_at_start = table_rows(work / "demo" / "demo-rp.sqlite3")
        started = time.monotonic()
        end = started + args.minutes * 60
        next_sample = started
        series = []
        sign_ups = sign_ins = renames = 0
        failure = None
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_sample:
                    point = {"t": round(now - started), **sample(demo.proc.pid),
                             "signUps": sign_ups, "signIns": sign_ins, "renames": renames}
                    series.append(point)
                    print(f"t={now - started:6.0f}s rss={point['rssKiB'] / 1024:7.1f} MiB "
                          f"(anon {point.get('anonKiB', 0) / 1024:5.1f}, file {point.get('fileKiB', 0) / 1024:5.1f}) "
                          f"fds={point['fds']:4d} sign-ups={sign_ups} sign-ins={sign_ins} renames={renames}",
                          flush=True)
                    next_sample += SAMPLE_EVERY
                if args.pace:
                    # At most `--pace` sign-ins a second on average, so a soak on a shared
                    # machine leaves the other work its CPU.
                    ahead = started + sign_ins / args.pace - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                if demo.proc.poll() is not None:
                    raise RuntimeError(f"passgate demo exited with {demo.proc.returncode}")
                if args.phase == "sign-in":
                    # Sign-ins only, round the fixed accounts; now and then a rename.
                    rename = sign_ins % args.rename_every == args.rename_every - 1
                    demo.sign_in(users[sign_ins % len(users)],
                                 rename_to=f"passkey {renames}" if rename else None)
                    renames += rename
                    sign_ins += 1
                    continue
                # One sign-up, then sign-ins by users old and new.
                username = f"soak-{sign_ups}"
                demo.sign_up(username)
                users.append(username)
                sign_ups += 1
                for k in range(3):
                    demo.sign_in(users[(sign_ups * 7 + k * 13) % len(users)] if k else username)
                    sign_ins += 1
            series.append({"t": round(time.monotonic() - started), **sample(demo.proc.pid),
                           "signUps": sign_ups, "signIns": sign_ins, "renames": renames})
        except Exception as e:  # noqa: BLE001 - reported as the soak's failure
            failure = f"{type(e).__name__}: {e}"
        finally:
            demo.stop()
            log_tail = (work / "demo.log").read_text(errors="replace")[-2000:]
            rows = table_rows(work / "demo" / "demo-rp.sqlite3")
    steady = [s for s in series if s["t"] >= warmup * 60] or series
    rss = [s["rssKiB"] for s in steady]
    fds = [s["fds"] for s in steady]
    rss_slope = slope([s["signIns"] for s in steady], [s["rssKiB"] for s in steady])
    fd_slope = slope([s["signIns"] for s in steady], [s["fds"] for s in steady])
    tail_start = (series[-1]["t"] if series else 0) - args.tail_minutes * 60
    tail = [s for s in steady if s["t"] >= tail_start]

    def per_1000(points, key):
        """KiB (or descriptors) per 1,000 sign-ins over `points`, with the residuals' spread:
        the slope counts as noise when its 95% interval (2 standard errors) holds zero."""
        if not points or any(key not in p for p in points):
            return None
        xs, ys = [p["signIns"] for p in points], [p[key] for p in points]
        b = slope(xs, ys)
        if b is None:
            return None
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        residuals = [y - (my + b * (x - mx)) for x, y in zip(xs, ys)]
        se = (sum(r * r for r in residuals) / max(1, len(xs) - 2) / sxx) ** 0.5 if len(xs) > 2 else None
        return {"slope": round(b * 1000, 2), "stdErr": None if se is None else round(se * 1000, 2),
                "withinNoiseOfZero": None if se is None else abs(b) <= 2 * se,
                "samples": len(xs), "signIns": xs[-1] - xs[0]}
    summary = {
        "phase": args.phase,
        "accounts": len(users) if args.phase == "sign-in" else sign_ups,
        "renames": renames,
        "warmupMinutes": warmup,
        "rssSlopeKiBPer1000SignIns": None if rss_slope is None else round(rss_slope * 1000, 2),
        "fdSlopePer1000SignIns": None if fd_slope is None else round(fd_slope * 1000, 3),
        "steadySlopesPer1000SignIns": {key: per_1000(steady, key) for key in ("rssKiB", "anonKiB", "fileKiB", "fds")},
        "tailMinutes": args.tail_minutes,
        "tailSlopesPer1000SignIns": {key: per_1000(tail, key) for key in ("rssKiB", "anonKiB", "fileKiB", "fds")},
        "pace": args.pace,
        "minutes": args.minutes,
        "samples": len(series),
        "signUps": sign_ups,
        "signIns": sign_ins,
        "rssKiB": {"first": series[0]["rssKiB"] if series else None, "last": series[-1]["rssKiB"] if series else None,
                   "max": max((s["rssKiB"] for s in series), default=None),
                   "steadyFirstQuarterMedian": quarter_median(rss, "first") if rss else None,
                   "steadyLastQuarterMedian": quarter_median(rss, "last") if rss else None},
        "fds": {"first": series[0]["fds"] if series else None, "last": series[-1]["fds"] if series else None,
                "max": max((s["fds"] for s in series), default=None),
                "steadyFirstQuarterMedian": quarter_median(fds, "first") if fds else None,
                "steadyLastQuarterMedian": quarter_median(fds, "last") if fds else None},
        "tableRowsAtStart": rows_at_start,
        "tableRowsAtEnd": rows,
        "failure": failure,
    }
    problems = []
    if failure:
        problems.append(failure)
    if rss:
        allowed = summary["rssKiB"]["steadyFirstQuarterMedian"] * 1.10 + 4096
        if summary["rssKiB"]["steadyLastQuarterMedian"] > allowed:
            problems.append(f"RSS grew: {summary['rssKiB']}")
        if summary["fds"]["steadyLastQuarterMedian"] > summary["fds"]["steadyFirstQuarterMedian"] + 8:
            problems.append(f"descriptors grew: {summary['fds']}")
    if args.phase == "sign-in" and rows is not None and rows_at_start is not None:
        # One ceremony or session may be left by a sign-in cut off by the clock; nothing else.
        for table in ("sessions", "ceremonies"):
            if rows.get(table, 0) > rows_at_start.get(table, 0) + 1:
                problems.append(f"{table} pile up: {rows_at_start.get(table)} rows at the start, "
                                f"{rows[table]} at the end")
    if sign_ins == 0:
        problems.append("no ceremony completed")
    if args.phase == "sign-in" and rss_slope is not None and rss_slope * 1000 > args.max_slope_kib:
        problems.append(f"RSS grows {rss_slope * 1000:.1f} KiB per 1,000 sign-ins (limit {args.max_slope_kib})")
    summary["growth"] = any(p.startswith(("RSS", "descriptors")) for p in problems)
    summary["passed"] = not problems
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "series": series}, indent=2))
    if problems:
        print("soak FAILED: " + "; ".join(problems), file=sys.stderr)
        if failure:
            print("demo log tail:\n" + log_tail, file=sys.stderr)
        return 1
    print("soak passed: no growth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
