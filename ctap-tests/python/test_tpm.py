"""passgate with its keys in a TPM 2.0 (swtpm started here): a WebAuthn registration and
sign-in through python-fido2, verified by py_webauthn; the key never leaves the TPM, so a copy
of the state directory next to another TPM is useless."""

import shutil
import socket
import subprocess
import time

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2

from helpers import authenticate, make_server, register


def _free_port_pair():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            try:
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


@pytest.fixture
def swtpm_factory(tmp_path):
    procs = []

    def start(name):
        state = tmp_path / name
        state.mkdir(exist_ok=True)
        port = _free_port_pair()
        proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline, "swtpm did not start"
                time.sleep(0.05)
        return f"swtpm:host=127.0.0.1,port={port}"

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_webauthn_with_tpm_keys(spawn, swtpm_factory, tmp_path):
    tcti = swtpm_factory("tpm-a")
    pg = spawn(extra=["--key-store", "tpm", "--tcti", tcti])
    status = subprocess.run([str(pg.binary), "status", "--key-store", "tpm", "--tcti", tcti, "--json"],
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stdout + status.stderr
    assert '"backend":"tpm"' in status.stdout and "IBM" in status.stdout

    server = make_server()
    reg = register(pg.client(), server, user_name="tpm-user", resident=True)
    [auth] = authenticate(pg.client(), server, [reg], allow=[reg])
    assert auth.sign_count > 0
    [found] = authenticate(pg.client(), server, [reg], allow=None)
    assert found.credential_id == reg.credential_id

    # The same state directory served with another TPM cannot use the key.
    pg.kill()
    copy = tmp_path / "copied-state"
    shutil.copytree(pg.state_dir, copy)
    other = spawn(state_dir=copy, extra=["--key-store", "tpm", "--tcti", swtpm_factory("tpm-b")])
    with pytest.raises(CtapError):
        Ctap2(other.device()).get_assertion(
            "example.com", b"\0" * 32, [{"type": "public-key", "id": reg.credential_id}]
        )


def test_status_reports_unreachable_tpm(spawn):
    pg = spawn()
    result = subprocess.run([str(pg.binary), "status", "--key-store", "tpm", "--tcti", "swtpm:host=127.0.0.1,port=1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stdout and "no TPM reachable" in result.stdout
