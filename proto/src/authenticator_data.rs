//! Authenticator data (WebAuthn Level 3 §6.1): what an authenticator signs beside the client
//! data hash. One parser and one encoder for the whole project: the authenticator encodes it,
//! the bridge reads the attested credential out of it, the relying party checks its flags.

use ciborium::Value;

/// The flags byte, with one accessor per bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// User present (UP).
    pub const USER_PRESENT: u8 = 0x01;
    /// User verified (UV).
    pub const USER_VERIFIED: u8 = 0x04;
    /// Backup eligible (BE).
    pub const BACKUP_ELIGIBLE: u8 = 0x08;
    /// Backup state (BS).
    pub const BACKUP_STATE: u8 = 0x10;
    /// Attested credential data included (AT).
    pub const ATTESTED_CREDENTIAL_DATA: u8 = 0x40;
    /// Extension data included (ED).
    pub const EXTENSION_DATA: u8 = 0x80;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
    /// UP.
    pub fn user_present(self) -> bool {
        self.has(Self::USER_PRESENT)
    }
    /// UV.
    pub fn user_verified(self) -> bool {
        self.has(Self::USER_VERIFIED)
    }
    /// BE.
    pub fn backup_eligible(self) -> bool {
        self.has(Self::BACKUP_ELIGIBLE)
    }
    /// BS.
    pub fn backup_state(self) -> bool {
        self.has(Self::BACKUP_STATE)
    }
    /// AT.
    pub fn attested_credential_data(self) -> bool {
        self.has(Self::ATTESTED_CREDENTIAL_DATA)
    }
    /// ED.
    pub fn extension_data(self) -> bool {
        self.has(Self::EXTENSION_DATA)
    }
}

/// Why authenticator data was refused. Every message says which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticatorDataError {
    /// Shorter than the 37-byte header.
    #[error("authenticator data is shorter than 37 bytes")]
    TooShort,
    /// BS set without BE (Level 3 §6.1.3).
    #[error("backup state set without backup eligibility")]
    BackupStateWithoutEligibility,
    /// AT set but the attested credential data is cut short or not CBOR.
    #[error("attested credential data: {0}")]
    AttestedCredentialData(&'static str),
    /// ED set but the extensions are not one CBOR map.
    #[error("extensions: {0}")]
    Extensions(&'static str),
    /// Bytes after what the flags announce.
    #[error("bytes after the data the flags announce")]
    TrailingBytes,
}

/// Attested credential data (§6.5.1).
#[derive(Debug, Clone, PartialEq)]
pub struct AttestedCredentialData {
    /// The authenticator model.
    pub aaguid: [u8; 16],
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The credential public key, as the COSE_Key CBOR bytes exactly as they were signed.
    pub public_key_cbor: Vec<u8>,
    /// The same key decoded.
    pub public_key: Value,
}

/// Parsed authenticator data.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// The flags.
    pub flags: Flags,
    /// The signature counter.
    pub sign_count: u32,
    /// Attested credential data (present exactly when AT is set).
    pub attested_credential_data: Option<AttestedCredentialData>,
    /// The extension outputs map (present exactly when ED is set).
    pub extensions: Option<Value>,
    /// The extensions' bytes as received. [`AuthenticatorData::to_bytes`] writes these, not a
    /// re-encoding of `extensions`: the signature covers the bytes as sent, and ciborium does
    /// not re-encode every value it decodes to the same bytes (a bignum tag on an indefinite
    /// byte string decodes to a tag, on a definite one to an integer: found by fuzzing).
    extensions_cbor: Vec<u8>,
}

impl AuthenticatorData {
    /// Parses authenticator data strictly: attested credential data exactly when AT is set, one
    /// CBOR map exactly when ED is set, nothing after them, and no BS without BE. A signed but
    /// inconsistent structure comes from a broken or hostile authenticator and is refused.
    pub fn parse(data: &[u8]) -> Result<Self, AuthenticatorDataError> {
        use AuthenticatorDataError as E;
        let header: &[u8; 37] = data
            .get(..37)
            .and_then(|h| h.try_into().ok())
            .ok_or(E::TooShort)?;
        let (rp_id_hash, rest) = header.split_at(32);
        let rp_id_hash: [u8; 32] = rp_id_hash.try_into().map_err(|_| E::TooShort)?;
        let flags = Flags(rest[0]);
        let sign_count = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        if flags.backup_state() && !flags.backup_eligible() {
            return Err(E::BackupStateWithoutEligibility);
        }
        let mut tail = data.get(37..).unwrap_or_default();
        let attested_credential_data = if flags.attested_credential_data() {
            let truncated = E::AttestedCredentialData("truncated");
            let aaguid: [u8; 16] = tail
                .get(..16)
                .and_then(|b| b.try_into().ok())
                .ok_or(truncated.clone())?;
            let id_len = tail
                .get(16..18)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or(truncated.clone())?;
            let credential_id = tail.get(18..18 + id_len).ok_or(truncated)?.to_vec();
            let key_start = tail.get(18 + id_len..).unwrap_or_default();
            let mut reader = key_start;
            let public_key: Value = ciborium::from_reader(&mut reader)
                .map_err(|_| E::AttestedCredentialData("the credential public key is not CBOR"))?;
            let key_len = key_start.len() - reader.len();
            let public_key_cbor = key_start[..key_len].to_vec();
            tail = reader;
            Some(AttestedCredentialData {
                aaguid,
                credential_id,
                public_key_cbor,
                public_key,
            })
        } else {
            None
        };
        let extensions_start = tail;
        let extensions = if flags.extension_data() {
            let value: Value =
                ciborium::from_reader(&mut tail).map_err(|_| E::Extensions("not CBOR"))?;
            if !matches!(value, Value::Map(_)) {
                return Err(E::Extensions("not a CBOR map"));
            }
            Some(value)
        } else {
            None
        };
        let extensions_cbor = extensions_start[..extensions_start.len() - tail.len()].to_vec();
        if !tail.is_empty() {
            return Err(E::TrailingBytes);
        }
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested_credential_data,
            extensions,
            extensions_cbor,
        })
    }

    /// Encodes authenticator data. The AT and ED flags are set from what is present, whatever
    /// `flags` says, so the result always parses.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = self.flags.0 & !(Flags::ATTESTED_CREDENTIAL_DATA | Flags::EXTENSION_DATA);
        if self.attested_credential_data.is_some() {
            flags |= Flags::ATTESTED_CREDENTIAL_DATA;
        }
        if self.extensions.is_some() {
            flags |= Flags::EXTENSION_DATA;
        }
        let mut out = Vec::with_capacity(37);
        out.extend_from_slice(&self.rp_id_hash);
        out.push(flags);
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(acd) = &self.attested_credential_data {
            out.extend_from_slice(&acd.aaguid);
            // Credential IDs are at most 1023 bytes (CTAP 2.1 §6.1): the length fits in u16.
            let len = u16::try_from(acd.credential_id.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&acd.credential_id);
            out.extend_from_slice(&acd.public_key_cbor);
        }
        if self.extensions.is_some() {
            out.extend_from_slice(&self.extensions_cbor);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Value, Value) {
        let cose = Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(2.into())),
            (Value::Integer(3.into()), Value::Integer((-7).into())),
        ]);
        let mut cose_bytes = Vec::new();
        ciborium::into_writer(&cose, &mut cose_bytes).unwrap();
        let ext = Value::Map(vec![(Value::Text("hmac-secret".into()), Value::Bool(true))]);
        let mut ext_bytes = Vec::new();
        ciborium::into_writer(&ext, &mut ext_bytes).unwrap();
        let mut data = vec![7u8; 32];
        data.push(0x01 | 0x04 | 0x40 | 0x80);
        data.extend_from_slice(&5u32.to_be_bytes());
        data.extend_from_slice(&[9u8; 16]);
        data.extend_from_slice(&3u16.to_be_bytes());
        data.extend_from_slice(&[1, 2, 3]);
        data.extend_from_slice(&cose_bytes);
        data.extend_from_slice(&ext_bytes);
        (data, cose, ext)
    }

    #[test]
    fn parses_every_part_and_encodes_the_same_bytes() {
        let (data, cose, ext) = sample();
        let parsed = AuthenticatorData::parse(&data).unwrap();
        assert_eq!(parsed.rp_id_hash, [7u8; 32]);
        assert_eq!(parsed.sign_count, 5);
        assert!(parsed.flags.user_present() && parsed.flags.user_verified());
        assert!(!parsed.flags.backup_eligible());
        let acd = parsed.attested_credential_data.as_ref().unwrap();
        assert_eq!(acd.aaguid, [9u8; 16]);
        assert_eq!(acd.credential_id, vec![1, 2, 3]);
        assert_eq!(acd.public_key, cose);
        assert_eq!(parsed.extensions, Some(ext));
        assert_eq!(parsed.to_bytes(), data);
    }

    /// Found by fuzzing (`fuzz/regressions/authenticator_data`): a negative-bignum tag on an
    /// indefinite-length empty byte string decodes to a tag, which ciborium writes as a tag on
    /// a definite empty string, which decodes to the integer -1: re-encoding changed the bytes.
    #[test]
    fn writes_the_extensions_as_received() {
        let (mut data, _, _) = sample();
        let ext_at = data.len() - 14;
        data.truncate(ext_at);
        // {"x": 3(h'' indefinite)}
        let ext: &[u8] = &[0xa1, 0x61, b'x', 0xc3, 0x5f, 0xff];
        data.extend_from_slice(ext);
        let parsed = AuthenticatorData::parse(&data).unwrap();
        assert!(parsed.extensions.is_some());
        assert_eq!(parsed.to_bytes(), data);
        let again = AuthenticatorData::parse(&parsed.to_bytes()).unwrap();
        assert_eq!(again.to_bytes(), data);
    }

    #[test]
    fn refuses_truncation_trailing_bytes_and_bad_flags() {
        let (data, _, _) = sample();
        for cut in [0, 10, 36, 40, 55, 58, data.len() - 1] {
            assert!(AuthenticatorData::parse(&data[..cut]).is_err(), "cut {cut}");
        }
        let mut trailing = data.clone();
        trailing.push(0);
        assert_eq!(
            AuthenticatorData::parse(&trailing),
            Err(AuthenticatorDataError::TrailingBytes)
        );
        let mut header = vec![0u8; 32];
        header.push(0x10);
        header.extend_from_slice(&[0, 0, 0, 1]);
        assert_eq!(
            AuthenticatorData::parse(&header),
            Err(AuthenticatorDataError::BackupStateWithoutEligibility)
        );
        header[32] = 0x80;
        header.push(0x01); // ED with an integer, not a map
        assert_eq!(
            AuthenticatorData::parse(&header),
            Err(AuthenticatorDataError::Extensions("not a CBOR map"))
        );
    }
}
