"""A private system bus with polkit mocked (python-dbusmock) and the real fprintd on libfprint's
virtual device: used by test_fprintd.py, test_bio_enrollment.py and the device suite's plugin."""

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/><allow send_type="method_call"/><allow send_type="signal"/>
</policy></busconfig>"""
# Slow machines (the vm-test guest runs under QEMU's TCG emulation) multiply every wait here.
TIMEOUT_SCALE = float(os.environ.get("PASSGATE_TEST_TIMEOUT_SCALE", "1"))
ALLOW = "['net.reactivated.fprint.device.enroll','net.reactivated.fprint.device.verify','net.reactivated.fprint.device.setusername']"


def _wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout * TIMEOUT_SCALE
    while not predicate():
        assert time.time() < deadline, f"{what} did not come up"
        time.sleep(0.05)


@contextmanager
def private_fprintd(tmp_path: Path):
    """A private system bus with mocked polkit and the real fprintd on a virtual sensor; yields
    {"env": environment with DBUS_SYSTEM_BUS_ADDRESS, "vdev": the virtual sensor's socket}."""
    bus_sock = tmp_path / "bus.sock"
    conf = tmp_path / "bus.conf"
    conf.write_text(BUS_CONFIG.format(sock=bus_sock))
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={bus_sock}")
    procs = [subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(bus_sock.exists, "the private system bus")
        procs.append(subprocess.Popen([SYSTEM_PYTHON, "-m", "dbusmock", "--system", "--template", "polkitd"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        tries = int(100 * TIMEOUT_SCALE)
        allow = f"import dbus,time\nfor i in range({tries}):\n try:\n  dbus.SystemBus().get_object('org.freedesktop.PolicyKit1','/org/freedesktop/PolicyKit1/Authority').SetAllowed({ALLOW},dbus_interface='org.freedesktop.DBus.Mock');break\n except Exception: time.sleep(0.1)\nelse: raise SystemExit(1)"
        subprocess.run([SYSTEM_PYTHON, "-c", allow], env=env, check=True, timeout=20 * TIMEOUT_SCALE)
        vdev = tmp_path / "vdev.sock"
        (tmp_path / "state").mkdir()
        (tmp_path / "run").mkdir()
        fenv = dict(env, FP_DRIVERS_ALLOWLIST="virtual_device", FP_VIRTUAL_DEVICE=str(vdev),
                    STATE_DIRECTORY=str(tmp_path / "state"), RUNTIME_DIRECTORY=str(tmp_path / "run"))
        procs.append(subprocess.Popen(["/usr/libexec/fprintd", "-t"], env=fenv,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # The virtual device's socket appears when the sensor is opened; wait for fprintd
        # to list the device on the bus instead.
        probe = (f"import dbus,time\nfor i in range({tries}):\n try:\n  m=dbus.SystemBus().get_object('net.reactivated.Fprint','/net/reactivated/Fprint/Manager')\n"
                 "  assert m.GetDevices(dbus_interface='net.reactivated.Fprint.Manager');break\n except Exception: time.sleep(0.1)\nelse: raise SystemExit(1)")
        subprocess.run([SYSTEM_PYTHON, "-c", probe], env=env, check=True, timeout=20 * TIMEOUT_SCALE)
        yield {"env": env, "vdev": vdev}
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()


def enroll(env: dict, vdev: Path, finger: str, name: str = "right-index-finger", user: str = "root") -> None:
    """Enrolls `finger` (the virtual sensor's finger ID) as fprintd's `name` for `user`."""
    out = subprocess.run([SYSTEM_PYTHON, str(Path(__file__).with_name("fprint_enroll.py")), user, str(vdev), finger, name],
                         env=env, capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
    assert out.returncode == 0, out.stdout + out.stderr


def main() -> None:
    """For tests outside pytest (the Tauri journeys): `fprint_env.py DIR [FINGER:NAME ...]` starts
    the private bus and fprintd in DIR, enrolls each FINGER (virtual sensor ID) as NAME for root,
    prints {"bus": DBUS_SYSTEM_BUS_ADDRESS, "vdev": SOCKET} on one line, and stops everything
    when its standard input closes."""
    import json
    import sys
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    with private_fprintd(directory) as fprint:
        for spec in sys.argv[2:]:
            finger, _, name = spec.partition(":")
            enroll(fprint["env"], fprint["vdev"], finger, name or "right-index-finger")
        print(json.dumps({"bus": fprint["env"]["DBUS_SYSTEM_BUS_ADDRESS"], "vdev": str(fprint["vdev"])}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
