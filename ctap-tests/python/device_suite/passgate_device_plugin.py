"""pytest plugin: run python-fido2's own device suite (`tests/device`) against passgate.

Load it with `-p passgate_device_plugin` (its directory and `ctap-tests/python` on PYTHONPATH)
when running the suite from python-fido2's sdist; `cargo xtask test` does this for each test
file in turn (see xtask/src/device_suite.rs). It

- starts `$PASSGATE_BIN authenticator serve --presence auto` on a fresh state directory
  (`$PASSGATE_DEVICE_STATE`, else a temporary one), on a loopback TCP port, or with
  `PASSGATE_DEVICE_TRANSPORT=uhid` as a HID device on /dev/uhid (the `cargo xtask vm-test`
  guest: a real kernel);
- on TCP, replaces python-fido2's HID discovery (`fido2.hid.list_descriptors`,
  `get_descriptor`, `open_connection`) so that the suite finds exactly that authenticator, over
  CTAPHID on TCP; on uhid, python-fido2's own Linux hidraw backend finds and opens the device
  (discovery only leaves out FIDO devices that are not passgate);
- turns the suite's "disconnect / connect the authenticator" prompts into a power cycle: the
  process is stopped and started again on the same state directory (and the same port), and
  each start is a new device, as a replugged USB key is a new hidraw node (on uhid it really
  is: the device is destroyed and created again, and the suite waits for the new node).

This must be imported before the suite's conftest does `from fido2.hid import ...`; `-p` plugins
are, which is why this is a plugin and not a conftest.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import fido2.hid
import pytest
from fido2.hid.base import HidDescriptor

from helpers import LISTEN_PREFIX, REPORT_SIZE, TcpCtapHidConnection

# Every skip the suite may report, each a feature passgate deliberately does not offer (the
# README of this directory gives the reasons). Any other skip is reported as a failure: a
# feature that stopped being offered must not turn into a quiet skip.
EXPLAINED_SKIPS = [
    re.compile(r"Algorithm (ES256K|ES512|PS256|RS256|MLDSA44|MLDSA65|MLDSA87) not supported"),
    re.compile(r"Enterprise Attestation not supported"),
    re.compile(r"Persistent PUAT not supported"),
    re.compile(r"thirdPartyPayment not supported by authenticator"),
    re.compile(r"previewSign not supported by authenticator"),
]

# Slow machines (the vm-test guest runs under QEMU's TCG emulation) multiply every wait here.
TIMEOUT_SCALE = float(os.environ.get("PASSGATE_TEST_TIMEOUT_SCALE", "1"))
STARTUP_TIMEOUT = 15.0 * TIMEOUT_SCALE
STOP_TIMEOUT = 5.0 * TIMEOUT_SCALE
PATH_PREFIX = "passgate-tcp:"
# `tcp` (CTAPHID on loopback TCP) or `uhid` (a HID device on /dev/uhid, seen through hidraw).
TRANSPORT = os.environ.get("PASSGATE_DEVICE_TRANSPORT", "tcp")
UHID_READY_LINE = "serving a FIDO HID device on "
# The product name passgate's uhid device shows (transport/uhid.rs, `passgate_identity`).
UHID_PRODUCT_NAME = "passgate"
# How long the hidraw node may take to appear or go away (a TCG guest is slow).
HIDRAW_TIMEOUT = 30.0 * TIMEOUT_SCALE


class Authenticator:
    """One `passgate authenticator serve` process at a time, on a fixed state dir and port."""

    def __init__(self, binary: str, state_dir: Path, log_path: Path, extra: list[str]):
        self.uhid = TRANSPORT == "uhid"
        self.binary = binary
        self.extra = extra
        self.state_dir = state_dir
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        # Incremented at each power-up: the device path changes as a replugged key's does.
        self.generation = 0

    def power_on(self) -> None:
        if self.proc is not None:
            return
        if self.uhid:
            where = ["--transport", "uhid"]
        else:
            where = ["--listen", f"tcp://127.0.0.1:{self.port}"]
        cmd = [
            self.binary,
            "authenticator",
            "serve",
            *where,
            "--state-dir",
            str(self.state_dir),
            "--presence",
            "auto",
            *self.extra,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        line = self._first_line()
        expected = UHID_READY_LINE if self.uhid else LISTEN_PREFIX
        if not line.startswith(expected):
            self.power_off()
            raise RuntimeError(f"passgate printed {line!r}, expected `{expected}...`")
        if not self.uhid:
            self.port = int(line[len(LISTEN_PREFIX) :].rsplit(":", 1)[1])
        self.generation += 1
        # Keep draining stdout so the process never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        if self.uhid:
            # The kernel creates the hidraw node after UHID_CREATE2 returns, once hid-generic
            # has bound the device: wait for it as a client would for a plugged-in key.
            self._wait_for_hidraw(present=True)

    def _first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"<nothing within {STARTUP_TIMEOUT}s: {data!r}>"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return f"<exited: {data!r}; see {self.log_path}>"
                data += chunk
        return data.partition(b"\n")[0].decode("utf-8", "replace").strip()

    @staticmethod
    def _drain(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        try:
            while proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def power_off(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        if self.uhid:
            # UHID_DESTROY (or the closed fd) removes the node: unplugged means gone.
            self._wait_for_hidraw(present=False)

    def _wait_for_hidraw(self, present: bool) -> None:
        deadline = time.monotonic() + HIDRAW_TIMEOUT
        while bool(_passgate_hidraw_descriptors()) != present:
            if time.monotonic() > deadline:
                state = "appear" if present else "go away"
                raise RuntimeError(
                    f"passgate's hidraw node did not {state} within {HIDRAW_TIMEOUT}s; "
                    f"see {self.log_path}"
                )
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def path(self) -> str:
        return f"{PATH_PREFIX}127.0.0.1:{self.port}#{self.generation}"

    def descriptor(self) -> HidDescriptor:
        return HidDescriptor(
            path=self.path(),
            vid=0,
            pid=0,
            report_size_in=REPORT_SIZE,
            report_size_out=REPORT_SIZE,
            product_name="passgate (CTAPHID over TCP)",
            serial_number=None,
        )


_authenticator: Authenticator | None = None
_tempdir: tempfile.TemporaryDirectory | None = None
_services = ExitStack()


class _Finger:
    """Touches libfprint's virtual sensor with one finger every 0.25 s: every enrollment
    sample and every verification the suite asks a person for gets that finger."""

    def __init__(self, vdev: Path, finger: str):
        self.vdev, self.finger, self.stop = vdev, finger, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.25):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.vdev))
                    s.sendall(f"SCAN {self.finger}".encode())
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _list_descriptors():
    if _authenticator is not None and _authenticator.running():
        return [_authenticator.descriptor()]
    return []


def _get_descriptor(path):
    if _authenticator is not None and _authenticator.running() and path == _authenticator.path():
        return _authenticator.descriptor()
    raise ValueError(f"no such passgate device: {path!r}")


def _open_connection(descriptor):
    path = descriptor.path
    if not isinstance(path, str) or not path.startswith(PATH_PREFIX):
        raise ValueError(f"not a passgate device: {path!r}")
    host, _, port = path[len(PATH_PREFIX) :].partition("#")[0].rpartition(":")
    return TcpCtapHidConnection(host, int(port))


_hidraw_list_descriptors = fido2.hid.list_descriptors


def _passgate_hidraw_descriptors():
    """python-fido2's own hidraw discovery, leaving out FIDO devices that are not passgate (a
    security key plugged into the machine running the suite must not be reset by it)."""
    return [d for d in _hidraw_list_descriptors() if d.product_name == UHID_PRODUCT_NAME]


# Patched at import, before the suite's conftest imports these names.
if TRANSPORT == "uhid":
    fido2.hid.list_descriptors = _passgate_hidraw_descriptors
elif TRANSPORT == "tcp":
    fido2.hid.list_descriptors = _list_descriptors
    fido2.hid.get_descriptor = _get_descriptor
    fido2.hid.open_connection = _open_connection
else:
    raise RuntimeError(f"PASSGATE_DEVICE_TRANSPORT must be tcp or uhid, not {TRANSPORT!r}")


def pytest_configure(config):
    global _authenticator, _tempdir
    binary = os.environ.get("PASSGATE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        raise pytest.UsageError("PASSGATE_BIN must name the passgate binary")
    state = os.environ.get("PASSGATE_DEVICE_STATE")
    if state:
        base = Path(state)
        base.mkdir(parents=True, exist_ok=True)
    else:
        _tempdir = tempfile.TemporaryDirectory(prefix="passgate-device-")
        base = Path(_tempdir.name)
    state_dir = base / "state"
    if state_dir.exists() and any(state_dir.iterdir()):
        raise pytest.UsageError(f"{state_dir} is not empty: each run needs a fresh state")
    extra: list[str] = []
    if os.environ.get("PASSGATE_DEVICE_FPRINTD"):
        # Fingerprints: the real fprintd on libfprint's virtual sensor, on a private system
        # bus (see ctap-tests/python/fprint_env.py), and a finger always on the sensor.
        from fprint_env import private_fprintd

        # A short directory: it holds Unix sockets, whose paths are limited to 108 bytes.
        sockets = Path(_services.enter_context(tempfile.TemporaryDirectory(prefix="pg-fp-")))
        fprint = _services.enter_context(private_fprintd(sockets))
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"]
        _services.enter_context(_Finger(fprint["vdev"], "finger-a"))
        extra = ["--user-verifier", "fprintd", "--fprint-user", "root"]
    _authenticator = Authenticator(binary, state_dir, base / "passgate.log", extra)
    _authenticator.power_on()


def pytest_unconfigure(config):
    if _authenticator is not None:
        _authenticator.power_off()
    _services.close()
    if _tempdir is not None:
        _tempdir.cleanup()


def _patch_printer(module) -> None:
    """The suite asks a person to unplug and replug the key: we power-cycle the process."""
    printer = getattr(module, "Printer", None)
    if printer is None or getattr(printer, "_passgate_patched", False):
        return

    def remove(self, nfc=False):
        assert _authenticator is not None
        _authenticator.power_off()

    def insert(self, nfc=False):
        assert _authenticator is not None
        _authenticator.power_on()

    def touch(self):
        pass  # --presence auto: every presence check is approved.

    printer.remove = remove
    printer.insert = insert
    printer.touch = touch
    printer._passgate_patched = True


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    for name, module in list(sys.modules.items()):
        if name.endswith("device") and module is not None and hasattr(module, "TEST_PIN"):
            _patch_printer(module)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turns a skip whose reason is not in EXPLAINED_SKIPS into a failure."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    if any(pattern.fullmatch(reason) for pattern in EXPLAINED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"unexplained skip: {reason!r}; passgate should offer this, or the skip needs a reason "
        "in ctap-tests/python/device_suite/README.md and EXPLAINED_SKIPS"
    )
