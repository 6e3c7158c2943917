"""Benchmark (run by `cargo xtask bench`, not by the test suite): the latency fprintd adds to a
getAssertion, excluding the wait for the finger.

With the real fprintd on libfprint's virtual sensor, each sample is a getAssertion with
`uv=true`: passgate claims the sensor and starts a verify, then reports KEEPALIVE UPNEEDED;
on that keepalive this script touches the sensor (`SCAN finger-a`) and times from the touch
to the response. The peer, measured in the same run on the same authenticator process, is a
getAssertion without UV (presence approved automatically). Both numbers include the CTAPHID
round trip over loopback TCP; their difference is what the fingerprint path adds once the
finger is on the sensor (libfprint's match, fprintd's VerifyStatus signal over D-Bus, VerifyStop
and Release). The time from the request to the sensor being armed (Claim + VerifyStart, which
happen before the person is asked) is reported separately, as an upper bound: the client only
learns of it at the next keepalive (sent every 100 ms).

Writes target/fprintd-latency.json and prints one summary line. It asserts only that every
sample really carried UV; it never judges the timings.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from pathlib import Path

from fido2.ctap2 import Ctap2
from fido2.hid import STATUS

from helpers import RP_ID
from test_fprintd import _enroll, _spawn, fprint  # noqa: F401  (fixture: real fprintd on a private bus)

SAMPLES = int(os.environ.get("FPRINTD_BENCH_SAMPLES", "30"))
ROOT = Path(__file__).resolve().parents[2]


def _touch(vdev: Path, finger: str) -> float:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(vdev))
    touched = time.perf_counter()
    s.sendall(f"SCAN {finger}".encode())
    s.close()
    return touched


def test_fprintd_round_trip_latency(spawn, fprint, monkeypatch):
    pg = _spawn(spawn, fprint, monkeypatch)
    _enroll(fprint, "finger-a")
    ctap = Ctap2(pg.device())
    made = ctap.make_credential(b"\1" * 32, {"id": RP_ID}, {"id": b"bench"}, [{"type": "public-key", "alg": -7}],
                                options={"rk": True})
    allow = [{"type": "public-key", "id": made.auth_data.credential_data.credential_id}]

    plain = []
    for i in range(SAMPLES):
        started = time.perf_counter()
        got = ctap.get_assertion(RP_ID, bytes([i % 256]) * 32, allow)
        plain.append(time.perf_counter() - started)
        assert got.auth_data.is_user_present() and not got.auth_data.is_user_verified()

    after_touch, to_armed = [], []
    for i in range(SAMPLES):
        marks: dict[str, float] = {}

        def on_keepalive(status):
            if status == STATUS.UPNEEDED and "touched" not in marks:
                marks["armed"] = time.perf_counter()
                marks["touched"] = _touch(fprint["vdev"], "finger-a")

        started = time.perf_counter()
        got = ctap.get_assertion(RP_ID, bytes([i % 256]) * 32, allow, options={"uv": True},
                                 on_keepalive=on_keepalive)
        done = time.perf_counter()
        assert got.auth_data.is_user_verified(), "every sample must carry UV"
        assert "touched" in marks, "passgate never reported UPNEEDED"
        after_touch.append(done - marks["touched"])
        to_armed.append(marks["armed"] - started)

    ms = lambda xs: round(statistics.median(xs) * 1000, 2)  # noqa: E731
    p90 = lambda xs: round(sorted(xs)[int(len(xs) * 0.9) - 1] * 1000, 2)  # noqa: E731
    report = {
        "samples": SAMPLES,
        "get_assertion_without_uv_ms": {"median": ms(plain), "p90": p90(plain)},
        "touch_to_response_with_fprintd_ms": {"median": ms(after_touch), "p90": p90(after_touch)},
        "added_by_fprintd_after_touch_ms": round(ms(after_touch) - ms(plain), 2),
        "request_to_armed_upper_bound_ms": {"median": ms(to_armed), "p90": p90(to_armed)},
    }
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    target.mkdir(parents=True, exist_ok=True)
    (target / "fprintd-latency.json").write_text(json.dumps(report, indent=2))
    print(
        "\nfprintd: touch-to-response median %.2f ms vs getAssertion without UV %.2f ms in the same run: "
        "+%.2f ms added by the fingerprint path after the touch (%.2fx); request-to-armed <= %.2f ms (median)"
        % (ms(after_touch), ms(plain), report["added_by_fprintd_after_touch_ms"], ms(after_touch) / ms(plain),
           ms(to_armed))
    )
