//! EMSA-PSS encoding (RFC 8017 §9.1.1) with SHA-256, MGF1-SHA-256 and a 20-byte salt — what
//! SOTER verifiers expect (`rsa_pss_saltlen:20`).
//!
//! A TPM's own RSASSA-PSS scheme uses the salt length the TPM picks (the largest possible, or
//! the digest size), not 20. To keep the private key in the TPM anyway, the encoded message is
//! built here and the TPM performs only the raw private-key operation on it (TPM2_RSA_Decrypt
//! with the NULL scheme, on an unrestricted sign+decrypt key): `signature = EM^d mod n`, which
//! is exactly RSASSA-PSS-SIGN's step 2.

/// SOTER's salt length.
pub const SALT_LEN: usize = 20;
const HASH_LEN: usize = 32;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// MGF1 with SHA-256 (RFC 8017 §B.2.1).
fn mgf1(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + HASH_LEN);
    let mut counter: u32 = 0;
    while out.len() < len {
        out.extend_from_slice(&sha256(&[seed, &counter.to_be_bytes()]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The modulus is too small for SHA-256 with a 20-byte salt.
    #[error("the modulus is too small for PSS with SHA-256 and a 20-byte salt")]
    ModulusTooSmall,
    /// No salt could be drawn.
    #[error("the system random number generator failed")]
    Random,
}

/// EM for `message` and a modulus of `modulus_bits` bits, with `salt`.
pub fn encode_with_salt(
    message: &[u8],
    modulus_bits: usize,
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>, EncodeError> {
    let em_bits = modulus_bits
        .checked_sub(1)
        .ok_or(EncodeError::ModulusTooSmall)?;
    let em_len = em_bits.div_ceil(8);
    if em_len < HASH_LEN + SALT_LEN + 2 {
        return Err(EncodeError::ModulusTooSmall);
    }
    let m_hash = sha256(&[message]);
    let h = sha256(&[&[0u8; 8], &m_hash, salt]);
    let db_len = em_len - HASH_LEN - 1;
    let mut db = vec![0u8; db_len];
    db[db_len - SALT_LEN - 1] = 0x01;
    db[db_len - SALT_LEN..].copy_from_slice(salt);
    for (d, m) in db.iter_mut().zip(mgf1(&h, db_len)) {
        *d ^= m;
    }
    // Clear the leftmost 8*emLen - emBits bits so that EM < n.
    let clear = 8 * em_len - em_bits;
    if let Some(first) = db.first_mut() {
        *first &= 0xffu8 >> clear;
    }
    let mut em = db;
    em.extend_from_slice(&h);
    em.push(0xbc);
    Ok(em)
}

/// EM for `message` with a fresh random salt.
pub fn encode(message: &[u8], modulus_bits: usize) -> Result<Vec<u8>, EncodeError> {
    let salt: [u8; SALT_LEN] = crate::random().map_err(|_| EncodeError::Random)?;
    encode_with_salt(message, modulus_bits, &salt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pss::{Signature, VerifyingKey};
    use rsa::sha2::Sha256;
    use rsa::signature::Verifier;
    use rsa::traits::PublicKeyParts;
    use rsa::{BoxedUint, RsaPrivateKey};

    #[test]
    fn raw_private_operation_on_our_encoding_verifies_as_pss_salt_20() {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let message = br#"{"raw":"challenge","counter":1}"#;
        let em = encode(message, 2048).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(em[0] & 0x80, 0, "EM < n");
        assert_eq!(em[255], 0xbc);
        let c = BoxedUint::from_be_slice(&em, 2048).unwrap();
        let s = rsa::hazmat::rsa_decrypt_and_check(&key, Some(&mut rng), &c).unwrap();
        let sig_bytes = s.to_be_bytes();
        let sig_bytes = &sig_bytes[sig_bytes.len() - 256..];
        let signature = Signature::try_from(sig_bytes).unwrap();
        let verifier = VerifyingKey::<Sha256>::new_with_salt_len(key.to_public_key(), SALT_LEN);
        verifier.verify(message, &signature).unwrap();
        assert!(verifier.verify(b"other message", &signature).is_err());
        // A verifier that insists on salt 32 (the digest length) refuses it: the salt is 20.
        let wrong = VerifyingKey::<Sha256>::new_with_salt_len(key.to_public_key(), 32);
        assert!(wrong.verify(message, &signature).is_err());
        assert_eq!(key.size(), 256);
    }

    #[test]
    fn fixed_salt_is_deterministic_and_small_moduli_are_refused() {
        let a = encode_with_salt(b"m", 2048, &[1; 20]).unwrap();
        let b = encode_with_salt(b"m", 2048, &[1; 20]).unwrap();
        let c = encode_with_salt(b"m", 2048, &[2; 20]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            encode_with_salt(b"m", 400, &[1; 20]),
            Err(EncodeError::ModulusTooSmall)
        );
        // An odd modulus length keeps EM one bit short of the modulus.
        let odd = encode_with_salt(b"m", 2047, &[1; 20]).unwrap();
        assert_eq!(odd.len(), 256);
        assert_eq!(odd[0] & 0xc0, 0);
    }
}
