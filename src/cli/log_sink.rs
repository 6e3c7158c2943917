//! Where log lines go: stderr, or a file once a terminal prompt shares the terminal. A log
//! line written between a prompt's question and the person's answer would scramble both (and
//! could push the question off the screen), so `passgate demo` with its prompt on the terminal
//! sends its logs to `STATE/passgate.log` (0600) instead, and says so once.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

static FILE: OnceLock<File> = OnceLock::new();

/// The `MakeWriter` the subscriber writes through.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

/// One log line's destination.
pub enum LogWriter {
    /// Standard error.
    Stderr(std::io::Stderr),
    /// The log file.
    File(&'static File),
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Stderr(e) => e.write(buf),
            Self::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stderr(e) => e.flush(),
            Self::File(f) => f.flush(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        FILE.get()
            .map_or_else(|| LogWriter::Stderr(std::io::stderr()), LogWriter::File)
    }
}

/// From now on, logs go to `path` (created 0600, appended to). Only the first call counts.
pub fn to_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let _ = FILE.set(file);
    Ok(())
}
