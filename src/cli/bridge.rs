//! `passgate bridge …`: the WebAuthn client for browsers: the native-messaging host, its
//! installer, and the local HTTP bridge for pages with the webview shim.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use passgate_authenticator::transport::stream::Address;
use passgate_bridge::accounts::{AccountRecord, Forget, accounts_path};
use passgate_bridge::local_http::{
    Config as LocalBridgeConfig, LocalBridge, PairingStore, Revoke, normalize_origin, pairings_path,
};

use super::app::app_router;
use super::prompt::{PinPromptArgs, PinPromptKind, bridge_ui, trusted_prompt};
use super::{authenticator_client, state_dir_or_default};

#[derive(Subcommand)]
pub enum BridgeCommand {
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
    /// Revoke pages' pairings with the local bridge (`passgate demo`'s or `passgate bridge
    /// local-http`'s): those pages must pair again with a new code. A running bridge sees it
    /// before its next answer.
    Unpair(UnpairArgs),
    /// Clear the record of the accounts the bridge has seen on sites (the names its account
    /// choice shows before the verification): for one RP ID, or all. Passkeys are untouched;
    /// a verified sign-in or a new passkey records its account again.
    Forget(ForgetArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["rp", "all"])))]
pub struct ForgetArgs {
    /// Forget the accounts of this RP ID, e.g. example.com or localhost.
    #[arg(long)]
    rp: Option<String>,
    /// Forget every account.
    #[arg(long)]
    all: bool,
    /// The state directory the bridge keeps its record in (`passgate demo --state-dir`,
    /// `passgate bridge local-http --state-dir`; default: the state directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["origin", "all"])))]
pub struct UnpairArgs {
    /// Revoke every pairing of this origin, e.g. http://localhost:8080.
    #[arg(long)]
    origin: Option<String>,
    /// Revoke every pairing.
    #[arg(long)]
    all: bool,
    /// The state directory the bridge keeps its pairings in (`passgate demo --state-dir`,
    /// `passgate bridge local-http --state-dir`; default: the state directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct NativeHostArgs {
    /// The authenticator (a `passgate authenticator serve`): `unix:PATH` (default:
    /// unix:STATE/authenticator.sock) or `tcp://HOST:PORT`.
    #[arg(long)]
    authenticator: Option<String>,
    /// Where the PIN is typed (pinentry by default: the browser starts this host with no
    /// terminal).
    #[arg(long, value_enum, default_value_t = PinPromptKind::Pinentry)]
    pin_prompt: PinPromptKind,
    #[command(flatten)]
    prompt: PinPromptArgs,
    /// The state directory whose `bridge/accounts.json` records the accounts seen per site
    /// (default: the directory of a `unix:` authenticator socket, or the state directory when
    /// no authenticator is named; none for a `tcp://` authenticator).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// What the browser passes: the calling extension's origin (informational).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    browser_args: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum BrowserArg {
    /// Chromium (~/.config/chromium).
    Chromium,
    /// Google Chrome (~/.config/google-chrome).
    Chrome,
}

#[derive(clap::Args)]
pub struct BridgeInstallArgs {
    /// Which browser's NativeMessagingHosts directory to write to.
    #[arg(long, value_enum, default_value_t = BrowserArg::Chromium)]
    browser: BrowserArg,
    /// The extension allowed to connect (32 letters a to p, shown on chrome://extensions).
    #[arg(long)]
    extension_id: String,
    /// The authenticator the host talks to: `unix:PATH` (default:
    /// unix:STATE/authenticator.sock) or `tcp://HOST:PORT`.
    #[arg(long)]
    authenticator: Option<String>,
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
pub struct LocalHttpArgs {
    /// Where to listen (a loopback address; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8781")]
    listen: std::net::SocketAddr,
    /// An origin whose pages may use the bridge, e.g. http://localhost:8080 (repeat for more).
    #[arg(long = "allow-origin", required = true)]
    allow_origins: Vec<String>,
    /// The authenticator (a `passgate authenticator serve`): `unix:PATH` (default:
    /// unix:STATE/authenticator.sock) or `tcp://HOST:PORT`.
    #[arg(long)]
    authenticator: Option<String>,
    /// Where the PIN is typed (by default this terminal, pinentry without one).
    #[arg(long, value_enum, default_value_t = PinPromptKind::Auto)]
    pin_prompt: PinPromptKind,
    #[command(flatten)]
    prompt: PinPromptArgs,
    /// The app APIs' files (vaults, proof and SOTER keys) live in DIR/app, as for
    /// `passgate app --state-dir DIR`, pages' pairings in DIR/local-bridge and the accounts
    /// seen per site in DIR/bridge (default: the state directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// `passgate bridge unpair`: revokes stored pairings and says which.
fn unpair(args: &UnpairArgs) -> Result<()> {
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
    let store = PairingStore::new(pairings_path(&state_dir));
    let which = match &args.origin {
        Some(origin) => Revoke::Origin(normalize_origin(origin)?),
        None => Revoke::All,
    };
    let revoked = store.revoke(&which)?;
    if revoked.is_empty() {
        println!("no pairing to revoke in {}", store.path().display());
    }
    for pairing in &revoked {
        println!("revoked pairing {} of {}", pairing.id, pairing.origin);
    }
    Ok(())
}

/// Where the native host keeps the account record for `authenticator` (see its call).
fn native_record_dir(state_dir: Option<&PathBuf>, authenticator: Option<&str>) -> Option<PathBuf> {
    match (state_dir, authenticator) {
        (Some(dir), _) => Some(dir.clone()),
        (None, None) => state_dir_or_default(None).ok(),
        (None, Some(target)) => match Address::parse(target) {
            Ok(Address::Unix(socket)) => socket
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(std::path::Path::to_path_buf),
            _ => None,
        },
    }
}

/// `passgate bridge forget`: clears the account record and says how much.
fn forget(args: &ForgetArgs) -> Result<()> {
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
    let record = AccountRecord::new(accounts_path(&state_dir));
    let which = match &args.rp {
        Some(rp_id) => Forget::Rp(rp_id.clone()),
        None => Forget::All,
    };
    let forgotten = record.forget(&which)?;
    match &which {
        Forget::Rp(rp_id) => println!(
            "forgot {forgotten} account(s) of {rp_id} in {}",
            record.path().display()
        ),
        Forget::All => println!(
            "forgot {forgotten} account(s) in {}",
            record.path().display()
        ),
    }
    Ok(())
}

/// Runs `passgate bridge …`.
pub fn main(command: BridgeCommand) -> Result<()> {
    use passgate_bridge::native;
    match command {
        BridgeCommand::Unpair(args) => unpair(&args),
        BridgeCommand::Forget(args) => forget(&args),
        BridgeCommand::NativeHost(args) => {
            let kind = args.pin_prompt;
            // Without a usable prompt the host still answers (ceremonies needing user
            // verification then fail with a clear error); the reason goes to the browser's log.
            let prompt = trusted_prompt(kind, &args.prompt).unwrap_or_else(|e| {
                tracing::error!(error = %e, "no trusted PIN prompt: user verification by PIN is unavailable");
                None
            });
            tracing::info!(caller = ?args.browser_args, authenticator = ?args.authenticator, prompt = prompt.as_ref().map(|p| p.name()), "native-messaging host started");
            let mut bridge = passgate_bridge::Bridge::new(
                Box::new(authenticator_client(args.authenticator.as_deref())?),
                bridge_ui(prompt.as_ref()),
            )
            .with_pin_token_ttl(args.prompt.pin_token_ttl());
            // The record lives with the authenticator's state: `--state-dir`, else the
            // directory of a `unix:` socket (STATE/authenticator.sock), else the default when
            // no authenticator is named. A TCP authenticator without `--state-dir` (a test
            // rig) gets none: its accounts are not this user's. Without a record the host
            // chooses accounts after the verification, as before.
            match native_record_dir(args.state_dir.as_ref(), args.authenticator.as_deref()) {
                Some(dir) => {
                    bridge = bridge.with_account_record(AccountRecord::new(accounts_path(&dir)));
                }
                None => {
                    tracing::info!("no state directory for this authenticator: no account record");
                }
            }
            let bridge = Arc::new(bridge);
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
                authenticator: match args.authenticator {
                    Some(target) => target,
                    None => {
                        Address::default_in(&passgate_authenticator::setup::default_state_dir()?)
                            .to_string()
                    }
                },
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
            let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
            let bridge = Arc::new(
                passgate_bridge::Bridge::new(
                    Box::new(authenticator_client(args.authenticator.as_deref())?),
                    bridge_ui(prompt.as_ref()),
                )
                .with_pin_token_ttl(args.prompt.pin_token_ttl())
                .with_account_record(AccountRecord::new(accounts_path(&state_dir))),
            );
            // The app APIs on the same authenticator, over a connection of their own.
            let app = app_router(
                passgate_app_api::AppDevice::remote(Box::new(authenticator_client(
                    args.authenticator.as_deref(),
                )?)),
                &state_dir.join("app"),
                prompt.as_ref(),
            )?;
            let mut router = passgate_bridge::channel::ChannelRouter::webauthn(bridge);
            passgate_app_api::channel::register(&mut router, app)?;
            let mut config = LocalBridgeConfig::new(args.allow_origins);
            // Pages paired before a restart stay paired (`passgate bridge unpair` revokes).
            config.pairings = Some(pairings_path(&state_dir));
            let local = LocalBridge::new(Arc::new(router), config)?;
            // A code pairs one page; the next one is shown where the first was.
            local.on_new_code(|code| {
                use std::io::Write;
                println!("next pairing code: {code}");
                let _ = std::io::stdout().flush();
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_host_keeps_its_record_with_the_authenticator_state() {
        let given = PathBuf::from("/s");
        assert_eq!(
            native_record_dir(Some(&given), Some("tcp://127.0.0.1:1")),
            Some(given.clone())
        );
        assert_eq!(
            native_record_dir(
                None,
                Some("unix:/home/u/.local/state/passgate/authenticator.sock")
            ),
            Some(PathBuf::from("/home/u/.local/state/passgate"))
        );
        assert_eq!(native_record_dir(None, Some("tcp://127.0.0.1:1")), None);
        assert_eq!(
            native_record_dir(None, Some("unix:authenticator.sock")),
            None
        );
    }
}
