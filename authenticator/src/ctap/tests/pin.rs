//! authenticatorClientPIN: PIN set/change, tokens and permissions, retries and blocking.

use super::*;
use crate::ctap::pin_protocol::{KeyAgreement, Protocol};

pub(super) fn shared(a: &mut Authenticator, protocol: Protocol, n: i64) -> (KeyAgreement, Vec<u8>) {
    let resp = ok_map(&a.handle(&request(0x06, vec![(1, int(n)), (2, int(2))])));
    let platform = KeyAgreement::generate().unwrap();
    let secret = platform.decapsulate(protocol, resp[&1].clone()).unwrap();
    (platform, secret.to_vec())
}

pub(super) fn padded(pin: &str) -> Vec<u8> {
    let mut p = pin.as_bytes().to_vec();
    p.resize(64, 0);
    p
}

pub(super) fn left16(pin: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes()).as_ref()[..16].to_vec()
}

pub(super) fn set_pin(a: &mut Authenticator, protocol: Protocol, n: i64, pin: &str) -> Vec<u8> {
    let (platform, secret) = shared(a, protocol, n);
    let enc = protocol.encrypt(&secret, &padded(pin)).unwrap();
    let param = protocol.authenticate(&secret, &enc);
    a.handle(&request(
        0x06,
        vec![
            (1, int(n)),
            (2, int(3)),
            (3, platform.cose_public_key()),
            (4, Value::Bytes(param)),
            (5, Value::Bytes(enc)),
        ],
    ))
}

pub(super) fn token(
    a: &mut Authenticator,
    protocol: Protocol,
    n: i64,
    pin: &str,
    permissions: Option<i64>,
) -> Result<Vec<u8>, u8> {
    let (platform, secret) = shared(a, protocol, n);
    let hash_enc = protocol.encrypt(&secret, &left16(pin)).unwrap();
    let mut entries = vec![
        (1, int(n)),
        (3, platform.cose_public_key()),
        (6, Value::Bytes(hash_enc)),
    ];
    match permissions {
        None => entries.push((2, int(5))),
        Some(p) => {
            entries.push((2, int(9)));
            entries.push((9, int(p)));
        }
    }
    let resp = a.handle(&request(0x06, entries));
    if resp[0] != 0 {
        return Err(resp[0]);
    }
    let enc = ok_map(&resp)[&2].as_bytes().unwrap().clone();
    Ok(protocol.decrypt(&secret, &enc).unwrap().to_vec())
}

fn retries(a: &mut Authenticator) -> Value {
    ok_map(&a.handle(&request(0x06, vec![(2, int(1))])))[&3].clone()
}

#[test]
fn set_pin_token_and_user_verified_registration_for_both_protocols() {
    for (protocol, n) in [(Protocol::One, 1), (Protocol::Two, 2)] {
        let mut a = authenticator(10);
        assert_eq!(set_pin(&mut a, protocol, n, "12"), vec![0x37], "too short");
        assert_eq!(set_pin(&mut a, protocol, n, "1234"), vec![0]);
        assert_eq!(
            set_pin(&mut a, protocol, n, "5678"),
            vec![0x33],
            "already set"
        );
        let info = ok_map(&a.handle(&[command::GET_INFO]));
        let Value::Map(options) = &info[&4] else {
            panic!()
        };
        assert!(options.contains(&(text("clientPin"), Value::Bool(true))));
        assert_eq!(info[&6], Value::Array(vec![int(2), int(1)]));

        // Discoverable registration now needs a token.
        assert_eq!(
            a.handle(&make_credential_request("example.com", b"u", true, vec![])),
            vec![0x36]
        );
        let mc_token = token(&mut a, protocol, n, "1234", Some(0x03)).unwrap();
        assert_eq!(mc_token.len(), 32);
        let param = protocol.authenticate(&mc_token, &[7; 32]);
        let made = make(
            &mut a,
            "example.com",
            b"u",
            true,
            vec![(8, Value::Bytes(param.clone())), (9, int(n))],
        );
        assert_eq!(made.auth_data[32] & 0x05, 0x05, "UP and UV");
        // The token's mc permission was used up, and it is bound to example.com.
        assert_eq!(
            a.handle(&make_credential_request(
                "example.com",
                b"v",
                false,
                vec![(8, Value::Bytes(param)), (9, int(n))]
            )),
            vec![0x33]
        );
        // A fresh token: a silent probe binds it to example.com without using it up.
        let ga_token = token(&mut a, protocol, n, "1234", Some(0x02)).unwrap();
        let ga_param = protocol.authenticate(&ga_token, &[9; 32]);
        let ga = |rp: &str, up: Option<bool>| {
            let mut entries = vec![
                (1, text(rp)),
                (2, Value::Bytes(vec![9; 32])),
                (6, Value::Bytes(ga_param.clone())),
                (7, int(n)),
            ];
            if let Some(up) = up {
                entries.push((5, text_map([("up", Some(Value::Bool(up)))])));
            }
            request(command::GET_ASSERTION, entries)
        };
        let probe = ok_map(&a.handle(&ga("example.com", Some(false))));
        assert_eq!(
            probe[&2].as_bytes().unwrap()[32],
            0x00,
            "no UP, no UV on a probe"
        );
        assert_eq!(
            a.handle(&ga("other.example", None)),
            vec![0x33],
            "token bound to example.com"
        );
        let resp = ok_map(&a.handle(&ga("example.com", None)));
        assert_eq!(
            resp[&2].as_bytes().unwrap()[32],
            0x05,
            "UP and UV on the assertion"
        );
        assert_eq!(
            resp[&4],
            text_map([
                ("id", Some(Value::Bytes(b"u".to_vec()))),
                ("name", Some(text("alice")))
            ]),
            "names after UV"
        );
    }
}

#[test]
fn wrong_pins_count_down_block_after_three_and_reset_clears() {
    let mut a = authenticator(10);
    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    assert_eq!(retries(&mut a), int(8));
    assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
    assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
    assert_eq!(retries(&mut a), int(6));
    assert_eq!(
        token(&mut a, Protocol::Two, 2, "0000", None),
        Err(0x34),
        "third in a row"
    );
    assert_eq!(
        token(&mut a, Protocol::Two, 2, "1234", None),
        Err(0x34),
        "blocked until power cycle"
    );
    assert_eq!(retries(&mut a), int(5));
    // Reset erases the PIN.
    assert_eq!(a.handle(&[command::RESET]), vec![0]);
    assert_eq!(token(&mut a, Protocol::Two, 2, "1234", None), Err(0x35));
}

#[test]
fn a_power_cycle_lifts_the_three_in_a_row_block_and_keeps_the_durable_count() {
    let mut a = authenticator(10);
    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    for _ in 0..2 {
        assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
    }
    assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x34));
    let before = token(&mut a, Protocol::Two, 2, "1234", None);
    assert_eq!(before, Err(0x34), "blocked until power cycle");
    a.power_cycle();
    // The right PIN works again; the wrong ones stayed counted until it did.
    assert_eq!(retries(&mut a), int(5));
    let fresh = token(&mut a, Protocol::Two, 2, "1234", None).unwrap();
    assert_eq!(fresh.len(), 32);
    assert_eq!(retries(&mut a), int(8));
    // A power cycle drops the token: a ceremony authorised by it is refused.
    a.power_cycle();
    let hash = [7u8; 32];
    let param = Protocol::Two.authenticate(&fresh, &hash);
    let resp = a.handle(&request(
        0x02,
        vec![
            (1, Value::Text("example.com".into())),
            (2, Value::Bytes(hash.to_vec())),
            (6, Value::Bytes(param)),
            (7, int(2)),
        ],
    ));
    assert_eq!(resp, vec![0x33], "PIN_AUTH_INVALID");
}

/// Test double of a key store that gates keys on verification and checks the PIN itself
/// (like the TPM store): PlainKeys plus a release secret, a PIN hash and a lockout switch.
#[derive(Default)]
struct GatedKeys {
    pin: Option<Vec<u8>>,
    locked_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const RELEASE: [u8; 32] = [0x5a; 32];

impl KeyStore for GatedKeys {
    fn info(&self) -> KeyStoreInfo {
        PlainKeys.info()
    }
    fn create_key(
        &mut self,
        algorithm: KeyAlgorithm,
        release: Option<&KeyRelease>,
    ) -> Result<CreatedKey, KeyStoreError> {
        if release.map(KeyRelease::secret) != Some(&RELEASE) {
            return Err(KeyStoreError::UserVerificationRequired);
        }
        PlainKeys.create_key(algorithm, release)
    }
    fn sign(
        &mut self,
        handle: &KeyHandle,
        message: &[u8],
        release: Option<&KeyRelease>,
    ) -> Result<Vec<u8>, KeyStoreError> {
        if release.map(KeyRelease::secret) != Some(&RELEASE) {
            return Err(KeyStoreError::UserVerificationRequired);
        }
        PlainKeys.sign(handle, message, release)
    }
    fn delete_key(&mut self, _: &KeyHandle) -> Result<(), KeyStoreError> {
        Ok(())
    }
    fn requires_uv(&self) -> bool {
        self.pin.is_some()
    }
    fn manages_pin(&self) -> bool {
        true
    }
    fn set_pin(&mut self, pin: &[u8], _: Option<&KeyRelease>) -> Result<(), KeyStoreError> {
        self.pin = Some(pin.to_vec());
        Ok(())
    }
    fn verify_pin(
        &mut self,
        pin: &[u8],
    ) -> Result<KeyRelease, crate::api::key_store::PinCheckError> {
        use crate::api::key_store::PinCheckError;
        if self.locked_out.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PinCheckError::LockedOut);
        }
        if self.pin.as_deref() == Some(pin) {
            Ok(KeyRelease::from_secret(Zeroizing::new(RELEASE)))
        } else {
            Err(PinCheckError::Wrong)
        }
    }
    fn release_for(
        &mut self,
        _: Option<&crate::api::user_verifier::UserVerified>,
    ) -> Option<KeyRelease> {
        self.pin
            .is_none()
            .then(|| KeyRelease::from_secret(Zeroizing::new(RELEASE)))
    }
    fn reset(&mut self) -> Result<(), KeyStoreError> {
        self.pin = None;
        Ok(())
    }
}

#[test]
fn a_key_store_holding_the_pin_gates_every_ceremony_on_it() {
    let keys = GatedKeys::default();
    let locked_out = keys.locked_out.clone();
    let env = Env {
        key_store: Box::new(keys),
        credentials: Box::new(MemoryStore {
            capacity: 10,
            ..Default::default()
        }),
        state: Box::new(MemoryState::default()),
        user: Box::new(AutoPresence::new()),
        clock: Box::new(FixedClock(Instant::now())),
        rng: Box::new(SystemRng::new()),
    };
    let mut a = Authenticator::new(env, AuthenticatorConfig::default());
    let always_uv = |a: &mut Authenticator| {
        let info = ok_map(&a.handle(&[command::GET_INFO]));
        let Value::Map(options) = &info[&4] else {
            panic!()
        };
        (
            options.contains(&(text("alwaysUv"), Value::Bool(true))),
            options.contains(&(text("makeCredUvNotRqd"), Value::Bool(false))),
        )
    };
    // No PIN: the store's open release, presence only.
    assert_eq!(always_uv(&mut a), (false, false));
    let made = make(&mut a, "example.com", b"u", true, vec![]);
    ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), None)));

    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    assert!(
        a.pin.state().unwrap().in_key_store,
        "the key store holds the PIN"
    );
    assert_eq!(always_uv(&mut a), (true, true));
    // Without verification: PUAT_REQUIRED, for a silent probe as well.
    assert_eq!(
        a.handle(&get_assertion("example.com", Some(&made.id), None)),
        vec![0x36]
    );
    assert_eq!(
        a.handle(&get_assertion("example.com", Some(&made.id), Some(false))),
        vec![0x36]
    );
    assert_eq!(
        a.handle(&make_credential_request("example.com", b"v", false, vec![])),
        vec![0x36]
    );
    // With a PIN token: the key store's release signs; a probe may sign with it too.
    let t = token(&mut a, Protocol::Two, 2, "1234", Some(0x03)).unwrap();
    let entries = vec![
        (1, text("example.com")),
        (2, Value::Bytes(vec![9; 32])),
        (
            3,
            Value::Array(vec![text_map([
                ("id", Some(Value::Bytes(made.id.clone()))),
                ("type", Some(text("public-key"))),
            ])]),
        ),
        (6, Value::Bytes(Protocol::Two.authenticate(&t, &[9; 32]))),
        (7, int(2)),
    ];
    let probe = entries
        .iter()
        .cloned()
        .chain([(5, text_map([("up", Some(Value::Bool(false)))]))])
        .collect();
    let resp = ok_map(&a.handle(&request(command::GET_ASSERTION, probe)));
    assert_eq!(resp[&2].as_bytes().unwrap()[32], 0x00);
    let resp = ok_map(&a.handle(&request(command::GET_ASSERTION, entries.clone())));
    assert_eq!(resp[&2].as_bytes().unwrap()[32], 0x05);
    // The token's verification (and release) is consumed with its ga permission.
    assert_eq!(
        a.handle(&request(command::GET_ASSERTION, entries)),
        vec![0x33]
    );

    // Wrong PIN: judged by the key store, counted by CTAP too.
    assert_eq!(token(&mut a, Protocol::Two, 2, "0000", None), Err(0x31));
    assert_eq!(retries(&mut a), int(7));
    // Hardware lockout: PIN_AUTH_BLOCKED for the right PIN, no retry spent.
    locked_out.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(token(&mut a, Protocol::Two, 2, "1234", None), Err(0x34));
    assert_eq!(retries(&mut a), int(7));
    locked_out.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(token(&mut a, Protocol::Two, 2, "1234", None).is_ok());
    assert_eq!(retries(&mut a), int(8));

    // Reset forgets the key store's PIN as well.
    assert_eq!(a.handle(&[command::RESET]), vec![0]);
    assert_eq!(always_uv(&mut a), (false, false));
    assert!(!a.pin.state().unwrap().is_set());
}

#[test]
fn change_pin_and_permissions() {
    let mut a = authenticator(10);
    assert_eq!(set_pin(&mut a, Protocol::One, 1, "1234"), vec![0]);
    let (platform, secret) = shared(&mut a, Protocol::One, 1);
    let new_enc = Protocol::One.encrypt(&secret, &padded("987654")).unwrap();
    let hash_enc = Protocol::One.encrypt(&secret, &left16("1234")).unwrap();
    let param = Protocol::One.authenticate(&secret, &[&new_enc[..], &hash_enc].concat());
    let resp = a.handle(&request(
        0x06,
        vec![
            (1, int(1)),
            (2, int(4)),
            (3, platform.cose_public_key()),
            (4, Value::Bytes(param)),
            (5, Value::Bytes(new_enc)),
            (6, Value::Bytes(hash_enc)),
        ],
    ));
    assert_eq!(resp, vec![0]);
    assert_eq!(token(&mut a, Protocol::One, 1, "1234", None), Err(0x31));
    assert!(token(&mut a, Protocol::One, 1, "987654", None).is_ok());
    assert_eq!(
        token(&mut a, Protocol::One, 1, "987654", Some(0)),
        Err(0x02)
    );
    assert_eq!(
        token(&mut a, Protocol::One, 1, "987654", Some(0x08)),
        Err(0x40)
    );
}
