"""What someone holding a copy of a passgate state directory (device.key included) can compute
offline, without the authenticator, the user or the machine's TPM: the attacker of the TPM
tests. Written from passgate's documented formats (device key derivation, credential store
record encryption, vault file), independently of the Rust code.

The attacker decrypts every credential record with the device key and tries every 32-byte
window of every byte string in it as an hmac-secret key. The tests use it both ways: it must
find the keys that are meant to be software values (a control that proves the attack works),
and must not find a key the TPM holds."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DEVICE_KEY_MAGIC = b"PGDEVK01"
VAULT_MAGIC = b"PGVAULT\x01"


def derive(state: Path, label: bytes) -> bytes:
    """A software key derived from `STATE/device.key` (HKDF-SHA256, one block)."""
    raw = (state / "device.key").read_bytes()
    assert raw[:8] == DEVICE_KEY_MAGIC and len(raw) == 40, "not a passgate device key"
    prk = hmac.new(b"passgate device key v1", raw[8:], hashlib.sha256).digest()
    return hmac.new(prk, label + b"\x01", hashlib.sha256).digest()


def credential_records(state: Path) -> list[dict]:
    """Every credential record, decrypted: `version || nonce || AES-256-GCM(CBOR)`, with the
    version and the file's RP and credential tags (its directory and file names) as AAD."""
    key = AESGCM(derive(state, b"credential store: record encryption"))
    records = []
    for path in sorted((state / "credentials").glob("*/*")):
        if path.suffix not in (".rk", ".cred"):
            continue
        data = path.read_bytes()
        aad = data[:1] + bytes.fromhex(path.parent.name) + bytes.fromhex(path.stem)
        records.append(cbor2.loads(key.decrypt(data[1:13], data[13:], aad)))
    assert records, f"no credential records in {state}"
    return records


def _byte_strings(value) -> list[bytes]:
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, dict):
        return [b for v in value.values() for b in _byte_strings(v)]
    if isinstance(value, list):
        return [b for v in value for b in _byte_strings(v)]
    return []


def candidate_keys(state: Path) -> set[bytes]:
    """Every 32-byte window of every byte string in every record."""
    return {
        blob[i:i + 32]
        for record in credential_records(state)
        for blob in _byte_strings(record)
        for i in range(len(blob) - 31)
    }


def prf_salt(prf_input: bytes) -> bytes:
    """The hmac-secret salt a WebAuthn client sends for a PRF input."""
    return hashlib.sha256(b"WebAuthn PRF\x00" + prf_input).digest()


def offline_hmac_outputs(state: Path, salt: bytes) -> set[bytes]:
    """Every hmac-secret output the attacker can compute for `salt`."""
    return {hmac.new(key, salt, hashlib.sha256).digest() for key in candidate_keys(state)}


def open_vault_offline(state: Path, vault_file: Path) -> dict | None:
    """The vault's values if any candidate key opens it, else None. The vault key is
    HKDF-SHA256(salt "passgate vault v1", ikm = hmac-secret output over the header's salt,
    info = RP ID 0 vault ID); the header (in the clear) is the AES-GCM associated data."""
    data = vault_file.read_bytes()
    assert data.startswith(VAULT_MAGIC), "not a vault file"
    length = int.from_bytes(data[8:12], "big")
    header = cbor2.loads(data[12:12 + length])
    aad, nonce, sealed = data[:12 + length], data[12 + length:24 + length], data[24 + length:]
    info = header[7].encode() + b"\x00" + header[2].encode()
    for output in offline_hmac_outputs(state, header[9]):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"passgate vault v1", info=info).derive(output)
        try:
            return cbor2.loads(AESGCM(key).decrypt(nonce, sealed, aad))
        except InvalidTag:
            continue
    return None
