//! The built-in UV retry counter's writes: every attempt is paid for in the state store before
//! the sensor is asked (a power cut mid-attempt gives no free try), a run of successes writes
//! nothing, and a restart starts at most one attempt lower than the count in memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::builtin_uv::{ScriptedSensor, uv_request};
use super::*;
use crate::api::user_verifier::{
    Interaction, Prompt, UserActionError, UserVerified, UserVerifier, VerifierStatus,
};

/// The state store's blobs by name.
type Snapshot = HashMap<String, Vec<u8>>;
type Blobs = Arc<Mutex<Snapshot>>;

/// A state store whose blobs the test can copy (what a power cut leaves) and whose writes it
/// counts.
#[derive(Clone, Default)]
struct SharedState {
    blobs: Blobs,
    saves: Arc<AtomicUsize>,
}

impl StateStore for SharedState {
    fn load(&mut self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self
            .blobs
            .lock()
            .unwrap()
            .get(name)
            .map(|v| Zeroizing::new(v.clone())))
    }
    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.blobs
            .lock()
            .unwrap()
            .insert(name.into(), bytes.to_vec());
        Ok(())
    }
    fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        self.blobs.lock().unwrap().remove(name);
        Ok(())
    }
}

/// A scripted sensor that, when asked to verify, first copies the state store: what a power
/// cut during the scan would leave on disk.
struct SnapshottingSensor {
    inner: ScriptedSensor,
    blobs: Blobs,
    snapshots: Arc<Mutex<Vec<Snapshot>>>,
}

impl UserVerifier for SnapshottingSensor {
    fn status(&self) -> VerifierStatus {
        self.inner.status()
    }
    fn check_presence(&mut self, p: &Prompt<'_>, i: &Interaction) -> Result<(), UserActionError> {
        self.inner.check_presence(p, i)
    }
    fn verify_user(
        &mut self,
        p: &Prompt<'_>,
        i: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        let copy = self.blobs.lock().unwrap().clone();
        self.snapshots.lock().unwrap().push(copy);
        self.inner.verify_user(p, i)
    }
}

fn authenticator_on(state: SharedState, user: Box<dyn UserVerifier>) -> Authenticator {
    let env = Env {
        key_store: Box::new(PlainKeys),
        credentials: Box::new(MemoryStore {
            capacity: 50,
            ..Default::default()
        }),
        state: Box::new(state),
        user,
        clock: Box::new(FixedClock(Instant::now())),
        rng: Box::new(SystemRng::new()),
    };
    Authenticator::new(env, AuthenticatorConfig::default())
}

/// getUVRetries.
fn uv_retries(a: &mut Authenticator) -> Value {
    ok_map(&a.handle(&request(0x06, vec![(1, int(2)), (2, int(7))])))[&5].clone()
}

/// getUVRetries of an authenticator restarted on `blobs` (a copy).
fn after_restart(blobs: &Snapshot) -> Value {
    let state = SharedState {
        blobs: Arc::new(Mutex::new(blobs.clone())),
        ..SharedState::default()
    };
    let sensor = ScriptedSensor(Arc::new(Mutex::new(VecDeque::new())));
    let mut restarted = authenticator_on(state, Box::new(sensor));
    uv_retries(&mut restarted)
}

#[test]
fn successes_write_nothing_and_every_attempt_is_paid_for_before_the_scan() {
    let state = SharedState::default();
    let script = Arc::new(Mutex::new(VecDeque::from([
        Ok(()),
        Ok(()),
        Ok(()),
        Err(UserActionError::Failed),
        Err(UserActionError::Failed),
        Err(UserActionError::Cancelled),
        Ok(()),
        Ok(()),
    ])));
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    let sensor = SnapshottingSensor {
        inner: ScriptedSensor(script),
        blobs: state.blobs.clone(),
        snapshots: snapshots.clone(),
    };
    let mut a = authenticator_on(state.clone(), Box::new(sensor));
    let saves = || state.saves.load(Ordering::SeqCst);

    let mut expected_status = Vec::new();
    let mut retries_before = Vec::new();
    let mut saves_after = Vec::new();
    for _ in 0..8 {
        retries_before.push(uv_retries(&mut a));
        expected_status.push(a.handle(&uv_request())[0]);
        saves_after.push(saves());
    }
    assert_eq!(
        expected_status,
        [0x00, 0x00, 0x00, 0x3f, 0x3f, 0x2d, 0x00, 0x00],
        "three matches, two mismatches (UV_INVALID), a cancel (KEEPALIVE_CANCEL), two matches"
    );
    assert_eq!(
        retries_before,
        [8, 8, 8, 8, 7, 6, 6, 8].map(int),
        "the count in memory: a mismatch costs one, a cancel nothing, a match restores it"
    );
    // Writes: the first attempt (8 -> 7 on disk), the second mismatch (7 -> 6), the cancelled
    // attempt (6 -> 5: paid for before the scan like any other), the match after them (the
    // disk raised to 7, one below the restored 8). The other matches and the first mismatch
    // find their attempt already paid for on disk and write nothing.
    assert_eq!(saves_after, [1, 1, 1, 1, 2, 3, 4, 4]);

    // A power cut during any scan: the restarted authenticator has paid for that attempt.
    let snapshots = snapshots.lock().unwrap();
    assert_eq!(snapshots.len(), 8);
    for (i, (snapshot, before)) in snapshots.iter().zip(&retries_before).enumerate() {
        let before = i128::from(before.as_integer().unwrap());
        let restarted = i128::from(after_restart(snapshot).as_integer().unwrap());
        assert!(
            restarted < before,
            "attempt {i}: a restart during the scan leaves {restarted}, below the {before} before it"
        );
        assert_eq!(
            restarted,
            before - 1,
            "attempt {i}: and exactly one attempt lower"
        );
    }
    // At rest, a restart costs at most one attempt.
    assert_eq!(uv_retries(&mut a), int(8));
    assert_eq!(
        after_restart(&state.blobs.lock().unwrap()),
        int(7),
        "a restart after a match starts one attempt lower"
    );
}
