"""WebAuthn's `tpm` attestation from the real binary on swtpm: swtpm_setup manufactures the
TPM with endorsement key certificates issued by a test CA made here (swtpm_localca configured
with that CA's key, in a temporary directory), `passgate authenticator attestation-key` creates
the TPM's attestation key (AK), the same CA certifies it only after credential activation
(tpm2-tools' software TPM2_MakeCredential to the EK whose certificate it issued, bound to the
AK's name; `attestation-key --activate` runs TPM2_ActivateCredential and opens the chain sealed
under the secret; a credential bound to another name is refused) (the certificate WebAuthn L3 §8.3.1 asks for: version 3, empty subject, a critical subject
alternative name with the TPM's manufacturer, model and version, the tcg-kp-AIKCertificate
extended key usage, CA=false), the chain is installed, and a credential made through
python-fido2 with `--attestation tpm` is verified by three independent verifiers with the test
CA as their only trust anchor: py_webauthn, python-fido2's own Fido2Server, and SimpleWebAuthn
(@simplewebauthn/server, pinned in relying-party/loadtest/package.json, run by node). A chain
to another CA is refused by all three. (webauthn-rs 0.6.2 cannot verify `tpm` statements at all —
kanidm/webauthn-rs#535; authenticator/tests/tpm_attestation.rs pins that.)"""

import datetime
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID, ObjectIdentifier
from fido2.attestation import AttestationVerifier, UntrustedAttestation
from fido2 import cbor
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestationConveyancePreference,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)
from webauthn import verify_registration_response
from webauthn.helpers.exceptions import InvalidRegistrationResponse
from webauthn.helpers.structs import AttestationFormat

from helpers import ORIGIN, RP, RP_ID, to_json
from test_tpm import swtpm_factory  # noqa: F401 (a fixture)

TCG_AT_TPM_MANUFACTURER = ObjectIdentifier("2.23.133.2.1")
TCG_AT_TPM_MODEL = ObjectIdentifier("2.23.133.2.2")
TCG_AT_TPM_VERSION = ObjectIdentifier("2.23.133.2.3")
TCG_KP_AIK_CERTIFICATE = ObjectIdentifier("2.23.133.8.3")


class LocalCa:
    """A self-signed P-256 root that issues AK certificates."""

    def __init__(self, name: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            # swtpm_localca (GnuTLS) copies it into the EK certificate's authority key ID.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def issue_ak(self, ak: dict) -> bytes:
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), bytes.fromhex(ak["public_key"])
        )
        tpm = x509.Name([
            x509.NameAttribute(TCG_AT_TPM_MANUFACTURER, ak["tpm_manufacturer"]),
            x509.NameAttribute(TCG_AT_TPM_MODEL, ak["tpm_model"]),
            x509.NameAttribute(TCG_AT_TPM_VERSION, ak["tpm_version"]),
        ])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            # Critical: the subject is empty (RFC 5280 §4.2.1.6).
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(tpm)]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([TCG_KP_AIK_CERTIFICATE]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)


def _manufacture_tpm(tmp_path: Path, ca: "LocalCa") -> Path:
    """swtpm_setup on a fresh state directory: EK certificates issued by `ca` (through
    swtpm_localca with a configuration of our own: nothing in /etc or /var is read or written).
    Returns the directory the EK certificates were written to."""
    work = tmp_path / "localca"
    (work / "state").mkdir(parents=True)
    (work / "ek-certs").mkdir()
    (work / "ca.key").write_bytes(ca.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (work / "ca.pem").write_bytes(ca.pem())
    (work / "certserial").write_text("1\n")
    (work / "swtpm-localca.conf").write_text(
        f"statedir = {work / 'state'}\n"
        f"signingkey = {work / 'ca.key'}\n"
        f"issuercert = {work / 'ca.pem'}\n"
        f"certserial = {work / 'certserial'}\n")
    (work / "swtpm_setup.conf").write_text(
        "create_certs_tool = /usr/bin/swtpm_localca\n"
        f"create_certs_tool_config = {work / 'swtpm-localca.conf'}\n"
        "active_pcr_banks = sha256\n")
    tpm_state = tmp_path / "tpm-attestation"
    tpm_state.mkdir()
    out = subprocess.run(
        ["swtpm_setup", "--tpm2", "--tpmstate", str(tpm_state), "--create-ek-cert",
         "--config", str(work / "swtpm_setup.conf"),
         "--write-ek-cert-files", str(work / "ek-certs"),
         "--logfile", str(work / "swtpm_setup.log")],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (work / "swtpm_setup.log").read_text()
    return work / "ek-certs"


def _attestation_key(binary, state_dir, tcti, *chain, extra=(), expect_ok=True):
    args = [str(binary), "authenticator", "attestation-key", "--state-dir", str(state_dir),
            "--tcti", tcti, *extra]
    for path in chain:
        args += ["--install-chain", str(path)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if not expect_ok:
        assert out.returncode != 0, out.stdout
        return out.stderr
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _activation_answer(request: dict, ca: "LocalCa", tmp_path: Path, name: bytes) -> Path:
    """The privacy CA's side of credential activation, independent of passgate: the EK
    certificate must chain to `ca` and carry the EK's key; `name` is the AK name the credential
    is bound to; tpm2-tools' software TPM2_MakeCredential (`-T none`) protects a random secret
    for the EK; the AK certificate is sealed under that secret (AES-256-GCM, the format of
    docs/src/security/tpm-key-store.md)."""
    ek_public = websafe_decode(request["ek_public"])
    ek_cert = x509.load_der_x509_certificate(websafe_decode(request["ek_certificate"]))
    ek_cert.verify_directly_issued_by(ca.cert)
    modulus = ek_cert.public_key().public_numbers().n.to_bytes(256, "big")
    # TPMT_PUBLIC of an RSA 2048 key ends with its unique field: TPM2B of the modulus.
    assert ek_public[-258:] == b"\x01\x00" + modulus, "the EK certificate is not the EK's"
    secret = os.urandom(32)
    (tmp_path / "ek.pub").write_bytes(len(ek_public).to_bytes(2, "big") + ek_public)
    (tmp_path / "secret.bin").write_bytes(secret)
    out = subprocess.run(
        ["tpm2_makecredential", "-T", "none", "-u", str(tmp_path / "ek.pub"),
         "-s", str(tmp_path / "secret.bin"), "-n", name.hex(),
         "-o", str(tmp_path / "credential.bin")],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    blob = (tmp_path / "credential.bin").read_bytes()
    # tpm2-tools' file: magic, version, then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
    assert blob[:8] == bytes.fromhex("badcc0de00000001")
    id_len = int.from_bytes(blob[8:10], "big")
    credential_blob = blob[10:10 + id_len]
    rest = blob[10 + id_len:]
    encrypted_secret = rest[2:2 + int.from_bytes(rest[:2], "big")]
    ak = {k: request[k] for k in ("tpm_manufacturer", "tpm_model", "tpm_version")}
    ak["public_key"] = websafe_decode(request["public_key"]).hex()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(secret).encrypt(
        nonce, cbor.encode([ca.issue_ak(ak)]), b"passgate attestation chain v1")
    answer = tmp_path / "activation-answer.json"
    answer.write_text(json.dumps({
        "credential_blob": websafe_encode(credential_blob),
        "encrypted_secret": websafe_encode(encrypted_secret),
        "sealed_chain": websafe_encode(sealed),
    }))
    return answer


LOADTEST = Path(__file__).resolve().parents[2] / "relying-party" / "loadtest"


def _simplewebauthn(registration_json: str, challenge: bytes, root_pem: bytes) -> dict:
    """@simplewebauthn/server's verdict on a registration, `root_pem` its only `tpm` root."""
    if not (LOADTEST / "node_modules" / "@simplewebauthn" / "server").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LOADTEST, check=True,
                       timeout=300)
    request = {
        "response": json.loads(registration_json),
        "expectedChallenge": websafe_encode(challenge),
        "expectedOrigin": ORIGIN,
        "expectedRPID": RP_ID,
        "rootCertificates": {"tpm": [root_pem.decode()]},
    }
    out = subprocess.run(["node", str(LOADTEST / "verify-registration.mjs")], cwd=LOADTEST,
                         input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class _TrustCa(AttestationVerifier):
    """python-fido2's attestation verifier with one trust anchor."""

    def __init__(self, ca_der: bytes):
        super().__init__()
        self.ca_der = ca_der

    def ca_lookup(self, result, auth_data):
        return self.ca_der


def test_tpm_attestation_is_verified_by_py_webauthn_and_python_fido2(spawn, swtpm_factory, tmp_path):  # noqa: F811
    from conftest import _binary

    ca = LocalCa("passgate test TPM CA")
    ek_certs = sorted(_manufacture_tpm(tmp_path, ca).iterdir())
    # The EK certificates (RSA 2048 and ECC) chain to the CA that will certify the AK.
    assert [p.name for p in ek_certs] == ["ek-rsa2048.crt", "ek-secp384r1.crt"]
    for path in ek_certs:
        x509.load_der_x509_certificate(path.read_bytes()).verify_directly_issued_by(ca.cert)
    tcti = swtpm_factory("tpm-attestation")  # on the manufactured state
    state_dir = tmp_path / "state-attested"

    ak = _attestation_key(_binary(), state_dir, tcti)
    assert ak["chain_installed"] is False
    assert ak["tpm_manufacturer"] == "id:49424D00"  # swtpm: IBM
    assert len(bytes.fromhex(ak["public_key"])) == 65
    # The CA certifies the AK only through credential activation with the TPM's EK. The chain
    # is the AK certificate and any intermediates; the root is the verifier's trust anchor and
    # stays out of x5c (SimpleWebAuthn refuses a path that repeats its anchor).
    request_path = tmp_path / "activation-request.json"
    _attestation_key(_binary(), state_dir, tcti, extra=["--activation-request", str(request_path)])
    request = json.loads(request_path.read_text())
    ak_public = websafe_decode(request["ak_public"])
    name = bytes.fromhex("000b") + hashlib.sha256(ak_public).digest()
    assert websafe_decode(request["ak_name"]) == name
    assert websafe_decode(request["public_key"]).hex() == ak["public_key"]
    # A credential bound to another name does not activate: nothing is installed.
    wrong = _activation_answer(request, ca, tmp_path, name[:-1] + bytes([name[-1] ^ 1]))
    error = _attestation_key(_binary(), state_dir, tcti, extra=["--activate", str(wrong)],
                             expect_ok=False)
    assert "credential activation failed" in error, error
    assert _attestation_key(_binary(), state_dir, tcti)["chain_installed"] is False
    answer = _activation_answer(request, ca, tmp_path, name)
    installed = _attestation_key(_binary(), state_dir, tcti, extra=["--activate", str(answer)])
    assert installed["chain_installed"] is True
    assert installed["public_key"] == ak["public_key"], "the same AK, reloaded"

    pg = spawn(attestation="tpm", state_dir=state_dir, extra=["--key-store", "tpm", "--tcti", tcti])
    # getInfo's attestationFormats (CTAP 2.2, 0x16) as python-fido2 parses it: the configured
    # default first, "none" implied and unlisted (python-fido2 assumes ["packed"] when absent).
    ctap2 = Ctap2(pg.device())
    assert ctap2.get_info().attestation_formats == ["tpm", "packed"]
    assert ctap2.send_cbor(Ctap2.CMD.GET_INFO)[0x16] == ["tpm", "packed"]
    server = Fido2Server(RP, attestation=AttestationConveyancePreference.DIRECT,
                         verify_attestation=_TrustCa(ca.der()))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"tpm-user", name="tpm", display_name="TPM"),
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    created = pg.client().make_credential(options.public_key)
    attestation = created.response.attestation_object
    assert attestation.fmt == "tpm"
    statement = attestation.att_stmt
    assert statement["ver"] == "2.0" and statement["alg"] == -7
    assert len(statement["x5c"]) == 1

    # python-fido2: the TPM statement and the chain to the test CA.
    server.register_complete(state, created)

    # py_webauthn: the same registration, the test CA as the only `tpm` root.
    verified = verify_registration_response(
        credential=to_json(created),
        expected_challenge=options.public_key.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        pem_root_certs_bytes_by_fmt={AttestationFormat.TPM: [ca.pem()]},
    )
    assert verified.fmt == AttestationFormat.TPM
    assert verified.credential_id == attestation.auth_data.credential_data.credential_id

    # SimpleWebAuthn: the same registration, the test CA as the only `tpm` root.
    verdict = _simplewebauthn(to_json(created), options.public_key.challenge, ca.pem())
    assert verdict == {"verified": True, "fmt": "tpm"}, verdict

    # Another CA is no trust anchor of this AK, for any of the three.
    other = LocalCa("another CA")
    verdict = _simplewebauthn(to_json(created), options.public_key.challenge, other.pem())
    assert verdict["verified"] is False and "tpm" in verdict["error"].lower(), verdict
    with pytest.raises(InvalidRegistrationResponse):
        verify_registration_response(
            credential=to_json(created),
            expected_challenge=options.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            pem_root_certs_bytes_by_fmt={AttestationFormat.TPM: [other.pem()]},
        )
    server = Fido2Server(RP, attestation=AttestationConveyancePreference.DIRECT,
                         verify_attestation=_TrustCa(other.der()))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"tpm-user-2", name="tpm2", display_name="TPM 2"),
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    created = pg.client().make_credential(options.public_key)
    with pytest.raises(UntrustedAttestation):
        server.register_complete(state, created)
