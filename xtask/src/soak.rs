//! `cargo xtask soak`: the long-running checks that do not fit in `cargo xtask test`.
//!
//! - `--minutes N` (default 60): builds `passgate` and runs `ctap-tests/soak/demo_soak.py`: one
//!   `passgate demo` driven by scripted sign-ups and sign-ins (the RP's HTTP API, the local
//!   bridge, the scripted pinentry) for N minutes while its RSS and open descriptors are
//!   sampled every 30 s; it fails when either grows. The series goes to
//!   `target/soak/demo-soak.json`.
//! - `--minutes N --sign-in-only`: the same demo on a fixed set of 20 accounts, signing in
//!   only (with a passkey rename every 50 sign-ins): nothing is added, so RSS and descriptors
//!   must stay flat; it reports and bounds the slope of RSS per 1,000 sign-ins. The series goes
//!   to `target/soak/demo-soak-sign-in.json`.
//! - `--pace R` (with either): at most R sign-ins a second on average, so a soak on a shared
//!   machine leaves the other work its CPU. Both phases sample RSS in its parts (anonymous:
//!   heap, stacks; file-backed: the mapped binary) and report slopes per 1,000 sign-ins after
//!   the warm-up and over the last 30 minutes, each with whether it is within noise of zero.
//! - `--postgres`: PostgreSQL killed and restarted under load on two `passgate rp` instances,
//!   then 10,000 ceremonies across both (`ctap-tests/python/test_rp_postgres_outage.py` with
//!   `PASSGATE_PG_CEREMONIES=10000`; the python-interop suite runs it with 2,000).

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};

/// What `soak` was asked to run.
enum Soak {
    Demo {
        minutes: String,
        sign_in_only: bool,
        pace: Option<String>,
    },
    Postgres,
}

fn parse(args: &[String]) -> Result<Soak> {
    let mut minutes = String::from("60");
    let mut postgres = false;
    let mut sign_in_only = false;
    let mut pace = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix("--minutes=") {
            value.clone_into(&mut minutes);
        } else if arg == "--minutes" {
            minutes.clone_from(iter.next().context("--minutes needs a value, e.g. 60")?);
        } else if arg == "--postgres" {
            postgres = true;
        } else if let Some(value) = arg.strip_prefix("--pace=") {
            pace = Some(value.to_owned());
        } else if arg == "--pace" {
            pace = Some(
                iter.next()
                    .context("--pace needs a value, e.g. 2.5")?
                    .clone(),
            );
        } else if arg == "--sign-in-only" {
            sign_in_only = true;
        } else {
            bail!(
                "unknown argument `{arg}` for `soak` (expected --minutes N, --sign-in-only, --pace R or --postgres)"
            );
        }
    }
    if postgres {
        return Ok(Soak::Postgres);
    }
    let parsed: f64 = minutes
        .parse()
        .with_context(|| format!("--minutes {minutes:?} is not a number"))?;
    if parsed.is_nan() || parsed <= 0.0 {
        bail!("--minutes must be positive");
    }
    if let Some(value) = &pace {
        let rate: f64 = value
            .parse()
            .with_context(|| format!("--pace {value:?} is not a number"))?;
        if rate.is_nan() || rate <= 0.0 {
            bail!("--pace must be positive");
        }
    }
    Ok(Soak::Demo {
        minutes,
        sign_in_only,
        pace,
    })
}

/// Parses the arguments and runs the soak they name.
pub fn run(root: &Path, target_dir: &Path, args: &[String]) -> Result<ExitCode> {
    let soak = parse(args)?;
    crate::deps::ensure_venv(root)?;
    let built = Command::new(crate::cargo())
        .args(["build", "-p", "passgate", "--bin", "passgate"])
        .current_dir(root)
        .status()
        .context("building passgate")?;
    if !built.success() {
        bail!("cargo build -p passgate failed");
    }
    let binary = target_dir.join("debug/passgate");
    let status = match soak {
        Soak::Demo {
            minutes,
            sign_in_only,
            pace,
        } => {
            let out_dir = target_dir.join("soak");
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            let (phase, file) = if sign_in_only {
                ("sign-in", "demo-soak-sign-in.json")
            } else {
                ("mixed", "demo-soak.json")
            };
            let json = out_dir.join(file);
            let mut soak = Command::new(crate::deps::venv_python(root));
            soak.arg(root.join("ctap-tests/soak/demo_soak.py"))
                .arg("--binary")
                .arg(&binary)
                .args(["--minutes", &minutes, "--phase", phase, "--json"])
                .arg(&json)
                .current_dir(root);
            if let Some(pace) = &pace {
                soak.args(["--pace", pace]);
            }
            let status = soak
                .status()
                .context("running ctap-tests/soak/demo_soak.py")?;
            println!("series: {}", json.display());
            status
        }
        Soak::Postgres => {
            let mut installer = crate::deps::AptInstaller::new();
            crate::deps::ensure_apt_packages(&mut installer, &["postgresql"])?;
            Command::new(crate::deps::venv_python(root))
                .args(["-m", "pytest", "-s", "-v", "-p", "no:cacheprovider"])
                .arg(root.join("ctap-tests/python/test_rp_postgres_outage.py"))
                .env("PASSGATE_BIN", &binary)
                .env("PASSGATE_PG_CEREMONIES", "10000")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .current_dir(root.join("ctap-tests/python"))
                .status()
                .context("running test_rp_postgres_outage.py")?
        }
    };
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn soak_arguments() {
        assert!(
            matches!(parse(&args(&[])), Ok(Soak::Demo { minutes, sign_in_only: false, pace: None }) if minutes == "60")
        );
        assert!(
            matches!(parse(&args(&["--minutes", "5"])), Ok(Soak::Demo { minutes, .. }) if minutes == "5")
        );
        assert!(
            matches!(parse(&args(&["--minutes=0.5"])), Ok(Soak::Demo { minutes, .. }) if minutes == "0.5")
        );
        assert!(matches!(
            parse(&args(&["--sign-in-only", "--minutes", "30"])),
            Ok(Soak::Demo { minutes, sign_in_only: true, pace: None }) if minutes == "30"
        ));
        assert!(matches!(
            parse(&args(&["--sign-in-only", "--pace", "2.5"])),
            Ok(Soak::Demo { sign_in_only: true, pace: Some(p), .. }) if p == "2.5"
        ));
        assert!(matches!(
            parse(&args(&["--pace=3"])),
            Ok(Soak::Demo { sign_in_only: false, pace: Some(p), .. }) if p == "3"
        ));
        assert!(matches!(parse(&args(&["--postgres"])), Ok(Soak::Postgres)));
        for bad in [
            &["--minutes", "0"][..],
            &["--minutes", "x"],
            &["--minutes"],
            &["--pace"],
            &["--pace", "0"],
            &["--pace", "-1"],
            &["--pace", "fast"],
            &["--bogus"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
