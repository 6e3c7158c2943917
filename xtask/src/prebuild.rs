//! Background builds: the compiling that later suites need (the Tauri example, the cross-target
//! checks, the fuzz targets), started once the `passgate` binary is built and run at the
//! lowest CPU priority while the python, browser and VM suites run in front.
//!
//! Those suites spend much of their wall time waiting (on swtpm, fprintd, Chromium, a QEMU
//! guest that keeps one core), and a cold build of the later suites is several CPU-minutes:
//! run in that idle time it no longer adds to the total. A background build only warms cargo's
//! caches. Each suite still runs its own build commands when its turn comes (cheap by then) and
//! reports their errors itself, so a suite's result never depends on its background build;
//! the driver only waits for that build to end before starting the suite, and prints where
//! its log is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::run::Step;

/// One thing a background build does.
pub type Task = Box<dyn FnOnce() -> Result<()> + Send>;

/// A task that runs `step` (made with [`Step::in_background`]) and fails when it does.
pub fn step(step: Step) -> Task {
    Box::new(move || {
        let captured = step.run()?;
        if !captured.success {
            bail!("{}", captured.status_text());
        }
        Ok(())
    })
}

/// The background build of one suite: tasks run in order, the first failure ends it.
pub struct Job {
    /// The suite it builds for.
    pub suite: &'static str,
    /// What it does, in order.
    pub tasks: Vec<Task>,
}

/// How a background build ended.
#[derive(Debug)]
pub struct Outcome {
    /// Whether every step succeeded.
    pub ok: bool,
    /// Its wall time.
    pub elapsed: Duration,
    /// Its log file.
    pub log: PathBuf,
}

/// The background builds started, and the suites waiting on them.
#[derive(Default)]
pub struct Prebuilds {
    started: bool,
    pending: HashMap<&'static str, mpsc::Receiver<Outcome>>,
}

/// The log file of `suite`'s background build.
pub fn log_path(target: &Path, suite: &str) -> PathBuf {
    target
        .join("xtask")
        .join(format!("background-build-{suite}.log"))
}

impl Prebuilds {
    /// Whether [`Prebuilds::start`] ran.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Runs `jobs` one after the other on a background thread (one at a time: they share
    /// cargo's target-directory lock and there are 2 cores).
    pub fn start(&mut self, target: &Path, jobs: Vec<Job>) -> Result<()> {
        self.started = true;
        if jobs.is_empty() {
            return Ok(());
        }
        let dir = target.join("xtask");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut work = Vec::new();
        for job in jobs {
            let log = log_path(target, job.suite);
            // A fresh log per run.
            std::fs::write(&log, b"").with_context(|| format!("creating {}", log.display()))?;
            let (done, waiting) = mpsc::channel();
            self.pending.insert(job.suite, waiting);
            println!(
                "xtask: building for {} in the background (log: {})",
                job.suite,
                log.display()
            );
            work.push((job, log, done));
        }
        thread::spawn(move || {
            for (job, log, done) in work {
                let started = Instant::now();
                let mut ok = true;
                for task in job.tasks {
                    if let Err(err) = task() {
                        append(&log, &format!("xtask: background build failed: {err:#}\n"));
                        ok = false;
                        break;
                    }
                }
                // The receiver is gone only when the driver stopped waiting: nothing to tell.
                let _ = done.send(Outcome {
                    ok,
                    elapsed: started.elapsed(),
                    log,
                });
            }
        });
        Ok(())
    }

    /// Waits for `suite`'s background build, if it has one that was not waited for yet.
    pub fn wait(&mut self, suite: &str) -> Option<Outcome> {
        let waiting = self.pending.remove(suite)?;
        waiting.recv().ok()
    }

    /// Waits for every background build not waited for yet (so none outlives the run).
    pub fn finish(&mut self) {
        for (_, waiting) in self.pending.drain() {
            let _ = waiting.recv();
        }
    }
}

/// Appends `text` to the log at `path`; a log that cannot be written loses the line only.
fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = file.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_and_report_failure_with_their_log() {
        let dir = std::env::temp_dir().join(format!("xtask-prebuild-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut prebuilds = Prebuilds::default();
        let ok_log = log_path(&dir, "first");
        let bad_log = log_path(&dir, "second");
        prebuilds
            .start(
                &dir,
                vec![
                    Job {
                        suite: "first",
                        tasks: vec![step(
                            Step::new("sh", &["-c", "echo built; echo warned >&2"], &dir)
                                .in_background(&ok_log),
                        )],
                    },
                    Job {
                        suite: "second",
                        tasks: vec![
                            step(Step::new("sh", &["-c", "exit 4"], &dir).in_background(&bad_log)),
                            step(
                                Step::new("sh", &["-c", "echo never"], &dir)
                                    .in_background(&bad_log),
                            ),
                        ],
                    },
                ],
            )
            .unwrap();
        assert!(prebuilds.started());
        let first = prebuilds.wait("first").unwrap();
        assert!(first.ok);
        assert_eq!(first.log, ok_log);
        let text = std::fs::read_to_string(&ok_log).unwrap();
        assert!(
            text.starts_with("$ sh -c echo built; echo warned >&2\n"),
            "{text}"
        );
        assert!(
            text.contains("built\n") && text.contains("warned\n"),
            "{text}"
        );
        let second = prebuilds.wait("second").unwrap();
        assert!(!second.ok);
        let text = std::fs::read_to_string(&bad_log).unwrap();
        assert!(
            !text.contains("never"),
            "the steps after a failure must not run: {text}"
        );
        assert!(
            text.ends_with("xtask: background build failed: exited with status 4\n"),
            "{text}"
        );
        // Each suite is waited for once; a suite without a job has nothing to wait for.
        assert!(prebuilds.wait("first").is_none());
        assert!(prebuilds.wait("third").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
