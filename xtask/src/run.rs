//! Running child processes while streaming and capturing their output.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use anyhow::{Context, Result, anyhow};

/// Prints a visible separator before a suite's output.
pub fn banner(name: &str) {
    println!();
    println!("==================== {name} ====================");
}

/// One command to run.
#[derive(Debug)]
pub struct Step {
    program: String,
    args: Vec<String>,
    dir: PathBuf,
    envs: Vec<(OsString, OsString)>,
    removed_envs: Vec<OsString>,
    echo: bool,
    /// Set for a background step: the output goes to this file, not the terminal.
    log: Option<PathBuf>,
}

/// What a finished command printed, and how it ended.
#[derive(Debug)]
pub struct Captured {
    /// Whether it exited with status 0.
    pub success: bool,
    status: ExitStatus,
    lines: Vec<String>,
}

impl Captured {
    /// Every line it printed, stdout first, then stderr.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// "exited with status 1" / "was killed by a signal".
    pub fn status_text(&self) -> String {
        match self.status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        }
    }
}

impl Step {
    /// A command `program args...` run in `dir`.
    pub fn new(program: &str, args: &[&str], dir: &Path) -> Self {
        Self {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            dir: dir.to_path_buf(),
            envs: Vec::new(),
            removed_envs: Vec::new(),
            echo: true,
            log: None,
        }
    }

    /// Captures the output without echoing it.
    pub fn quiet(mut self) -> Self {
        self.echo = false;
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((OsString::from(key), value.as_ref().to_os_string()));
        self
    }

    /// Removes an environment variable for the command.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.removed_envs.push(OsString::from(key));
        self
    }

    /// Runs the command in the background (the installation of the later suites' needs while
    /// the workspace compiles): at the lowest CPU and I/O priority (`ionice -c 3 nice -n 19`, so
    /// the compiler in front keeps the CPU and disk), its output appended to `log` instead of the
    /// terminal (still captured).
    pub fn in_background(mut self, log: &Path) -> Self {
        self.log = Some(log.to_path_buf());
        self
    }

    fn display(&self) -> String {
        let mut text = self.program.clone();
        for arg in &self.args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }

    /// Runs the command with stdin closed, echoing its stdout and stderr as they come and
    /// keeping every line for parsing.
    pub fn run(&self) -> Result<Captured> {
        let log = match &self.log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => None,
        };
        if let Some(mut log) = log.as_ref() {
            writeln!(log, "$ {}", self.display())
                .with_context(|| format!("writing to {:?}", self.log))?;
        } else if self.echo {
            println!("$ {}", self.display());
        }
        let mut command = match &self.log {
            // The idle I/O class too: dpkg's unpacking must not hold up the compiler's writes.
            Some(_) => {
                let mut idle = Command::new("ionice");
                idle.args(["-c", "3", "nice", "-n", "19"])
                    .arg(&self.program);
                idle
            }
            None => Command::new(&self.program),
        };
        for key in &self.removed_envs {
            command.env_remove(key);
        }
        let mut child = command
            .args(&self.args)
            .current_dir(&self.dir)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{}`", self.display()))?;
        let stdout = child.stdout.take().context("child stdout was not piped")?;
        let stderr = child.stderr.take().context("child stderr was not piped")?;
        let (out_thread, err_thread) = match log {
            Some(log) => {
                let log_err = log.try_clone().context("duplicating the log file")?;
                (
                    thread::spawn(move || tee(stdout, Some(log))),
                    thread::spawn(move || tee(stderr, Some(log_err))),
                )
            }
            None => {
                let echo = self.echo;
                (
                    thread::spawn(move || tee(stdout, echo.then(std::io::stdout))),
                    thread::spawn(move || tee(stderr, echo.then(std::io::stderr))),
                )
            }
        };
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.display()))?;
        let mut lines = out_thread
            .join()
            .map_err(|_| anyhow!("the stdout reader thread panicked"))?;
        lines.extend(
            err_thread
                .join()
                .map_err(|_| anyhow!("the stderr reader thread panicked"))?,
        );
        Ok(Captured {
            success: status.success(),
            status,
            lines,
        })
    }
}

/// Copies `input` to `output` (if any) line by line, lossily decoding UTF-8, and returns the
/// lines. A last line without a newline gets one, so that the next output starts on its own
/// line.
fn tee(input: impl Read, mut output: Option<impl Write>) -> Vec<String> {
    let mut reader = BufReader::new(input);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
                if let Some(output) = output.as_mut() {
                    // Echo failures (a closed terminal) must not stop the capture.
                    let _ = output.write_all(&buf);
                    let _ = output.flush();
                }
                let line = String::from_utf8_lossy(&buf);
                lines.push(line.trim_end_matches(['\n', '\r']).to_owned());
            }
        }
    }
    lines
}

/// Runs a command quietly and reports whether it exited with status 0 (false if it could not
/// start at all).
pub fn probe(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_both_streams_and_status() {
        let dir = std::env::temp_dir();
        let captured = Step::new(
            "sh",
            &["-c", "echo out1; echo err1 >&2; printf 'out2'; exit 3"],
            &dir,
        )
        .quiet()
        .run()
        .unwrap();
        assert!(!captured.success);
        assert_eq!(captured.status_text(), "exited with status 3");
        let lines: Vec<&str> = captured.lines().collect();
        assert_eq!(lines, vec!["out1", "out2", "err1"]);
    }

    #[test]
    fn env_is_passed_and_stdin_is_closed() {
        let dir = std::env::temp_dir();
        let captured = Step::new("sh", &["-c", "echo \"$XTASK_T\"; cat; echo done"], &dir)
            .env("XTASK_T", "value-1")
            .quiet()
            .run()
            .unwrap();
        assert!(captured.success);
        let lines: Vec<&str> = captured.lines().collect();
        assert_eq!(lines, vec!["value-1", "done"]);
    }

    #[test]
    fn probe_reports_exit_status() {
        assert!(probe("sh", &["-c", "exit 0"]));
        assert!(!probe("sh", &["-c", "exit 1"]));
        assert!(!probe("/nonexistent/program", &[]));
    }
}
