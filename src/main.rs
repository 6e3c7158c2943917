//! `passgate`: one binary for the authenticator, the relying party and the tools around them.
//!
//! This file is the command line's top level only; each subcommand lives in [`cli`], parses
//! its flags there and calls the crate that does the work.

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
        command: cli::authenticator::AuthenticatorCommand,
    },
    /// Run the CTAP 2.1 conformance suite against a CTAPHID endpoint.
    Conformance(cli::conformance::ConformanceArgs),
    /// Show the key store backend and user-verification status.
    Status(cli::status::StatusArgs),
    /// The relying-party server: passkey ceremonies, sessions, signed actions with receipts and
    /// server-side assertion verification.
    Rp(cli::rp::RpArgs),
    /// The whole system in one command: the relying party with the demo pages on
    /// http://localhost:8080 (SQLite in the state directory), passgate's authenticator, and the
    /// local bridge the pages reach it through; open the printed URL in a browser.
    Demo(cli::demo::DemoArgs),
    /// The WebAuthn client for browsers: the native-messaging host a browser extension talks
    /// to, its installer, and the local HTTP bridge for pages with the webview shim.
    Bridge {
        #[command(subcommand)]
        command: cli::bridge::BridgeCommand,
    },
    /// Make passgate this desktop's security key: a systemd user unit serving it on /dev/uhid at
    /// login (browsers, OpenSSH and libfido2 see a FIDO HID device), and the udev rules it needs.
    Install(cli::install::InstallArgs),
    /// Remove what `passgate install` installed.
    Uninstall(cli::install::UninstallArgs),
    /// App-facing APIs: biometric status/authenticate with a proof, an identity vault, and
    /// SOTER-compatible challenge signing (`app serve`: the JSON host channel).
    App {
        #[command(subcommand)]
        command: cli::app::AppCommand,
    },
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
            .with_writer(cli::log_sink::LogSink)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(cli::log_sink::LogSink)
            .with_env_filter(filter)
            .init();
    }
    // Servers cap their own connections; the process must not run out of descriptors first.
    match passgate_authenticator::transport::limits::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let success = |()| std::process::ExitCode::SUCCESS;
    match Cli::parse().command {
        Command::Authenticator { command } => cli::authenticator::main(command).map(success),
        Command::Conformance(args) => cli::conformance::main(args),
        Command::Install(args) => cli::install::install(&args).map(success),
        Command::Uninstall(args) => cli::install::uninstall(&args).map(success),
        Command::Status(args) => cli::status::main(args),
        Command::Rp(args) => cli::rp::main(&args).map(success),
        Command::Demo(args) => cli::demo::main(args).map(success),
        Command::Bridge { command } => cli::bridge::main(command).map(success),
        Command::App { command } => cli::app::main(command),
    }
}
