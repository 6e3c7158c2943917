//! Built-in user verification (getPinUvAuthTokenUsingUvWithPermissions, options.uv) and its
//! retry counter.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::api::user_verifier::{
    BiometryType, Interaction, Prompt, UserActionError, UserVerified, UserVerifier,
    VerificationMethod, VerifierStatus,
};

/// Test double: a fingerprint sensor whose outcomes the test scripts.
pub(super) struct ScriptedSensor(pub(super) Arc<Mutex<VecDeque<Result<(), UserActionError>>>>);

impl UserVerifier for ScriptedSensor {
    fn status(&self) -> VerifierStatus {
        VerifierStatus {
            available: true,
            biometry: BiometryType::Fingerprint,
            enrolled: true,
            error: None,
        }
    }
    fn check_presence(&mut self, _: &Prompt<'_>, _: &Interaction) -> Result<(), UserActionError> {
        Ok(())
    }
    fn verify_user(
        &mut self,
        _: &Prompt<'_>,
        _: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        let next = self
            .0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Err(UserActionError::Failed));
        next.map(|()| UserVerified::by(VerificationMethod::Biometric(BiometryType::Fingerprint)))
    }
}

pub(super) fn uv_request() -> Vec<u8> {
    request(
        command::MAKE_CREDENTIAL,
        vec![
            (1, Value::Bytes(vec![7; 32])),
            (2, text_map([("id", Some(text("example.com")))])),
            (3, text_map([("id", Some(Value::Bytes(b"u".to_vec())))])),
            (4, es256()),
            (
                7,
                text_map([
                    ("rk", Some(Value::Bool(true))),
                    ("uv", Some(Value::Bool(true))),
                ]),
            ),
        ],
    )
}

#[test]
fn failed_scans_block_uv_then_pin_unblocks() {
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let mut a = authenticator_with(10, Box::new(ScriptedSensor(script.clone())));
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    let Value::Map(options) = &info[&4] else {
        panic!()
    };
    assert!(options.contains(&(text("uv"), Value::Bool(true))));
    assert_eq!(info[&18], int(2), "uvModality fingerprint");

    // A matching finger: UV flag set.
    script.lock().unwrap().push_back(Ok(()));
    let made = ok_map(&a.handle(&uv_request()));
    assert_eq!(made[&2].as_bytes().unwrap()[32] & 0x05, 0x05);

    // Eight failed scans: UV_INVALID seven times, then UV_BLOCKED, and it stays blocked.
    let codes: Vec<u8> = (0..9).map(|_| a.handle(&uv_request())[0]).collect();
    assert_eq!(codes, [vec![0x3f; 7], vec![0x3c, 0x3c]].concat());
    let retries = ok_map(&a.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])));
    assert_eq!(retries[&5], int(0));
    // The PIN still works, and a correct PIN unblocks the sensor.
    use crate::ctap::pin_protocol::Protocol;
    assert_eq!(pin::set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    assert!(pin::token(&mut a, Protocol::Two, 2, "1234", Some(0x01)).is_ok());
    let retries = ok_map(&a.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])));
    assert_eq!(retries[&5], int(8));
    // Cancelling is not an attempt.
    let mut b = authenticator_with(
        10,
        Box::new(ScriptedSensor(Arc::new(Mutex::new(VecDeque::from([Err(
            UserActionError::Cancelled,
        )]))))),
    );
    assert_eq!(b.handle(&uv_request()), vec![0x2d]);
    assert_eq!(
        ok_map(&b.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])))[&5],
        int(8)
    );
}
