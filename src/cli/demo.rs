//! `passgate demo`: the whole system in one process: the relying party with the demo pages,
//! passgate's authenticator on the state directory, and the local bridge the pages reach it
//! through, with the app APIs on the same authenticator.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::UserVerifier;
use passgate_authenticator::ctap::AttestationFormat;
use passgate_authenticator::setup::{AuthenticatorParts, KeyStoreChoice, build_authenticator};
use passgate_bridge::accounts::{AccountRecord, accounts_path};
use passgate_bridge::local_http::{Config as LocalBridgeConfig, LocalBridge, pairings_path};
use passgate_bridge::prompt::{PresenceGrants, PromptPresence, PromptUi};

use super::app::app_router;
use super::prompt::{PinPromptArgs, PinPromptKind, trusted_prompt};
use super::{fprint_user, fprintd_verifier, state_dir_or_default};

#[derive(clap::Args)]
pub struct DemoArgs {
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

/// How long after three wrong PINs the prompt's Unlock restarts the authenticator.
const UNLOCK_DELAY: Duration = Duration::from_secs(10);

/// "Unplugging" the demo's in-process authenticator: its PIN/UV state power-cycles; passkeys,
/// the PIN, its durable retry count and the local bridge's pairings are kept.
fn power_cycle(
    authenticator: &Arc<Mutex<passgate_authenticator::Authenticator>>,
) -> passgate_bridge::PowerCycle {
    let authenticator = Arc::clone(authenticator);
    Arc::new(move || {
        authenticator
            .lock()
            .map_err(|_| "the authenticator's lock is poisoned".to_owned())?
            .power_cycle();
        Ok(())
    })
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DemoVerifier {
    /// fprintd when a finger is enrolled, the PIN otherwise.
    Auto,
    /// The PIN, typed in the trusted prompt.
    Pin,
    /// A fingerprint through fprintd (the PIN still works as fallback).
    Fprintd,
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

/// A random bearer token (32 bytes, base64url) for the demo relying party's backend API.
fn demo_api_token() -> Result<String> {
    use passgate_authenticator::api::rng::Rng;
    let mut bytes = [0u8; 32];
    SystemRng::new()
        .fill(&mut bytes)
        .context("no randomness for the demo's API token")?;
    Ok(passgate_bridge::b64::encode(&bytes))
}

/// Runs `passgate demo` until Ctrl-C.
pub fn main(args: DemoArgs) -> Result<()> {
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
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
    // The bridge's prompt names the whole request (and an action's text) and the person
    // approves it there, typing the PIN: the authenticator's presence check, in this process
    // on the same prompt, takes that approval instead of asking a second time.
    let grants = Arc::new(PresenceGrants::default());
    if prompt.name() == "terminal" && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // The prompt and the logs would share this terminal: logs go to a file instead.
        let log = state_dir.join("passgate.log");
        super::log_sink::to_file(&log).with_context(|| format!("opening {}", log.display()))?;
        println!(
            "logs: {} (the terminal is passgate's prompt)",
            log.display()
        );
    }
    let presence =
        PromptPresence::new(Arc::clone(&prompt)).with_presence_grants(Arc::clone(&grants));
    let (user, verification) = demo_verifier(&args, presence)?;
    let authenticator = build_authenticator(AuthenticatorParts {
        state_dir: &authenticator_dir,
        key_store: &KeyStoreChoice::Software,
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
    let bridge = Arc::new(
        passgate_bridge::Bridge::new(
            Box::new(passgate_bridge::InProcess::shared(Arc::clone(
                &authenticator,
            ))),
            Box::new(PromptUi::new(Arc::clone(&prompt)).with_presence_grants(grants)),
        )
        .with_pin_token_ttl(args.prompt.pin_token_ttl())
        .with_power_cycle(power_cycle(&authenticator), UNLOCK_DELAY)
        // With two or more accounts on a site, sign-in chooses first, then verifies once.
        .with_account_record(AccountRecord::new(accounts_path(&state_dir))),
    );
    let app = app_router(
        passgate_app_api::AppDevice::in_process(Arc::clone(&authenticator)),
        &authenticator_dir.join("app"),
        Some(&prompt),
    )?;
    let mut router = passgate_bridge::channel::ChannelRouter::webauthn(bridge);
    passgate_app_api::channel::register(&mut router, app)?;
    let mut bridge_origins = vec![origin.clone()];
    bridge_origins.extend(args.bridge_allow_origins.iter().cloned());
    let mut bridge_config = LocalBridgeConfig::new(bridge_origins);
    // Pages paired before a restart stay paired (`passgate bridge unpair` revokes).
    bridge_config.pairings = Some(pairings_path(&state_dir));
    let local_bridge = LocalBridge::new(Arc::new(router), bridge_config)?;
    // A code pairs one page; the next one is shown where the first was.
    local_bridge.on_new_code(|code| {
        use std::io::Write;
        println!("      next pairing code: {code}");
        let _ = std::io::stdout().flush();
    });
    // The backend API token (`/api/verify/assertion`, `/api/soter/*`): a fresh one each run,
    // shown only in this terminal. The app-APIs page plays the app's backend with it.
    let api_token = demo_api_token()?;

    let mut config = passgate_relying_party::RpConfig {
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
        let bridge_listener = tokio::net::TcpListener::bind(args.bridge_listen)
            .await
            .with_context(|| format!("binding {} (--bridge-listen)", args.bridge_listen))?;
        let bridge_addr = bridge_listener.local_addr()?;
        // The pairing dialog pre-fills the address actually bound (port 0 picks one).
        config.local_bridge = Some(format!("http://{bridge_addr}"));
        let state = passgate_relying_party::build_state(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let local = listener.local_addr()?;
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
        println!(
            "    A paired page stays paired when passgate restarts; revoke with `passgate bridge unpair"
        );
        println!("    --all --state-dir {}`.", state_dir.display());
        println!(
            "    With several accounts on a site, sign-in shows the choice first (the accounts"
        );
        println!(
            "    passgate has seen there); clear that list with `passgate bridge forget --all`."
        );
        println!(
            "    User verification: {verification}; the PIN is typed in the {prompt_name} prompt,"
        );
        println!("    never in the page. That one dialog names the request (and shows the text of");
        println!("    an action to approve): typing the PIN there approves it.");
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
