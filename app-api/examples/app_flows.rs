//! The three app flows from Rust, on passgate's authenticator in this process (the code in
//! docs/src/app-apis/rust.md; compiled with the crate's tests so that it cannot rot).
//!
//! ```sh
//! cargo run -p passgate-app-api --example app_flows -- /tmp/passgate-example
//! ```
//!
//! With presence only (no fingerprint sensor), biometric flows report `biometryNotAvailable`
//! and SOTER `90001`; an InMemoryOnly vault works. With fprintd, build the authenticator's
//! `Env` with `FprintdVerifier` as `passgate app serve --user-verifier fprintd` does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passgate_app_api::biometric::{self, AuthOptions};
use passgate_app_api::soter::{self, StartRequest};
use passgate_app_api::vault::{AuthMode, Vault, VaultDescriptor, VaultEvent, VaultOptions};
use passgate_app_api::{AppDevice, CallerId, NoPasscode, Platform, b64};
use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_authenticator::presence::TerminalPresence;
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/passgate-example".into()),
    );
    // The authenticator, as `passgate authenticator serve` builds it.
    let device_key = DeviceKey::load_or_create(&state)?;
    let env = Env {
        key_store: Box::new(SoftwareKeyStore::new(&device_key)),
        credentials: Box::new(FileCredentialStore::open(&state, &device_key, 10_000)?),
        state: Box::new(FileStateStore::open(&state, &device_key)?),
        user: Box::new(TerminalPresence::new(Duration::from_secs(30))),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    let authenticator = Authenticator::new(env, AuthenticatorConfig::default());
    let platform = Arc::new(Platform::new(
        AppDevice::in_process(Arc::new(Mutex::new(authenticator))),
        &state.join("app"),
        Box::new(NoPasscode),
    )?);
    let caller = CallerId::new("com.example.app")?;
    let interaction = Interaction::new();

    // 1. Biometric: status, then a proof over the server's challenge.
    let status = biometric::check_status(&platform);
    println!("checkStatus: {}", serde_json::to_string(&status)?);
    let challenge = [42u8; 32]; // from your server
    let options = AuthOptions {
        challenge: Some(b64(&challenge)),
        allow_device_credential: true,
        ..AuthOptions::default()
    };
    match biometric::authenticate(&platform, &caller, "Sign in", &options, &interaction) {
        Ok(done) => println!("proof: {}", serde_json::to_string(&done.proof)?),
        Err(e) => println!("authenticate rejected: {}", e.to_json()),
    }

    // 2. A vault: events, values, lock.
    let vault = Vault::open(
        Arc::clone(&platform),
        caller.clone(),
        &VaultDescriptor {
            vault_id: "session".into(),
            username: "alice".into(),
        },
        VaultOptions {
            auth_mode: AuthMode::InMemoryOnly,
            lock_after: 60_000,
            max_attempts: 5,
            ..VaultOptions::default()
        },
    )?;
    let events = vault.subscribe();
    vault.store_value("token", &serde_json::json!("t-123"), &interaction)?;
    println!("token: {:?}", vault.get_value("token")?);
    vault.lock();
    if let Ok(VaultEvent::Lock { timeout, .. }) = events.try_recv() {
        println!("locked (by the idle timer: {timeout})");
    }

    // 3. SOTER: prepare the key once (register keyJson with your server), then sign.
    println!(
        "supportMode: {}",
        soter::check_is_support_soter_authentication(&platform)["supportMode"]
    );
    let start = StartRequest {
        challenge: "order-4711".into(), // from POST /api/soter/challenge
        request_auth_modes: vec!["fingerPrint".into()],
        auth_content: "Pay 12.00".into(),
    };
    match soter::start_soter_authentication(&platform, &caller, &start, &interaction) {
        Ok(result) => println!("resultJSON: {}", result.result_json),
        Err(e) => println!("startSoterAuthentication: {} {}", e.err_code, e.err_msg),
    }
    Ok(())
}
