//! Credential public keys and signature verification on aws-lc-rs.
//!
//! The COSE_Key is decoded once (with coset, in [`passgate_proto::cose`]) into the parts
//! aws-lc-rs takes directly: EC points, the Ed25519 key, RSA's modulus and exponent. The relying
//! party stores those parts at registration, so a sign-in parses no CBOR. This is the hot path
//! of every sign-in, so it uses aws-lc-rs rather than the RustCrypto code webauthn-rs verifies
//! with (see the crate docs for the figures behind that choice).

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519, RSA_PKCS1_2048_8192_SHA256,
    UnparsedPublicKey,
};
pub use passgate_proto::cose::{
    CoseKeyError, EDDSA as COSE_EDDSA, ES256 as COSE_ES256, ES384 as COSE_ES384, PublicKey,
    RS256 as COSE_RS256,
};

/// A credential's public key in the form aws-lc-rs verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialPublicKey(pub PublicKey);

impl CredentialPublicKey {
    /// Decodes a COSE_Key (RFC 9052/9053) as found in attested credential data.
    pub fn from_cose(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        PublicKey::from_cose(bytes).map(Self)
    }

    /// The COSE algorithm identifier.
    pub fn algorithm(&self) -> i64 {
        self.0.algorithm()
    }

    /// Verifies `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.0 {
            PublicKey::Es256 { point } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(message, signature)
                .is_ok(),
            PublicKey::Es384 { point } => UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, point)
                .verify(message, signature)
                .is_ok(),
            PublicKey::EdDsa { key } => UnparsedPublicKey::new(&ED25519, key)
                .verify(message, signature)
                .is_ok(),
            PublicKey::Rs256 { n, e } => PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            .is_ok(),
        }
    }
}

impl From<PublicKey> for CredentialPublicKey {
    fn from(key: PublicKey) -> Self {
        Self(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    };
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::traits::PublicKeyParts;

    fn ec(point: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let half = (point.len() - 1) / 2;
        (point[1..=half].to_vec(), point[half + 1..].to_vec())
    }

    /// Keys of every algorithm verify real signatures from their parts, and refuse a signature
    /// over other data.
    #[test]
    fn every_algorithm_verifies_real_signatures() {
        let rng = SystemRandom::new();
        let es256: fn(Vec<u8>) -> PublicKey = |point| PublicKey::Es256 { point };
        let es384: fn(Vec<u8>) -> PublicKey = |point| PublicKey::Es384 { point };
        for (signing, make) in [
            (&ECDSA_P256_SHA256_ASN1_SIGNING, es256),
            (&ECDSA_P384_SHA384_ASN1_SIGNING, es384),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
            let point = pair.public_key().as_ref().to_vec();
            let (x, y) = ec(&point);
            assert_eq!([vec![4], x, y].concat(), point);
            let key = CredentialPublicKey(make(point));
            let sig = pair.sign(&rng, b"signed data").unwrap();
            assert!(key.verify(b"signed data", sig.as_ref()));
            assert!(!key.verify(b"other data", sig.as_ref()));
        }

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = CredentialPublicKey(PublicKey::EdDsa {
            key: ed.public_key().as_ref().to_vec(),
        });
        assert_eq!(key.algorithm(), COSE_EDDSA);
        let sig = ed.sign(b"signed data");
        assert!(key.verify(b"signed data", sig.as_ref()));
        assert!(!key.verify(b"signed datA", sig.as_ref()));

        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        // The public key's PKCS#1 DER, read back into its components and carried as a COSE
        // key (fixed-width, with leading zeros, which the decoding strips as aws-lc-rs wants).
        let parsed = rsa::RsaPublicKey::from_pkcs1_der(rsa.public_key().as_ref()).unwrap();
        let int = |i: i64| ciborium::Value::Integer(i.into());
        let mut cose = Vec::new();
        ciborium::into_writer(
            &ciborium::Value::Map(vec![
                (int(1), int(3)),
                (int(3), int(COSE_RS256)),
                (
                    int(-1),
                    ciborium::Value::Bytes(parsed.n().to_be_bytes().to_vec()),
                ),
                (
                    int(-2),
                    ciborium::Value::Bytes(parsed.e().to_be_bytes().to_vec()),
                ),
            ]),
            &mut cose,
        )
        .unwrap();
        let key = CredentialPublicKey::from_cose(&cose).unwrap();
        assert_eq!(key.algorithm(), COSE_RS256);
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, b"signed data", &mut sig)
            .unwrap();
        assert!(key.verify(b"signed data", &sig));
        assert!(!key.verify(b"other data", &sig));
    }
}
