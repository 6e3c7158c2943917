//! The SOTER device key ("ASK"): RSA-2048, signing RSASSA-PSS SHA-256 with a 20-byte salt.
//!
//! Its private half is usable only with a secret that passgate's authenticator produces after
//! user verification: the hmac-secret output (with-UV secret) of the caller's SOTER *gate*
//! credential. Through HKDF that output becomes
//!
//! - for a **software** key, the AES-256-GCM key its PKCS#8 form is encrypted under (the key
//!   exists in the clear only in memory, for one signature, and is zeroized after);
//! - for a **TPM** key, its authorization value: the key is created in the TPM (never
//!   exported; the TPM-wrapped blob loads only in this TPM) and the TPM refuses to use it
//!   without that value.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::pss::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pss::SALT_LEN;

/// The modulus size.
pub const KEY_BITS: usize = 2048;

/// Where SOTER device keys are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBackend {
    /// In software, encrypted at rest under a UV-gated secret.
    Software,
    /// In a TPM 2.0 reached through this TCTI (`device:/dev/tpmrm0`,
    /// `swtpm:host=127.0.0.1,port=2321`).
    #[cfg(feature = "tpm")]
    Tpm {
        /// The TCTI string.
        tcti: String,
    },
}

impl KeyBackend {
    /// `software` or `tpm`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Software => "software",
            #[cfg(feature = "tpm")]
            Self::Tpm { .. } => "tpm",
        }
    }
}

/// Why the device key cannot be created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored key does not open with this secret (a modified file, or another device).
    #[error("the SOTER key does not open: {0}")]
    Invalid(&'static str),
    /// The key is in a TPM but this passgate was built without TPM support.
    #[error("the SOTER key is in a TPM, but this passgate was built without TPM support")]
    NoTpmSupport,
    /// The TPM failed.
    #[error("TPM: {0}")]
    Tpm(String),
    /// RSA failed.
    #[error("RSA: {0}")]
    Rsa(String),
}

/// The stored form of a device key: nothing in it is usable without the UV-gated secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "camelCase")]
pub enum StoredKey {
    /// A software key: PKCS#8, AES-256-GCM sealed (AAD: the SPKI).
    Software {
        /// The SubjectPublicKeyInfo, base64url.
        spki: String,
        /// nonce || ciphertext || tag, base64url.
        sealed: String,
    },
    /// A TPM key: its TPM2B_PUBLIC and TPM-wrapped TPM2B_PRIVATE.
    Tpm {
        /// The SubjectPublicKeyInfo, base64url.
        spki: String,
        /// The marshalled public area, base64url.
        public: String,
        /// The TPM-wrapped private area, base64url.
        private: String,
    },
}

impl StoredKey {
    /// The public key, SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Vec<u8> {
        let text = match self {
            Self::Software { spki, .. } | Self::Tpm { spki, .. } => spki,
        };
        crate::unb64(text).unwrap_or_default()
    }
}

/// 32 bytes for `purpose` from the gate credential's hmac-secret output.
pub(crate) fn derive_secret(
    hmac_output: &[u8],
    purpose: &'static str,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"passgate soter v1").extract(hmac_output);
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&[purpose.as_bytes()], Len32)
        .and_then(|okm| okm.fill(out.as_mut()))
        .map_err(|_| KeyError::Invalid("key derivation failed"))?;
    Ok(out)
}

fn sealing_key(secret: &[u8; 32]) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, secret)
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Invalid("sealing key"))
}

/// Creates a device key protected by `hmac_output`.
pub(crate) fn create(backend: &KeyBackend, hmac_output: &[u8]) -> Result<StoredKey, KeyError> {
    match backend {
        KeyBackend::Software => create_software(hmac_output),
        #[cfg(feature = "tpm")]
        KeyBackend::Tpm { tcti } => {
            super::tpm::create(tcti, &derive_secret(hmac_output, "tpm auth")?)
        }
    }
}

/// Signs `message` (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 20) with the stored key, opened
/// with `hmac_output`.
pub(crate) fn sign(
    backend: &KeyBackend,
    stored: &StoredKey,
    hmac_output: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, KeyError> {
    match stored {
        StoredKey::Software { spki, sealed } => sign_software(spki, sealed, hmac_output, message),
        #[cfg(feature = "tpm")]
        StoredKey::Tpm {
            public, private, ..
        } => {
            let KeyBackend::Tpm { tcti } = backend else {
                return Err(KeyError::Tpm(
                    "the SOTER key is in a TPM: start passgate with the TPM (--soter-key-store tpm)"
                        .into(),
                ));
            };
            let em =
                super::pss::encode(message, KEY_BITS).map_err(|e| KeyError::Rsa(e.to_string()))?;
            super::tpm::raw_private(
                tcti,
                &crate::unb64(public).ok_or(KeyError::Invalid("public area"))?,
                &crate::unb64(private).ok_or(KeyError::Invalid("private area"))?,
                &derive_secret(hmac_output, "tpm auth")?,
                &em,
            )
        }
        #[cfg(not(feature = "tpm"))]
        StoredKey::Tpm { .. } => {
            let _ = backend;
            Err(KeyError::NoTpmSupport)
        }
    }
}

fn create_software(hmac_output: &[u8]) -> Result<StoredKey, KeyError> {
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    let key = RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| KeyError::Rsa(e.to_string()))?;
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
    let secret = derive_secret(hmac_output, "software key")?;
    let nonce: [u8; NONCE_LEN] = crate::random().map_err(|_| KeyError::Invalid("no randomness"))?;
    let mut buffer = Zeroizing::new(pkcs8.as_bytes().to_vec());
    sealing_key(&secret)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(spki.as_bytes()),
            &mut *buffer,
        )
        .map_err(|_| KeyError::Invalid("sealing failed"))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&buffer);
    Ok(StoredKey::Software {
        spki: crate::b64(spki.as_bytes()),
        sealed: crate::b64(&sealed),
    })
}

fn sign_software(
    spki: &str,
    sealed: &str,
    hmac_output: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let spki = crate::unb64(spki).ok_or(KeyError::Invalid("public key"))?;
    let sealed = crate::unb64(sealed).ok_or(KeyError::Invalid("sealed key"))?;
    if sealed.len() < NONCE_LEN + 16 {
        return Err(KeyError::Invalid("sealed key too short"));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let secret = derive_secret(hmac_output, "software key")?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let pkcs8 = sealing_key(&secret)?
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Invalid("nonce"))?,
            Aad::from(&spki[..]),
            &mut buffer,
        )
        .map_err(|_| KeyError::Invalid("the secret does not open it"))?;
    // The private key lives for this one signature; RsaPrivateKey zeroizes on drop.
    let key = RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|e| KeyError::Rsa(e.to_string()))?;
    let signer = SigningKey::<Sha256>::new_with_salt_len(key, SALT_LEN);
    let signature = signer
        .try_sign_with_rng(&mut getrandom::SysRng, message)
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
    Ok(signature.to_vec())
}

/// The PEM form SOTER puts in `pub_key` (`-----BEGIN PUBLIC KEY-----`, 64-column lines).
pub fn spki_pem(spki: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(spki);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// An RSA public key from its modulus (big-endian) and exponent, as SPKI DER.
pub fn spki_from_parts(modulus: &[u8], exponent: u32) -> Result<Vec<u8>, KeyError> {
    let bits = u32::try_from(modulus.len() * 8).map_err(|_| KeyError::Rsa("modulus".into()))?;
    let n =
        rsa::BoxedUint::from_be_slice(modulus, bits).map_err(|e| KeyError::Rsa(e.to_string()))?;
    let e = rsa::BoxedUint::from(u64::from(exponent));
    let key = RsaPublicKey::new(n, e).map_err(|e| KeyError::Rsa(e.to_string()))?;
    Ok(key
        .to_public_key_der()
        .map_err(|e| KeyError::Rsa(e.to_string()))?
        .as_bytes()
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::pss::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    #[test]
    fn a_software_key_signs_pss_salt_20_only_with_its_secret() {
        let secret = [9u8; 32];
        let stored = create(&KeyBackend::Software, &secret).unwrap();
        let message = b"resultJSON bytes";
        let sig = sign(&KeyBackend::Software, &stored, &secret, message).unwrap();
        assert_eq!(sig.len(), 256);
        let public = RsaPublicKey::from_public_key_der(&stored.spki()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new_with_salt_len(public, 20);
        verifier
            .verify(message, &Signature::try_from(&sig[..]).unwrap())
            .unwrap();
        let err = sign(&KeyBackend::Software, &stored, &[8u8; 32], message).unwrap_err();
        assert!(matches!(err, KeyError::Invalid(_)), "{err}");
        let pem = spki_pem(&stored.spki());
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        // The stored form does not contain the private key in the clear.
        let StoredKey::Software { sealed, .. } = &stored else {
            panic!("software")
        };
        let sealed = crate::unb64(sealed).unwrap();
        assert!(RsaPrivateKey::from_pkcs8_der(&sealed[12..sealed.len() - 16]).is_err());
    }

    #[test]
    fn public_key_from_modulus_and_exponent() {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        use rsa::traits::PublicKeyParts;
        let n = key.n().to_be_bytes();
        let spki = spki_from_parts(&n, 65537).unwrap();
        assert_eq!(
            spki,
            key.to_public_key().to_public_key_der().unwrap().as_bytes()
        );
    }
}

/// The TPM backend against a real (software) TPM, started by the test.
#[cfg(all(test, feature = "tpm"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tpm_tests {
    use super::*;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::pss::{Signature, VerifyingKey};
    use rsa::signature::Verifier;
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    struct Swtpm {
        child: Child,
        port: u16,
        _state: tempfile::TempDir,
    }

    impl Swtpm {
        fn start() -> Self {
            let state = tempfile::tempdir().unwrap();
            let port = loop {
                let probe = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = probe.local_addr().unwrap().port();
                if port < 65000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                    break port;
                }
            };
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", state.path().display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm is installed (cargo xtask test installs it)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "swtpm did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            // The probe connection above must be closed before a client connects (swtpm
            // serves one at a time); it is, when the stream is dropped.
            Self {
                child,
                port,
                _state: state,
            }
        }

        fn backend(&self) -> KeyBackend {
            KeyBackend::Tpm {
                tcti: format!("swtpm:host=127.0.0.1,port={}", self.port),
            }
        }
    }

    impl Drop for Swtpm {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn a_tpm_key_signs_pss_salt_20_only_with_its_secret_and_only_in_its_tpm() {
        let tpm = Swtpm::start();
        let backend = tpm.backend();
        let secret = [5u8; 32];
        let stored = create(&backend, &secret).unwrap();
        let StoredKey::Tpm { private, .. } = &stored else {
            panic!("a TPM key")
        };
        assert!(!private.is_empty());
        let public = RsaPublicKey::from_public_key_der(&stored.spki()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new_with_salt_len(public, SALT_LEN);
        for message in [b"first".as_slice(), b"second result json"] {
            let sig = sign(&backend, &stored, &secret, message).unwrap();
            assert_eq!(sig.len(), 256);
            verifier
                .verify(message, &Signature::try_from(&sig[..]).unwrap())
                .unwrap();
        }
        // Without the UV-gated secret the TPM refuses (authorization failure).
        let err = sign(&backend, &stored, &[6u8; 32], b"first").unwrap_err();
        assert!(matches!(err, KeyError::Tpm(_)), "{err}");
        // The software path cannot use a TPM key.
        let err = sign(&KeyBackend::Software, &stored, &secret, b"first").unwrap_err();
        assert!(matches!(err, KeyError::Tpm(_)), "{err}");
        // Another TPM cannot load the wrapped key.
        let other = Swtpm::start();
        let err = sign(&other.backend(), &stored, &secret, b"first").unwrap_err();
        assert!(err.to_string().contains("refused the key"), "{err}");
    }
}
