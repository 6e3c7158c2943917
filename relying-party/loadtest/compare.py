#!/usr/bin/env python3
"""Compares builds of `passgate rp` under the load test's conditions, in the same run.

Starts one `passgate rp --workers 1` per binary given (each on its own ports, all pinned to the
server's core), then loads them in turn with wrk for ROUNDS rounds of 2 s each, alternating the
order every round. Each HTTP run is divided by the mean of the 1 s library runs right before and
after it, as in run.py. Prints, per binary, the median ratio to the library with its quartiles,
p50, p99 and req/s, and, for every binary after the first, its ratio to the first paired by
round (so the VM's drift between rounds cancels out).

Usage (from the repo root, after building `rp_load` as for run.py):
    .venv/bin/python relying-party/loadtest/compare.py ROUNDS BIN [BIN ...]
Every binary is loaded on its main port (`POST /api/verify/assertion`); `--main-port` is
accepted for older command lines and changes nothing.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import run


def main(argv: list[str]) -> int:
    main_port = "--main-port" in argv
    args = [a for a in argv if a != "--main-port"]
    if len(args) < 2:
        print(__doc__)
        return 2
    rounds, binaries = int(args[0]), args[1:]
    work = Path(tempfile.mkdtemp(prefix="passgate-compare-"))
    servers: list[tuple[str, subprocess.Popen, int]] = []
    try:
        for i, binary in enumerate(binaries):
            run.PASSGATE = Path(binary)
            port = run.free_port()
            home = work / str(i)
            home.mkdir()
            proc = run.start_rp(port, f"sqlite://{home}/rp.sqlite3", home)
            servers.append((binary, proc, port))
        body = subprocess.run(
            [str(run.RP_LOAD), "fixture", "http://localhost:1", "localhost"],
            check=True, capture_output=True, text=True,
        ).stdout
        body_file = work / "verify.json"
        body_file.write_text(body)
        for binary, _, port in servers:
            status, answer = run.post(port, "/api/verify/assertion", body.encode(), run.TOKEN)
            assert status == 200 and answer["verified"] is True, (binary, answer)

        ratios: dict[str, list[float]] = {b: [] for b in binaries}
        runs: dict[str, list[dict]] = {b: [] for b in binaries}
        library = run.library_beside(body_file)
        for r in range(rounds):
            order = servers if r % 2 == 0 else list(reversed(servers))
            for binary, proc, port in order:
                w = run.wrk(f"http://127.0.0.1:{port}/api/verify/assertion", body_file, work, proc.pid, run.ROUND_SECONDS)
                if w["non_2xx"]:
                    raise SystemExit(f"{binary}: {w['non_2xx']} non-2xx answers")
                after = run.library_beside(body_file)
                ratios[binary].append(w["requests_per_cpu_sec"] / ((library + after) / 2))
                runs[binary].append(w)
                library = after
    finally:
        for _, proc, _ in servers:
            run.stop(proc)

    def median(binary: str, key: str) -> float:
        return statistics.median(w[key] for w in runs[binary])

    for binary in binaries:
        q1, _, q3 = statistics.quantiles(ratios[binary], n=4)
        print(
            f"{binary}: {statistics.median(ratios[binary]):.3f}x the library (quartiles {q1:.3f}-{q3:.3f}), "
            f"p50 {median(binary, 'p50_ms'):.2f} ms, p99 {median(binary, 'p99_ms'):.2f} ms, "
            f"{median(binary, 'requests_per_sec'):.0f} req/s, "
            f"{median(binary, 'client_wakeups_per_request'):.2f} wrk wake-ups per request"
        )
    first = binaries[0]
    for binary in binaries[1:]:
        paired = [a / b for a, b in zip(ratios[binary], ratios[first])]
        q1, _, q3 = statistics.quantiles(paired, n=4)
        print(f"{binary} / {first}, paired by round: {statistics.median(paired):.3f} (quartiles {q1:.3f}-{q3:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
