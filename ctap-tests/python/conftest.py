"""pytest fixtures: start `passgate authenticator serve` and talk CTAPHID to it over TCP.

The binary comes from $PASSGATE_BIN (`cargo xtask test` sets it). Without it every test that
needs the authenticator FAILS with an explanation: the interop suite is never silently skipped.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import LISTEN_PREFIX, open_device, make_client

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def _binary() -> Path:
    value = os.environ.get("PASSGATE_BIN")
    if not value:
        pytest.fail(
            "PASSGATE_BIN is not set: point it at the passgate binary "
            "(`cargo xtask test --only python` builds it and sets it)",
            pytrace=False,
        )
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"PASSGATE_BIN={value} is not an executable file", pytrace=False)
    return path


class Passgate:
    """One `passgate authenticator serve` process on a state directory; restartable."""

    def __init__(
        self, binary: Path, state_dir: Path, log_dir: Path, attestation: str | None, extra: list[str] | None = None
    ):
        self.extra = list(extra or [])
        self.binary = binary
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.attestation = attestation
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0
        self._devices: list = []
        self._drain: threading.Thread | None = None
        self.log_paths: list[Path] = []

    # -- process control -------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "authenticator",
            "serve",
            "--listen",
            "tcp://127.0.0.1:0",
            "--state-dir",
            str(self.state_dir),
            "--presence",
            "auto",
        ]
        if self.attestation is not None:
            cmd += ["--attestation", self.attestation]
        return cmd + self.extra

    def start(self) -> "Passgate":
        assert self.proc is None, "already running"
        self.starts += 1
        log_path = self.log_dir / f"passgate-{self.starts}.log"
        self.log_paths.append(log_path)
        log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "RUST_BACKTRACE": "1"},
            )
        finally:
            log.close()
        line = self._read_first_line()
        if not line.startswith(LISTEN_PREFIX):
            self.kill()
            raise AssertionError(
                f"expected a first stdout line `{LISTEN_PREFIX}PORT`, got {line!r}\n"
                + self.log_tail()
            )
        self.port = int(line[len(LISTEN_PREFIX) :].rsplit(":", 1)[1])
        # Keep draining stdout so the process can never block on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, args=(self.proc,), daemon=True)
        self._drain.start()
        return self

    def _read_first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise AssertionError(
                    f"passgate printed no `listening on` line within {STARTUP_TIMEOUT}s "
                    f"(stdout so far: {data!r})\n" + self.log_tail()
                )
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
                self.proc = None
                raise AssertionError(
                    f"passgate exited with status {code} before listening "
                    f"(stdout: {data!r})\n" + self.log_tail()
                )
            data += chunk
        first, _, _ = data.partition(b"\n")
        return first.decode("utf-8", "replace").strip()

    @staticmethod
    def _drain_stdout(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            while proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def _close_devices(self) -> None:
        for device in self._devices:
            try:
                device.close()
            except OSError:
                pass
        self._devices.clear()

    def stop(self) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after a grace period)."""
        self._close_devices()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._finish()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or clean up."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
            self._finish()
        self._close_devices()

    def _finish(self) -> None:
        assert self.proc is not None
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        self.port = None

    def restart(self) -> "Passgate":
        self.stop()
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- clients ---------------------------------------------------------------------------

    def device(self):
        """A fresh CTAPHID device (CTAPHID_INIT done) on a new TCP connection."""
        assert self.port is not None, "passgate is not running"
        device = open_device(self.port)
        self._devices.append(device)
        return device

    def client(self, origin: str | None = None):
        """A python-fido2 `Fido2Client` for https://example.com on a fresh connection."""
        return make_client(self.device(), origin)

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for path in self.log_paths:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- {path.name} (last {lines} lines) ---\n{tail}")
        return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the authenticator's log to the report of a failing test."""
    outcome = yield
    report = outcome.get_result()
    spawn_fixture = getattr(item, "funcargs", {}).get("spawn")
    if report.failed and spawn_fixture is not None:
        for index, instance in enumerate(spawn_fixture.instances):
            report.sections.append((f"passgate log (instance {index})", instance.log_tail()))


@pytest.fixture
def spawn(tmp_path):
    """Factory: `spawn(attestation=None, state_dir=None)` starts a passgate process."""
    binary = _binary()
    started: list[Passgate] = []

    def _spawn(
        attestation: str | None = None, state_dir: Path | None = None, extra: list[str] | None = None
    ) -> Passgate:
        index = len(started)
        state = state_dir if state_dir is not None else tmp_path / f"state-{index}"
        log_dir = tmp_path / f"logs-{index}"
        log_dir.mkdir()
        instance = Passgate(binary, state, log_dir, attestation, extra)
        started.append(instance)
        return instance.start()

    _spawn.instances = started  # type: ignore[attr-defined]
    yield _spawn

    for instance in started:
        instance.kill()


@pytest.fixture
def passgate(spawn) -> Passgate:
    """A running authenticator with default attestation (packed self-attestation)."""
    return spawn()
