//! `passgate conformance`: the CTAP 2.1 conformance suite (`passgate-ctap-tests`) against a
//! CTAPHID endpoint.

use anyhow::Result;

#[derive(clap::Args)]
pub struct ConformanceArgs {
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

/// Runs the suite; fails when a check fails.
pub fn main(args: ConformanceArgs) -> Result<std::process::ExitCode> {
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
