//! `passgate`: one binary for the authenticator, the relying party and the tools around them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod app_cli;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::key_store::KeyStore;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::{UserVerifier, VerifierErrorCode};
use passgate_authenticator::ctap::{AttestationFormat, AuthenticatorConfig};
use passgate_authenticator::presence::{AutoPresence, TerminalPresence};
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};
use passgate_bridge::local_http::{Config as LocalBridgeConfig, LocalBridge};
use passgate_bridge::prompt::{Pinentry, PromptPresence, PromptUi, TerminalPrompt, TrustedPrompt};

#[derive(Parser)]
#[command(
    name = "passgate",
    version,
    about = "Passkeys with hardware keys and biometric user verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The CTAP 2.1 platform authenticator.
    Authenticator {
        #[command(subcommand)]
        command: AuthenticatorCommand,
    },
    /// Run the CTAP 2.1 conformance suite against a CTAPHID endpoint.
    Conformance(ConformanceArgs),
    /// Show the key store backend and user-verification status.
    Status(StatusArgs),
    /// The relying-party server: passkey ceremonies, sessions, signed actions with receipts and
    /// server-side assertion verification.
    Rp(RpArgs),
    /// The whole system in one command: the relying party with the demo pages on
    /// http://localhost:8080 (SQLite in the state directory), passgate's authenticator, and the
    /// local bridge the pages reach it through; open the printed URL in a browser.
    Demo(DemoArgs),
    /// The WebAuthn client for browsers: the native-messaging host a browser extension talks
    /// to, its installer, and the local HTTP bridge for pages with the webview shim.
    Bridge {
        #[command(subcommand)]
        command: BridgeCommand,
    },
    /// App-facing APIs: biometric status/authenticate with a proof, an identity vault, and
    /// SOTER-compatible challenge signing (`app serve`: the JSON host channel).
    App {
        #[command(subcommand)]
        command: app_cli::AppCommand,
    },
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where to listen; the allowed origin follows as http://localhost:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Where the local bridge to passgate's authenticator listens (loopback; port 0 picks a
    /// free port).
    #[arg(long, default_value = "127.0.0.1:8781")]
    bridge_listen: std::net::SocketAddr,
    /// Where the demo's database, receipt key and authenticator live (default: the state
    /// directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The demo pages (default: web-demo/site in the source tree this binary was built from).
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Where the PIN is typed and presence approved: this terminal or a pinentry window.
    #[arg(long = "prompt", value_enum, default_value_t = PinPromptKind::Auto)]
    prompt_kind: PinPromptKind,
    #[command(flatten)]
    prompt: PinPromptArgs,
    /// How passgate's authenticator verifies users: `auto` uses fprintd when a finger is
    /// enrolled (unless built with `--no-default-features`), otherwise the PIN.
    #[arg(long, value_enum, default_value_t = DemoVerifier::Auto)]
    user_verifier: DemoVerifier,
    /// Whose enrolled fingerprints count (default: $USER).
    #[arg(long)]
    fprint_user: Option<String>,
    /// Another origin whose pages may pair with the local bridge (your own app on a dev
    /// server, say; repeat for more). Each origin gets its own vaults and keys; the demo's
    /// relying party still accepts passkeys for its own origin only.
    #[arg(long = "bridge-allow-origin")]
    bridge_allow_origins: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum DemoVerifier {
    /// fprintd when a finger is enrolled, the PIN otherwise.
    Auto,
    /// The PIN, typed in the trusted prompt.
    Pin,
    /// A fingerprint through fprintd (the PIN still works as fallback).
    Fprintd,
}

/// `passgate rp`: settings come from `--config FILE`, then `PASSGATE_RP_*` variables, then these
/// flags, so one line starts a test server.
#[derive(clap::Args)]
struct RpArgs {
    /// A TOML file with the settings (see docs/src/relying-party.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Also serve `POST /api/verify/assertion` (and `GET /healthz`) for backends on this
    /// address, on a lean HTTP/1.1 path (port 0 picks a free port).
    #[arg(long)]
    verify_listen: Option<std::net::SocketAddr>,
    /// `sqlite://PATH` or `postgres://USER:PASS@HOST/DB`.
    #[arg(long)]
    database: Option<String>,
    /// The RP ID, e.g. example.com or localhost.
    #[arg(long)]
    rp_id: Option<String>,
    /// The name authenticators show for the RP.
    #[arg(long)]
    rp_name: Option<String>,
    /// An allowed origin (repeat for more): https://example.com, http://localhost:8080,
    /// android:apk-key-hash:<hash>, ios:bundle-id:<id>. Replaces the configured list.
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// A bearer token for `POST /api/verify/assertion` (repeat for more).
    #[arg(long = "api-token")]
    api_tokens: Vec<String>,
    /// The receipt-signing key file (PKCS#8; created 0600 when missing).
    #[arg(long)]
    receipt_key: Option<PathBuf>,
    /// Serve the pages in this directory at `/`.
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Accept assertions without the UV flag (default: UV required).
    #[arg(long)]
    no_require_uv: bool,
    /// Report a signature-counter regression instead of rejecting the assertion.
    #[arg(long)]
    counter_report_only: bool,
    /// Option endpoints: sustained requests per second per client address (0 disables).
    #[arg(long)]
    rate_limit_per_sec: Option<u32>,
    /// Option endpoints: burst per client address.
    #[arg(long)]
    rate_limit_burst: Option<u32>,
    /// Do not mark cookies `Secure` (only for plain-http hosts other than localhost).
    #[arg(long)]
    insecure_cookies: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

fn rp_config(args: &RpArgs) -> Result<passgate_relying_party::RpConfig> {
    let mut config = match &args.config {
        Some(path) => passgate_relying_party::RpConfig::from_file(path)?,
        None => passgate_relying_party::RpConfig::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.verify_listen {
        config.verify_listen = Some(v);
    }
    if let Some(v) = &args.database {
        config.database.clone_from(v);
    }
    if let Some(v) = &args.rp_id {
        config.rp_id.clone_from(v);
    }
    if let Some(v) = &args.rp_name {
        config.rp_name.clone_from(v);
    }
    if !args.origins.is_empty() {
        config.origins.clone_from(&args.origins);
    }
    if !args.api_tokens.is_empty() {
        config.api_tokens.clone_from(&args.api_tokens);
    }
    if let Some(v) = &args.receipt_key {
        config.receipt_key = Some(v.clone());
    }
    if let Some(v) = &args.static_dir {
        config.static_dir = Some(v.clone());
    }
    if args.no_require_uv {
        config.require_user_verification = false;
    }
    if args.counter_report_only {
        config.counter_policy = passgate_relying_party::verify::CounterPolicy::Report;
    }
    if let Some(v) = args.rate_limit_per_sec {
        config.rate_limit_per_sec = v;
    }
    if let Some(v) = args.rate_limit_burst {
        config.rate_limit_burst = v;
    }
    if args.insecure_cookies {
        config.secure_cookies = false;
    }
    config.validate()?;
    Ok(config)
}

fn rp(args: &RpArgs) -> Result<()> {
    run_rp(rp_config(args)?, args.workers, |_| {})
}

/// The demo's authenticator user verifier: fprintd when asked (or, for `auto`, when a finger
/// is enrolled), wrapped around the trusted prompt's presence; the prompt's presence alone
/// otherwise (the PIN verifies).
fn demo_verifier(
    args: &DemoArgs,
    presence: PromptPresence,
) -> Result<(Box<dyn UserVerifier>, &'static str)> {
    let timeout = Duration::from_secs(args.prompt.prompt_timeout.max(1));
    let name = fprint_user(args.fprint_user.clone());
    match args.user_verifier {
        DemoVerifier::Pin => Ok((Box::new(presence), "PIN")),
        DemoVerifier::Fprintd => Ok((
            fprintd_verifier(&name, timeout, Box::new(presence))?,
            "fingerprint (fprintd), PIN as fallback",
        )),
        DemoVerifier::Auto => {
            if cfg!(feature = "fprintd") {
                let fingerprint = fprintd_verifier(&name, timeout, Box::new(presence.clone()))?;
                let status = fingerprint.status();
                if status.available && status.enrolled {
                    return Ok((fingerprint, "fingerprint (fprintd), PIN as fallback"));
                }
            }
            Ok((Box::new(presence), "PIN"))
        }
    }
}

/// The app APIs' router (one per process) on `device`, with their files in `state_dir` and
/// PINs asked in `prompt` (the one WebAuthn uses); without a prompt no PIN can be given.
fn app_router(
    device: passgate_app_api::Device,
    state_dir: &std::path::Path,
    prompt: Option<&Arc<dyn TrustedPrompt>>,
) -> Result<Arc<passgate_app_api::router::Router>> {
    let passcodes: Box<dyn passgate_app_api::PasscodeProvider> = match prompt {
        Some(p) => Box::new(passgate_app_api::PromptPasscode::new(Arc::clone(p))),
        None => Box::new(passgate_app_api::NoPasscode),
    };
    let platform = passgate_app_api::Platform::new(device, state_dir, passcodes)
        .with_context(|| format!("opening {}", state_dir.display()))?;
    Ok(Arc::new(passgate_app_api::router::Router::new(Arc::new(
        platform,
    ))))
}

/// A random bearer token (32 bytes, base64url) for the demo relying party's backend API.
fn demo_api_token() -> Result<String> {
    use passgate_authenticator::api::rng::Rng;
    let mut bytes = [0u8; 32];
    SystemRng::new()
        .fill(&mut bytes)
        .context("no randomness for the demo's API token")?;
    Ok(passgate_bridge::b64::encode(&bytes))
}

fn demo(args: DemoArgs) -> Result<()> {
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => default_state_dir()?,
    };
    if args.listen.port() == 0 {
        bail!("passgate demo needs a fixed port: the allowed origin is http://localhost:PORT");
    }
    if !args.bridge_listen.ip().is_loopback() {
        bail!("--bridge-listen must be a loopback address, e.g. 127.0.0.1:8781");
    }
    let authenticator_dir = state_dir.join("authenticator");
    for dir in [&state_dir, &authenticator_dir] {
        passgate_authenticator::fs::private_dir(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let static_dir = args
        .static_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web-demo/site")));
    if !static_dir.join("index.html").is_file() {
        bail!(
            "the demo pages are not in {} (pass --static-dir DIR)",
            static_dir.display()
        );
    }
    let origin = format!("http://localhost:{}", args.listen.port());

    // passgate's authenticator, in this process: software keys, presence approved and the
    // PIN typed in the trusted prompt (this terminal, or pinentry), never in the page.
    let prompt = match args.prompt_kind {
        PinPromptKind::None => bail!("passgate demo needs a prompt: --prompt terminal or pinentry"),
        kind => trusted_prompt(kind, &args.prompt)?
            .context("passgate demo needs a prompt: --prompt terminal or pinentry")?,
    };
    let presence = PromptPresence::new(Arc::clone(&prompt));
    let (user, verification) = demo_verifier(&args, presence)?;
    let authenticator = build_authenticator(AuthenticatorParts {
        state_dir: &authenticator_dir,
        key_store: &KeyStoreArgs {
            key_store: KeyStoreKind::Software,
            tcti: None,
        },
        user,
        biometric_release: false,
        attestation: AttestationFormat::None,
        capacity: 10_000,
        max_uv_attempts: 8,
        reset_window: Some(Duration::from_secs(10)),
    })?;
    // One authenticator for WebAuthn and the app APIs: the vault and proof credentials live
    // next to the passkeys, and both ask in the same trusted prompt.
    let authenticator = Arc::new(Mutex::new(authenticator));
    let bridge = Arc::new(passgate_bridge::Bridge::new(
        Box::new(passgate_bridge::InProcess::shared(Arc::clone(
            &authenticator,
        ))),
        Box::new(PromptUi::new(Arc::clone(&prompt))),
    ));
    let app = app_router(
        passgate_app_api::Device::in_process(Arc::clone(&authenticator)),
        &authenticator_dir.join("app"),
        Some(&prompt),
    )?;
    let mut router = passgate_bridge::channel::Router::webauthn(bridge);
    passgate_app_api::channel::register(&mut router, app)?;
    let mut bridge_origins = vec![origin.clone()];
    bridge_origins.extend(args.bridge_allow_origins.iter().cloned());
    let local_bridge = LocalBridge::new(Arc::new(router), LocalBridgeConfig::new(bridge_origins))?;
    // The backend API token (`/api/verify/assertion`, `/api/soter/*`): a fresh one each run,
    // shown only in this terminal. The app-APIs page plays the app's backend with it.
    let api_token = demo_api_token()?;

    let config = passgate_relying_party::RpConfig {
        listen: args.listen,
        database: format!("sqlite://{}", state_dir.join("demo-rp.sqlite3").display()),
        rp_id: "localhost".into(),
        rp_name: "passgate demo".into(),
        origins: vec![origin],
        api_tokens: vec![api_token.clone()],
        receipt_key: Some(state_dir.join("demo-receipt-key.p8")),
        static_dir: Some(static_dir),
        ..passgate_relying_party::RpConfig::default()
    };
    let prompt_name = prompt.name();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listen = config.listen;
        let state = passgate_relying_party::build_state(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let bridge_listener = tokio::net::TcpListener::bind(args.bridge_listen)
            .await
            .with_context(|| format!("binding {} (--bridge-listen)", args.bridge_listen))?;
        let local = listener.local_addr()?;
        let bridge_addr = bridge_listener.local_addr()?;
        let url = format!("http://localhost:{}", local.port());
        println!("listening on http://{local}");
        println!();
        println!("passgate demo is running: open {url} in a browser on this machine.");
        println!();
        println!("  Pick the authenticator at the top of the page:");
        println!("  - this browser's own (platform passkey, phone, security key), or");
        println!(
            "  - passgate's authenticator (software keys in {}):",
            authenticator_dir.display()
        );
        println!("    press \"Use passgate's authenticator\" and enter");
        println!("      local bridge: http://{bridge_addr}");
        println!(
            "      pairing code: {}",
            local_bridge.pairing_code().as_str()
        );
        println!("    User verification: {verification}; the PIN is typed, and each request");
        println!("    approved, in the {prompt_name} prompt, never in the page.");
        println!();
        println!("  1. Create an account: a passkey is made; user verification is required.");
        println!("  2. Sign out, then sign in with the passkey (username, or leave it empty).");
        println!(
            "  3. {url}/account.html: rename or delete passkeys; deleting asks you to confirm."
        );
        println!("  4. {url}/approve.html: approve a payment and get a receipt anyone can verify.");
        println!(
            "  5. {url}/app-apis.html: the app APIs (biometric proof, identity vault, SOTER) on the"
        );
        println!("     same authenticator and bridge; the page plays your backend with");
        println!("       backend API token: {api_token}");
        if local_bridge.allowed_origins().len() > 1 {
            println!(
                "  The local bridge also pairs pages of {}.",
                local_bridge.allowed_origins()[1..].join(", ")
            );
        }
        println!("Stop with Ctrl-C. Data: {}", state_dir.display());
        use std::io::Write;
        std::io::stdout().flush()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(async move {
            passgate_relying_party::server::shutdown_signal().await;
            let _ = stop.send(true);
        });
        let rp = passgate_relying_party::server::serve(listener, state, wait(stopped.clone()));
        let bridge = local_bridge.serve(bridge_listener, wait(stopped));
        let (rp, bridge) = tokio::join!(rp, bridge);
        rp?;
        bridge?;
        Ok(())
    })
}

/// Serves the relying party with `config`; `ready` runs once the socket is bound.
fn run_rp(
    config: passgate_relying_party::RpConfig,
    workers: Option<usize>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime.build()?.block_on(async move {
        let listen = config.listen;
        let verify_listen = config.verify_listen;
        let origins = config.origins.join(", ");
        let rp_id = config.rp_id.clone();
        let state = passgate_relying_party::build_state(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let verify_listener = match verify_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?,
            ),
            None => None,
        };
        let local = listener.local_addr()?;
        if let Some(verify) = &verify_listener {
            let addr = verify.local_addr()?;
            println!("verification listener on http://{addr}");
            tracing::info!("verification listener (POST /api/verify/assertion) on http://{addr}");
        }
        println!("listening on http://{local}");
        ready(local);
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!(%rp_id, %origins, "relying party serving on http://{local}");
        // One signal stops both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            passgate_relying_party::server::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let verify = async {
            match verify_listener {
                Some(listener) => {
                    passgate_relying_party::verify_listener::serve_verify(
                        listener,
                        state.clone(),
                        stopped(stop_rx.clone()),
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let main = passgate_relying_party::server::serve(
            listener,
            state.clone(),
            stopped(stop_rx.clone()),
        );
        tokio::try_join!(main, verify)?;
        Ok(())
    })
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum KeyStoreKind {
    /// Keys generated in software, AES-256-GCM wrapped under the device key.
    Software,
    /// Keys created and used inside a TPM 2.0 (build with `--features tpm`).
    Tpm,
}

#[derive(clap::Args, Clone)]
struct KeyStoreArgs {
    /// Where credential private keys live.
    #[arg(long, value_enum, default_value_t = KeyStoreKind::Software)]
    key_store: KeyStoreKind,
    /// The TPM to use with `--key-store tpm`, as a TCTI string (default: $TPM2TOOLS_TCTI,
    /// $TSS2_TCTI, then device:/dev/tpmrm0), e.g. `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long)]
    tcti: Option<String>,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    key_store: KeyStoreArgs,
    /// Which user verifier to report on.
    #[arg(long, value_enum, default_value_t = VerifierKind::None)]
    user_verifier: VerifierKind,
    /// Whose enrolled fingerprints count (default: $USER).
    #[arg(long)]
    fprint_user: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The authenticator's state directory, for its PIN and lockout state (default: the
    /// state directory `authenticator serve` uses).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The `--max-attempts` the authenticator is served with (failed scans before
    /// biometryLockout).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=25))]
    max_attempts: u8,
}

/// What the authenticator's state directory says about the PIN and built-in UV retries.
struct PinSummary {
    set: bool,
    retries: u8,
    uv_retries: u8,
}

/// Reads the PIN state without creating anything: `None` when the state directory holds no
/// authenticator yet, an error when it holds one that cannot be read.
fn read_pin_summary(state_dir: &std::path::Path, max_attempts: u8) -> Result<Option<PinSummary>> {
    if !state_dir.join("device.key").is_file() {
        return Ok(None);
    }
    let device_key = DeviceKey::load_or_create(state_dir)
        .with_context(|| format!("opening the device key in {}", state_dir.display()))?;
    let mut store = FileStateStore::open(state_dir, &device_key)
        .with_context(|| format!("opening the state store in {}", state_dir.display()))?;
    let runtime = passgate_authenticator::ctap::PinRuntime::load(&mut store, max_attempts);
    let state = runtime
        .state()
        .map_err(|code| anyhow::anyhow!("the PIN state cannot be read ({code:?})"))?;
    Ok(Some(PinSummary {
        set: state.is_set(),
        retries: state.retries,
        uv_retries: state.uv_retries,
    }))
}

fn tcti(args: &KeyStoreArgs) -> String {
    args.tcti
        .clone()
        .or_else(|| std::env::var("TPM2TOOLS_TCTI").ok())
        .or_else(|| std::env::var("TSS2_TCTI").ok())
        .unwrap_or_else(|| "device:/dev/tpmrm0".to_owned())
}

/// Opens the chosen key store. The TPM store keeps its release state (release key, TPM PIN
/// object) in `state`; `biometric_release` lets a biometric verifier release TPM keys.
fn open_key_store(
    args: &KeyStoreArgs,
    device_key: &DeviceKey,
    state: FileStateStore,
    biometric_release: bool,
) -> Result<Box<dyn KeyStore>> {
    match args.key_store {
        KeyStoreKind::Software => Ok(Box::new(SoftwareKeyStore::new(device_key))),
        KeyStoreKind::Tpm => open_tpm(&tcti(args), state, biometric_release),
    }
}

#[cfg(feature = "tpm")]
fn open_tpm(
    tcti: &str,
    state: FileStateStore,
    biometric_release: bool,
) -> Result<Box<dyn KeyStore>> {
    let store = passgate_authenticator::tpm::TpmKeyStore::open_with_state(
        tcti,
        Box::new(state),
        biometric_release,
    )?;
    Ok(Box::new(store))
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(_: &str, _: FileStateStore, _: bool) -> Result<Box<dyn KeyStore>> {
    bail!(
        "this passgate was built without TPM support: rebuild with `--features tpm` (needs libtss2-dev)"
    )
}

/// What `passgate status` reports about a TPM.
struct TpmStatus {
    detail: String,
    /// The dictionary-attack state: failed tries, max tries, recovery seconds, lockout
    /// recovery seconds.
    dictionary_attack: Option<(u32, u32, u32, u32)>,
}

#[cfg(feature = "tpm")]
fn probe_tpm(tcti: &str) -> Result<TpmStatus> {
    let mut store = passgate_authenticator::tpm::TpmKeyStore::open(tcti)?;
    let da = store.dictionary_attack_status().ok().map(|d| {
        (
            d.failed_tries,
            d.max_tries,
            d.recovery_time,
            d.lockout_recovery,
        )
    });
    Ok(TpmStatus {
        detail: store.info().detail,
        dictionary_attack: da,
    })
}

#[cfg(not(feature = "tpm"))]
fn probe_tpm(_tcti: &str) -> Result<TpmStatus> {
    bail!(
        "this passgate was built without TPM support: rebuild with `--features tpm` (needs libtss2-dev)"
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn status(args: StatusArgs) -> Result<std::process::ExitCode> {
    let (backend, detail, error, da) = match args.key_store.key_store {
        KeyStoreKind::Software => (
            "software",
            "P-256 keys wrapped with AES-256-GCM under the device key".to_owned(),
            None,
            None,
        ),
        KeyStoreKind::Tpm => match probe_tpm(&tcti(&args.key_store)) {
            Ok(tpm) => ("tpm", tpm.detail, None, tpm.dictionary_attack),
            Err(e) => ("tpm", String::new(), Some(format!("{e:#}")), None),
        },
    };
    let mut verifier = match args.user_verifier {
        VerifierKind::None => passgate_authenticator::presence::no_verification_status(),
        VerifierKind::Fprintd => {
            let name = fprint_user(args.fprint_user.clone());
            let presence: Box<dyn UserVerifier> =
                Box::new(TerminalPresence::new(Duration::from_secs(1)));
            fprintd_verifier(&name, Duration::from_secs(1), presence)?.status()
        }
    };
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => default_state_dir()?,
    };
    let pin = read_pin_summary(&state_dir, args.max_attempts);
    if let Ok(Some(pin)) = &pin {
        // The sensor works and a finger is enrolled, but the failed-scan limit is spent: only
        // the PIN verifies now (and restores the attempts).
        if verifier.available && verifier.enrolled && pin.uv_retries == 0 {
            verifier.available = false;
            verifier.error = Some(VerifierErrorCode::BiometryLockout);
        }
    }
    if args.json {
        let da_json = da.map_or("null".to_owned(), |(failed, max, recovery, lockout)| {
            format!(
                "{{\"failedTries\":{failed},\"maxTries\":{max},\"recoveryTime\":{recovery},\"lockoutRecovery\":{lockout},\"lockedOut\":{}}}",
                failed >= max
            )
        });
        let pin_json = match &pin {
            Ok(None) => "null".to_owned(),
            Ok(Some(p)) => format!(
                "{{\"set\":{},\"retries\":{},\"uvRetries\":{},\"errorCode\":{}}}",
                p.set,
                p.retries,
                p.uv_retries,
                if p.set {
                    "null".to_owned()
                } else {
                    json_string(VerifierErrorCode::PasscodeNotSet.as_str())
                }
            ),
            Err(e) => format!("{{\"error\":{}}}", json_string(&format!("{e:#}"))),
        };
        println!(
            "{{\"keyStore\":{{\"backend\":{},\"detail\":{},\"available\":{},\"error\":{},\"dictionaryAttack\":{}}},\"userVerification\":{{\"isAvailable\":{},\"biometryType\":{},\"enrolled\":{},\"errorCode\":{}}},\"pin\":{}}}",
            json_string(backend),
            json_string(&detail),
            error.is_none(),
            error.as_deref().map_or("null".to_owned(), json_string),
            da_json,
            verifier.available,
            json_string(verifier.biometry.as_str()),
            verifier.enrolled,
            verifier
                .error
                .map_or("null".to_owned(), |e| json_string(e.as_str())),
            pin_json,
        );
    } else {
        match &error {
            None => println!("key store: {backend} ({detail})"),
            Some(e) => println!("key store: {backend} UNAVAILABLE: {e}"),
        }
        if let Some((failed, max, recovery, lockout)) = da {
            // The TPM PIN object is DA-protected: in lockout, every PIN (the right one too)
            // is refused until failures are forgotten.
            println!(
                "TPM dictionary-attack lockout: {} ({failed} of {max} failed authorizations; one forgotten every {recovery} s; lockout-auth recovery {lockout} s)",
                if failed >= max {
                    "LOCKED OUT, PIN verification refused"
                } else {
                    "not locked out"
                }
            );
        }
        println!(
            "user verification: {} (biometry {}, enrolled {}{})",
            if verifier.available {
                "available"
            } else {
                "not available"
            },
            verifier.biometry.as_str(),
            verifier.enrolled,
            verifier
                .error
                .map(|e| format!(", {}", e.as_str()))
                .unwrap_or_default()
        );
        match &pin {
            Ok(None) => println!("PIN: no authenticator state in {} yet", state_dir.display()),
            Ok(Some(p)) if p.set => println!(
                "PIN: set ({} retries left; {} of {} fingerprint attempts left)",
                p.retries, p.uv_retries, args.max_attempts
            ),
            Ok(Some(_)) => println!("PIN: not set (passcodeNotSet)"),
            Err(e) => println!("PIN: state unreadable: {e:#}"),
        }
    }
    Ok(if error.is_none() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[derive(clap::Args)]
struct ConformanceArgs {
    /// The authenticator: `tcp://HOST:PORT`, `hidraw:/dev/hidrawN`, or `hid` (the one hidraw
    /// node with the FIDO usage page).
    #[arg(long)]
    target: String,
    /// The target approves user presence by itself (e.g. `serve --presence auto`).
    #[arg(long)]
    presence_auto: bool,
    /// The target's presence prompt is never answered (checks KEEPALIVE and CANCEL).
    #[arg(long)]
    presence_never: bool,
    /// Allow checks that reset the authenticator and set a PIN. ERASES EVERY CREDENTIAL.
    #[arg(long)]
    allow_reset: bool,
    /// Run only checks whose ID or name contains this text.
    #[arg(long)]
    filter: Option<String>,
}

fn conformance(args: ConformanceArgs) -> Result<std::process::ExitCode> {
    let target = passgate_ctap_tests::Target::parse(&args.target).map_err(anyhow::Error::msg)?;
    let options = passgate_ctap_tests::RunOptions {
        presence_auto: args.presence_auto,
        presence_never: args.presence_never,
        allow_reset: args.allow_reset,
        filter: args.filter,
    };
    let report = passgate_ctap_tests::run(&target, &options, &mut std::io::stdout());
    Ok(if report.failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[derive(Subcommand)]
enum AuthenticatorCommand {
    /// Serve the authenticator over CTAPHID: 64-byte HID reports as-is over TCP, or as a HID
    /// security key on /dev/uhid (`--transport uhid`).
    Serve(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum PresenceMode {
    /// Ask on this terminal: Enter approves, `n` denies.
    Terminal,
    /// Ask in a pinentry window (`--pinentry`, $PASSGATE_PINENTRY or `pinentry` on PATH).
    Pinentry,
    /// Approve presence with nobody there. FOR TESTS ONLY; never claims user verification.
    Auto,
}

#[derive(Clone, Copy, ValueEnum)]
enum AttestationArg {
    /// No attestation statement.
    None,
    /// Packed self-attestation (signed by the credential key, no certificate).
    Packed,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum TransportArg {
    /// CTAPHID reports over TCP (`--listen`), for passgate's own bridge and tests.
    Tcp,
    /// A HID security key on /dev/uhid that every FIDO client on this machine sees.
    Uhid,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// How clients reach the authenticator.
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    transport: TransportArg,
    /// Where to listen with `--transport tcp`, `tcp://HOST:PORT` (port 0 picks a free port).
    #[arg(long, default_value = "tcp://127.0.0.1:8765")]
    listen: String,
    /// State directory (device key, credentials). Default: $XDG_STATE_HOME/passgate or
    /// ~/.local/state/passgate.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// How user presence is collected.
    #[arg(long, value_enum, default_value_t = PresenceMode::Terminal)]
    presence: PresenceMode,
    /// Attestation format when the client does not ask for one (attestationFormatsPreference):
    /// packed self-attestation, as security keys give it (OpenSSH refuses `none`).
    #[arg(long, value_enum, default_value_t = AttestationArg::Packed)]
    attestation: AttestationArg,
    /// How many credentials the store holds at most.
    #[arg(long, default_value_t = 250_000)]
    capacity: usize,
    /// Seconds to wait for the person at a presence prompt.
    #[arg(long, default_value_t = 30)]
    presence_timeout: u64,
    /// The pinentry program for `--presence pinentry`.
    #[arg(long)]
    pinentry: Option<PathBuf>,
    #[command(flatten)]
    key_store: KeyStoreArgs,
    #[command(flatten)]
    verifier: VerifierArgs,
}

/// How an authenticator run here verifies users (`authenticator serve`, `passgate app`).
#[derive(clap::Args, Clone)]
struct VerifierArgs {
    /// How users are verified: `none` (presence only) or `fprintd` (fingerprint through the
    /// fprintd daemon; in the default build).
    #[arg(long, value_enum, default_value_t = VerifierKind::None)]
    user_verifier: VerifierKind,
    /// Whose enrolled fingerprints count with `--user-verifier fprintd` (default: $USER).
    #[arg(long)]
    fprint_user: Option<String>,
    /// Failed fingerprint scans before built-in verification is locked out (biometryLockout,
    /// CTAP2_ERR_UV_BLOCKED) and the PIN is required; a correct PIN or a match restores them.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=25))]
    max_attempts: u8,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum VerifierKind {
    /// Presence only; user verification through the PIN.
    None,
    /// Fingerprint verification through fprintd on the system bus.
    Fprintd,
}

fn fprint_user(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".to_owned())
}

#[cfg(feature = "fprintd")]
fn fprintd_verifier(
    user: &str,
    timeout: Duration,
    presence: Box<dyn UserVerifier>,
) -> Result<Box<dyn UserVerifier>> {
    Ok(Box::new(
        passgate_authenticator::fprintd::FprintdVerifier::new(user, timeout, presence),
    ))
}

#[cfg(not(feature = "fprintd"))]
fn fprintd_verifier(
    _: &str,
    _: Duration,
    _: Box<dyn UserVerifier>,
) -> Result<Box<dyn UserVerifier>> {
    bail!(
        "this passgate was built without fprintd support: rebuild with the default features (`--features fprintd`)"
    )
}

fn default_state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("passgate"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_STATE_HOME nor HOME is set; pass --state-dir")?;
    Ok(PathBuf::from(home).join(".local/state/passgate"))
}

fn parse_tcp_listen(listen: &str) -> Result<&str> {
    match listen.strip_prefix("tcp://") {
        Some(addr) if !addr.is_empty() => Ok(addr),
        _ => bail!("--listen must look like tcp://127.0.0.1:8765, got {listen:?}"),
    }
}

/// How an authenticator served here (`authenticator serve`, `passgate app`) collects presence
/// and verifies users.
struct UserArgs<'a> {
    presence: PresenceMode,
    /// How long presence (and a fingerprint scan) waits for the person.
    presence_timeout: Duration,
    /// The pinentry program for [`PresenceMode::Pinentry`] (default: $PASSGATE_PINENTRY, then
    /// `pinentry` on PATH).
    pinentry: Option<&'a std::path::Path>,
    verifier: &'a VerifierArgs,
}

/// Presence as `args.presence` collects it, wrapped by fprintd for `--user-verifier fprintd`.
fn user_verifier(args: &UserArgs<'_>) -> Result<Box<dyn UserVerifier>> {
    let presence: Box<dyn UserVerifier> = match args.presence {
        PresenceMode::Auto => Box::new(AutoPresence::new()),
        PresenceMode::Terminal => Box::new(TerminalPresence::new(args.presence_timeout)),
        PresenceMode::Pinentry => {
            let pinentry = Pinentry::locate(args.pinentry)
                .map_err(|e| anyhow::anyhow!("--presence pinentry: {e}"))?
                .with_timeout(args.presence_timeout);
            Box::new(PromptPresence::new(Arc::new(pinentry)))
        }
    };
    match args.verifier.user_verifier {
        VerifierKind::None => Ok(presence),
        VerifierKind::Fprintd => fprintd_verifier(
            &fprint_user(args.verifier.fprint_user.clone()),
            args.presence_timeout,
            presence,
        ),
    }
}

/// What every authenticator here is made of, whoever collects presence.
struct AuthenticatorParts<'a> {
    state_dir: &'a std::path::Path,
    key_store: &'a KeyStoreArgs,
    /// Presence (and, wrapped by fprintd, verification).
    user: Box<dyn UserVerifier>,
    biometric_release: bool,
    attestation: AttestationFormat,
    capacity: usize,
    max_uv_attempts: u8,
    reset_window: Option<Duration>,
}

/// Opens the device key, credential and state stores in `state_dir` and builds the
/// authenticator.
fn build_authenticator(parts: AuthenticatorParts<'_>) -> Result<Authenticator> {
    let state_dir = parts.state_dir;
    let device_key = DeviceKey::load_or_create(state_dir)
        .with_context(|| format!("opening the device key in {}", state_dir.display()))?;
    let credentials = FileCredentialStore::open(state_dir, &device_key, parts.capacity)
        .with_context(|| format!("opening the credential store in {}", state_dir.display()))?;
    let key_store_state = FileStateStore::open(state_dir, &device_key)
        .with_context(|| format!("opening the state store in {}", state_dir.display()))?;
    let key_store = open_key_store(
        parts.key_store,
        &device_key,
        key_store_state,
        parts.biometric_release,
    )?;
    tracing::info!(backend = key_store.info().backend, detail = %key_store.info().detail, "key store ready");
    let state = FileStateStore::open(state_dir, &device_key)
        .with_context(|| format!("opening the state store in {}", state_dir.display()))?;
    let env = Env {
        key_store,
        credentials: Box::new(credentials),
        state: Box::new(state),
        user: parts.user,
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    let config = AuthenticatorConfig {
        default_attestation: parts.attestation,
        reset_window: parts.reset_window,
        max_uv_attempts: parts.max_uv_attempts,
        ..AuthenticatorConfig::default()
    };
    Ok(Authenticator::new(env, config))
}

fn serve(args: ServeArgs) -> Result<()> {
    let addr = parse_tcp_listen(&args.listen)?;
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    let reset_window = match args.presence {
        PresenceMode::Auto => None,
        PresenceMode::Terminal | PresenceMode::Pinentry => Some(Duration::from_secs(10)),
    };
    let user = user_verifier(&UserArgs {
        presence: args.presence,
        presence_timeout: Duration::from_secs(args.presence_timeout),
        pinentry: args.pinentry.as_deref(),
        verifier: &args.verifier,
    })?;
    let authenticator = build_authenticator(AuthenticatorParts {
        state_dir: &state_dir,
        key_store: &args.key_store,
        user,
        biometric_release: args.verifier.user_verifier == VerifierKind::Fprintd,
        attestation: match args.attestation {
            AttestationArg::None => AttestationFormat::None,
            AttestationArg::Packed => AttestationFormat::PackedSelf,
        },
        capacity: args.capacity,
        max_uv_attempts: args.verifier.max_attempts,
        reset_window,
    })?;
    use std::io::Write;
    if args.transport == TransportArg::Uhid {
        use passgate_authenticator::transport::uhid;
        let server = uhid::UhidServer::start(authenticator, &uhid::passgate_identity()).context(
            "creating the uhid device (is the uhid module loaded, may this user open /dev/uhid?)",
        )?;
        println!("serving a FIDO HID device on {}", uhid::UHID_PATH);
        std::io::stdout().flush()?;
        tracing::info!(state_dir = %state_dir.display(), "authenticator serving CTAPHID on uhid");
        server.wait()?;
        return Ok(());
    }
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("listening on tcp://{local}");
    std::io::stdout().flush()?;
    tracing::info!(state_dir = %state_dir.display(), "authenticator serving CTAPHID on tcp://{local}");
    passgate_authenticator::transport::tcp::serve(listener, authenticator)?;
    Ok(())
}

#[derive(Subcommand)]
enum BridgeCommand {
    /// Chrome native messaging on stdin/stdout (the browser starts it; see
    /// `passgate bridge install`). Each request carries the caller's origin, filled in by the
    /// extension from what Chromium says.
    NativeHost(NativeHostArgs),
    /// Register the native-messaging host (`dev.passgate.bridge`) with Chromium or Chrome for
    /// this user.
    Install(BridgeInstallArgs),
    /// The local HTTP bridge on a loopback address, for pages that load the webview shim
    /// (`web-demo/site/shim/passgate-webview.js`): configured origins only, after pairing with
    /// the code it prints.
    LocalHttp(LocalHttpArgs),
}

/// Where the PIN is typed: never into the page.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum PinPromptKind {
    /// A pinentry program (`--pinentry`, $PASSGATE_PINENTRY, or `pinentry` on PATH).
    Pinentry,
    /// The terminal running passgate.
    Terminal,
    /// The terminal when there is one, pinentry otherwise.
    Auto,
    /// Nowhere: ceremonies that need user verification fail (unless the authenticator
    /// verifies by itself).
    None,
}

/// How a trusted prompt is run.
#[derive(clap::Args, Clone)]
struct PinPromptArgs {
    /// The pinentry program (default: $PASSGATE_PINENTRY, then `pinentry` on PATH).
    #[arg(long)]
    pinentry: Option<PathBuf>,
    /// Seconds a prompt waits for the person.
    #[arg(long, default_value_t = 120)]
    prompt_timeout: u64,
}

/// The trusted prompt `kind` names; `None` for [`PinPromptKind::None`].
fn trusted_prompt(
    kind: PinPromptKind,
    args: &PinPromptArgs,
) -> Result<Option<Arc<dyn TrustedPrompt>>> {
    let timeout = Duration::from_secs(args.prompt_timeout.max(1));
    let pinentry = || -> Result<Arc<dyn TrustedPrompt>> {
        let p = Pinentry::locate(args.pinentry.as_deref())
            .map_err(|e| anyhow::anyhow!("pinentry: {e}"))?
            .with_timeout(timeout);
        Ok(Arc::new(p))
    };
    Ok(match kind {
        PinPromptKind::None => None,
        PinPromptKind::Pinentry => Some(pinentry()?),
        PinPromptKind::Terminal => Some(Arc::new(
            TerminalPrompt::open()
                .map_err(|e| anyhow::anyhow!("--pin-prompt terminal: {e}"))?
                .with_timeout(timeout),
        )),
        PinPromptKind::Auto => match TerminalPrompt::open() {
            Ok(t) => Some(Arc::new(t.with_timeout(timeout))),
            Err(_) => Some(pinentry()?),
        },
    })
}

/// The bridge's UI on `prompt` (no UI without one).
fn bridge_ui(prompt: Option<&Arc<dyn TrustedPrompt>>) -> Box<dyn passgate_bridge::UserInterface> {
    match prompt {
        Some(p) => Box::new(PromptUi::new(Arc::clone(p))),
        None => Box::new(passgate_bridge::NoUserInterface),
    }
}

#[derive(clap::Args)]
struct NativeHostArgs {
    /// The authenticator: `tcp://HOST:PORT`, `hidraw:/dev/hidrawN`, or `hid` (the one hidraw
    /// node with the FIDO usage page).(a `passgate authenticator serve`).
    #[arg(long, default_value = "tcp://127.0.0.1:8765")]
    authenticator: String,
    /// Where the PIN is typed (pinentry by default: the browser starts this host with no
    /// terminal).
    #[arg(long, value_enum, default_value_t = PinPromptKind::Pinentry)]
    pin_prompt: PinPromptKind,
    #[command(flatten)]
    prompt: PinPromptArgs,
    /// What the browser passes: the calling extension's origin (informational).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    browser_args: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BrowserArg {
    /// Chromium (~/.config/chromium).
    Chromium,
    /// Google Chrome (~/.config/google-chrome).
    Chrome,
}

#[derive(clap::Args)]
struct BridgeInstallArgs {
    /// Which browser's NativeMessagingHosts directory to write to.
    #[arg(long, value_enum, default_value_t = BrowserArg::Chromium)]
    browser: BrowserArg,
    /// The extension allowed to connect (32 letters a to p, shown on chrome://extensions).
    #[arg(long)]
    extension_id: String,
    /// The authenticator the host talks to.
    #[arg(long, default_value = "tcp://127.0.0.1:8765")]
    authenticator: String,
    /// Write here instead of the browser's directory.
    #[arg(long)]
    manifest_dir: Option<PathBuf>,
    /// Where the host asks for the PIN (default: pinentry).
    #[arg(long, value_enum)]
    pin_prompt: Option<PinPromptKind>,
    /// The pinentry program the host runs.
    #[arg(long)]
    pinentry: Option<PathBuf>,
}

#[derive(clap::Args)]
struct LocalHttpArgs {
    /// Where to listen (a loopback address; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8781")]
    listen: std::net::SocketAddr,
    /// An origin whose pages may use the bridge, e.g. http://localhost:8080 (repeat for more).
    #[arg(long = "allow-origin", required = true)]
    allow_origins: Vec<String>,
    /// The authenticator: `tcp://HOST:PORT`, `hidraw:/dev/hidrawN`, or `hid` (the one hidraw
    /// node with the FIDO usage page).(a `passgate authenticator serve`).
    #[arg(long, default_value = "tcp://127.0.0.1:8765")]
    authenticator: String,
    /// Where the PIN is typed (by default this terminal, pinentry without one).
    #[arg(long, value_enum, default_value_t = PinPromptKind::Auto)]
    pin_prompt: PinPromptKind,
    #[command(flatten)]
    prompt: PinPromptArgs,
    /// The app APIs' files (vaults, proof and SOTER keys) live in DIR/app, as for
    /// `passgate app --state-dir DIR` (default: the state directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

fn bridge(command: BridgeCommand) -> Result<()> {
    use passgate_bridge::native;
    match command {
        BridgeCommand::NativeHost(args) => {
            let kind = args.pin_prompt;
            // Without a usable prompt the host still answers (ceremonies needing user
            // verification then fail with a clear error); the reason goes to the browser's log.
            let prompt = trusted_prompt(kind, &args.prompt).unwrap_or_else(|e| {
                tracing::error!(error = %e, "no trusted PIN prompt: user verification by PIN is unavailable");
                None
            });
            tracing::info!(caller = ?args.browser_args, authenticator = %args.authenticator, prompt = prompt.as_ref().map(|p| p.name()), "native-messaging host started");
            let bridge = Arc::new(passgate_bridge::Bridge::new(
                Box::new(passgate_bridge::TcpCtapHid::new(&args.authenticator)),
                bridge_ui(prompt.as_ref()),
            ));
            native::serve(bridge, std::io::stdin().lock(), std::io::stdout())
                .context("native messaging")?;
            Ok(())
        }
        BridgeCommand::Install(args) => {
            let manifest_dir = match args.manifest_dir {
                Some(dir) => dir,
                None => {
                    let home =
                        std::env::var_os("HOME").context("HOME is not set; pass --manifest-dir")?;
                    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
                    let browser = match args.browser {
                        BrowserArg::Chromium => native::Browser::Chromium,
                        BrowserArg::Chrome => native::Browser::Chrome,
                    };
                    browser.manifest_dir(std::path::Path::new(&home), xdg.as_deref())
                }
            };
            let mut host_args = Vec::new();
            if let Some(kind) = args.pin_prompt {
                let name = kind
                    .to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default();
                host_args.extend(["--pin-prompt".to_owned(), name]);
            }
            if let Some(program) = &args.pinentry {
                let absolute = std::path::absolute(program)
                    .with_context(|| format!("resolving {}", program.display()))?;
                let text = absolute
                    .to_str()
                    .context("the pinentry path is not UTF-8")?
                    .to_owned();
                host_args.extend(["--pinentry".to_owned(), text]);
            }
            let path = native::install(&native::Install {
                manifest_dir,
                executable: std::env::current_exe().context("finding this executable")?,
                extension_id: args.extension_id,
                authenticator: args.authenticator,
                host_args,
            })?;
            println!(
                "installed the native-messaging host manifest {}",
                path.display()
            );
            Ok(())
        }
        BridgeCommand::LocalHttp(args) => {
            let prompt = trusted_prompt(args.pin_prompt, &args.prompt)?;
            let bridge = Arc::new(passgate_bridge::Bridge::new(
                Box::new(passgate_bridge::TcpCtapHid::new(&args.authenticator)),
                bridge_ui(prompt.as_ref()),
            ));
            let state_dir = match &args.state_dir {
                Some(dir) => dir.clone(),
                None => default_state_dir()?,
            };
            // The app APIs on the same authenticator, over a connection of their own.
            let app = app_router(
                passgate_app_api::Device::remote(Box::new(passgate_bridge::TcpCtapHid::new(
                    &args.authenticator,
                ))),
                &state_dir.join("app"),
                prompt.as_ref(),
            )?;
            let mut router = passgate_bridge::channel::Router::webauthn(bridge);
            passgate_app_api::channel::register(&mut router, app)?;
            let local =
                LocalBridge::new(Arc::new(router), LocalBridgeConfig::new(args.allow_origins))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(args.listen)
                    .await
                    .with_context(|| format!("binding {}", args.listen))?;
                let addr = listener.local_addr()?;
                println!("listening on http://{addr}");
                println!(
                    "pages of {} may pair with code: {}",
                    local.allowed_origins().join(", "),
                    local.pairing_code().as_str()
                );
                use std::io::Write;
                std::io::stdout().flush()?;
                local
                    .serve(listener, passgate_relying_party::server::shutdown_signal())
                    .await?;
                Ok(())
            })
        }
    }
}

fn main() -> Result<std::process::ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PASSGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // PASSGATE_LOG_FORMAT=json: one JSON object per line, with the request span (request ID,
    // method, path) on every event, for log collectors.
    if std::env::var("PASSGATE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Authenticator {
            command: AuthenticatorCommand::Serve(args),
        } => serve(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Conformance(args) => conformance(args),
        Command::Status(args) => status(args),
        Command::Rp(args) => rp(&args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Demo(args) => demo(args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Bridge { command } => bridge(command).map(|()| std::process::ExitCode::SUCCESS),
        Command::App { command } => app_cli::main(command),
    }
}
