//! passgate's CTAP 2.1 conformance suite.
//!
//! Written from the CTAP 2.1 specification, independent of passgate's authenticator code (its
//! own CTAPHID client, CBOR encoding and PIN protocol implementation), it drives any CTAPHID
//! endpoint and prints one line per check, then `N passed, N failed`.
//!
//! Checks that change the authenticator's state (PIN, configuration, large blobs, reset) run
//! only with [`RunOptions::allow_reset`]: never point those at an authenticator whose
//! credentials matter.

pub mod cbor;
mod checks;
pub mod hid;
pub mod hidraw;
pub mod pin;

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use ciborium::value::Value;

use crate::cbor::{bytes, get, imap, int, text, tmap};
use crate::hid::{Channel, TcpTransport};

/// Where the authenticator under test listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// CTAPHID reports over TCP.
    Tcp(String),
    /// A Linux hidraw node (a security key, or passgate on uhid).
    Hidraw(std::path::PathBuf),
}

impl Target {
    /// Parses `tcp://HOST:PORT`, `hidraw:/dev/hidrawN`, or `hid` (the one hidraw node whose
    /// report descriptor has the FIDO usage page).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "hid" {
            let found = hidraw::fido_devices(std::path::Path::new("/sys/class/hidraw"));
            return match found.as_slice() {
                [one] => Ok(Self::Hidraw(one.clone())),
                [] => Err("--target hid: no hidraw node has the FIDO usage page".to_owned()),
                many => Err(format!(
                    "--target hid: several FIDO devices ({}); name one with hidraw:PATH",
                    many.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
        }
        if let Some(path) = s.strip_prefix("hidraw:") {
            if path.is_empty() {
                return Err("hidraw: needs a path, e.g. hidraw:/dev/hidraw0".to_owned());
            }
            return Ok(Self::Hidraw(path.into()));
        }
        match s.strip_prefix("tcp://") {
            Some(addr) if addr.contains(':') => Ok(Self::Tcp(addr.to_owned())),
            _ => Err(format!(
                "unsupported target {s:?}: expected tcp://HOST:PORT, hidraw:/dev/hidrawN or hid"
            )),
        }
    }

    fn connect(&self) -> Result<Channel, String> {
        match self {
            Self::Tcp(addr) => {
                let t = TcpTransport::connect(addr)
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                Channel::open(Box::new(t))
            }
            Self::Hidraw(path) => {
                let t = hidraw::HidrawTransport::open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                Channel::open(Box::new(t))
            }
        }
    }
}

/// How the suite may treat the target.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The target approves user presence by itself (a test mode such as
    /// `--presence auto`). Without it, checks that need a touch are skipped.
    pub presence_auto: bool,
    /// The target waits for a person who never comes (to check KEEPALIVE and CANCEL).
    pub presence_never: bool,
    /// The suite may reset the authenticator and set a PIN.
    pub allow_reset: bool,
    /// Runs only checks whose ID or name contains this text.
    pub filter: Option<String>,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
    /// Checks that were skipped.
    pub skipped: usize,
}

/// What a check needs from the target.
pub mod needs {
    /// Nothing special.
    pub const NOTHING: u8 = 0;
    /// User presence approved automatically.
    pub const PRESENCE: u8 = 1;
    /// Permission to reset and set a PIN.
    pub const RESET: u8 = 2;
    /// A presence prompt nobody answers.
    pub const NO_PERSON: u8 = 4;
}

/// One check.
pub struct Check {
    /// Stable identifier, e.g. `hid-01`.
    pub id: &'static str,
    /// What it checks.
    pub name: &'static str,
    /// What it needs ([`needs`]).
    pub needs: u8,
    /// The check itself.
    pub run: fn(&mut Ctx) -> Result<(), String>,
}

/// Context handed to every check.
pub struct Ctx {
    target: Target,
    id: &'static str,
    info: Option<Value>,
}

/// A credential created by a check.
pub struct Made {
    /// Credential ID.
    pub id: Vec<u8>,
    /// Uncompressed public point.
    pub public_key: Vec<u8>,
    /// The authenticator data.
    pub auth_data: Vec<u8>,
    /// The full response.
    pub response: Value,
}

/// Fails the check with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Marks a check as skipped at run time (for example, the target lacks the feature).
pub fn skip(why: &str) -> String {
    format!("{SKIP_PREFIX}{why}")
}

const SKIP_PREFIX: &str = "SKIP: ";

/// Fails unless the status equals `want`.
pub fn expect_status(got: u8, want: u8) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("expected status 0x{want:02x}, got 0x{got:02x}"))
    }
}

impl Ctx {
    /// A fresh channel on a new connection.
    pub fn channel(&self) -> Result<Channel, String> {
        self.target.connect()
    }

    /// A relying party ID unique to this check.
    pub fn rp(&self) -> String {
        format!("{}.conformance.example", self.id)
    }

    /// The getInfo response (cached per check).
    pub fn info(&mut self) -> Result<Value, String> {
        if let Some(i) = &self.info {
            return Ok(i.clone());
        }
        let (status, body) = self.channel()?.ctap(0x04, None)?;
        expect_status(status, 0)?;
        let info = body.ok_or("getInfo returned no body")?;
        self.info = Some(info.clone());
        Ok(info)
    }

    /// Whether getInfo's options has `name` set to true.
    pub fn option(&mut self, name: &str) -> Result<Option<bool>, String> {
        let info = self.info()?;
        Ok(get(&info, 4)
            .and_then(|o| cbor::tget(o, name))
            .and_then(Value::as_bool))
    }

    /// Resets the authenticator (only in checks that need [`needs::RESET`]).
    ///
    /// An authenticator may refuse reset with NOT_ALLOWED (0x30) outside a short window after
    /// power-up (§6.6): the calling check is then skipped, saying so, rather than failed.
    pub fn reset(&mut self) -> Result<(), String> {
        let (status, _) = self.channel()?.ctap(0x07, None)?;
        self.info = None;
        if status == 0x30 {
            return Err(skip(
                "the target refused reset with NOT_ALLOWED (0x30): reset is only allowed \
                 shortly after power-up; restart the target and run again",
            ));
        }
        expect_status(status, 0).map_err(|e| format!("reset failed: {e}"))
    }
}

/// A makeCredential request for `rp` with ES256.
pub fn mc_request(rp: &str, user: &[u8], rk: bool, extra: Vec<(i64, Value)>) -> Value {
    let mut entries = vec![
        (1, bytes(&[0x11; 32])),
        (
            2,
            tmap(vec![("id", text(rp)), ("name", text("Conformance"))]),
        ),
        (
            3,
            tmap(vec![
                ("id", bytes(user)),
                ("name", text("user")),
                ("displayName", text("User")),
            ]),
        ),
        (
            4,
            Value::Array(vec![tmap(vec![
                ("alg", int(-7)),
                ("type", text("public-key")),
            ])]),
        ),
    ];
    if rk {
        entries.push((7, tmap(vec![("rk", Value::Bool(true))])));
    }
    for (k, v) in extra {
        entries.retain(|(e, _)| *e != k);
        entries.push((k, v));
    }
    imap(entries)
}

/// A getAssertion request.
pub fn ga_request(rp: &str, allow: &[&[u8]], extra: Vec<(i64, Value)>) -> Value {
    let mut entries = vec![(1, text(rp)), (2, bytes(&[0x22; 32]))];
    if !allow.is_empty() {
        entries.push((
            3,
            Value::Array(
                allow
                    .iter()
                    .map(|id| tmap(vec![("id", bytes(id)), ("type", text("public-key"))]))
                    .collect(),
            ),
        ));
    }
    entries.extend(extra);
    imap(entries)
}

/// Parses a successful makeCredential response.
pub fn parse_made(response: Value) -> Result<Made, String> {
    let auth_data = get(&response, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?
        .clone();
    ensure!(
        auth_data.len() >= 55,
        "authData too short for attested credential data"
    );
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data
        .get(55..55 + len)
        .ok_or("credential ID overruns authData")?
        .to_vec();
    let mut reader = auth_data.get(55 + len..).ok_or("no COSE key")?;
    let key: Value =
        ciborium::de::from_reader(&mut reader).map_err(|e| format!("COSE key: {e}"))?;
    let x = get(&key, -2)
        .and_then(Value::as_bytes)
        .ok_or("COSE key lacks x")?;
    let y = get(&key, -3)
        .and_then(Value::as_bytes)
        .ok_or("COSE key lacks y")?;
    let public_key = [&[4u8][..], x, y].concat();
    Ok(Made {
        id,
        public_key,
        auth_data,
        response,
    })
}

/// Makes a credential and expects success.
pub fn make(
    ch: &mut Channel,
    rp: &str,
    user: &[u8],
    rk: bool,
    extra: Vec<(i64, Value)>,
) -> Result<Made, String> {
    let (status, body) = ch.ctap(0x01, Some(&mc_request(rp, user, rk, extra)))?;
    expect_status(status, 0)?;
    parse_made(body.ok_or("makeCredential returned no body")?)
}

/// Verifies an ES256 signature over `auth_data || client_data_hash`.
pub fn verify(
    public_key: &[u8],
    auth_data: &[u8],
    client_data_hash: &[u8],
    signature: &[u8],
) -> bool {
    let message = [auth_data, client_data_hash].concat();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&message, signature)
        .is_ok()
}

/// All checks, in run order: non-destructive first.
pub fn all_checks() -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(checks::hid::checks());
    v.extend(checks::get_info::checks());
    v.extend(checks::make_credential::checks());
    v.extend(checks::algorithms::checks());
    v.extend(checks::get_assertion::checks());
    v.extend(checks::extensions::checks());
    v.extend(checks::client_pin::checks());
    v.extend(checks::management::checks());
    v
}

/// Runs one check; a panic inside it (for example an unchecked index into a malformed response
/// from a faulty target) fails that check instead of aborting the whole run.
fn run_guarded(check: fn(&mut Ctx) -> Result<(), String>, ctx: &mut Ctx) -> Result<(), String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| check(ctx))) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(format!("the check panicked (malformed response?): {what}"))
        }
    }
}

/// Runs the suite against `target`, writing one line per check and the totals.
pub fn run(target: &Target, options: &RunOptions, out: &mut dyn Write) -> Report {
    let mut report = Report::default();
    let mut touched = false;
    for check in all_checks() {
        if let Some(f) = &options.filter {
            if !check.id.contains(f.as_str()) && !check.name.contains(f.as_str()) {
                continue;
            }
        }
        let missing = if check.needs & needs::PRESENCE != 0 && !options.presence_auto {
            Some("needs a target that approves presence by itself (--presence-auto)")
        } else if check.needs & needs::RESET != 0 && !options.allow_reset {
            Some("changes the authenticator's state (--allow-reset)")
        } else if check.needs & needs::NO_PERSON != 0 && !options.presence_never {
            Some("needs a presence prompt nobody answers (--presence-never)")
        } else {
            None
        };
        if let Some(why) = missing {
            report.skipped += 1;
            let _ = writeln!(out, "SKIP {} {}: {why}", check.id, check.name);
            continue;
        }
        touched |= check.needs & needs::RESET != 0;
        let mut ctx = Ctx {
            target: target.clone(),
            id: check.id,
            info: None,
        };
        let started = Instant::now();
        match run_guarded(check.run, &mut ctx) {
            Ok(()) => {
                report.passed += 1;
                let _ = writeln!(
                    out,
                    "PASS {} {} ({} ms)",
                    check.id,
                    check.name,
                    started.elapsed().as_millis()
                );
            }
            Err(why) if why.starts_with(SKIP_PREFIX) => {
                report.skipped += 1;
                let _ = writeln!(
                    out,
                    "SKIP {} {}: {}",
                    check.id,
                    check.name,
                    &why[SKIP_PREFIX.len()..]
                );
            }
            Err(why) => {
                report.failed += 1;
                let _ = writeln!(out, "FAIL {} {}: {why}", check.id, check.name);
            }
        }
    }
    if touched {
        // Leave no PIN or configuration behind.
        let mut ctx = Ctx {
            target: target.clone(),
            id: "cleanup",
            info: None,
        };
        if let Err(e) = ctx.reset() {
            let _ = writeln!(out, "note: final reset failed: {e}");
        }
    }
    if report.skipped > 0 {
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            report.passed, report.failed, report.skipped
        );
    } else {
        let _ = writeln!(out, "{} passed, {} failed", report.passed, report.failed);
    }
    report
}
