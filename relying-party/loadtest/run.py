#!/usr/bin/env python3
"""HTTP load test of `passgate rp` over loopback, with its peers measured in the same run.

Measures, on this machine:
  1. `POST /api/verify/assertion` (stateless verification) with wrk against `passgate rp
     --workers 1` on its main port (the only port since the hand-written verification listener
     was removed), and the same requests against a node:http server verifying with @simplewebauthn/server
     (single-threaded by nature): requests/s, requests per server CPU-second, p50, p99.
  2. The library call (`rp_load library`: JSON in, verdict out) on the server's core, before
     and after every HTTP run, for the "HTTP >= 0.75x library per server CPU-second" ratio.
  3. py_webauthn verifying the same assertion in-process (JSON in, verdict out), per second,
     and criterion's figures (`cargo bench -p passgate-relying-party --bench verify`) when
     present.
  4. Full sign-in ceremonies (options -> sign -> verify: the challenge stored, taken, the
     counter updated, a session created) on SQLite and on PostgreSQL, with `rp_load`.

Usage (from the repo root, after `cargo build --release --bin passgate --example rp_load
-p passgate-relying-party` and `npm ci` in relying-party/loadtest):
    .venv/bin/python relying-party/loadtest/run.py
`cargo xtask bench` runs it. Prints a summary and writes target/rp-loadtest.json.
"""

from __future__ import annotations

import glob
import json
import os
import re
import resource
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
PASSGATE = Path(os.environ.get("PASSGATE_BIN", TARGET / "release" / "passgate"))
RP_LOAD = Path(os.environ.get("RP_LOAD_BIN", TARGET / "release" / "examples" / "rp_load"))
SECONDS = int(os.environ.get("LOADTEST_SECONDS", "10"))
# Enough connections that the one-worker server never waits for the load tool: "per worker
# core" is the figure of a saturated worker. With 8, the server idled ~10-15% of the time on
# this 2-vCPU machine, and each idle gap costs a wake-up (epoll_wait, a context switch) and
# hands its core, and its caches, to other processes (about 5-10% fewer requests per server
# CPU-second than with 32).
CONNECTIONS = int(os.environ.get("LOADTEST_CONNECTIONS", "32"))
# Rounds of (main port, library), each HTTP run bracketed by the library runs on either side of
# it. This VM's speed drifts within seconds, so many short rounds give a steadier median than a
# few long ones: 16 rounds of 2 s of wrk.
ROUNDS = int(os.environ.get("LOADTEST_ROUNDS", "16"))
LIBRARY_SECONDS = int(os.environ.get("LOADTEST_LIBRARY_SECONDS", "1"))
# wrk's run length inside those rounds (the peer and the ceremonies use SECONDS).
ROUND_SECONDS = int(os.environ.get("LOADTEST_ROUND_SECONDS", "2"))
TOKEN = "loadtest-token"


# The server under test and the load tool each get a core of their own when there are two: the
# figure "per worker core" divides by the server's own CPU time, and a load tool scheduled onto
# the server's core (or the server migrating between cores) would cost it cache and wake-ups
# that a deployment does not pay.
CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPU = {CPUS[-1]} if len(CPUS) >= 2 else None
LOAD_CPU = {CPUS[0]} if len(CPUS) >= 2 else None


def on_cpus(cpus: set[int] | None):
    """A preexec_fn pinning the child to `cpus` (nothing on a one-core machine)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited with {proc.returncode}")
            continue
        if "listening on" in line:
            return
    raise SystemExit(f"{what} did not start within 30 s")


def start_rp(port: int, database: str, workdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            str(PASSGATE), "rp", "--workers", "1",
            "--listen", f"127.0.0.1:{port}",
            "--database", database,
            "--rp-id", "localhost",
            "--origin", f"http://localhost:{port}",
            "--receipt-key", str(workdir / "receipt-key.p8"),
            "--rate-limit-per-sec", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PASSGATE_API_TOKEN": TOKEN, "PASSGATE_LOG": "warn"},
        preexec_fn=on_cpus(SERVER_CPU),
    )
    wait_listening(proc, "passgate rp")
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(port: int, path: str, body: bytes, token: str | None = None) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"null")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, body_file: Path, workdir: Path, server_pid: int, seconds: int = SECONDS) -> dict:
    script = workdir / "post.lua"
    script.write_text(
        "local f = io.open(%r, 'rb')\n"
        "wrk.method = 'POST'\n"
        "wrk.body = f:read('*a')\n"
        "f:close()\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        "wrk.headers['Authorization'] = 'Bearer %s'\n" % (str(body_file), TOKEN)
    )
    cpu_before = cpu_seconds(server_pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=on_cpus(LOAD_CPU),
    ).stdout
    server_cpu = cpu_seconds(server_pid) - cpu_before
    # wrk's voluntary context switches: each is a wake-up by an answer it waited for.
    client_wakeups = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw - children_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "requests_per_sec": rps,
        # Requests per second of server CPU time: the figure "per worker core".
        "requests_per_cpu_sec": total / server_cpu if server_cpu > 0 else 0.0,
        "server_cpu_cores": server_cpu / seconds,
        "client_wakeups_per_request": client_wakeups / total if total else 0.0,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def py_webauthn_rate(body: dict) -> float:
    from webauthn import verify_authentication_response
    from webauthn.helpers import base64url_to_bytes

    response_json = json.dumps(body["response"])
    credential_public_key = base64url_to_bytes(body["credential"]["publicKey"])
    challenge = base64url_to_bytes(body["expectedChallenge"])

    def once() -> None:
        verify_authentication_response(
            credential=response_json,
            expected_challenge=challenge,
            expected_rp_id=body["expectedRpId"],
            expected_origin=body["expectedOrigins"],
            credential_public_key=credential_public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )

    once()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3.0:
        once()
        n += 1
    return n / (time.perf_counter() - start)


def library_beside(body_file: Path) -> float:
    """The library call's rate per CPU-second, measured now on the server's core (so it shares
    the machine's state with the HTTP run next to it)."""
    out = subprocess.run(
        [str(RP_LOAD), "library", str(body_file), str(LIBRARY_SECONDS)],
        check=True, capture_output=True, text=True, preexec_fn=on_cpus(SERVER_CPU),
    ).stdout
    return json.loads(out)["per_cpu_sec"]


def interleaved(port: int, body_file: Path, workdir: Path, server_pid: int) -> dict:
    """ROUNDS rounds of wrk on the main port, with the library call measured on the server's
    core before and after every HTTP run. This VM's speed drifts by 10-25% within seconds to
    minutes, and differently for computation and for kernel work, so each HTTP figure is divided
    by the mean of the two library figures right around it, and the ratio reported is the median
    of the rounds."""
    libraries = [library_beside(body_file)]
    rounds = []
    for _ in range(ROUNDS):
        main = wrk(f"http://127.0.0.1:{port}/api/verify/assertion", body_file, workdir, server_pid, ROUND_SECONDS)
        libraries.append(library_beside(body_file))
        lib_main = (libraries[-2] + libraries[-1]) / 2
        rounds.append({
            "library_around_main_port": lib_main,
            "library_runs": libraries[-2:],
            "main_port": main,
            "main_port_ratio": main["requests_per_cpu_sec"] / lib_main,
        })
    ratios = [r["main_port_ratio"] for r in rounds]
    return {
        "rounds": rounds,
        "main_port_ratio": statistics.median(ratios),
        "main_port_ratio_quartiles": statistics.quantiles(ratios, n=4),
    }


def library_rate() -> dict | None:
    """Criterion's means from `cargo bench -p passgate-relying-party --bench verify` (run it
    just before, as `cargo xtask bench` does: the ratios compare figures of the same run)."""
    rates = {}
    for name in ["passgate_verify_assertion_json", "bare_verify_aws_lc_rs", "webauthn_rs_authenticate_credential"]:
        path = TARGET / "criterion" / "assertion_verify" / name / "new" / "estimates.json"
        if not path.exists():
            return None
        mean_ns = json.loads(path.read_text())["mean"]["point_estimate"]
        rates[name] = 1e9 / mean_ns
        rates["age_sec"] = max(rates.get("age_sec", 0.0), time.time() - path.stat().st_mtime)
    return rates


class Postgres:
    """A private cluster in a temp dir, run as the postgres user (root may not run it)."""

    def __init__(self) -> None:
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = Path(initdb[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="passgate-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)

    def run(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def start(self) -> str:
        data = self.dir / "data"
        self.run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        self.run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w",
            "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on",
            "start",
        )
        self.run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "rp")
        return f"postgres://postgres@127.0.0.1:{self.port}/rp"

    def stop(self) -> None:
        try:
            self.run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def ceremonies(port: int, server_pid: int) -> dict:
    """Full sign-in ceremonies; adds the server's CPU time per ceremony (both requests, the
    database work on the server's side included; PostgreSQL's own processes are not counted)."""
    cpu_before = cpu_seconds(server_pid)
    out = subprocess.run(
        [str(RP_LOAD), "ceremonies", f"http://127.0.0.1:{port}", f"http://localhost:{port}", str(CONNECTIONS), str(SECONDS)],
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=on_cpus(LOAD_CPU),
    ).stdout
    server_cpu = cpu_seconds(server_pid) - cpu_before
    result = json.loads(out)
    result["ceremonies_per_server_cpu_sec"] = result["ceremonies"] / server_cpu if server_cpu > 0 else 0.0
    return result


def main() -> int:
    for tool in [PASSGATE, RP_LOAD]:
        if not tool.exists():
            raise SystemExit(f"{tool} is missing: cargo build --release --bin passgate --example rp_load -p passgate-relying-party")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing (apt-get install wrk)")
    if not (HERE / "node_modules" / "@simplewebauthn" / "server").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    results: dict = {"cores": os.cpu_count(), "seconds": SECONDS, "connections": CONNECTIONS}
    work = Path(tempfile.mkdtemp(prefix="passgate-load-"))
    rp = node = None
    pg = None
    try:
        port = free_port()
        rp = start_rp(port, f"sqlite://{work}/rp.sqlite3", work)
        body = subprocess.run(
            [str(RP_LOAD), "fixture", f"http://localhost:{port}", "localhost"],
            check=True, capture_output=True, text=True,
        ).stdout
        body_file = work / "verify.json"
        body_file.write_text(body)
        status, answer = post(port, "/api/verify/assertion", body.encode(), TOKEN)
        assert status == 200 and answer["verified"] is True, answer

        node_port = free_port()
        node = subprocess.Popen(
            ["node", str(HERE / "simplewebauthn-server.mjs"), str(node_port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=HERE,
            preexec_fn=on_cpus(SERVER_CPU),
        )
        wait_listening(node, "simplewebauthn server")
        status, answer = post(node_port, "/", body.encode())
        assert status == 200 and answer["verified"] is True, answer

        results["py_webauthn_per_sec"] = py_webauthn_rate(json.loads(body))
        results["interleaved"] = interleaved(port, body_file, work, rp.pid)
        rounds = results["interleaved"]["rounds"]
        # The round with the median ratio stands for "passgate over HTTP" below.
        results["http_passgate"] = sorted(rounds, key=lambda r: r["main_port_ratio"])[len(rounds) // 2]["main_port"]
        results["http_simplewebauthn"] = wrk(f"http://127.0.0.1:{node_port}/", body_file, work, node.pid)
        stop(node)
        node = None
        results["ceremonies_sqlite"] = ceremonies(port, rp.pid)
        stop(rp)
        rp = None

        pg = Postgres()
        url = pg.start()
        pg_port = free_port()
        rp = start_rp(pg_port, url, work)
        results["ceremonies_postgres"] = ceremonies(pg_port, rp.pid)
    finally:
        stop(rp)
        stop(node)
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    # Read after the HTTP runs, so that the age printed below is how far apart the criterion
    # figures and this run's are.
    results["library"] = library_rate()

    h, n = results["http_passgate"], results["http_simplewebauthn"]
    inter = results["interleaved"]
    lines = [
        "relying-party load test (loopback, server on 1 worker thread, wrk -t1 -c%d; %d rounds of %d s, %d s of library around each; %d s for the peer)" % (CONNECTIONS, ROUNDS, ROUND_SECONDS, LIBRARY_SECONDS, SECONDS),
        "  per round: main port req per server CPU-second / library per CPU-second around it (ratio)",
    ]
    for i, r in enumerate(inter["rounds"], 1):
        lines.append(
            "    round %2d: %6.0f / %6.0f (%.2fx)"
            % (i, r["main_port"]["requests_per_cpu_sec"], r["library_around_main_port"], r["main_port_ratio"])
        )
    q1, _, q3 = inter["main_port_ratio_quartiles"]
    lines += [
        "  HTTP per server CPU-second vs library, median of %d rounds: main port %.2fx (quartiles %.2f-%.2f; target >= 0.75x)"
        % (len(inter["rounds"]), inter["main_port_ratio"], q1, q3),
        "  POST /api/verify/assertion, passgate main port: %8.0f req/s  p50 %.2f ms  p99 %.2f ms  (%.0f req per server CPU-second, %.2f cores, %.2f wrk wake-ups per request)" % (h["requests_per_sec"], h["p50_ms"], h["p99_ms"], h["requests_per_cpu_sec"], h["server_cpu_cores"], h["client_wakeups_per_request"]),
        "  same requests, @simplewebauthn/server (node): %8.0f req/s  p50 %.2f ms  p99 %.2f ms  (%.0f req per server CPU-second, %.2f cores, %.2f wrk wake-ups per request)" % (n["requests_per_sec"], n["p50_ms"], n["p99_ms"], n["requests_per_cpu_sec"], n["server_cpu_cores"], n["client_wakeups_per_request"]),
        "  ratio passgate / simplewebauthn:              %8.2fx (target >= 4x)" % (h["requests_per_sec"] / n["requests_per_sec"]),
        "  py_webauthn in-process, same assertion:       %8.0f /s" % results["py_webauthn_per_sec"],
    ]
    lib = results["library"]
    if lib:
        ours = lib["passgate_verify_assertion_json"]
        lines += [
            "  library (criterion): ours %.0f/s, bare aws-lc-rs verify %.0f/s (%.2fx, target >= 0.9x), webauthn-rs %.0f/s"
            % (ours, lib["bare_verify_aws_lc_rs"], ours / lib["bare_verify_aws_lc_rs"], lib["webauthn_rs_authenticate_credential"]),
            "  library vs py_webauthn:                       %8.2fx (target >= 2x)" % (ours / results["py_webauthn_per_sec"]),
            "  (criterion figures measured %.0f s before this summary)" % lib["age_sec"],
        ]
    for store in ["sqlite", "postgres"]:
        c = results[f"ceremonies_{store}"]
        lines.append(
            "  full sign-in ceremonies on %-8s (2 requests each): %6.0f /s  p50 %.2f ms  p99 %.2f ms  errors %d  (%.0f per server CPU-second)"
            % (store, c["ceremonies_per_sec"], c["p50_ms"], c["p99_ms"], c["errors"], c["ceremonies_per_server_cpu_sec"])
        )
    print("\n".join(lines))
    (TARGET / "rp-loadtest.json").write_text(json.dumps(results, indent=2))
    failures = []
    for r in inter["rounds"]:
        if r["main_port"]["non_2xx"]:
            failures.append(f"{r['main_port']['non_2xx']} non-2xx answers from passgate")
    if h["requests_per_sec"] < 4 * n["requests_per_sec"]:
        failures.append("HTTP below 4x simplewebauthn")
    if inter["main_port_ratio"] < 0.75:
        failures.append("HTTP (main port) below 0.75x the library figure per server CPU-second")
    if lib and lib["passgate_verify_assertion_json"] < 0.9 * lib["bare_verify_aws_lc_rs"]:
        failures.append("library verify below 0.9x a bare aws-lc-rs verify")
    if lib and lib["passgate_verify_assertion_json"] < 2 * results["py_webauthn_per_sec"]:
        failures.append("library below 2x py_webauthn")
    for store in ["sqlite", "postgres"]:
        if results[f"ceremonies_{store}"]["errors"]:
            failures.append(f"{results[f'ceremonies_{store}']['errors']} failed ceremonies on {store}")
    for f in failures:
        print("  MISS", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
