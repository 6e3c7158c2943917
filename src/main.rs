//! `passgate`: one binary for the authenticator, the relying party and the tools around them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

mod app_cli;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::key_store::KeyStore;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::UserVerifier;
use passgate_authenticator::ctap::{AttestationFormat, AuthenticatorConfig};
use passgate_authenticator::presence::{AutoPresence, TerminalPresence};
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};

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
    /// The web demo: the relying party with the demo pages on http://localhost:8080, an SQLite
    /// file in the state directory; open the printed URL in a browser.
    Demo(DemoArgs),
    /// The WebAuthn client for browsers: the native-messaging host a browser extension talks
    /// to, and its installer.
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
    /// Where the demo's database and receipt key live (default: the state directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The demo pages (default: web-demo/site in the source tree this binary was built from).
    #[arg(long)]
    static_dir: Option<PathBuf>,
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

fn demo(args: DemoArgs) -> Result<()> {
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    if args.listen.port() == 0 {
        bail!("passgate demo needs a fixed port: the allowed origin is http://localhost:PORT");
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
    }
    let static_dir = args
        .static_dir
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/web-demo/site")));
    if !static_dir.join("index.html").is_file() {
        bail!(
            "the demo pages are not in {} (pass --static-dir DIR)",
            static_dir.display()
        );
    }
    let config = passgate_relying_party::RpConfig {
        listen: args.listen,
        database: format!("sqlite://{}", state_dir.join("demo-rp.sqlite3").display()),
        rp_id: "localhost".into(),
        rp_name: "passgate demo".into(),
        origins: vec![format!("http://localhost:{}", args.listen.port())],
        receipt_key: Some(state_dir.join("demo-receipt-key.p8")),
        static_dir: Some(static_dir),
        ..passgate_relying_party::RpConfig::default()
    };
    run_rp(config, None, |local| {
        let url = format!("http://localhost:{}", local.port());
        println!();
        println!("passgate demo is running: open {url} in a browser on this machine.");
        println!("  1. Create an account: your browser asks your authenticator (platform passkey,");
        println!("     phone, or security key) to make a passkey; user verification is required.");
        println!(
            "  2. Sign out, then sign in with the passkey (or pick it from the username field)."
        );
        println!(
            "  3. {url}/account.html: rename or delete passkeys; deleting asks you to confirm."
        );
        println!("  4. {url}/approve.html: approve a payment and get a receipt anyone can verify.");
        println!("Stop with Ctrl-C. Data: {}", state_dir.display());
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
        let origins = config.origins.join(", ");
        let rp_id = config.rp_id.clone();
        let state = passgate_relying_party::build_state(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let local = listener.local_addr()?;
        println!("listening on http://{local}");
        ready(local);
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!(%rp_id, %origins, "relying party serving on http://{local}");
        passgate_relying_party::server::serve(
            listener,
            state,
            passgate_relying_party::server::shutdown_signal(),
        )
        .await?;
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
    let verifier = match args.user_verifier {
        VerifierKind::None => passgate_authenticator::presence::no_verification_status(),
        VerifierKind::Fprintd => {
            let name = fprint_user(args.fprint_user.clone());
            let presence: Box<dyn UserVerifier> =
                Box::new(TerminalPresence::new(Duration::from_secs(1)));
            fprintd_verifier(&name, Duration::from_secs(1), presence)?.status()
        }
    };
    if args.json {
        let da_json = da.map_or("null".to_owned(), |(failed, max, recovery, lockout)| {
            format!(
                "{{\"failedTries\":{failed},\"maxTries\":{max},\"recoveryTime\":{recovery},\"lockoutRecovery\":{lockout},\"lockedOut\":{}}}",
                failed >= max
            )
        });
        println!(
            "{{\"keyStore\":{{\"backend\":{},\"detail\":{},\"available\":{},\"error\":{},\"dictionaryAttack\":{}}},\"userVerification\":{{\"isAvailable\":{},\"biometryType\":{},\"enrolled\":{},\"errorCode\":{}}}}}",
            json_string(backend),
            json_string(&detail),
            error.is_none(),
            error.as_deref().map_or("null".to_owned(), json_string),
            da_json,
            verifier.available,
            json_string(&format!("{:?}", verifier.biometry)),
            verifier.enrolled,
            verifier
                .error
                .map_or("null".to_owned(), |e| json_string(&format!("{e:?}"))),
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
            "user verification: {} (biometry {:?}, enrolled {}{})",
            if verifier.available {
                "available"
            } else {
                "not available"
            },
            verifier.biometry,
            verifier.enrolled,
            verifier
                .error
                .map(|e| format!(", {e:?}"))
                .unwrap_or_default()
        );
    }
    Ok(if error.is_none() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[derive(clap::Args)]
struct ConformanceArgs {
    /// The authenticator, `tcp://HOST:PORT`.
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
    /// Serve the authenticator over CTAPHID (64-byte HID reports carried as-is over TCP).
    Serve(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum PresenceMode {
    /// Ask on this terminal: Enter approves, `n` denies.
    Terminal,
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

#[derive(clap::Args)]
struct ServeArgs {
    /// Where to listen, `tcp://HOST:PORT` (port 0 picks a free port).
    #[arg(long, default_value = "tcp://127.0.0.1:8765")]
    listen: String,
    /// State directory (device key, credentials). Default: $XDG_STATE_HOME/passgate or
    /// ~/.local/state/passgate.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// How user presence is collected.
    #[arg(long, value_enum, default_value_t = PresenceMode::Terminal)]
    presence: PresenceMode,
    /// Attestation format when the client does not ask for one.
    #[arg(long, value_enum, default_value_t = AttestationArg::None)]
    attestation: AttestationArg,
    /// How many credentials the store holds at most.
    #[arg(long, default_value_t = 250_000)]
    capacity: usize,
    /// Seconds to wait for the person at a presence prompt.
    #[arg(long, default_value_t = 30)]
    presence_timeout: u64,
    #[command(flatten)]
    key_store: KeyStoreArgs,
    /// How users are verified: `none` (presence only) or `fprintd` (fingerprint through the
    /// fprintd daemon; build with `--features fprintd`).
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
    bail!("this passgate was built without fprintd support: rebuild with `--features fprintd`")
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

fn serve(args: ServeArgs) -> Result<()> {
    let addr = parse_tcp_listen(&args.listen)?;
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };
    let device_key = DeviceKey::load_or_create(&state_dir)
        .with_context(|| format!("opening the device key in {}", state_dir.display()))?;
    let credentials = FileCredentialStore::open(&state_dir, &device_key, args.capacity)
        .with_context(|| format!("opening the credential store in {}", state_dir.display()))?;
    let key_store_state = FileStateStore::open(&state_dir, &device_key)
        .with_context(|| format!("opening the state store in {}", state_dir.display()))?;
    let key_store = open_key_store(
        &args.key_store,
        &device_key,
        key_store_state,
        args.user_verifier == VerifierKind::Fprintd,
    )?;
    tracing::info!(backend = key_store.info().backend, detail = %key_store.info().detail, "key store ready");
    let (user, reset_window): (Box<dyn UserVerifier>, _) = match args.presence {
        PresenceMode::Auto => (Box::new(AutoPresence::new()), None),
        PresenceMode::Terminal => (
            Box::new(TerminalPresence::new(Duration::from_secs(
                args.presence_timeout,
            ))),
            Some(Duration::from_secs(10)),
        ),
    };
    let state = FileStateStore::open(&state_dir, &device_key)
        .with_context(|| format!("opening the state store in {}", state_dir.display()))?;
    let user = match args.user_verifier {
        VerifierKind::None => user,
        VerifierKind::Fprintd => {
            let name = fprint_user(args.fprint_user.clone());
            fprintd_verifier(&name, Duration::from_secs(args.presence_timeout), user)?
        }
    };
    let env = Env {
        key_store,
        credentials: Box::new(credentials),
        state: Box::new(state),
        user,
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    let config = AuthenticatorConfig {
        default_attestation: match args.attestation {
            AttestationArg::None => AttestationFormat::None,
            AttestationArg::Packed => AttestationFormat::PackedSelf,
        },
        reset_window,
        max_uv_attempts: args.max_attempts,
        ..AuthenticatorConfig::default()
    };
    let authenticator = Authenticator::new(env, config);
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("listening on tcp://{local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(state_dir = %state_dir.display(), "authenticator serving CTAPHID on tcp://{local}");
    passgate_authenticator::transport::tcp::serve(listener, authenticator)?;
    Ok(())
}

#[derive(Subcommand)]
enum BridgeCommand {
    /// Chrome native messaging on stdin/stdout (the browser starts it; see
    /// `passgate bridge install`). Each request carries the caller's origin, filled in by the
    /// extension from the sender's tab.
    NativeHost(NativeHostArgs),
    /// Register the native-messaging host (`dev.passgate.bridge`) with Chromium or Chrome for
    /// this user.
    Install(BridgeInstallArgs),
}

#[derive(clap::Args)]
struct NativeHostArgs {
    /// The authenticator, `tcp://HOST:PORT` (a `passgate authenticator serve`).
    #[arg(long, default_value = "tcp://127.0.0.1:8765")]
    authenticator: String,
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
}

fn bridge(command: BridgeCommand) -> Result<()> {
    use passgate_bridge::native;
    match command {
        BridgeCommand::NativeHost(args) => {
            tracing::info!(caller = ?args.browser_args, authenticator = %args.authenticator, "native-messaging host started");
            let bridge = std::sync::Arc::new(passgate_bridge::Bridge::new(
                Box::new(passgate_bridge::TcpCtapHid::new(&args.authenticator)),
                Box::new(passgate_bridge::NoUserInterface),
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
            let path = native::install(&native::Install {
                manifest_dir,
                executable: std::env::current_exe().context("finding this executable")?,
                extension_id: args.extension_id,
                authenticator: args.authenticator,
            })?;
            println!(
                "installed the native-messaging host manifest {}",
                path.display()
            );
            Ok(())
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
