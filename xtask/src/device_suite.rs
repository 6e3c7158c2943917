//! The `device` suite: Yubico python-fido2's own device tests (`tests/device` of the fido2
//! sdist, the suite Yubico runs against real security keys) against `passgate authenticator
//! serve`, through our pytest plugin `ctap-tests/python/device_suite/passgate_device_plugin.py`.
//!
//! The sdist is downloaded once with pip into `target/device-suite/`, checked against a pinned
//! SHA-256 and unpacked there. Each test file then runs in its own pytest process on a fresh
//! state directory, so that one failure cannot cascade into the next file. A skip counts as
//! neither passed nor failed, but the plugin turns every skip that its README does not explain
//! into a failure.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::deps;
use crate::parse::{TestCounts, pytest_counts};
use crate::run::Step;

/// The python-fido2 release whose device suite we run (the same as the pinned interop
/// dependency in `ctap-tests/python/requirements.txt`).
const FIDO2_VERSION: &str = "2.2.1";
/// SHA-256 of `fido2-2.2.1.tar.gz` as published on PyPI.
const FIDO2_SDIST_SHA256: &str = "85787428a94c3f8eaf72f0ff30afba983b559a1b1b795c93318c81b4ad4062c4";
/// Test files that run with fingerprints: the real fprintd on libfprint's virtual sensor
/// (`--user-verifier fprintd`), set up by the plugin.
pub const FPRINTD_FILES: &[&str] = &["test_bioenroll"];
/// Seconds one device test may take before pytest-timeout fails it.
const TEST_TIMEOUT_SECONDS: &str = "120";

/// What the suite found.
#[derive(Debug)]
pub struct Outcome {
    /// Passed and failed (failures and errors) tests, summed over the test files.
    pub counts: TestCounts,
    /// Skipped tests (each explained: unexplained skips are failures).
    pub skipped: u64,
    /// Files whose pytest run failed or printed no summary.
    pub broken_files: Vec<String>,
}

impl Outcome {
    /// Whether the suite passes: no failure, no error, no broken file, and something ran.
    pub fn ok(&self) -> bool {
        self.counts.failed == 0 && self.broken_files.is_empty() && self.counts.passed > 0
    }

    /// A one-line explanation for the summary.
    pub fn note(&self) -> String {
        let mut note = format!(
            "{} skipped (see ctap-tests/python/device_suite/README.md)",
            self.skipped
        );
        if !self.broken_files.is_empty() {
            note.push_str(&format!(
                "; pytest failed in: {}",
                self.broken_files.join(", ")
            ));
        }
        note
    }
}

/// Fetches the suite if needed and runs every `tests/device/test_*.py` against `binary`.
pub fn run(root: &Path, target: &Path, binary: &Path, filter: Option<&str>) -> Result<Outcome> {
    let work = target.join("device-suite");
    let sdist = ensure_sdist(root, &work)?;
    let names = test_files(&sdist)?;
    let python = deps::venv_python(root).to_string_lossy().into_owned();
    let python_path = std::env::join_paths([
        root.join("ctap-tests").join("python").join("device_suite"),
        root.join("ctap-tests").join("python"),
    ])
    .context("building PYTHONPATH")?;
    let states = work.join("state");
    let mut outcome = Outcome {
        counts: TestCounts::default(),
        skipped: 0,
        broken_files: Vec::new(),
    };
    for name in names {
        // A fresh state directory per file: a failure in one file cannot leave a PIN or
        // credentials behind for the next.
        let state = states.join(&name);
        if state.exists() {
            fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
        }
        fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        let relative = format!("tests/device/{name}.py");
        let timeout = format!("--timeout={TEST_TIMEOUT_SECONDS}");
        let mut args = vec![
            "-m",
            "pytest",
            "-p",
            "passgate_device_plugin",
            "-p",
            "no:cacheprovider",
            "-rfEs",
            "-v",
            timeout.as_str(),
            relative.as_str(),
        ];
        if let Some(filter) = filter {
            args.extend(["-k", filter]);
        }
        let mut step = Step::new(&python, &args, &sdist);
        if FPRINTD_FILES.contains(&name.as_str()) {
            step = step.env("PASSGATE_DEVICE_FPRINTD", "1");
        }
        let captured = step
            .env("PASSGATE_BIN", binary.as_os_str())
            .env("PASSGATE_DEVICE_STATE", state.as_os_str())
            .env("PYTHONPATH", &python_path)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .run()
            .with_context(|| format!("running pytest on {relative}"))?;
        match pytest_counts(captured.lines()) {
            Some(counts) => {
                outcome.counts.add(TestCounts {
                    passed: counts.passed,
                    failed: counts.failed,
                });
                outcome.skipped = outcome.skipped.saturating_add(counts.skipped);
                // With a test-name filter a file may select nothing (pytest exits 5).
                let nothing_selected = filter.is_some() && counts.passed == 0;
                if !captured.success && counts.failed == 0 && !nothing_selected {
                    outcome.broken_files.push(name);
                }
            }
            None => outcome.broken_files.push(name),
        }
    }
    Ok(outcome)
}

/// The names (without `.py`) of the suite's test files, `tests/device/test_*.py`, sorted.
pub fn test_files(sdist: &Path) -> Result<Vec<String>> {
    let dir = sdist.join("tests").join("device");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let stem = name.strip_suffix(".py")?;
            stem.starts_with("test_").then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("{} has no test files", dir.display());
    }
    Ok(names)
}

/// The unpacked sdist under `work` (`target/device-suite/`), downloading and checking it
/// first when missing.
pub fn ensure_sdist(root: &Path, work: &Path) -> Result<PathBuf> {
    let unpacked = work.join(format!("fido2-{FIDO2_VERSION}"));
    let stamp = work.join(format!("fido2-{FIDO2_VERSION}.sha256"));
    if unpacked.join("tests").join("device").is_dir()
        && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == FIDO2_SDIST_SHA256)
    {
        return Ok(unpacked);
    }
    fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let python = deps::venv_python(root).to_string_lossy().into_owned();
    let work_arg = work.to_string_lossy().into_owned();
    let requirement = format!("fido2=={FIDO2_VERSION}");
    let downloaded = Step::new(
        &python,
        &[
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--dest",
            &work_arg,
            &requirement,
        ],
        work,
    )
    .run()?;
    if !downloaded.success {
        bail!("`pip download {requirement}` {}", downloaded.status_text());
    }
    let tarball = work.join(format!("fido2-{FIDO2_VERSION}.tar.gz"));
    let digest = sha256_hex(&python, &tarball, work)?;
    if digest != FIDO2_SDIST_SHA256 {
        bail!(
            "{} has SHA-256 {digest}, expected {FIDO2_SDIST_SHA256}",
            tarball.display()
        );
    }
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)
            .with_context(|| format!("removing {}", unpacked.display()))?;
    }
    let tarball_arg = tarball.to_string_lossy().into_owned();
    let untar = Step::new("tar", &["-xzf", &tarball_arg, "-C", &work_arg], work).run()?;
    if !untar.success {
        bail!("unpacking {} {}", tarball.display(), untar.status_text());
    }
    fs::write(&stamp, FIDO2_SDIST_SHA256)
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(unpacked)
}

/// The file's SHA-256 in hex, computed by the venv's Python (xtask has no crypto dependency).
fn sha256_hex(python: &str, file: &Path, dir: &Path) -> Result<String> {
    let file_arg = file.to_string_lossy().into_owned();
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
            &file_arg,
        ])
        .current_dir(dir)
        .output()
        .context("hashing the sdist")?;
    if !output.status.success() {
        bail!("hashing {} failed", file.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
