"""Shared pieces for the `passgate rp` interop tests (test_rp_*.py).

* `RpServer`: one `passgate rp` process (SQLite or PostgreSQL), started on a free port, stopped
  with SIGTERM (a clean exit is asserted), its log kept for failure messages.
* `Browser`: a cookie-carrying HTTP client, one per simulated browser profile.
* `uv_client`: python-fido2's `Fido2Client` over CTAPHID/TCP to our authenticator, with the PIN
  answered so the authenticator sets UV; `ScriptedCollector` lets a test choose every member of
  clientDataJSON (and the RP ID) that the authenticator then signs for real.
* `PostgresCluster`: a private PostgreSQL cluster run as the `postgres` user.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.client import ClientDataCollector, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.webauthn import (
    CollectedClientData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
)

from conftest import _binary
from helpers import ORIGIN, RP_ID, to_json

PIN = "271828"
API_TOKEN = "rp-interop-token-0123456789"
RP_STARTUP_TIMEOUT = 20.0
HTTP_TIMEOUT = 30.0


# -- encodings ---------------------------------------------------------------------------------


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def response_json(response: Any) -> dict:
    """python-fido2's Registration/AuthenticationResponse as a WebAuthn JSON dict."""
    return json.loads(to_json(response))


def strip_conformance(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in ("status", "errorMessage")}


# -- the server --------------------------------------------------------------------------------


class RpServer:
    """One `passgate rp` process."""

    def __init__(
        self,
        workdir: Path,
        database: str,
        receipt_key: Path,
        *,
        name: str = "rp",
        rp_id: str = RP_ID,
        origins: tuple[str, ...] = (ORIGIN,),
        extra: list[str] | None = None,
    ):
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}-{self.port}.log"
        cmd = [str(_binary()), "rp", "--listen", f"127.0.0.1:{self.port}", "--database", database,
               "--rp-id", rp_id, "--receipt-key", str(receipt_key),
               "--rate-limit-per-sec", "0"]
        for origin in origins:
            cmd += ["--origin", origin]
        cmd += extra or []
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                         env={**os.environ, "RUST_BACKTRACE": "1", "PASSGATE_API_TOKEN": API_TOKEN})
        line = self._first_line()
        expected = f"listening on http://127.0.0.1:{self.port}"
        if line != expected:
            self.kill()
            raise AssertionError(f"{name}: expected {expected!r} on stdout, got {line!r}\n{self.log_tail()}")
        threading.Thread(target=self._drain, daemon=True).start()

    def _first_line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + RP_STARTUP_TIMEOUT
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return data.decode(errors="replace") + " <timed out>"
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return data.decode(errors="replace") + f" <exited {self.proc.wait(5)}>"
                data += chunk
        return data.split(b"\n", 1)[0].decode(errors="replace").strip()

    def _drain(self) -> None:
        try:
            while self.proc.stdout and self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return f"--- {self.log_path.name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status (SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def browser(self) -> "Browser":
        return Browser(self)


class HttpResult:
    def __init__(self, status: int, body: Any, headers: http.client.HTTPMessage, raw: bytes):
        self.status = status
        self.body = body
        self.headers = headers
        self.raw = raw

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    def __repr__(self) -> str:
        return f"HTTP {self.status} {self.raw[:600]!r}"


class Browser:
    """An HTTP client with its own cookie (one browser profile)."""

    def __init__(self, server: RpServer):
        self.server = server
        self.cookie: str | None = None  # "passgate_session=TOKEN"
        self.set_cookie_headers: list[str] = []

    def request(self, method: str, path: str, body: Any = None, *, headers: dict | None = None,
                send_cookie: bool = True) -> HttpResult:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=HTTP_TIMEOUT)
        h = {}
        if body is not None:
            h["content-type"] = "application/json"
        if send_cookie and self.cookie:
            h["cookie"] = self.cookie
        h.update(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        try:
            conn.request(method, path, data, h)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        for value in resp.headers.get_all("set-cookie") or []:
            self.set_cookie_headers.append(value)
            pair = value.split(";", 1)[0]
            name, _, token = pair.partition("=")
            if name == "passgate_session":
                self.cookie = pair if token else None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return HttpResult(resp.status, parsed, resp.headers, raw)

    def post(self, path: str, body: Any = None, **kw) -> HttpResult:
        return self.request("POST", path, {} if body is None else body, **kw)

    def get(self, path: str, **kw) -> HttpResult:
        return self.request("GET", path, **kw)

    def ok(self, method: str, path: str, body: Any = None, **kw) -> Any:
        """A request that must answer 200; returns the JSON body."""
        result = self.request(method, path, body, **kw)
        assert result.status == 200, f"{method} {path}: {result!r}\n{self.server.log_tail()}"
        return result.body


def expect_error(result: HttpResult, status: int, code: str) -> None:
    assert (result.status, result.code) == (status, code), f"expected {status} {code}, got {result!r}"
    assert result.body["error"]["message"], result


# -- the browser's authenticator side ----------------------------------------------------------


class PinInteraction(UserInteraction):
    """What the person types: the PIN, so the authenticator performs UV."""

    def __init__(self) -> None:
        self.pin_requests = 0

    def prompt_up(self) -> None:
        pass

    def request_pin(self, permissions, rp_id):
        self.pin_requests += 1
        return PIN

    def request_uv(self, permissions, rp_id):
        return True


class ScriptedCollector(ClientDataCollector):
    """Client data with chosen members: the authenticator signs exactly these bytes.

    `fields` override/extend {type, challenge, origin, crossOrigin}; `raw` replaces the JSON
    text entirely (a function of the options' challenge); `rp_id` overrides the RP ID the client
    asks the authenticator for (no origin check, as a compromised browser would do)."""

    def __init__(self, origin: str = ORIGIN, *, rp_id: str | None = None, fields: dict | None = None,
                 raw=None, omit_cross_origin: bool = False):
        self.origin = origin
        self.rp_id = rp_id
        self.fields = fields or {}
        self.raw = raw
        self.omit_cross_origin = omit_cross_origin

    def collect_client_data(self, options):
        is_create = isinstance(options, PublicKeyCredentialCreationOptions)
        rp_id = self.rp_id or (options.rp.id if is_create else options.rp_id) or RP_ID
        if self.raw is not None:
            return _raw_client_data(self.raw(options.challenge).encode(), options.challenge), rp_id
        data = {
            "type": "webauthn.create" if is_create else "webauthn.get",
            "challenge": b64u(options.challenge),
            "origin": self.origin,
            "crossOrigin": False,
        }
        if self.omit_cross_origin:
            del data["crossOrigin"]
        data.update(self.fields)
        return CollectedClientData(json.dumps(data, separators=(",", ":")).encode()), rp_id


def _raw_client_data(raw: bytes, challenge: bytes) -> CollectedClientData:
    """CollectedClientData over arbitrary bytes (python-fido2's constructor insists on the
    required members; the authenticator only ever sees the hash)."""
    data = CollectedClientData.__new__(CollectedClientData, raw)
    object.__setattr__(data, "_data", {})
    object.__setattr__(data, "type", "webauthn.get")
    object.__setattr__(data, "challenge", challenge)
    object.__setattr__(data, "origin", ORIGIN)
    return data


def set_pin(passgate) -> None:
    ClientPin(Ctap2(passgate.device())).set_pin(PIN)


def uv_client(passgate, origin: str = ORIGIN, collector: ClientDataCollector | None = None) -> Fido2Client:
    """A Fido2Client on a fresh connection; the PIN must have been set (`set_pin`)."""
    return Fido2Client(
        passgate.device(),
        client_data_collector=collector or DefaultClientDataCollector(origin),
        user_interaction=PinInteraction(),
    )


def create(client: Fido2Client, options_json: dict):
    """navigator.credentials.create() with the server's PublicKeyCredentialCreationOptionsJSON."""
    return client.make_credential(PublicKeyCredentialCreationOptions.from_dict(strip_conformance(options_json)))


def get(client: Fido2Client, options_json: dict, index: int = 0):
    """navigator.credentials.get() with the server's PublicKeyCredentialRequestOptionsJSON."""
    selection = client.get_assertion(PublicKeyCredentialRequestOptions.from_dict(strip_conformance(options_json)))
    return selection.get_response(index)


# -- raw crypto --------------------------------------------------------------------------------


def ec_public_from_jwk(jwk: dict) -> ec.EllipticCurvePublicKey:
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256", jwk
    x, y = unb64u(jwk["x"]), unb64u(jwk["y"])
    assert len(x) == len(y) == 32, jwk
    return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                         ec.SECP256R1()).public_key()


def es256_verify(key: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> None:
    """Raises `cryptography.exceptions.InvalidSignature` when the signature is bad."""
    key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


# -- PostgreSQL --------------------------------------------------------------------------------


class PostgresCluster:
    """initdb + pg_ctl as the `postgres` user, trust auth, 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                            key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        if not candidates:
            pytest.fail("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/pg_ctl "
                        "(`cargo xtask test` installs the Debian `postgresql` package)", pytrace=False)
        self.bin = Path(candidates[-1]).parent
        for tool in ("initdb", "pg_ctl", "createdb", "psql"):
            if not (self.bin / tool).exists():
                pytest.fail(f"PostgreSQL tool {self.bin / tool} is missing", pytrace=False)
        if shutil.which("runuser") is None:
            pytest.fail("runuser is required to run PostgreSQL as the postgres user", pytrace=False)
        self.root = Path(tempfile.mkdtemp(prefix="passgate-rp-pg-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        shutil.chown(self.root, "postgres", "postgres")
        shutil.chown(self.sockets, "postgres", "postgres")
        self.port = free_port()
        self.started = False

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        out = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                             timeout=timeout, cwd="/")
        assert out.returncode == 0, f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        return out

    def start(self, database: str = "passgate") -> str:
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--no-sync")
        self.started = True
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w",
            "-t", "60", "-o",
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        )
        self.psql(f"CREATE DATABASE {database}", db="postgres")
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, db: str = "passgate") -> str:
        return self._as_postgres(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                 "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql).stdout

    def log_tail(self) -> str:
        try:
            return (self.root / "postgres.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
                            "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60, cwd="/")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
