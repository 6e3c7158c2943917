//! CTAP 2.1 commands (command byte + CBOR), every command, through the authenticator's
//! dispatch on a software authenticator with presence approved at once (what
//! `passgate authenticator serve --presence auto` runs), its state on tmpfs.
//!
//! Checks: no panic; proto's typed request of the command decodes → encodes → decodes equal;
//! every answer is a status byte, with canonical CBOR after a success that proto's typed
//! response decodes, round trip included. The authenticator is rebuilt on a fresh directory
//! every few thousand inputs so that a full credential store or a reset does not narrow what
//! the rest of the run reaches.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use passgate_authenticator::Authenticator;

const REBUILD_EVERY: u32 = 4096;
const CAPACITY: usize = 64;

struct State {
    authenticator: Authenticator,
    runs: u32,
}

fn fresh() -> Authenticator {
    let dir = passgate_fuzz::scratch_dir("ctap");
    passgate_testkit::auto_presence_authenticator(&dir, CAPACITY)
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

// The first authenticator is built in `init` (before libFuzzer's per-input timer starts).
fuzz_target!(init: {
    *STATE.lock().unwrap() = Some(State { authenticator: fresh(), runs: 0 });
}, |message: &[u8]| {
    passgate_fuzz::ctap::check_request(message);
    let mut guard = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let state = guard.get_or_insert_with(|| State {
        authenticator: fresh(),
        runs: 0,
    });
    state.runs += 1;
    if state.runs % REBUILD_EVERY == 0 {
        state.authenticator = fresh();
    }
    let response = state.authenticator.handle(message);
    passgate_fuzz::ctap::check_response(message.first().copied(), &response);
});
