//! The terminal running passgate as the trusted prompt: `/dev/tty` (the controlling terminal,
//! whatever stdin and stdout are), the PIN read with echo off.
//!
//! Typed-ahead input is thrown away before each question, so only an answer typed after the
//! question appeared counts (a keystroke made for something else never approves a request).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use passgate_platform_api::user_verifier::Interaction;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::termios::{LocalModes, OptionalActions, QueueSelector, tcflush, tcgetattr, tcsetattr};
use zeroize::Zeroizing;

use passgate_platform_api::trusted_prompt::{Answer, Dialog, PromptError, TrustedPrompt};

/// How long a question waits for the person, unless set otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a waiting question checks for cancellation (50 ms).
const POLL_NS: rustix::event::Nsecs = 50_000_000;
/// The longest answer read (a PIN is at most 63 bytes).
const MAX_LINE: usize = 256;

/// A terminal device.
#[derive(Debug)]
pub struct TerminalPrompt {
    path: PathBuf,
    timeout: Duration,
    /// One question at a time on the terminal.
    busy: Mutex<()>,
}

/// Restores the terminal's echo when a secret has been read (or reading failed).
struct EchoOff<'a> {
    tty: &'a File,
    saved: rustix::termios::Termios,
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.tty, OptionalActions::Now, &self.saved);
    }
}

impl TerminalPrompt {
    /// The controlling terminal, `/dev/tty`; unavailable when the process has none.
    pub fn open() -> Result<Self, PromptError> {
        Self::on(Path::new("/dev/tty"))
    }

    /// The terminal device at `path` (tests use a pseudo-terminal).
    pub fn on(path: &Path) -> Result<Self, PromptError> {
        let tty = open_tty(path)?;
        tcgetattr(&tty).map_err(|e| {
            PromptError::Unavailable(format!("{} is not a terminal: {e}", path.display()))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            timeout: DEFAULT_TIMEOUT,
            busy: Mutex::new(()),
        })
    }

    /// Each question waits at most `timeout` for the person.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Writes the question, then reads one line (with echo off for secrets). `None` at the
    /// end of input.
    fn ask(
        &self,
        text: &str,
        secret: bool,
        interaction: &Interaction,
    ) -> Result<Zeroizing<String>, PromptError> {
        if interaction.is_cancelled() {
            return Err(PromptError::Cancelled);
        }
        let _one_at_a_time = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tty = open_tty(&self.path)?;
        let unavailable = |e: std::io::Error| PromptError::Unavailable(format!("terminal: {e}"));
        // Only what is typed after the question counts.
        tcflush(&tty, QueueSelector::IFlush).map_err(|e| unavailable(e.into()))?;
        // The untrusted parts were cleaned where the text was put together; this is the last
        // line of defence: no escape sequence reaches the terminal, whatever a caller forgot.
        let text = passgate_proto::display::clean_block(text);
        tty.write_all(text.as_bytes()).map_err(unavailable)?;
        tty.flush().map_err(unavailable)?;
        let _echo = if secret {
            let saved = tcgetattr(&tty).map_err(|e| unavailable(e.into()))?;
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            quiet.local_modes.insert(LocalModes::ECHONL);
            tcsetattr(&tty, OptionalActions::Now, &quiet).map_err(|e| unavailable(e.into()))?;
            Some(EchoOff { tty: &tty, saved })
        } else {
            None
        };
        let deadline = Instant::now() + self.timeout;
        let mut line = Zeroizing::new(Vec::with_capacity(64));
        let mut byte = [0u8; 1];
        let outcome = loop {
            if interaction.is_cancelled() {
                break Err(PromptError::Cancelled);
            }
            if Instant::now() >= deadline {
                break Err(PromptError::TimedOut);
            }
            let mut fds = [PollFd::new(&tty, PollFlags::IN)];
            let wait = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: POLL_NS,
            };
            match poll(&mut fds, Some(&wait)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => break Err(unavailable(e.into())),
            }
            // Canonical mode: a whole line is there once the terminal is readable.
            match (&tty).read(&mut byte) {
                Ok(0) => break Err(PromptError::Declined),
                Ok(_) if byte[0] == b'\n' => break Ok(()),
                Ok(_) if line.len() >= MAX_LINE => {}
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(unavailable(e)),
            }
        };
        zeroize::Zeroize::zeroize(&mut byte);
        if secret && outcome.is_err() {
            // The person may be halfway through the PIN when the request goes away: what they
            // type next must not appear on the screen (or reach the shell after passgate
            // exits). Echo stays off while keystrokes keep coming, then the input is dropped.
            drain_quietly(&tty);
        }
        drop(_echo);
        let closing = match &outcome {
            Ok(()) => "",
            Err(PromptError::Cancelled) => "\npassgate: cancelled by the page or timed out.\n",
            Err(PromptError::TimedOut) => "\npassgate: nobody answered in time.\n",
            Err(_) => "\n",
        };
        let _ = tty.write_all(closing.as_bytes());
        outcome?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let raw = std::mem::take(&mut *line);
        String::from_utf8(raw).map(Zeroizing::new).map_err(|e| {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            PromptError::Unavailable("the answer is not UTF-8".into())
        })
    }
}

/// A keystroke within this long of the last one still belongs to the abandoned answer.
const QUIET: Duration = Duration::from_millis(600);
/// Draining stops after this long, keystrokes or not.
const MAX_DRAIN: Duration = Duration::from_secs(3);

/// Reads and forgets what is typed until the terminal has been quiet for [`QUIET`] (at most
/// [`MAX_DRAIN`]), then discards the input queue; echo is still off meanwhile.
fn drain_quietly(tty: &File) {
    let until = Instant::now() + MAX_DRAIN;
    let mut quiet_since = Instant::now();
    let mut scratch = Zeroizing::new([0u8; 64]);
    while Instant::now() < until && quiet_since.elapsed() < QUIET {
        let mut fds = [PollFd::new(tty, PollFlags::IN)];
        let wait = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: POLL_NS,
        };
        match poll(&mut fds, Some(&wait)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            Ok(_) => match (&*tty).read(&mut scratch[..]) {
                Ok(0) | Err(_) => break,
                Ok(_) => quiet_since = Instant::now(),
            },
            Err(_) => break,
        }
    }
    let _ = tcflush(tty, QueueSelector::IFlush);
}

fn open_tty(path: &Path) -> Result<File, PromptError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| PromptError::Unavailable(format!("no terminal ({}): {e}", path.display())))
}

fn header(dialog: &Dialog<'_>) -> String {
    let mut text = format!("\n== {} ==\n{}\n", dialog.title, dialog.description);
    if let Some(error) = dialog.error {
        text.push_str(&format!("!! {error}\n"));
    }
    text
}

impl TrustedPrompt for TerminalPrompt {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn secret(
        &self,
        dialog: &Dialog<'_>,
        interaction: &Interaction,
    ) -> Result<Zeroizing<String>, PromptError> {
        let text = format!(
            "{}(type it and press Enter; an empty line cancels)\n{} ",
            header(dialog),
            dialog.prompt
        );
        let answer = self.ask(&text, true, interaction)?;
        if answer.is_empty() {
            return Err(PromptError::Declined);
        }
        Ok(answer)
    }

    fn confirm(
        &self,
        dialog: &Dialog<'_>,
        interaction: &Interaction,
    ) -> Result<Answer, PromptError> {
        let mut text = format!(
            "{}Type y and Enter to {}",
            header(dialog),
            dialog.ok.to_lowercase()
        );
        if let Some(not_ok) = dialog.not_ok {
            text.push_str(&format!(", o for \u{201c}{not_ok}\u{201d}"));
        }
        text.push_str(&format!(
            ", anything else to {}: ",
            dialog.cancel.to_lowercase()
        ));
        let answer = self.ask(&text, false, interaction)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(Answer::Ok),
            "o" if dialog.not_ok.is_some() => Ok(Answer::NotOk),
            _ => Err(PromptError::Declined),
        }
    }

    fn choose(
        &self,
        description: &str,
        options: &[String],
        interaction: &Interaction,
    ) -> Result<usize, PromptError> {
        let mut text = format!("\n== passgate ==\n{description}\n");
        for (i, option) in options.iter().enumerate() {
            text.push_str(&format!("  {}. {option}\n", i + 1));
        }
        text.push_str("Type its number and Enter (anything else cancels): ");
        let answer = self.ask(&text, false, interaction)?;
        answer
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .filter(|&i| i < options.len())
            .ok_or(PromptError::Declined)
    }
}
