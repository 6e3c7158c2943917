//! `passgate rp`: the relying-party server, configured from a file, `PASSGATE_RP_*`
//! variables and flags.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `passgate rp`: settings come from `--config FILE`, then `PASSGATE_RP_*` variables, then these
/// flags, so one line starts a test server.
#[derive(clap::Args)]
pub struct RpArgs {
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
    /// A file holding the bearer tokens for `POST /api/verify/assertion`, one a line (keep it
    /// 0600). `PASSGATE_API_TOKEN` in the environment adds one more. Replaces the configured
    /// list.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// No longer accepted: a token on the command line is readable by every local user.
    #[arg(long = "api-token", hide = true)]
    api_token_on_command_line: Option<String>,
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

/// The API tokens of `--api-token-file` and `PASSGATE_API_TOKEN`; `--api-token` is refused.
fn api_tokens(args: &RpArgs) -> Result<Vec<String>> {
    if args.api_token_on_command_line.is_some() {
        anyhow::bail!(
            "--api-token is no longer accepted: a token on the command line is readable by every local user in /proc/PID/cmdline; \
             put it in a file (one token a line, chmod 600) and pass --api-token-file FILE, or set PASSGATE_API_TOKEN"
        );
    }
    let mut tokens = Vec::new();
    if let Some(path) = &args.api_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --api-token-file {}", path.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
        if tokens.is_empty() {
            anyhow::bail!("--api-token-file {} holds no token", path.display());
        }
    }
    if let Some(token) = std::env::var("PASSGATE_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        tokens.push(token.trim().to_owned());
    }
    Ok(tokens)
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
    let api_tokens = api_tokens(args)?;
    if !api_tokens.is_empty() {
        config.api_tokens = api_tokens;
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

/// Runs `passgate rp`.
pub fn main(args: &RpArgs) -> Result<()> {
    run_rp(rp_config(args)?, args.workers, |_| {})
}

/// Serves the relying party with `config`; `ready` runs once the socket is bound.
fn run_rp(
    config: passgate_relying_party::RpConfig,
    workers: Option<usize>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    // One worker: a current-thread runtime, so the accept loop and the connections share the
    // one thread (a multi-thread runtime with one worker would still park the accept loop on
    // this thread and hand every connection to the worker, with the cross-thread scheduler's
    // atomics on every wake-up).
    let one_thread = workers == Some(1);
    let mut runtime = if one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all();
    if let (false, Some(workers)) = (one_thread, workers) {
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
