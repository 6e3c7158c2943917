//! authenticatorLargeBlobs (CTAP 2.1 §6.10): a per-authenticator serialized large-blob array
//! (CBOR array + LEFT(SHA-256, 16) checksum) read and written in fragments. Writes are
//! assembled in memory, checked for integrity, then stored atomically and durably.

use aws_lc_rs::digest;
use ciborium::value::Value;

use passgate_proto::ctap::large_blobs::Request;

use super::cbor::{encode, int_map};
use super::client_pin::permission;
use super::pin_protocol::Protocol;
use super::{Authenticator, CommandResult, MAX_MSG_SIZE, StatusCode};

impl Authenticator {
    /// Fragments fit in one message with room for the CBOR around them (§6.10: maxMsgSize
    /// − 64, the maxMsgSize this authenticator announces).
    fn max_fragment_length(&self) -> usize {
        self.config
            .max_msg_size
            .min(MAX_MSG_SIZE)
            .saturating_sub(64)
    }
}

/// Largest serialized array (reported as maxSerializedLargeBlobArray).
pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: usize = 4096;
const STATE_NAME: &str = "largeblobs";

/// The serialized empty array: `0x80` followed by LEFT(SHA-256(0x80), 16).
fn empty_array() -> Vec<u8> {
    let mut out = vec![0x80];
    out.extend_from_slice(&digest::digest(&digest::SHA256, &[0x80]).as_ref()[..16]);
    out
}

/// A write in progress.
#[derive(Debug, Default)]
pub struct PendingWrite {
    expected_length: usize,
    buffer: Vec<u8>,
}

impl Authenticator {
    fn stored_large_blobs(&mut self) -> Result<Vec<u8>, StatusCode> {
        match self.env.state.load(STATE_NAME) {
            Ok(Some(bytes)) => Ok(bytes.to_vec()),
            Ok(None) => Ok(empty_array()),
            Err(e) => {
                tracing::error!(error = %e, "large-blob array unavailable");
                Err(StatusCode::Other)
            }
        }
    }

    /// Erases the large-blob array (authenticatorReset).
    pub(super) fn reset_large_blobs(&mut self) -> Result<(), StatusCode> {
        self.large_blob_write = None;
        self.env
            .state
            .remove(STATE_NAME)
            .map_err(|_| StatusCode::Other)
    }

    pub(super) fn large_blobs(&mut self, body: &[u8]) -> CommandResult {
        let Request {
            get,
            set,
            offset,
            length,
            pin_uv_auth,
        } = Request::decode_strict(body)?;
        let offset = usize::try_from(offset).map_err(|_| StatusCode::InvalidParameter)?;
        match (get, set) {
            (Some(_), Some(_)) | (None, None) => Err(StatusCode::InvalidParameter),
            (Some(get), None) => {
                if length.is_some() {
                    return Err(StatusCode::InvalidParameter);
                }
                let get = usize::try_from(get).map_err(|_| StatusCode::InvalidLength)?;
                if get > self.max_fragment_length() {
                    return Err(StatusCode::InvalidLength);
                }
                let stored = self.stored_large_blobs()?;
                if offset > stored.len() {
                    return Err(StatusCode::InvalidParameter);
                }
                let end = stored.len().min(offset.saturating_add(get));
                Ok(encode(&int_map([(
                    1,
                    Some(Value::Bytes(stored[offset..end].to_vec())),
                )])))
            }
            (None, Some(fragment)) => {
                if fragment.len() > self.max_fragment_length() {
                    return Err(StatusCode::InvalidLength);
                }
                if offset == 0 {
                    let length = length.ok_or(StatusCode::InvalidParameter)?;
                    let length =
                        usize::try_from(length).map_err(|_| StatusCode::LargeBlobStorageFull)?;
                    if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY {
                        return Err(StatusCode::LargeBlobStorageFull);
                    }
                    if length < 17 {
                        return Err(StatusCode::InvalidParameter);
                    }
                    self.large_blob_write = Some(PendingWrite {
                        expected_length: length,
                        buffer: Vec::with_capacity(length),
                    });
                } else if length.is_some() {
                    return Err(StatusCode::InvalidParameter);
                }
                let expected_offset = self
                    .large_blob_write
                    .as_ref()
                    .map(|w| w.buffer.len())
                    .ok_or(StatusCode::InvalidSeq)?;
                if offset != expected_offset {
                    return Err(StatusCode::InvalidSeq);
                }
                if self.uv_protected()? {
                    let auth = pin_uv_auth.as_ref().ok_or(StatusCode::PuatRequired)?;
                    let protocol =
                        Protocol::from_number(auth.protocol.ok_or(StatusCode::MissingParameter)?)?;
                    let offset32 =
                        u32::try_from(offset).map_err(|_| StatusCode::InvalidParameter)?;
                    let mut message = vec![0xff; 32];
                    message.extend_from_slice(&[0x0c, 0x00]);
                    message.extend_from_slice(&offset32.to_le_bytes());
                    message.extend_from_slice(digest::digest(&digest::SHA256, &fragment).as_ref());
                    self.verify_token(protocol, &auth.param, &message, permission::LBW)?;
                }
                let write = self
                    .large_blob_write
                    .as_mut()
                    .ok_or(StatusCode::InvalidSeq)?;
                if offset + fragment.len() > write.expected_length {
                    return Err(StatusCode::InvalidParameter);
                }
                write.buffer.extend_from_slice(&fragment);
                if write.buffer.len() == write.expected_length {
                    let Some(done) = self.large_blob_write.take() else {
                        return Err(StatusCode::Other);
                    };
                    let (array, checksum) = done.buffer.split_at(done.buffer.len() - 16);
                    let expected = digest::digest(&digest::SHA256, array);
                    if checksum != &expected.as_ref()[..16] {
                        return Err(StatusCode::IntegrityFailure);
                    }
                    self.env.state.save(STATE_NAME, &done.buffer).map_err(|e| {
                        tracing::error!(error = %e, "could not store the large-blob array");
                        StatusCode::Other
                    })?;
                }
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_array_matches_the_specification() {
        // CTAP 2.1 §6.10.2: the initial serialized large-blob array.
        let expected = [
            0x80, 0x76, 0xbe, 0x8b, 0x52, 0x8d, 0x00, 0x75, 0xf7, 0xaa, 0xe9, 0x8d, 0x6f, 0xa5,
            0x7a, 0x6d, 0x3c,
        ];
        assert_eq!(super::empty_array(), expected);
    }
}
