//! `cargo xtask fuzz`: builds the cargo-fuzz targets in `fuzz/` (nightly, libFuzzer) and runs
//! each in turn for a fixed time, within the budget the security issue sets: RSS under
//! 256 MiB (`-rss_limit_mb=256`), no input over 1 s (`-timeout=1`). Per target it prints the
//! executions, crashes, hangs and peak RSS, and it fails on any crash, hang or out-of-memory.
//!
//! ```text
//! cargo xtask fuzz                      # every target, 30 s each
//! cargo xtask fuzz --time 600 --only ctap_command,cose_key
//! cargo xtask fuzz --seed               # rewrite fuzz/corpus from the test suites, minimised
//! cargo xtask fuzz --no-build --time 60  # the targets as last built
//! ```
//!
//! A run reads the committed corpus (`fuzz/corpus/TARGET`, seeded from the test suites and
//! minimised) and writes what it finds to `fuzz/target/corpus/TARGET`, so a run never grows
//! the repository; a crash leaves its input in `fuzz/artifacts/TARGET/`.
//!
//! The targets are built with `-s none` (no sanitizer): the code under test is safe Rust, and
//! AddressSanitizer's quarantine alone would take the 256 MiB the budget allows.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::run::Step;

/// Every fuzz target, in running order (the `seed` binary in `fuzz/` is not one).
pub const TARGETS: &[&str] = &[
    "ctap_command",
    "ctaphid_reports",
    "authenticator_state",
    "relying_party_api",
    "webauthn_json",
    "cose_key",
    "authenticator_data",
    "client_data_json",
    "native_messaging",
    "local_bridge_http",
    "vault_file",
    "soter_json",
];

/// The RSS budget of a target, MiB.
pub const RSS_LIMIT_MB: u64 = 256;
/// The longest one input may run, seconds.
pub const TIMEOUT_SECS: u64 = 1;
/// Seconds per target when `--time` is not given.
pub const DEFAULT_SECONDS: u64 = 30;
/// Seconds per target in `cargo xtask test` (CI) at most, and at least.
pub const CI_SECONDS: (u64, u64) = (30, 10);
/// What the fuzz suite may take in `cargo xtask test`, build included, seconds. CI runs the
/// whole of `cargo xtask test` in 45 minutes on 2 cores. The cold smoke build is about 8.6
/// CPU-minutes (518 s measured; cargo-fuzz's release build took 665 s), the targets 3 more.
pub const CI_BUDGET_SECS: u64 = 12 * 60;
/// Targets run at the same time in `cargo xtask test` (CI has 2 cores).
pub const CI_JOBS: usize = 2;

/// Seconds per target in `cargo xtask test` with `jobs` at a time: 30 s each when the build
/// left room for that in [`CI_BUDGET_SECS`], less when it did not (a slow cold build), never
/// under 10 s.
pub fn ci_seconds(build: Duration, targets: usize, jobs: usize) -> u64 {
    let (most, least) = CI_SECONDS;
    let left = CI_BUDGET_SECS.saturating_sub(build.as_secs());
    let rounds = u64::try_from(targets.max(1).div_ceil(jobs.max(1))).unwrap_or(u64::MAX);
    (left / rounds).clamp(least, most)
}

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Seconds per target.
    pub seconds: u64,
    /// The targets, in running order.
    pub targets: Vec<&'static str>,
    /// Rewrite the seed corpora instead of fuzzing.
    pub seed: bool,
    /// Run the targets as last built (no `cargo fuzz build` first).
    pub no_build: bool,
    /// Targets run at the same time.
    pub jobs: usize,
    /// Append each target's figures to `fuzz/RESULTS.md`.
    pub record: bool,
}

/// Parses the arguments after `fuzz`.
pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        seconds: DEFAULT_SECONDS,
        targets: TARGETS.to_vec(),
        seed: false,
        no_build: false,
        jobs: 1,
        record: true,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        match flag {
            "--time" => {
                let text = value("--time")?;
                options.seconds = text
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .with_context(|| format!("--time takes whole seconds > 0, not {text:?}"))?;
            }
            "--only" => {
                let text = value("--only")?;
                let mut chosen = Vec::new();
                for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let Some(target) = TARGETS.iter().find(|t| **t == name) else {
                        bail!(
                            "unknown fuzz target `{name}`; expected one of: {}",
                            TARGETS.join(", ")
                        );
                    };
                    chosen.push(*target);
                }
                options.targets = TARGETS
                    .iter()
                    .copied()
                    .filter(|t| chosen.contains(t))
                    .collect();
            }
            "--jobs" => {
                let text = value("--jobs")?;
                options.jobs = text
                    .parse()
                    .ok()
                    .filter(|j| *j > 0)
                    .with_context(|| format!("--jobs takes a number > 0, not {text:?}"))?;
            }
            "--no-record" if inline.is_none() => options.record = false,
            "--seed" if inline.is_none() => options.seed = true,
            "--no-build" if inline.is_none() => options.no_build = true,
            _ => bail!("unknown argument `{arg}` for `fuzz`"),
        }
    }
    if options.targets.is_empty() {
        bail!("no fuzz target selected");
    }
    Ok(options)
}

/// One target's run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TargetRun {
    /// Inputs executed.
    pub executions: u64,
    /// Crashes (panics, aborts): libFuzzer stops at the first.
    pub crashes: u64,
    /// Inputs that ran over the timeout.
    pub hangs: u64,
    /// Inputs that went over the RSS limit.
    pub out_of_memory: u64,
    /// Peak RSS, MiB.
    pub peak_rss_mb: u64,
    /// Inputs libFuzzer stopped at for the timeout that then ran well within it, alone, three
    /// times in a row (libFuzzer's timer is wall time: a starved process on a loaded machine
    /// trips it); they are not counted as hangs but recorded.
    pub timeouts_not_reproduced: u64,
    /// The input that failed, if one did.
    pub artifact: Option<String>,
}

impl TargetRun {
    /// Whether the target stayed within the budget.
    pub fn ok(&self) -> bool {
        self.crashes == 0
            && self.hangs == 0
            && self.out_of_memory == 0
            && self.peak_rss_mb < RSS_LIMIT_MB
    }
}

/// Reads libFuzzer's output (with `-print_final_stats=1`).
pub fn parse_libfuzzer<'a>(lines: impl IntoIterator<Item = &'a str>) -> TargetRun {
    let mut run = TargetRun::default();
    let number = |line: &str| {
        line.rsplit(':')
            .next()
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    for line in lines {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
            run.executions = number(rest).unwrap_or(run.executions);
        } else if let Some(rest) = line.strip_prefix("stat::peak_rss_mb:") {
            run.peak_rss_mb = number(rest).unwrap_or(run.peak_rss_mb);
        } else if line.contains("ERROR: libFuzzer: timeout after") {
            run.hangs += 1;
        } else if line.contains("ERROR: libFuzzer: out-of-memory") {
            run.out_of_memory += 1;
        } else if line.contains("ERROR: libFuzzer: deadly signal")
            || line.contains("ERROR: libFuzzer: fuzz target exited")
            || line.contains("ERROR: libFuzzer: fuzz target overwrites")
        {
            run.crashes += 1;
        } else if let Some(rest) = line.split("Test unit written to ").nth(1) {
            run.artifact = Some(rest.trim().to_owned());
        } else if line.starts_with("#") && line.contains(" rss: ") {
            // "#123 DONE cov: ... rss: 57Mb": the peak when the final stats are missing.
            if let Some(mb) = line.split(" rss: ").nth(1).and_then(|r| {
                r.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            }) {
                run.peak_rss_mb = run.peak_rss_mb.max(mb);
            }
        }
    }
    run
}

/// The fuzz crate's directory.
fn fuzz_dir(root: &Path) -> PathBuf {
    root.join("fuzz")
}

/// How the targets are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// cargo-fuzz's default (release, one codegen unit): the fastest targets, for the campaigns
    /// of `cargo xtask fuzz` whose figures go to `fuzz/RESULTS.md`.
    Campaign,
    /// `--dev` (the fuzz workspace's dev profile: unoptimised but for the crypto): a cold build
    /// in a fraction of the time, slower targets; for `cargo xtask test`, whose 30 s per target
    /// check that the committed corpus and a short run find nothing.
    Smoke,
}

impl Profile {
    /// `cargo fuzz build`'s arguments for it.
    fn build_args(self) -> &'static [&'static str] {
        match self {
            Profile::Campaign => &["fuzz", "build", "-s", "none"],
            Profile::Smoke => &["fuzz", "build", "-s", "none", "--dev"],
        }
    }

    /// Cargo's output directory for it.
    fn dir(self) -> &'static str {
        match self {
            Profile::Campaign => "release",
            Profile::Smoke => "debug",
        }
    }
}

/// Where `cargo fuzz build` puts the target binaries.
fn binary(root: &Path, profile: Profile, target: &str) -> PathBuf {
    fuzz_dir(root)
        .join("target/x86_64-unknown-linux-gnu")
        .join(profile.dir())
        .join(target)
}

/// `cargo +nightly ...` through rustup's proxy, not the stable cargo that runs xtask, with
/// the fuzz crate's own target directory.
fn nightly_cargo(root: &Path, args: &[&str]) -> Step {
    let mut full = vec!["+nightly"];
    full.extend(args);
    Step::new("cargo", &full, &fuzz_dir(root))
        .env("CARGO_TARGET_DIR", fuzz_dir(root).join("target"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO")
}

/// Installs cargo-fuzz when missing, then builds every target (and the seeder).
pub fn build(root: &Path, profile: Profile) -> Result<Duration> {
    let started = Instant::now();
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nightly {
        bail!("the fuzz targets need the nightly toolchain (`rustup toolchain install nightly`)");
    }
    let has_cargo_fuzz = nightly_cargo(root, &["fuzz", "--version"])
        .quiet()
        .run()
        .is_ok_and(|captured| captured.success);
    if !has_cargo_fuzz {
        let installed = Step::new(
            "cargo",
            &["install", "cargo-fuzz", "--version", "0.13.2", "--locked"],
            root,
        )
        .env_remove("CARGO_TARGET_DIR")
        .run()?;
        if !installed.success {
            bail!("installing cargo-fuzz {}", installed.status_text());
        }
    }
    let built = nightly_cargo(root, profile.build_args()).run()?;
    if !built.success {
        bail!("`cargo fuzz build` {}", built.status_text());
    }
    Ok(started.elapsed())
}

/// Runs `target` for `seconds` on the committed corpus, its log in `fuzz/target/logs/`.
pub fn run_target(root: &Path, profile: Profile, target: &str, seconds: u64) -> Result<TargetRun> {
    let fuzz = fuzz_dir(root);
    let work = fuzz.join("target/corpus").join(target);
    let seeds = fuzz.join("corpus").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    let logs = fuzz.join("target/logs");
    for dir in [&work, &seeds, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let status = Command::new(binary(root, profile, target))
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&work)
        .arg(&seeds)
        .current_dir(&fuzz)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {}", binary(root, profile, target).display()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut run = parse_libfuzzer(text.lines());
    if !status.success() && run.ok() {
        // Ended badly without libFuzzer saying why (killed, a panic in the setup): a crash.
        run.crashes += 1;
    }
    if run.hangs > 0 {
        if let Some(artifact) = run.artifact.clone() {
            match replay(root, profile, target, Path::new(&artifact), &logs)? {
                Replay::Hang => {}
                Replay::Crash => {
                    run.hangs -= 1;
                    run.crashes += 1;
                }
                Replay::Fine => {
                    run.hangs -= 1;
                    run.timeouts_not_reproduced += 1;
                }
            }
        }
    }
    Ok(run)
}

/// What an input did when run again on its own.
#[derive(Debug, PartialEq, Eq)]
enum Replay {
    /// It went over the timeout again.
    Hang,
    /// It crashed (libFuzzer's timer also fires while a panic's backtrace is printed).
    Crash,
    /// It finished within the timeout, three times.
    Fine,
}

/// Runs `artifact` alone through `target`, up to three times, with the same limits.
fn replay(
    root: &Path,
    profile: Profile,
    target: &str,
    artifact: &Path,
    logs: &Path,
) -> Result<Replay> {
    for attempt in 1..=3 {
        let log_path = logs.join(format!("{target}.replay-{attempt}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let status = Command::new(binary(root, profile, target))
            .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
            .arg(format!("-timeout={TIMEOUT_SECS}"))
            .arg(artifact)
            .current_dir(fuzz_dir(root))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("replaying {}", artifact.display()))?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("ERROR: libFuzzer: timeout") {
            return Ok(Replay::Hang);
        }
        if !status.success() {
            return Ok(Replay::Crash);
        }
    }
    Ok(Replay::Fine)
}

/// Runs `targets` for `seconds` each, `jobs` at a time, calling `done` as each one ends (in
/// the order they end). A target that could not be started is passed as its error.
pub fn run_many(
    root: &Path,
    profile: Profile,
    targets: &[&'static str],
    seconds: u64,
    jobs: usize,
    mut done: impl FnMut(&'static str, Result<TargetRun>),
) {
    let queue = std::sync::Mutex::new(targets.iter().copied());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, targets.len().max(1)) {
            let sender = sender.clone();
            let queue = &queue;
            scope.spawn(move || {
                loop {
                    let next = queue.lock().map_or(None, |mut q| q.next());
                    let Some(target) = next else { break };
                    let result = run_target(root, profile, target, seconds);
                    if sender.send((target, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for (target, result) in receiver {
            done(target, result);
        }
    });
}

/// Runs the selected targets and prints a line per target; returns whether all were clean.
pub fn run(root: &Path, options: &Options) -> Result<bool> {
    if !options.no_build {
        let build_time = build(root, Profile::Campaign)?;
        println!(
            "xtask: fuzz targets built in {:.1} s",
            build_time.as_secs_f64()
        );
    }
    if options.seed {
        return seed(root);
    }
    let mut all_ok = true;
    let mut failure = None;
    let started = Instant::now();
    let commit = crate::fuzz_results::commit(root);
    println!(
        "{:<20} {:>12} {:>8} {:>6} {:>9}  result",
        "target", "executions", "crashes", "hangs", "peak RSS"
    );
    run_many(
        root,
        Profile::Campaign,
        &options.targets,
        options.seconds,
        options.jobs,
        |target, result| match result {
            Ok(run) => {
                all_ok &= run.ok();
                println!("{}", summary_line(target, &run));
                if options.record {
                    let row = crate::fuzz_results::Row {
                        date: crate::fuzz_results::now_utc(),
                        commit: commit.clone(),
                        target: target.to_owned(),
                        seconds: options.seconds,
                        run,
                    };
                    if let Err(err) = crate::fuzz_results::record(root, row) {
                        println!("xtask: {err:#}");
                        all_ok = false;
                    }
                }
            }
            Err(err) => {
                println!("{target}: {err:#}");
                all_ok = false;
                failure.get_or_insert(err);
            }
        },
    );
    println!(
        "xtask: {} targets × {} s, {} at a time, in {:.1} s (logs in fuzz/target/logs/{})",
        options.targets.len(),
        options.seconds,
        options.jobs,
        started.elapsed().as_secs_f64(),
        if options.record {
            ", figures added to fuzz/RESULTS.md"
        } else {
            ""
        }
    );
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(all_ok)
}

/// One line of the table.
pub fn summary_line(target: &str, run: &TargetRun) -> String {
    let mut line = format!(
        "{:<20} {:>12} {:>8} {:>6} {:>6} MiB  {}",
        target,
        run.executions,
        run.crashes,
        run.hangs,
        run.peak_rss_mb,
        if run.ok() { "ok" } else { "FAILED" }
    );
    if run.out_of_memory > 0 {
        line.push_str(&format!(" (over {RSS_LIMIT_MB} MiB)"));
    }
    if run.timeouts_not_reproduced > 0 {
        line.push_str(&format!(
            " ({} timeout(s) under load that ran within {TIMEOUT_SECS} s alone, 3 times)",
            run.timeouts_not_reproduced
        ));
    }
    if let Some(artifact) = &run.artifact {
        line.push_str(&format!(" input: {artifact}"));
    }
    line
}

/// Rewrites `fuzz/corpus`: the seeder writes the test suites' messages, then libFuzzer's
/// merge keeps, per target, only the inputs that add coverage (what `cargo fuzz cmin` does).
fn seed(root: &Path) -> Result<bool> {
    let fuzz = fuzz_dir(root);
    let raw = fuzz.join("target/seeds");
    let _ = std::fs::remove_dir_all(&raw);
    std::fs::create_dir_all(&raw)?;
    let recording = fuzz.join("target/ctaphid-recording");
    let _ = std::fs::remove_dir_all(&recording);
    std::fs::create_dir_all(&recording)?;
    record_python_fido2(root, &recording)?;
    let status = Command::new(binary(root, Profile::Campaign, "seed"))
        .arg("-runs=0")
        .env("PASSGATE_FUZZ_SEEDS", &raw)
        .env("PASSGATE_CTAPHID_RECORD", &recording)
        .current_dir(&fuzz)
        .status()
        .context("running the seeder")?;
    if !status.success() {
        bail!("the seeder failed");
    }
    for target in TARGETS {
        let committed = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&committed)?;
        let merged = fuzz.join("target/merged").join(target);
        let _ = std::fs::remove_dir_all(&merged);
        std::fs::create_dir_all(&merged)?;
        // Inputs kept from earlier findings (`fuzz/regressions/TARGET`) are offered too.
        let regressions = fuzz.join("regressions").join(target);
        let status = Command::new(binary(root, Profile::Campaign, target))
            .arg("-merge=1")
            .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
            .arg(format!("-timeout={TIMEOUT_SECS}"))
            .arg(&merged)
            .arg(&committed)
            .arg(raw.join(target))
            .args(regressions.is_dir().then_some(&regressions))
            .current_dir(&fuzz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("minimising the corpus of {target}"))?;
        if !status.success() {
            bail!("minimising the corpus of {target} failed");
        }
        std::fs::remove_dir_all(&committed)?;
        std::fs::rename(&merged, &committed)?;
        let (files, bytes) = dir_size(&committed)?;
        println!("{target:<20} {files:>5} inputs, {bytes:>8} bytes");
    }
    Ok(true)
}

/// The python interop tests that speak CTAP to the authenticator (python-fido2 as the
/// client), whose traffic seeds the CTAP and CTAPHID targets besides our conformance suite's.
pub const PYTHON_FIDO2_TESTS: &[&str] = &[
    "test_get_info.py",
    "test_registration.py",
    "test_authentication.py",
    "test_client_pin.py",
    "test_credential_management.py",
    "test_large_blobs_and_config.py",
    "test_prf.py",
    "test_algorithms.py",
    "test_errors.py",
];

/// Runs [`PYTHON_FIDO2_TESTS`] against a debug `passgate` with their CTAPHID reports recorded
/// into `recording` (see `ctap-tests/python/helpers.py`). A failing test only loses its
/// traffic: the seeds are what was sent, not a verdict.
fn record_python_fido2(root: &Path, recording: &Path) -> Result<()> {
    crate::deps::ensure_venv(root)?;
    println!("$ cargo build -p passgate --bin passgate");
    let built = Command::new(crate::cargo())
        .args(["build", "-p", "passgate", "--bin", "passgate"])
        .current_dir(root)
        .status()
        .context("building passgate")?;
    if !built.success() {
        bail!("cargo build -p passgate failed");
    }
    let binary = crate::target_dir(root)?.join("debug/passgate");
    let tests = root.join("ctap-tests/python");
    let status = Command::new(crate::deps::venv_python(root))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(PYTHON_FIDO2_TESTS)
        .env("PASSGATE_BIN", &binary)
        .env("PASSGATE_CTAPHID_RECORD", recording)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&tests)
        .stdout(Stdio::null())
        .status()
        .context("running the python interop tests")?;
    if !status.success() {
        println!("xtask: some python interop tests failed ({status}); their traffic is kept");
    }
    Ok(())
}

fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files += 1;
        bytes += entry.metadata()?.len();
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        let all = parse_args(&[]).unwrap();
        assert_eq!(all.seconds, 30);
        assert_eq!(all.targets, TARGETS);
        let some = parse_args(&strings(&["--time", "5", "--only=cose_key,ctap_command"])).unwrap();
        assert_eq!(some.seconds, 5);
        assert_eq!(some.targets, vec!["ctap_command", "cose_key"]);
        assert!(parse_args(&strings(&["--seed"])).unwrap().seed);
        assert!(parse_args(&strings(&["--no-build"])).unwrap().no_build);
        assert_eq!(parse_args(&strings(&["--jobs", "2"])).unwrap().jobs, 2);
        assert!(all.record);
        assert!(!parse_args(&strings(&["--no-record"])).unwrap().record);
        assert!(parse_args(&strings(&["--jobs", "0"])).is_err());
        assert!(parse_args(&strings(&["--time", "0"])).is_err());
        assert!(parse_args(&strings(&["--time"])).is_err());
        assert!(parse_args(&strings(&["--only", "nope"])).is_err());
        assert!(parse_args(&strings(&["--fast"])).is_err());
    }

    #[test]
    fn the_ci_time_per_target_fits_the_budget() {
        // 12 targets, 2 at a time: 6 rounds.
        assert_eq!(ci_seconds(Duration::from_secs(420), 12, 2), 30);
        assert_eq!(ci_seconds(Duration::from_secs(600), 12, 2), 20);
        assert_eq!(ci_seconds(Duration::from_secs(900), 12, 2), 10);
        assert_eq!(ci_seconds(Duration::from_secs(600), 12, 1), 10);
        assert_eq!(ci_seconds(Duration::from_secs(60), 1, 2), 30);
    }

    #[test]
    fn a_clean_run_is_read_from_the_final_stats() {
        let log = "\
#2097152\tpulse  cov: 812 ft: 2301 corp: 120/9Kb exec/s: 69905 rss: 61Mb
Done 2115316 runs in 31 second(s)
stat::number_of_executed_units: 2115316
stat::average_exec_per_sec:     68236
stat::new_units_added:          4
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              63";
        let run = parse_libfuzzer(log.lines());
        assert_eq!(run.executions, 2_115_316);
        assert_eq!(run.peak_rss_mb, 63);
        assert!(run.ok(), "{run:?}");
        assert!(summary_line("cose_key", &run).ends_with("ok"));
    }

    #[test]
    fn crashes_hangs_and_memory_fail_the_run() {
        let crash = "\
thread '<unnamed>' panicked at fuzz_targets/cose_key.rs:20:5:
==1234== ERROR: libFuzzer: deadly signal
artifact_prefix='fuzz/artifacts/cose_key/'; Test unit written to fuzz/artifacts/cose_key/crash-0a1b
stat::number_of_executed_units: 1000
stat::peak_rss_mb:              40";
        let run = parse_libfuzzer(crash.lines());
        assert_eq!(run.crashes, 1);
        assert_eq!(
            run.artifact.as_deref(),
            Some("fuzz/artifacts/cose_key/crash-0a1b")
        );
        assert!(!run.ok());
        assert!(summary_line("cose_key", &run).contains("FAILED"));
        let hang = parse_libfuzzer(["==9== ERROR: libFuzzer: timeout after 1 seconds"]);
        assert_eq!(hang.hangs, 1);
        assert!(!hang.ok());
        let oom = parse_libfuzzer([
            "==9== ERROR: libFuzzer: out-of-memory (used: 300Mb; exceeds: 256Mb)",
        ]);
        assert_eq!(oom.out_of_memory, 1);
        assert!(!oom.ok());
        let big = parse_libfuzzer(["stat::peak_rss_mb: 300"]);
        assert!(!big.ok());
    }
}
