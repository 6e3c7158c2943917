"""CTAPHID over TCP for python-fido2, and relying-party helpers (Fido2Server + py_webauthn)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import webauthn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.attestation import AttestationType, PackedAttestation
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

LISTEN_PREFIX = "listening on "
REPORT_SIZE = 64
SOCKET_TIMEOUT = 10.0

ORIGIN = "https://example.com"
RP_ID = "example.com"
RP = PublicKeyCredentialRpEntity(id=RP_ID, name="Example")

ES256 = -7


# -- transport ---------------------------------------------------------------------------------


# `cargo xtask fuzz --seed` sets this to a directory: every connection's reports are appended
# there (`N.sent`, `N.received`, 64 bytes each), and the fuzz seeder turns python-fido2's
# traffic into seeds for the CTAP and CTAPHID targets.
RECORD_DIR_ENV = "PASSGATE_CTAPHID_RECORD"
_recorded_connections = 0


class TcpCtapHidConnection(CtapHidConnection):
    """64-byte HID reports carried as-is over a TCP stream, in both directions."""

    # (sent, received) files while recording (subclasses that connect otherwise never record).
    record = None

    def __init__(self, host: str, port: int, timeout: float = SOCKET_TIMEOUT):
        global _recorded_connections
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Every read and write times out: a silent authenticator fails the test, never hangs it.
        self.sock.settimeout(timeout)
        self.record = None
        record_dir = os.environ.get(RECORD_DIR_ENV)
        if record_dir:
            _recorded_connections += 1
            stem = os.path.join(record_dir, f"{os.getpid()}-{_recorded_connections}")
            self.record = (open(stem + ".sent", "ab", buffering=0), open(stem + ".received", "ab", buffering=0))

    def write_packet(self, data: bytes) -> None:
        if len(data) != REPORT_SIZE:
            raise ValueError(f"HID report must be {REPORT_SIZE} bytes, got {len(data)}")
        self.sock.sendall(data)
        if self.record:
            self.record[0].write(data)

    def read_packet(self) -> bytes:
        packet = b""
        while len(packet) < REPORT_SIZE:
            chunk = self.sock.recv(REPORT_SIZE - len(packet))
            if not chunk:
                raise ConnectionError(
                    f"authenticator closed the connection after {len(packet)} bytes of a report"
                )
            packet += chunk
        if self.record:
            self.record[1].write(packet)
        return packet

    def close(self) -> None:
        self.sock.close()
        if self.record:
            for f in self.record:
                f.close()
            self.record = None


def open_device(port: int, host: str = "127.0.0.1") -> CtapHidDevice:
    """Connects and runs CTAPHID_INIT (done by `CtapHidDevice.__init__`)."""
    descriptor = HidDescriptor(
        path=f"tcp://{host}:{port}",
        vid=0,
        pid=0,
        report_size_in=REPORT_SIZE,
        report_size_out=REPORT_SIZE,
        product_name="passgate (CTAPHID over TCP)",
        serial_number=None,
    )
    return CtapHidDevice(descriptor, TcpCtapHidConnection(host, port))


class _NoPrompt(UserInteraction):
    """The authenticator runs with `--presence auto`; there is nobody to prompt."""

    def prompt_up(self) -> None:
        pass


def make_client(device: CtapHidDevice, origin: str | None = None) -> Fido2Client:
    return Fido2Client(
        device,
        client_data_collector=DefaultClientDataCollector(origin or ORIGIN),
        user_interaction=_NoPrompt(),
    )


# -- relying party -----------------------------------------------------------------------------


def _verify_packed_self(attestation_object: AttestationObject, client_data_hash: bytes) -> None:
    result = PackedAttestation().verify(
        attestation_object.att_stmt, attestation_object.auth_data, client_data_hash
    )
    if result.attestation_type != AttestationType.SELF:
        raise ValueError(f"expected self attestation, got {result.attestation_type!r}")


def make_server(attestation: str = "none") -> Fido2Server:
    """A Fido2Server for example.com; with `packed`, it verifies packed self-attestation."""
    if attestation == "packed":
        return Fido2Server(RP, attestation="direct", verify_attestation=_verify_packed_self)
    return Fido2Server(RP, attestation="none")


def to_json(response: Any) -> str:
    """python-fido2's RegistrationResponse/AuthenticationResponse as WebAuthn JSON."""
    return json.dumps(dict(response), default=dict)


@dataclass
class Registration:
    user_id: bytes
    credential: AttestedCredentialData
    auth_data: AuthenticatorData
    fmt: str
    att_stmt: dict
    webauthn_public_key: bytes
    webauthn_sign_count: int
    webauthn_fmt: str

    @property
    def credential_id(self) -> bytes:
        return self.credential.credential_id

    def descriptor(self) -> PublicKeyCredentialDescriptor:
        return PublicKeyCredentialDescriptor(type="public-key", id=self.credential_id)


def register(
    client: Fido2Client,
    server: Fido2Server,
    *,
    user_name: str,
    user_id: bytes | None = None,
    resident: bool,
    exclude: list | None = None,
) -> Registration:
    """makeCredential through Fido2Client, verified by Fido2Server AND py_webauthn."""
    user_id = user_id if user_id is not None else os.urandom(16)
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=user_id, name=user_name, display_name=user_name.title()),
        credentials=exclude,
        resident_key_requirement=(
            ResidentKeyRequirement.REQUIRED if resident else ResidentKeyRequirement.DISCOURAGED
        ),
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    response = client.make_credential(options.public_key)

    auth_data = server.register_complete(state, response)
    assert auth_data.credential_data is not None

    verified = webauthn.verify_registration_response(
        credential=to_json(response),
        expected_challenge=options.public_key.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=False,
    )
    assert verified.credential_id == response.raw_id == auth_data.credential_data.credential_id
    attestation_object = response.response.attestation_object
    return Registration(
        user_id=user_id,
        credential=auth_data.credential_data,
        auth_data=auth_data,
        fmt=attestation_object.fmt,
        att_stmt=dict(attestation_object.att_stmt),
        webauthn_public_key=verified.credential_public_key,
        webauthn_sign_count=verified.sign_count,
        webauthn_fmt=str(getattr(verified.fmt, "value", verified.fmt)),
    )


@dataclass
class Authentication:
    credential_id: bytes
    user_handle: bytes | None
    auth_data: AuthenticatorData
    sign_count: int


def authenticate_response(
    server: Fido2Server,
    state: Any,
    options: Any,
    response: Any,
    registrations: list[Registration],
    current_sign_count: int = 0,
) -> Authentication:
    """Verifies one assertion with Fido2Server AND py_webauthn."""
    server.authenticate_complete(state, [r.credential for r in registrations], response)
    matching = [r for r in registrations if r.credential_id == response.raw_id]
    assert len(matching) == 1, "assertion for a credential that was not registered"
    verified = webauthn.verify_authentication_response(
        credential=to_json(response),
        expected_challenge=options.public_key.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=matching[0].webauthn_public_key,
        credential_current_sign_count=current_sign_count,
        require_user_verification=False,
    )
    assert verified.credential_id == response.raw_id
    auth_data = response.response.authenticator_data
    assert verified.new_sign_count == auth_data.counter
    return Authentication(
        credential_id=response.raw_id,
        user_handle=response.response.user_handle,
        auth_data=auth_data,
        sign_count=verified.new_sign_count,
    )


def authenticate(
    client: Fido2Client,
    server: Fido2Server,
    registrations: list[Registration],
    *,
    allow: list[Registration] | None,
    current_sign_count: int = 0,
) -> list[Authentication]:
    """getAssertion through Fido2Client (allowList = `allow`, or none when `allow` is None);
    every returned assertion is verified by Fido2Server and py_webauthn."""
    options, state = server.authenticate_begin(
        credentials=[r.credential for r in allow] if allow is not None else None,
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    selection = client.get_assertion(options.public_key)
    results = []
    for index in range(len(selection.get_assertions())):
        response = selection.get_response(index)
        results.append(
            authenticate_response(
                server, state, options, response, registrations, current_sign_count
            )
        )
    return results


def assert_flags(auth_data: AuthenticatorData, *, attested: bool) -> None:
    """UP set, UV NOT set (no user verification exists yet), AT as expected."""
    assert auth_data.is_user_present(), f"UP flag missing: flags={auth_data.flags!r}"
    assert not auth_data.is_user_verified(), f"UV flag set without UV: flags={auth_data.flags!r}"
    assert bool(auth_data.flags & AuthenticatorData.FLAG.AT) == attested


# -- raw signature checks (independent of python-fido2's verifier) -------------------------------


def cose_to_cryptography(cose_key: dict) -> ec.EllipticCurvePublicKey:
    """An ES256 COSE_Key (kty 2, crv 1) as a `cryptography` public key."""
    assert cose_key[1] == 2, f"kty must be EC2, got {cose_key[1]}"
    assert cose_key[3] == ES256, f"alg must be ES256, got {cose_key[3]}"
    assert cose_key[-1] == 1, f"crv must be P-256, got {cose_key[-1]}"
    x, y = cose_key[-2], cose_key[-3]
    assert len(x) == 32 and len(y) == 32
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    )
    return numbers.public_key()


def ecdsa_valid(public_key: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def decode_cose(data: bytes) -> dict:
    return dict(cbor.decode(data))
