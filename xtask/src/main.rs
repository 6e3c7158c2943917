//! Project automation for passgate.
//!
//! `cargo xtask test` is the one command that runs every test suite on a fresh Debian machine:
//! it installs the Debian packages it needs (only when missing), keeps a Python virtual
//! environment with the pinned interop-test dependencies at `.venv/`, and then runs formatting,
//! clippy, the Rust tests, the `passgate` build and the python-fido2 interop tests. It prints one
//! line per suite and a final line `N passed, N failed`, and exits non-zero if anything failed.
//!
//! ```text
//! cargo xtask test                      # everything
//! cargo xtask test --only lint          # fmt + clippy
//! cargo xtask test --only rust,python   # Rust tests, then build + python interop
//! cargo xtask setup                     # only install packages and the venv
//! ```

mod bench;
mod deps;
mod parse;
mod run;
mod tauri;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::parse::{TestCounts, cargo_test_counts, pytest_counts};
use crate::run::{Captured, Step};

/// The suites `cargo xtask test` knows, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// `cargo fmt --all -- --check`.
    Fmt,
    /// `cargo clippy --workspace --all-targets -- -D warnings`.
    Clippy,
    /// `cargo test --workspace`.
    Rust,
    /// `cargo build --bin passgate`.
    Build,
    /// `pytest ctap-tests/python` against the freshly built binary.
    Python,
    /// `npm test` in `relying-party/browser/` and `web-demo/`: headless Chromium through
    /// Playwright against the binary.
    Browser,
    /// The Tauri plugin's tests and the example app in a real WebKitGTK webview.
    Tauri,
}

impl Suite {
    const ALL: [Self; 7] = [
        Self::Fmt,
        Self::Clippy,
        Self::Rust,
        Self::Build,
        Self::Python,
        Self::Browser,
        Self::Tauri,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Fmt => "fmt",
            Self::Clippy => "clippy",
            Self::Rust => "rust-tests",
            Self::Build => "build",
            Self::Python => "python-interop",
            Self::Browser => "browser",
            Self::Tauri => "tauri",
        }
    }

    /// Parses one `--only` item; groups expand to several suites.
    fn parse_selector(selector: &str) -> Result<Vec<Self>> {
        Ok(match selector {
            "fmt" => vec![Self::Fmt],
            "clippy" => vec![Self::Clippy],
            "lint" => vec![Self::Fmt, Self::Clippy],
            "rust" | "rust-tests" | "cargo-test" | "unit" => vec![Self::Rust],
            "build" => vec![Self::Build],
            // The interop tests drive the binary, so they always build it first.
            "python" | "python-interop" | "interop" => vec![Self::Build, Self::Python],
            "browser" | "chromium" => vec![Self::Build, Self::Browser],
            "tauri" => vec![Self::Build, Self::Tauri],
            "all" => Self::ALL.to_vec(),
            other => bail!(
                "unknown suite `{other}`; expected one of: fmt, clippy, lint, rust, build, python, browser, tauri, all"
            ),
        })
    }
}

/// The outcome of one suite.
#[derive(Debug)]
struct SuiteResult {
    suite: Suite,
    ok: bool,
    /// Test counts, for suites that run tests.
    counts: Option<TestCounts>,
    /// A short human explanation (why it failed, what was counted).
    note: String,
}

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--only SUITES]   install what is missing, then run the suites (default: all)
                         SUITES is a comma-separated list of:
                           fmt, clippy, lint (= fmt,clippy), rust, build,
                           python (= build,python), browser (= build,browser),
                           tauri (= build,tauri), all
  setup                  only install the Debian packages and the Python venv
  bench                  run the criterion benchmarks and print each target as a ratio
                         against its peer measured in the same run
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
            let suites = parse_test_args(args.get(1..).unwrap_or_default())?;
            test(&root, &suites)
        }
        Some("bench") => {
            let target = target_dir(&root)?;
            bench::run(&root, &target)
        }
        Some("setup") => {
            let mut installer = deps::AptInstaller::new();
            deps::ensure_apt_packages(&mut installer)?;
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

/// Parses the arguments of `test` into the ordered, deduplicated list of suites to run.
fn parse_test_args(args: &[String]) -> Result<Vec<Suite>> {
    let mut selected: Vec<Suite> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
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
            selected.extend(Suite::parse_selector(selector)?);
        }
    }
    if selected.is_empty() {
        return Ok(Suite::ALL.to_vec());
    }
    Ok(Suite::ALL
        .into_iter()
        .filter(|suite| selected.contains(suite))
        .collect())
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

fn test(root: &Path, suites: &[Suite]) -> Result<ExitCode> {
    let names: Vec<&str> = suites.iter().map(|s| s.name()).collect();
    println!("xtask: running suites: {}", names.join(", "));

    // Install first, so a missing package fails the run before minutes of compiling.
    let mut setup_error: Option<String> = None;
    if suites.contains(&Suite::Python)
        || suites.contains(&Suite::Browser)
        || suites.contains(&Suite::Tauri)
    {
        let mut installer = deps::AptInstaller::new();
        if let Err(err) =
            deps::ensure_apt_packages(&mut installer).and_then(|()| deps::ensure_venv(root))
        {
            eprintln!("xtask: setup failed: {err:#}");
            setup_error = Some(format!("{err:#}"));
        }
    }

    let mut results: Vec<SuiteResult> = Vec::new();
    let mut binary: Option<PathBuf> = None;
    for &suite in suites {
        run::banner(suite.name());
        let result = match suite {
            Suite::Fmt => check_suite(suite, root, &["fmt", "--all", "--", "--check"]),
            Suite::Clippy => {
                let mut args = vec!["clippy", "--workspace", "--all-targets", "--all-features"];
                args.extend(locked_flag());
                args.extend(["--", "-D", "warnings"]);
                check_suite(suite, root, &args)
            }
            Suite::Rust => rust_tests(root),
            Suite::Build => {
                let (result, built) = build(root);
                binary = built;
                result
            }
            Suite::Python => python(root, binary.as_deref(), setup_error.as_deref()),
            Suite::Browser => browser(root, binary.as_deref(), setup_error.as_deref()),
            Suite::Tauri => tauri_suite(root, binary.as_deref(), setup_error.as_deref()),
        };
        results.push(result);
    }

    Ok(summarise(&results))
}

/// Runs a cargo sub-command whose only outcome is success or failure.
fn check_suite(suite: Suite, root: &Path, args: &[&str]) -> SuiteResult {
    match Step::new(&cargo(), args, root).run() {
        Ok(captured) if captured.success => SuiteResult {
            suite,
            ok: true,
            counts: None,
            note: String::new(),
        },
        Ok(captured) => SuiteResult {
            suite,
            ok: false,
            counts: None,
            note: format!("`cargo {}` {}", args.join(" "), captured.status_text()),
        },
        Err(err) => SuiteResult {
            suite,
            ok: false,
            counts: None,
            note: format!("could not run cargo: {err:#}"),
        },
    }
}

fn rust_tests(root: &Path) -> SuiteResult {
    // --all-features: the TPM key store and its swtpm tests are part of every run.
    // --no-fail-fast: one failing test binary must not hide the results of the others.
    let mut args = vec!["test", "--workspace", "--all-features", "--no-fail-fast"];
    args.extend(locked_flag());
    let captured = match Step::new(&cargo(), &args, root).run() {
        Ok(captured) => captured,
        Err(err) => {
            return SuiteResult {
                suite: Suite::Rust,
                ok: false,
                counts: None,
                note: format!("could not run cargo: {err:#}"),
            };
        }
    };
    let counts = cargo_test_counts(captured.lines());
    let ok = captured.success && counts.failed == 0;
    let note = if ok {
        String::new()
    } else if counts.failed == 0 {
        format!(
            "`cargo test` {} without a failing test result (compile error?)",
            captured.status_text()
        )
    } else {
        format!("{} test(s) failed", counts.failed)
    };
    SuiteResult {
        suite: Suite::Rust,
        ok,
        counts: Some(counts),
        note,
    }
}

/// Builds the `passgate` binary and returns its path when the build succeeded.
fn build(root: &Path) -> (SuiteResult, Option<PathBuf>) {
    let mut args = vec!["build", "--bin", "passgate", "--all-features"];
    args.extend(locked_flag());
    let outcome = Step::new(&cargo(), &args, root).run().and_then(|captured| {
        if !captured.success {
            bail!("`cargo build --bin passgate` {}", captured.status_text());
        }
        let binary = target_dir(root)?.join("debug").join("passgate");
        if !binary.is_file() {
            bail!(
                "the build succeeded but {} does not exist",
                binary.display()
            );
        }
        Ok(binary)
    });
    match outcome {
        Ok(binary) => (
            SuiteResult {
                suite: Suite::Build,
                ok: true,
                counts: None,
                note: binary.display().to_string(),
            },
            Some(binary),
        ),
        Err(err) => (
            SuiteResult {
                suite: Suite::Build,
                ok: false,
                counts: None,
                note: format!("{err:#}"),
            },
            None,
        ),
    }
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

fn python(root: &Path, binary: Option<&Path>, setup_error: Option<&str>) -> SuiteResult {
    let fail = |note: String| SuiteResult {
        suite: Suite::Python,
        ok: false,
        counts: None,
        note,
    };
    if let Some(err) = setup_error {
        return fail(format!("not run: setup failed: {err}"));
    }
    let Some(binary) = binary else {
        return fail("not run: the passgate binary was not built".to_owned());
    };
    let python = deps::venv_python(root);
    let tests_dir = root.join("ctap-tests").join("python");
    let tests_arg = tests_dir.to_string_lossy().into_owned();
    let args = [
        "-m",
        "pytest",
        tests_arg.as_str(),
        "-v",
        "-ra",
        "-p",
        "no:cacheprovider",
    ];
    let python_str = python.to_string_lossy().into_owned();
    let captured: Captured = match Step::new(&python_str, &args, root)
        .env("PASSGATE_BIN", binary.as_os_str())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .run()
    {
        Ok(captured) => captured,
        Err(err) => return fail(format!("could not run pytest: {err:#}")),
    };
    let Some(counts) = pytest_counts(captured.lines()) else {
        return fail(format!(
            "pytest {} and printed no summary line",
            captured.status_text()
        ));
    };
    let mut notes = Vec::new();
    if counts.skipped > 0 {
        notes.push(format!(
            "{} test(s) skipped: every interop test must run",
            counts.skipped
        ));
    }
    if counts.passed == 0 && counts.failed == 0 {
        notes.push("no tests ran".to_owned());
    }
    if !captured.success {
        notes.push(format!("pytest {}", captured.status_text()));
    }
    let ok = captured.success && counts.failed == 0 && counts.skipped == 0 && counts.passed > 0;
    SuiteResult {
        suite: Suite::Python,
        ok,
        counts: Some(TestCounts {
            passed: counts.passed,
            // A skipped interop test hides a missing feature: count it as a failure.
            failed: counts.failed.saturating_add(counts.skipped),
        }),
        note: notes.join("; "),
    }
}

/// The npm projects whose `npm test` runs headless Chromium against the built binary.
const BROWSER_TEST_DIRS: &[&str] = &["relying-party/browser", "web-demo"];

/// For each of [`BROWSER_TEST_DIRS`] that exists: `npm ci` (when `node_modules` is missing or
/// older than the lockfile) and `npm test`; the tests print TAP, whose `# pass N` / `# fail N`
/// lines are counted and summed.
fn browser(root: &Path, binary: Option<&Path>, setup_error: Option<&str>) -> SuiteResult {
    let fail = |note: String| SuiteResult {
        suite: Suite::Browser,
        ok: false,
        counts: None,
        note,
    };
    if let Some(err) = setup_error {
        return fail(format!("not run: setup failed: {err}"));
    }
    let Some(binary) = binary else {
        return fail("not run: the passgate binary was not built".to_owned());
    };
    let mut total = TestCounts::default();
    let mut notes = Vec::new();
    let mut ok = true;
    for dir in BROWSER_TEST_DIRS {
        let dir_path = root.join(dir);
        if !dir_path.join("package.json").exists() {
            continue;
        }
        match npm_test(&dir_path, binary) {
            Ok((counts, success)) => {
                total.add(counts);
                if !success || counts.failed > 0 {
                    ok = false;
                    notes.push(format!("{dir}: npm test failed"));
                }
            }
            Err(note) => {
                ok = false;
                total.failed = total.failed.saturating_add(1);
                notes.push(format!("{dir}: {note}"));
            }
        }
    }
    if total.passed == 0 {
        ok = false;
        notes.push("no browser tests ran".to_owned());
    }
    SuiteResult {
        suite: Suite::Browser,
        ok,
        counts: Some(total),
        note: notes.join("; "),
    }
}

/// `npm ci` when needed, then `npm test --silent` with `PASSGATE_BIN`; the TAP totals and
/// whether npm succeeded.
fn npm_test(dir: &Path, binary: &Path) -> std::result::Result<(TestCounts, bool), String> {
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules").join(".package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => installed < lock,
        _ => true,
    };
    if stale {
        match Step::new("npm", &["ci", "--no-audit", "--no-fund"], dir).run() {
            Ok(c) if c.success => {}
            Ok(c) => return Err(format!("`npm ci` {}", c.status_text())),
            Err(err) => return Err(format!("could not run npm: {err:#}")),
        }
    }
    let captured = Step::new("npm", &["test", "--silent"], dir)
        .env("PASSGATE_BIN", binary.as_os_str())
        .run()
        .map_err(|err| format!("could not run npm test: {err:#}"))?;
    let counts = parse::tap_counts(captured.lines()).ok_or_else(|| {
        format!(
            "npm test {} and printed no TAP summary",
            captured.status_text()
        )
    })?;
    Ok((counts, captured.success))
}

/// The Tauri plugin and example app (see [`tauri`]).
fn tauri_suite(root: &Path, binary: Option<&Path>, setup_error: Option<&str>) -> SuiteResult {
    let fail = |note: String| SuiteResult {
        suite: Suite::Tauri,
        ok: false,
        counts: None,
        note,
    };
    if let Some(err) = setup_error {
        return fail(format!("not run: setup failed: {err}"));
    }
    let Some(binary) = binary else {
        return fail("not run: the passgate binary was not built".to_owned());
    };
    let outcome =
        target_dir(root).and_then(|target| tauri::run(root, binary, &target, &locked_flag()));
    match outcome {
        Ok((counts, notes)) => SuiteResult {
            suite: Suite::Tauri,
            ok: counts.failed == 0 && counts.passed > 0,
            counts: Some(counts),
            note: notes.join("; "),
        },
        Err(err) => fail(format!("{err:#}")),
    }
}

/// Prints one line per suite and the totals line; returns the process exit code.
fn summarise(results: &[SuiteResult]) -> ExitCode {
    let mut total = TestCounts::default();
    println!();
    println!("==================== summary ====================");
    for result in results {
        let mut line = format!(
            "{:<15} {}",
            result.suite.name(),
            if result.ok { "ok" } else { "FAILED" }
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
    println!("{} passed, {} failed", total.passed, total.failed);
    if results.iter().all(|r| r.ok) {
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

    #[test]
    fn no_arguments_select_every_suite_in_order() {
        assert_eq!(parse_test_args(&[]).unwrap(), Suite::ALL.to_vec());
    }

    #[test]
    fn only_lint_selects_fmt_and_clippy() {
        assert_eq!(
            parse_test_args(&strings(&["--only", "lint"])).unwrap(),
            vec![Suite::Fmt, Suite::Clippy]
        );
    }

    #[test]
    fn only_python_builds_first_and_order_is_canonical() {
        assert_eq!(
            parse_test_args(&strings(&["--only=python,fmt"])).unwrap(),
            vec![Suite::Fmt, Suite::Build, Suite::Python]
        );
    }

    #[test]
    fn unknown_suite_and_argument_are_errors() {
        assert!(parse_test_args(&strings(&["--only", "nope"])).is_err());
        assert!(parse_test_args(&strings(&["--fast"])).is_err());
        assert!(parse_test_args(&strings(&["--only"])).is_err());
    }
}
