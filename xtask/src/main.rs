//! Project automation for passgate.
//!
//! `cargo xtask test` is the one command that runs every test suite on a fresh Debian machine:
//! for the suites it runs, it installs the Debian packages they need (only when missing) and
//! keeps a Python virtual environment with the pinned interop-test dependencies at `.venv/`;
//! then it runs them (formatting, clippy, the Rust tests, the `passgate` build, the
//! python-fido2 interop tests, the headless Chromium tests, the cross-target checks of the
//! platform backends), prints each suite's wall time, a
//! table at the end and a final line `N passed, N failed`, and exits non-zero if anything
//! failed. The suites are the table in [`suites`].
//!
//! ```text
//! cargo xtask test                          # everything
//! cargo xtask test --only lint              # fmt + clippy
//! cargo xtask test --only rust,python       # Rust tests, then build + python interop
//! cargo xtask test --only rust -- ctap::    # only tests whose name contains `ctap::`
//! cargo xtask test --only cross             # the platform backends for macOS, iOS, Windows
//! cargo xtask setup                         # only install packages and the venv
//! ```

mod bench;
mod cross;
mod deps;
mod device_suite;
mod fuzz;
mod fuzz_results;
mod lints;
mod parse;
mod run;
mod soak;
mod suites;
mod tauri;
mod tpm_bench;
mod vm;
mod vm_bench;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::parse::TestCounts;
use crate::suites::{Context, SUITES, Suite, SuiteResult};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--only SUITES] [--filter TEXT | -- TEXT]
                         install what the selected suites need, then run them (default: all)
                         SUITES is a comma-separated list of:
                           fmt, clippy, lint (= fmt,clippy), rust, build,
                           python (= build,python), device (= build,device-suite:
                           python-fido2's own device suite), browser (= build,browser),
                           tauri (= build,tauri),
                           cross (check + clippy for macOS, iOS, Windows),
                           vm-test (= build,vm-test: passgate on uhid in a QEMU guest),
                           fuzz (every cargo-fuzz target, 30 s each), all
                         TEXT runs only the tests whose name contains it (cargo test's
                         filter, pytest -k, node --test-name-pattern)
  vm-test                the uhid VM test alone (= test --only vm-test)
  setup                  only install every suite's Debian packages and the Python venv
  fuzz [--time N] [--only TARGETS] [--jobs J] [--seed] [--no-build] [--no-record]
                         build the cargo-fuzz targets in fuzz/ (nightly) and run each for N
                         seconds (default 30), J at a time (default 1), within 256 MiB and
                         1 s per input; prints executions, crashes, hangs and peak RSS per
                         target, fails on any, and adds the figures to fuzz/RESULTS.md
                         (not with --no-record); --seed rewrites fuzz/corpus from the test
                         suites, minimised; --no-build runs the targets as last built
  bench [uhid|tpm]       run the criterion benchmarks and print each target as a ratio
                         against its peer measured in the same run (`uhid`: only the
                         getAssertion round trip over uhid vs TCP, in a QEMU guest; `tpm`:
                         only the TPM benchmarks on swtpm). With PASSGATE_BENCH_TSS_LIB=DIR
                         the TPM benchmarks run again against the tpm2-tss libraries in DIR
                         (same sonames, e.g. a private build of a newer release) and both
                         sets of figures are printed
  soak [--minutes N] [--sign-in-only]
                         one `passgate demo` driven by scripted sign-ups and sign-ins for
                         N minutes (default 60), RSS and open fds sampled every 30 s;
                         fails if either grows; --sign-in-only: 20 fixed accounts, sign-ins
                         and passkey renames only, RSS slope per 1,000 sign-ins bounded
  soak --postgres        PostgreSQL killed and restarted under load on two `passgate rp`
                         instances, then 10,000 ceremonies across both
  help                   this text
";

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root()?;
    match args.first().map(String::as_str) {
        Some("test") => {
            let selection = parse_test_args(args.get(1..).unwrap_or_default())?;
            test(&root, &selection)
        }
        Some("vm-test") => {
            let selection = parse_test_args(&["--only".to_owned(), "vm-test".to_owned()])?;
            test(&root, &selection)
        }
        Some("fuzz") => {
            let options = fuzz::parse_args(args.get(1..).unwrap_or_default())?;
            Ok(if fuzz::run(&root, &options)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some("bench") => {
            let target = target_dir(&root)?;
            match args.get(1).map(String::as_str) {
                None => bench::run(&root, &target),
                Some("uhid") => bench::run_uhid(&root, &target),
                Some("tpm") => tpm_bench::run(&root, &target),
                Some(other) => bail!("unknown benchmark set `{other}` (try `uhid` or `tpm`)"),
            }
        }
        Some("soak") => {
            let target = target_dir(&root)?;
            soak::run(&root, &target, args.get(1..).unwrap_or_default())
        }
        Some("setup") => {
            let mut installer = deps::AptInstaller::new();
            deps::ensure_apt_packages(&mut installer, &suites::packages_of(SUITES))?;
            deps::ensure_venv(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprint!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

/// What `cargo xtask test` was asked to run.
#[derive(Debug)]
struct Selection {
    /// The suites, in running order, each once.
    suites: Vec<&'static Suite>,
    /// Only tests whose name contains this.
    filter: Option<String>,
}

/// The suites one `--only` item names: a suite (with the suites it requires), a group, `all`.
fn parse_selector(selector: &str) -> Result<Vec<&'static Suite>> {
    if selector == "all" {
        return Ok(SUITES.iter().collect());
    }
    let names: Vec<&str> = match suites::GROUPS.iter().find(|(group, _)| *group == selector) {
        Some((_, members)) => members.to_vec(),
        None => vec![selector],
    };
    let mut selected = Vec::new();
    for name in names {
        let Some(suite) = suites::find(name) else {
            let mut known: Vec<&str> = SUITES.iter().map(|s| s.name).collect();
            known.extend(suites::GROUPS.iter().map(|(group, _)| *group));
            known.push("all");
            bail!(
                "unknown suite `{selector}`; expected one of: {}",
                known.join(", ")
            );
        };
        for required in suite.requires {
            selected.extend(suites::find(required));
        }
        selected.push(suite);
    }
    Ok(selected)
}

/// Parses the arguments of `test`.
fn parse_test_args(args: &[String]) -> Result<Selection> {
    let mut selected: Vec<&'static Suite> = Vec::new();
    let mut filter = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            let rest: Vec<&str> = iter.by_ref().map(String::as_str).collect();
            if rest.len() != 1 {
                bail!("`--` takes one test-name filter, got {rest:?}");
            }
            filter = rest.first().map(|f| (*f).to_owned());
            break;
        }
        if let Some(value) = arg.strip_prefix("--filter=") {
            filter = Some(value.to_owned());
            continue;
        }
        if arg == "--filter" {
            filter = Some(
                iter.next()
                    .context("--filter needs a value, e.g. `--filter ctap::`")?
                    .clone(),
            );
            continue;
        }
        let value = if let Some(value) = arg.strip_prefix("--only=") {
            value.to_owned()
        } else if arg == "--only" {
            iter.next()
                .context("--only needs a value, e.g. `--only lint`")?
                .clone()
        } else {
            bail!("unknown argument `{arg}` for `test`\n\n{USAGE}");
        };
        for selector in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            selected.extend(parse_selector(selector)?);
        }
    }
    if filter.as_deref().is_some_and(str::is_empty) {
        bail!("the test-name filter is empty");
    }
    let suites = if selected.is_empty() {
        SUITES
            .iter()
            .filter(|suite| !suites::OPT_IN.contains(&suite.name))
            .collect()
    } else {
        SUITES
            .iter()
            .filter(|suite| selected.iter().any(|s| s.name == suite.name))
            .collect()
    };
    Ok(Selection { suites, filter })
}

/// The workspace root: the parent of this crate's manifest directory.
fn repo_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .context("xtask's manifest directory has no parent")?;
    Ok(root.to_path_buf())
}

/// The cargo that invoked us (so the same toolchain is used), or `cargo` from `PATH`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// `--locked` on CI, where Cargo.lock must already be up to date.
fn locked_flag() -> Vec<&'static str> {
    let on_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if on_ci { vec!["--locked"] } else { Vec::new() }
}

/// Cargo's target directory, from `cargo metadata` (honours `CARGO_TARGET_DIR` and config).
fn target_dir(root: &Path) -> Result<PathBuf> {
    let output = std::process::Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let json = String::from_utf8_lossy(&output.stdout);
    parse::json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .context("cargo metadata output has no target_directory")
}

fn test(root: &Path, selection: &Selection) -> Result<ExitCode> {
    suites::check_table()?;
    let names: Vec<&str> = selection.suites.iter().map(|s| s.name).collect();
    println!("xtask: running suites: {}", names.join(", "));
    if let Some(filter) = &selection.filter {
        println!("xtask: only tests whose name contains `{filter}`");
    }

    // Install first what the suites up to the binary's build need, so a missing package fails
    // the run before minutes of compiling; what the later suites need (and the Python venv)
    // installs in the background meanwhile, and each later suite waits for it. Only the suites
    // whose needs could not be met are marked, the others still run.
    let started = Instant::now();
    let split = selection
        .suites
        .iter()
        .position(|s| s.name == "build")
        .map_or(0, |index| index + 1);
    let (early, late) = selection.suites.split_at(split);
    let mut installer = deps::AptInstaller::new();
    let early_apt_error =
        deps::ensure_apt_packages(&mut installer, &suites::packages_of(early.iter().copied()))
            .err()
            .map(|err| format!("{err:#}"));
    let early_venv_error = early
        .iter()
        .any(|s| s.venv)
        .then(|| deps::ensure_venv(root).err())
        .flatten()
        .map(|err| format!("{err:#}"));
    for err in early_apt_error.iter().chain(&early_venv_error) {
        eprintln!("xtask: setup failed: {err}");
    }
    let setup_time = started.elapsed();
    let mut late_setup = LateSetup::start(root, late)?;
    let mut ctx = Context {
        root,
        binary: None,
        setup_error: None,
        filter: selection.filter.as_deref(),
    };
    let mut results: Vec<(&Suite, SuiteResult)> = Vec::new();
    for (index, &suite) in selection.suites.iter().enumerate() {
        run::banner(suite.name);
        let (apt_error, venv_error) = if index < split {
            (early_apt_error.clone(), early_venv_error.clone())
        } else {
            late_setup.wait()
        };
        ctx.setup_error = if suite.venv {
            venv_error.or(apt_error)
        } else {
            apt_error.filter(|_| !suite.packages.is_empty())
        };
        let started = Instant::now();
        let mut result = (suite.run)(&mut ctx);
        result.elapsed = started.elapsed();
        println!(
            "xtask: {} {} in {}",
            suite.name,
            if result.ok { "passed" } else { "FAILED" },
            seconds(result.elapsed)
        );
        results.push((suite, result));
    }

    Ok(summarise(setup_time, &results))
}

/// How the background installation ended: why the packages, and why the venv, could not be
/// installed, and how long it took.
type LateOutcome = (Option<String>, Option<String>, Duration);

/// The installation of what the suites after the binary's build need, on its own thread.
struct LateSetup {
    running: Option<thread::JoinHandle<LateOutcome>>,
    log: PathBuf,
    /// Once waited for: why the packages, and why the venv, could not be installed.
    outcome: (Option<String>, Option<String>),
}

impl LateSetup {
    /// Starts installing the packages and (if one of `suites` needs it) the venv.
    fn start(root: &Path, suites: &[&'static Suite]) -> Result<Self> {
        let log = target_dir(root)?.join("xtask").join("background-setup.log");
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&log, b"").with_context(|| format!("creating {}", log.display()))?;
        let packages = suites::packages_of(suites.iter().copied());
        let venv = suites.iter().any(|s| s.venv);
        let running = (!packages.is_empty() || venv).then(|| {
            println!(
                "xtask: installing the later suites' needs in the background (log: {})",
                log.display()
            );
            let (root, log) = (root.to_path_buf(), log.clone());
            thread::spawn(move || {
                let started = Instant::now();
                let mut installer = deps::AptInstaller::in_background(&log);
                let apt = deps::ensure_apt_packages(&mut installer, &packages)
                    .err()
                    .map(|err| format!("{err:#}"));
                let venv = venv
                    .then(|| deps::ensure_venv_logged(&root, Some(&log)).err())
                    .flatten()
                    .map(|err| format!("{err:#}"));
                (apt, venv, started.elapsed())
            })
        });
        Ok(Self {
            running,
            log,
            outcome: (None, None),
        })
    }

    /// Waits for the installation (the first time) and returns why the packages, and why the
    /// venv, could not be installed.
    fn wait(&mut self) -> (Option<String>, Option<String>) {
        if let Some(running) = self.running.take() {
            let (apt, venv, took) = running.join().unwrap_or_else(|_| {
                let panicked = Some("the background setup panicked".to_owned());
                (panicked.clone(), panicked, Duration::ZERO)
            });
            self.outcome = (apt, venv);
            println!(
                "xtask: the background setup took {} (log: {})",
                seconds(took),
                self.log.display()
            );
            for err in self.outcome.0.iter().chain(&self.outcome.1) {
                eprintln!("xtask: setup failed: {err}");
            }
        }
        self.outcome.clone()
    }
}

/// `12.3 s`.
fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// The table of suites (result, wall time, counts, note), the total time and the totals line;
/// returns the process exit code.
fn summarise(setup_time: Duration, results: &[(&Suite, SuiteResult)]) -> ExitCode {
    let mut total = TestCounts::default();
    let mut time = setup_time;
    println!();
    println!("==================== summary ====================");
    println!(
        "{:<15} {:<6} {:>9}  tests, notes",
        "suite", "result", "time"
    );
    println!("{:<15} {:<6} {:>9}", "(setup)", "", seconds(setup_time));
    for (suite, result) in results {
        time = time.saturating_add(result.elapsed);
        let mut line = format!(
            "{:<15} {:<6} {:>9}",
            suite.name,
            if result.ok { "ok" } else { "FAILED" },
            seconds(result.elapsed)
        );
        if let Some(counts) = result.counts {
            line.push_str(&format!(
                "  ({} passed, {} failed)",
                counts.passed, counts.failed
            ));
            total.add(counts);
        }
        // A failed suite always shows up in the failed total, even when no individual test
        // failed (a compile error, a lint, a crash before the summary).
        if !result.ok && result.counts.is_none_or(|c| c.failed == 0) {
            total.failed = total.failed.saturating_add(1);
        }
        if !result.note.is_empty() {
            line.push_str(&format!("  {}", result.note));
        }
        println!("{line}");
    }
    println!("{:<15} {:<6} {:>9}", "total", "", seconds(time));
    println!("{} passed, {} failed", total.passed, total.failed);
    if results.iter().all(|(_, r)| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn names(selection: &Selection) -> Vec<&'static str> {
        selection.suites.iter().map(|s| s.name).collect()
    }

    #[test]
    fn no_arguments_select_every_suite_but_the_opt_in_ones_in_order() {
        let selection = parse_test_args(&[]).unwrap();
        assert_eq!(
            names(&selection),
            vec![
                "fmt",
                "clippy",
                "rust-tests",
                "build",
                "python-interop",
                "device-suite",
                "browser",
                "tauri",
                "cross-targets",
                "vm-test",
                "fuzz"
            ]
        );
        assert_eq!(selection.filter, None);
    }

    #[test]
    fn only_lint_selects_fmt_and_clippy() {
        let selection = parse_test_args(&strings(&["--only", "lint"])).unwrap();
        assert_eq!(names(&selection), vec!["fmt", "clippy"]);
    }

    #[test]
    fn only_python_builds_first_and_order_is_canonical() {
        let selection = parse_test_args(&strings(&["--only=python,fmt"])).unwrap();
        assert_eq!(names(&selection), vec!["fmt", "build", "python-interop"]);
    }

    #[test]
    fn the_filter_comes_after_a_double_dash_or_as_a_flag() {
        let selection = parse_test_args(&strings(&["--only", "rust", "--", "ctap::"])).unwrap();
        assert_eq!(names(&selection), vec!["rust-tests"]);
        assert_eq!(selection.filter.as_deref(), Some("ctap::"));
        let selection = parse_test_args(&strings(&["--filter", "pin", "--only=unit"])).unwrap();
        assert_eq!(names(&selection), vec!["rust-tests"]);
        assert_eq!(selection.filter.as_deref(), Some("pin"));
        let selection = parse_test_args(&strings(&["--filter=pin"])).unwrap();
        assert_eq!(selection.suites.len(), SUITES.len() - suites::OPT_IN.len());
        assert!(names(&selection).contains(&"fuzz"));
        assert_eq!(selection.filter.as_deref(), Some("pin"));
        let selection = parse_test_args(&strings(&["--only", "fuzz"])).unwrap();
        assert_eq!(names(&selection), vec!["fuzz"]);
        let selection = parse_test_args(&strings(&["--only", "all"])).unwrap();
        assert_eq!(selection.suites.len(), SUITES.len());
    }

    #[test]
    fn unknown_suite_and_argument_are_errors() {
        assert!(parse_test_args(&strings(&["--only", "nope"])).is_err());
        assert!(parse_test_args(&strings(&["--fast"])).is_err());
        assert!(parse_test_args(&strings(&["--only"])).is_err());
        assert!(parse_test_args(&strings(&["--filter"])).is_err());
        assert!(parse_test_args(&strings(&["--filter="])).is_err());
        assert!(parse_test_args(&strings(&["--", "a", "b"])).is_err());
        assert!(parse_test_args(&strings(&["--"])).is_err());
    }
}
