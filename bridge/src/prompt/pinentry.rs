//! A pinentry program as the trusted prompt, spoken to in its Assuan protocol (the one
//! gpg-agent uses): one program run per dialog, `SETTITLE`/`SETDESC`/`SETPROMPT`/`SETERROR`/
//! `SETOK`/`SETCANCEL`/`SETNOTOK`/`SETTIMEOUT`, then `GETPIN` (the PIN comes back on a `D`
//! line) or `CONFIRM`, then `BYE`.
//!
//! The program is killed (its window closes) as soon as the request is cancelled or the
//! deadline passes. The PIN is kept in zeroizing buffers from the pipe to the caller.
//!
//! Why not the `pinentry` crate (what rage uses): its dialogs (`PassphraseInput::interact`,
//! `ConfirmationDialog::confirm`) block until the program answers or their timeout passes,
//! and hand out no handle to the running program. A passgate prompt must close the moment the
//! page aborts or the ceremony times out (the person must not type a PIN into a dialog whose
//! request is gone, and the next request must not wait behind it): that needs the child
//! process and a read loop that watches the [`Interaction`], which is what this file is.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use passgate_platform_api::user_verifier::Interaction;
use zeroize::Zeroizing;

use passgate_platform_api::trusted_prompt::{Answer, Dialog, PromptError, TrustedPrompt};

/// How long one dialog waits for the person, unless set otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the program may take to greet or to answer a command that needs no person.
const PROTOCOL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting dialog checks for cancellation.
const POLL: Duration = Duration::from_millis(50);
/// Assuan lines are at most 1000 bytes; descriptions are cut well before that.
const MAX_ARGUMENT: usize = 900;
/// The pinentry flavours that open a window, in the order they are preferred.
pub const GRAPHICAL_FLAVOURS: [&str; 4] = [
    "pinentry-gnome3",
    "pinentry-qt",
    "pinentry-gtk2",
    "pinentry-gtk-2",
];
/// The environment variable naming the program.
pub const ENV_PROGRAM: &str = "PASSGATE_PINENTRY";

/// libgpg-error codes (the low 16 bits of an Assuan `ERR`).
const GPG_ERR_TIMEOUT: u32 = 62;
const GPG_ERR_CANCELED: u32 = 99;
const GPG_ERR_NOT_CONFIRMED: u32 = 114;

/// A pinentry program.
#[derive(Debug, Clone)]
pub struct Pinentry {
    program: PathBuf,
    timeout: Duration,
}

impl Pinentry {
    /// `program` (a path, or a name looked up on `PATH` when it is run).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The program from `flag`, else `$PASSGATE_PINENTRY`, else `pinentry` on `PATH`.
    pub fn locate(flag: Option<&Path>) -> Result<Self, PromptError> {
        let chosen = flag.map(Path::to_path_buf).or_else(|| {
            std::env::var_os(ENV_PROGRAM)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let program = match chosen {
            Some(p) if p.components().count() > 1 => {
                if p.is_file() {
                    p
                } else {
                    return Err(PromptError::Unavailable(format!(
                        "the pinentry program {} does not exist",
                        p.display()
                    )));
                }
            }
            Some(name) => on_path(&name).ok_or_else(|| {
                PromptError::Unavailable(format!("{} is not on PATH", name.display()))
            })?,
            None => on_path(Path::new("pinentry")).ok_or_else(|| {
                PromptError::Unavailable(
                    "no pinentry program: install pinentry (e.g. pinentry-gnome3) or set PASSGATE_PINENTRY".into(),
                )
            })?,
        };
        Ok(Self::new(program))
    }

    /// A pinentry that opens a window, when there is a graphical session (`WAYLAND_DISPLAY`
    /// or `DISPLAY` set) and one of the graphical flavours is installed: the prompt a desktop
    /// user expects, rather than the terminal that happened to start passgate. `None`
    /// otherwise (headless: the terminal stays the prompt).
    pub fn graphical() -> Option<Self> {
        let session = ["WAYLAND_DISPLAY", "DISPLAY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        if !session {
            return None;
        }
        GRAPHICAL_FLAVOURS
            .iter()
            .find_map(|name| on_path(Path::new(name)))
            .map(Self::new)
    }

    /// Each dialog waits at most `timeout` for the person.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The program run for each dialog.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn open(&self) -> Result<Session, PromptError> {
        let mut child = Command::new(&self.program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                PromptError::Unavailable(format!("starting {}: {e}", self.program.display()))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PromptError::Unavailable("no pipes to pinentry".into()));
        };
        let (lines_in, lines) = channel::<Zeroizing<Vec<u8>>>();
        std::thread::Builder::new()
            .name("pinentry-reader".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                loop {
                    let mut line = Zeroizing::new(Vec::with_capacity(128));
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if lines_in.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| PromptError::Unavailable(format!("no reader thread: {e}")))?;
        let mut session = Session {
            child,
            stdin,
            lines,
        };
        // The greeting: "OK Pleased to meet you".
        let never = Interaction::new();
        match session.reply(&never, Instant::now() + PROTOCOL_TIMEOUT)? {
            Reply::Ok(_) => Ok(session),
            Reply::Err(code, text) => Err(PromptError::Unavailable(format!(
                "pinentry refused to start: ERR {code} {text}"
            ))),
        }
    }

    /// Sends the dialog's texts (refusals of optional commands are ignored).
    fn describe(
        &self,
        session: &mut Session,
        dialog: &Dialog<'_>,
        secret: bool,
    ) -> Result<(), PromptError> {
        let never = Interaction::new();
        let mut commands = vec![
            format!("SETTITLE {}", escape(dialog.title)),
            format!("SETDESC {}", escape(dialog.description)),
            format!("SETOK {}", escape(dialog.ok)),
            format!("SETCANCEL {}", escape(dialog.cancel)),
            format!("SETTIMEOUT {}", self.timeout.as_secs().max(1)),
        ];
        if secret {
            commands.push(format!("SETPROMPT {}", escape(dialog.prompt)));
        }
        if let Some(error) = dialog.error {
            commands.push(format!("SETERROR {}", escape(error)));
        }
        if let Some(not_ok) = dialog.not_ok {
            commands.push(format!("SETNOTOK {}", escape(not_ok)));
        }
        if let Some(tty) = std::env::var_os("GPG_TTY").and_then(|t| t.into_string().ok()) {
            commands.push(format!("OPTION ttyname={}", escape(&tty)));
            if let Ok(term) = std::env::var("TERM") {
                commands.push(format!("OPTION ttytype={}", escape(&term)));
            }
        }
        for command in commands {
            session.send(&command)?;
            // An old pinentry may not know every command: its ERR is no reason to stop.
            session.reply(&never, Instant::now() + PROTOCOL_TIMEOUT)?;
        }
        Ok(())
    }
}

/// Looks `name` up on `PATH`.
fn on_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Percent-escapes an Assuan argument (`%`, CR, LF, and other control characters), cut to
/// [`MAX_ARGUMENT`] bytes on a character boundary.
pub fn escape(text: &str) -> String {
    // Controls, bidi and zero-width characters never reach the dialog (line feeds stay, as
    // %0A); see passgate_proto::display.
    let text = passgate_proto::display::clean_block(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if out.len() >= MAX_ARGUMENT {
            out.push_str("...");
            break;
        }
        match c {
            '%' => out.push_str("%25"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("%{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes an Assuan `D` line's percent escapes into `out`.
fn unescape_into(data: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                data.get(i + 1).copied().and_then(hex_value),
                data.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

enum Reply {
    /// `OK`, with the data of any `D` lines before it.
    Ok(Zeroizing<Vec<u8>>),
    /// `ERR code text`.
    Err(u32, String),
}

/// One running pinentry.
struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Zeroizing<Vec<u8>>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"BYE\n");
        let _ = self.stdin.flush();
        // Give it a moment to leave by itself, then make sure its window is gone.
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Session {
    fn send(&mut self, line: &str) -> Result<(), PromptError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(line.len() + 1));
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.stdin
            .write_all(&bytes)
            .and_then(|()| self.stdin.flush())
            .map_err(|e| PromptError::Unavailable(format!("writing to pinentry: {e}")))
    }

    /// Reads lines up to the next `OK` or `ERR`, watching `interaction` and `deadline`.
    fn reply(
        &mut self,
        interaction: &Interaction,
        deadline: Instant,
    ) -> Result<Reply, PromptError> {
        let mut data = Zeroizing::new(Vec::new());
        loop {
            if interaction.is_cancelled() {
                let _ = self.child.kill();
                return Err(PromptError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = self.child.kill();
                return Err(PromptError::TimedOut);
            }
            let line = match self.lines.recv_timeout((deadline - now).min(POLL)) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PromptError::Unavailable(
                        "pinentry closed its output".into(),
                    ));
                }
            };
            let line: &[u8] = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&line);
            if line == b"OK" || line.starts_with(b"OK ") {
                return Ok(Reply::Ok(data));
            }
            if let Some(rest) = line.strip_prefix(b"D ") {
                unescape_into(rest, &mut data);
                continue;
            }
            if let Some(rest) = line.strip_prefix(b"ERR ") {
                let text = String::from_utf8_lossy(rest);
                let (code, message) = text.split_once(' ').unwrap_or((&text, ""));
                return Ok(Reply::Err(code.parse().unwrap_or(0), message.to_owned()));
            }
            if line.starts_with(b"INQUIRE ") {
                // Nothing is offered: end the inquiry so the command can finish.
                self.send("END")?;
            }
            // "S" status lines and "#" comments carry nothing needed here.
        }
    }
}

impl TrustedPrompt for Pinentry {
    fn name(&self) -> &'static str {
        "pinentry"
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn secret(
        &self,
        dialog: &Dialog<'_>,
        interaction: &Interaction,
    ) -> Result<Zeroizing<String>, PromptError> {
        if interaction.is_cancelled() {
            return Err(PromptError::Cancelled);
        }
        let mut session = self.open()?;
        self.describe(&mut session, dialog, true)?;
        session.send("GETPIN")?;
        match session.reply(interaction, Instant::now() + self.timeout + POLL)? {
            Reply::Ok(mut data) => {
                // Moved out, not copied: the only buffer holding the PIN becomes the result.
                let raw = std::mem::take(&mut *data);
                let text = String::from_utf8(raw).map_err(|e| {
                    let mut bytes = e.into_bytes();
                    zeroize::Zeroize::zeroize(&mut bytes);
                    PromptError::Unavailable("pinentry answered a PIN that is not UTF-8".into())
                })?;
                let pin = Zeroizing::new(text);
                if pin.is_empty() {
                    // An empty entry confirmed with OK is a refusal, not a PIN.
                    return Err(PromptError::Declined);
                }
                Ok(pin)
            }
            Reply::Err(code, _) if code & 0xFFFF == GPG_ERR_TIMEOUT => Err(PromptError::TimedOut),
            Reply::Err(code, _) if code & 0xFFFF == GPG_ERR_CANCELED => Err(PromptError::Declined),
            Reply::Err(code, text) => Err(PromptError::Unavailable(format!(
                "pinentry GETPIN failed: ERR {code} {text}"
            ))),
        }
    }

    fn confirm(
        &self,
        dialog: &Dialog<'_>,
        interaction: &Interaction,
    ) -> Result<Answer, PromptError> {
        if interaction.is_cancelled() {
            return Err(PromptError::Cancelled);
        }
        let mut session = self.open()?;
        self.describe(&mut session, dialog, false)?;
        session.send("CONFIRM")?;
        match session.reply(interaction, Instant::now() + self.timeout + POLL)? {
            Reply::Ok(_) => Ok(Answer::Ok),
            Reply::Err(code, _) if code & 0xFFFF == GPG_ERR_NOT_CONFIRMED => {
                if dialog.not_ok.is_some() {
                    Ok(Answer::NotOk)
                } else {
                    Err(PromptError::Declined)
                }
            }
            Reply::Err(code, _) if code & 0xFFFF == GPG_ERR_TIMEOUT => Err(PromptError::TimedOut),
            Reply::Err(code, _) if code & 0xFFFF == GPG_ERR_CANCELED => Err(PromptError::Declined),
            Reply::Err(code, text) => Err(PromptError::Unavailable(format!(
                "pinentry CONFIRM failed: ERR {code} {text}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_percent_escaped_and_data_unescaped() {
        assert_eq!(escape("100% sure\nnext\r"), "100%25 sure%0Anext ");
        // Escapes, bidi and zero-width characters never reach the dialog.
        assert_eq!(
            escape("a\u{1b}]0;t\u{7}b\u{202e}c\u{200b}d\rx"),
            "a]0;tbcd x"
        );
        assert_eq!(escape("caf\u{e9}"), "caf\u{e9}");
        let long = "x".repeat(2000);
        assert!(escape(&long).len() <= MAX_ARGUMENT + 3);
        let mut out = Vec::new();
        unescape_into(b"12%2534%0A%zz", &mut out);
        assert_eq!(out, b"12%34\n%zz");
    }

    #[test]
    fn a_missing_program_is_unavailable() {
        let e = Pinentry::locate(Some(Path::new("/nonexistent/pinentry"))).unwrap_err();
        assert!(matches!(e, PromptError::Unavailable(_)), "{e:?}");
        let e = Pinentry::new("/nonexistent/pinentry")
            .secret(&Dialog::default(), &Interaction::new())
            .unwrap_err();
        assert!(matches!(e, PromptError::Unavailable(_)), "{e:?}");
    }
}
