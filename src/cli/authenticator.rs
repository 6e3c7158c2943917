//! `passgate authenticator serve`: the CTAP 2.1 authenticator on its state directory, served
//! over CTAPHID on its Unix socket (same user only) or loopback TCP, or as a HID security key on
//! /dev/uhid.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use passgate_authenticator::ctap::AttestationFormat;
use passgate_authenticator::setup::{AuthenticatorParts, build_authenticator};
use passgate_authenticator::transport::secret::{ConnectionSecret, SECRET_FILE};
use passgate_authenticator::transport::stream::{Address, Listener};
use passgate_authenticator::transport::tcp::ServeOptions;

use super::{
    KeyStoreArgs, PresenceMode, UserArgs, VerifierArgs, state_dir_or_default, user_verifier,
};

#[derive(Subcommand)]
pub enum AuthenticatorCommand {
    /// Serve the authenticator over CTAPHID: 64-byte HID reports carried as-is over a Unix
    /// socket or loopback TCP, or as a HID security key on /dev/uhid (`--transport uhid`).
    Serve(ServeArgs),
    /// The TPM attestation key (`--key-store tpm`): creates it the first time and prints, as
    /// JSON, what a CA needs to certify it (its P-256 public key, the TPM's manufacturer,
    /// model and version); with `--install-chain`, installs the certificate chain the CA
    /// issued, after which `serve --attestation tpm` answers in WebAuthn's `tpm` format. For
    /// a privacy CA that checks the AK is in the TPM of a vendor-certified endorsement key:
    /// `--activation-request` writes what it needs, `--activate` takes its answer (credential
    /// activation), opens the chain with the activated secret and installs it.
    AttestationKey(AttestationKeyArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum TransportArg {
    /// CTAPHID reports over the socket of `--listen` (this user's Unix socket by default, or
    /// loopback TCP): passgate's own bridge, app APIs and test tools.
    #[value(alias = "tcp")]
    Socket,
    /// A HID security key on /dev/uhid that every FIDO client on this machine sees.
    Uhid,
}

#[derive(Clone, Copy, ValueEnum)]
enum AttestationArg {
    /// No attestation statement.
    None,
    /// Packed self-attestation (signed by the credential key, no certificate).
    Packed,
    /// WebAuthn's `tpm` format (`--key-store tpm` with an attestation key and its installed
    /// certificate chain); packed self-attestation where the key store cannot attest.
    Tpm,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// How clients reach the authenticator.
    #[arg(long, value_enum, default_value_t = TransportArg::Socket)]
    transport: TransportArg,
    /// Where to listen with `--transport socket`: `unix:PATH` (default:
    /// unix:STATE/authenticator.sock, answering this user only) or `tcp://HOST:PORT` on loopback
    /// (port 0 picks a free port; for CTAP test tools: with a real presence prompt, clients must
    /// send the secret written to STATE/authenticator.tcp-secret).
    #[arg(long)]
    listen: Option<String>,
    /// State directory (device key, credentials). Default: $XDG_STATE_HOME/passgate or
    /// ~/.local/state/passgate.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// How user presence is collected. Default: `auto-detect` with `--transport uhid` (a
    /// fingerprint, else a GUI pinentry window, else the terminal), `terminal` otherwise.
    #[arg(long, value_enum)]
    presence: Option<PresenceMode>,
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
    /// The pinentry program for `--presence pinentry` (and `auto-detect` in a graphical
    /// session).
    #[arg(long)]
    pinentry: Option<PathBuf>,
    #[command(flatten)]
    key_store: KeyStoreArgs,
    #[command(flatten)]
    verifier: VerifierArgs,
}

#[derive(clap::Args)]
pub struct AttestationKeyArgs {
    /// The authenticator's state directory (default: $PASSGATE_STATE_DIR, else
    /// ~/.local/state/passgate).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The TPM, as a TCTI string (default: $TPM2TOOLS_TCTI, $TSS2_TCTI, then
    /// device:/dev/tpmrm0).
    #[arg(long)]
    tcti: Option<String>,
    /// Installs the chain the CA issued: DER certificate files, the attestation key's first,
    /// then its issuers (`--install-chain ak.der --install-chain ca.der`).
    #[arg(long)]
    install_chain: Vec<PathBuf>,
    /// Writes the credential-activation request for a privacy CA to this file, as JSON
    /// (base64url): the endorsement key's public area (`ek_public`, a TPMT_PUBLIC) and its
    /// certificate from the TPM's NV (`ek_certificate`, DER, or null), the attestation key's
    /// public area (`ak_public`) and name (`ak_name`), and its public key and TPM identity.
    #[arg(long, value_name = "FILE")]
    activation_request: Option<PathBuf>,
    /// Activates the CA's answer in this file (JSON, base64url: `credential_blob` and
    /// `encrypted_secret` from TPM2_MakeCredential to the endorsement key and the attestation
    /// key's name, and `sealed_chain`, the certificate chain AES-256-GCM-sealed under the
    /// credential) and installs the chain. Fails, installing nothing, unless this TPM's keys
    /// were the ones named.
    #[arg(long, value_name = "FILE", conflicts_with = "install_chain")]
    activate: Option<PathBuf>,
}

/// Runs `passgate authenticator …`.
pub fn main(command: AuthenticatorCommand) -> Result<()> {
    match command {
        AuthenticatorCommand::Serve(args) => serve(args),
        AuthenticatorCommand::AttestationKey(args) => attestation_key(args),
    }
}

#[cfg(feature = "tpm")]
fn attestation_key(args: AttestationKeyArgs) -> Result<()> {
    use passgate_authenticator::api::key_store::KeyStore;
    use passgate_authenticator::setup::{open_tpm_key_store, resolve_tcti};
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
    let tcti = resolve_tcti(args.tcti.as_deref());
    let mut store = open_tpm_key_store(&state_dir, &tcti)?;
    let key = store.attestation_key()?;
    if !args.install_chain.is_empty() {
        let chain = args
            .install_chain
            .iter()
            .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
            .collect::<Result<Vec<_>>>()?;
        store.install_attestation_chain(chain)?;
    }
    if let Some(path) = &args.activate {
        let challenge = read_activation_challenge(path)?;
        store.activate_attestation_chain(&challenge)?;
    }
    if let Some(path) = &args.activation_request {
        write_activation_request(&mut store, path)?;
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    println!(
        "{}",
        serde_json::json!({
            "public_key": hex(&key.public_key.to_sec1_uncompressed()),
            "tpm_manufacturer": key.tpm_manufacturer,
            "tpm_model": key.tpm_model,
            "tpm_version": key.tpm_version,
            "chain_installed": store.can_attest(),
        })
    );
    Ok(())
}

/// Writes [`TpmKeyStore::activation_request`] as JSON to `path`.
#[cfg(feature = "tpm")]
fn write_activation_request(
    store: &mut passgate_authenticator::tpm::TpmKeyStore,
    path: &std::path::Path,
) -> Result<()> {
    use passgate_bridge::b64;
    let request = store.activation_request()?;
    let json = serde_json::json!({
        "ek_public": b64::encode(&request.ek_public),
        "ek_certificate": request.ek_certificate.as_deref().map(b64::encode),
        "ak_public": b64::encode(&request.ak_public),
        "ak_name": b64::encode(&passgate_authenticator::tpm::attestation_key_name(&request.ak_public)?),
        "public_key": b64::encode(&request.attestation_key.public_key.to_sec1_uncompressed()),
        "tpm_manufacturer": request.attestation_key.tpm_manufacturer,
        "tpm_model": request.attestation_key.tpm_model,
        "tpm_version": request.attestation_key.tpm_version,
    });
    std::fs::write(path, format!("{json:#}\n"))
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a CA's answer to an activation request (JSON, base64url members).
#[cfg(feature = "tpm")]
fn read_activation_challenge(
    path: &std::path::Path,
) -> Result<passgate_authenticator::tpm::ActivationChallenge> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let member = |name: &str| -> Result<Vec<u8>> {
        let text = json
            .get(name)
            .and_then(serde_json::Value::as_str)
            .with_context(|| format!("{}: no string member {name:?}", path.display()))?;
        passgate_bridge::b64::decode(text)
            .map_err(|e| anyhow::anyhow!("{}: {name:?} is not base64url: {e}", path.display()))
    };
    Ok(passgate_authenticator::tpm::ActivationChallenge {
        credential_blob: member("credential_blob")?,
        encrypted_secret: member("encrypted_secret")?,
        sealed_chain: member("sealed_chain")?,
    })
}

#[cfg(not(feature = "tpm"))]
fn attestation_key(_: AttestationKeyArgs) -> Result<()> {
    anyhow::bail!("this passgate was built without TPM support: rebuild with `--features tpm`")
}

fn serve(args: ServeArgs) -> Result<()> {
    let state_dir = state_dir_or_default(args.state_dir.as_ref())?;
    let address = match &args.listen {
        Some(listen) => Address::parse(listen).context("--listen")?,
        None => Address::default_in(&state_dir),
    };
    let presence = args.presence.unwrap_or(match args.transport {
        TransportArg::Uhid => PresenceMode::AutoDetect,
        TransportArg::Socket => PresenceMode::Terminal,
    });
    let reset_window = match presence {
        PresenceMode::Auto => None,
        PresenceMode::Terminal | PresenceMode::Pinentry | PresenceMode::AutoDetect => {
            Some(Duration::from_secs(10))
        }
    };
    let chosen = user_verifier(&UserArgs {
        presence,
        presence_timeout: Duration::from_secs(args.presence_timeout),
        pinentry: args.pinentry.as_deref(),
        verifier: &args.verifier,
    })?;
    let mut authenticator = build_authenticator(AuthenticatorParts {
        state_dir: &state_dir,
        key_store: &args.key_store.choice(),
        user: chosen.user,
        biometric_release: chosen.biometric_release,
        attestation: match args.attestation {
            AttestationArg::None => AttestationFormat::None,
            AttestationArg::Packed => AttestationFormat::PackedSelf,
            AttestationArg::Tpm => AttestationFormat::Tpm,
        },
        capacity: args.capacity,
        max_uv_attempts: args.verifier.max_attempts,
        reset_window,
    })?;
    use std::io::Write;
    if args.transport == TransportArg::Uhid {
        use passgate_authenticator::transport::uhid;
        uhid::announce_hid_limits(authenticator.config_mut());
        let server = uhid::UhidServer::start(authenticator, &uhid::passgate_identity()).context(
            "creating the uhid device (is the uhid module loaded, may this user open /dev/uhid?)",
        )?;
        println!("serving a FIDO HID device on {}", uhid::UHID_PATH);
        std::io::stdout().flush()?;
        tracing::info!(state_dir = %state_dir.display(), "authenticator serving CTAPHID on uhid");
        server.wait()?;
        return Ok(());
    }
    let listener = Listener::bind(&address).with_context(|| format!("listening on {address}"))?;
    let mut options = ServeOptions::default();
    let secret_file = state_dir.join(SECRET_FILE);
    if matches!(address, Address::Tcp(_)) && !matches!(presence, PresenceMode::Auto) {
        // Any local account can reach a TCP port: with a real prompt, only clients that can
        // read this user's state directory may ask for it.
        let secret = ConnectionSecret::generate()?;
        secret
            .write_to(&secret_file)
            .with_context(|| format!("writing {}", secret_file.display()))?;
        tracing::info!(file = %secret_file.display(), "TCP clients must send the connection secret in this file");
        options.secret = Some(secret);
    }
    let local = listener.address()?;
    println!("listening on {local}");
    std::io::stdout().flush()?;
    tracing::info!(state_dir = %state_dir.display(), "authenticator serving CTAPHID on {local}");
    passgate_authenticator::transport::tcp::serve_with(listener, authenticator, options)?;
    Ok(())
}
