//! `passgate authenticator serve`: the CTAP 2.1 authenticator on its state directory, served
//! over CTAPHID on TCP.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use passgate_authenticator::ctap::AttestationFormat;
use passgate_authenticator::setup::{AuthenticatorParts, build_authenticator};

use super::{
    KeyStoreArgs, PresenceMode, UserArgs, VerifierArgs, VerifierKind, state_dir_or_default,
    user_verifier,
};

#[derive(Subcommand)]
pub enum AuthenticatorCommand {
    /// Serve the authenticator over CTAPHID (64-byte HID reports carried as-is over TCP).
    Serve(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum AttestationArg {
    /// No attestation statement.
    None,
    /// Packed self-attestation (signed by the credential key, no certificate).
    Packed,
}

#[derive(clap::Args)]
pub struct ServeArgs {
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
    /// The pinentry program for `--presence pinentry`.
    #[arg(long)]
    pinentry: Option<PathBuf>,
    #[command(flatten)]
    key_store: KeyStoreArgs,
    #[command(flatten)]
    verifier: VerifierArgs,
}

fn parse_tcp_listen(listen: &str) -> Result<&str> {
    match listen.strip_prefix("tcp://") {
        Some(addr) if !addr.is_empty() => Ok(addr),
        _ => bail!("--listen must look like tcp://127.0.0.1:8765, got {listen:?}"),
    }
}

/// Runs `passgate authenticator …`.
pub fn main(command: AuthenticatorCommand) -> Result<()> {
    match command {
        AuthenticatorCommand::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let addr = parse_tcp_listen(&args.listen)?;
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
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
        key_store: &args.key_store.choice(),
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
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("listening on tcp://{local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(state_dir = %state_dir.display(), "authenticator serving CTAPHID on tcp://{local}");
    passgate_authenticator::transport::tcp::serve(listener, authenticator)?;
    Ok(())
}
