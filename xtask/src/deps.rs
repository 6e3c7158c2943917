//! Installing what the test suites need: Debian packages (only when missing) and the Python
//! virtual environment with the pinned interop-test dependencies.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::run::{Step, probe};

/// A Debian package some suite needs.
#[derive(Debug)]
pub struct AptPackage {
    /// The package name.
    pub name: &'static str,
    /// Why it is needed (printed when it is installed).
    pub why: &'static str,
    /// A command that succeeds when the need is already met some other way (for example a
    /// Python built from source that has `venv` and `ensurepip`); `None` means only `dpkg`
    /// decides.
    pub satisfied_by: Option<&'static [&'static str]>,
}

/// Every Debian package a suite needs, each described once; a suite names the ones it needs in
/// its entry of [`crate::suites::SUITES`].
pub const APT_PACKAGES: &[AptPackage] = &[
    AptPackage {
        name: "python3",
        why: "runs the python-fido2 interop tests and the scripted pinentry of the bridge and browser tests",
        satisfied_by: Some(&["python3", "--version"]),
    },
    AptPackage {
        name: "python3-venv",
        why: "creates the .venv for the interop tests",
        satisfied_by: Some(&[
            "python3",
            "-c",
            "import venv, ensurepip; ensurepip.version()",
        ]),
    },
    AptPackage {
        name: "g++",
        why: "builds libFuzzer (C++) for the fuzz targets (libfuzzer-sys)",
        satisfied_by: Some(&["g++", "--version"]),
    },
    AptPackage {
        name: "libtss2-dev",
        why: "builds the TPM 2.0 key store (tss-esapi)",
        satisfied_by: None,
    },
    AptPackage {
        name: "pkg-config",
        why: "lets tss-esapi find libtss2 when building with --all-features",
        satisfied_by: Some(&["pkg-config", "--version"]),
    },
    AptPackage {
        name: "swtpm",
        why: "a software TPM 2.0 for the TPM key store tests",
        satisfied_by: None,
    },
    AptPackage {
        name: "swtpm-tools",
        why: "swtpm's setup tools",
        satisfied_by: None,
    },
    AptPackage {
        name: "tpm2-tools",
        why: "tpm2_dictionarylockout sets and reads the swtpm's dictionary-attack parameters in the TPM tests; tpm2_makecredential (software, -T none) is the privacy CA's side of credential activation in test_tpm_attestation.py",
        satisfied_by: None,
    },
    AptPackage {
        name: "dbus",
        why: "a private system bus for the fprintd tests",
        satisfied_by: None,
    },
    AptPackage {
        name: "fprintd",
        why: "the real fingerprint daemon, driven through libfprint's virtual device",
        satisfied_by: None,
    },
    AptPackage {
        name: "python3-dbusmock",
        why: "mocks polkit on the private system bus",
        satisfied_by: None,
    },
    AptPackage {
        name: "python3-gi",
        why: "GLib main loop for the fprintd enrolment helper",
        satisfied_by: None,
    },
    AptPackage {
        name: "postgresql",
        why: "the relying party's PostgreSQL storage tests (a private cluster under /tmp)",
        satisfied_by: None,
    },
    AptPackage {
        name: "libwebkit2gtk-4.1-dev",
        why: "builds the Tauri example against WebKitGTK",
        satisfied_by: None,
    },
    AptPackage {
        name: "webkit2gtk-driver",
        why: "WebKitWebDriver, through which tauri-driver drives the Tauri example's webview",
        satisfied_by: None,
    },
    AptPackage {
        name: "xvfb",
        why: "a display for the Tauri example's window",
        satisfied_by: None,
    },
    AptPackage {
        name: "chromium",
        why: "headless Chromium for the browser tests",
        satisfied_by: None,
    },
    AptPackage {
        name: "nodejs",
        why: "runs the Playwright browser tests and the SimpleWebAuthn peer",
        satisfied_by: Some(&["node", "--version"]),
    },
    AptPackage {
        name: "qemu-system-x86",
        why: "boots a real Linux kernel for the uhid tests (cargo xtask vm-test)",
        satisfied_by: None,
    },
    AptPackage {
        name: "linux-image-amd64",
        why: "the guest kernel and its uhid, hid-generic and 9p modules for the uhid tests",
        satisfied_by: None,
    },
    AptPackage {
        name: "busybox-static",
        why: "the uhid test guest's initramfs",
        satisfied_by: None,
    },
    AptPackage {
        name: "udev",
        why: "udevd in the uhid test guest: libfido2 lists only hidraw nodes udev has recorded",
        satisfied_by: None,
    },
    AptPackage {
        name: "fido2-tools",
        why: "libfido2's fido2-token, fido2-cred and fido2-assert drive passgate over hidraw in the VM",
        satisfied_by: None,
    },
    AptPackage {
        name: "openssh-server",
        why: "sshd in the VM, logged into with an ecdsa-sk key made on passgate over hidraw",
        satisfied_by: None,
    },
    AptPackage {
        name: "npm",
        why: "installs the browser tests' pinned packages (npm ci)",
        satisfied_by: Some(&["npm", "--version"]),
    },
];

/// Installs packages with apt-get, running `apt-get update` once before the first install.
#[derive(Debug, Default)]
pub struct AptInstaller {
    updated: bool,
    /// Set when installing in the background: apt's output goes to this file.
    log: Option<PathBuf>,
}

impl AptInstaller {
    /// A fresh installer that has not run `apt-get update` yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An installer for the background, its output appended to `log`.
    pub fn in_background(log: &Path) -> Self {
        Self {
            updated: false,
            log: Some(log.to_path_buf()),
        }
    }

    /// Installs `packages` (all at once).
    pub fn install(&mut self, packages: &[&str]) -> Result<()> {
        if packages.is_empty() {
            return Ok(());
        }
        if !probe("apt-get", &["--version"]) {
            bail!(
                "missing packages {} and apt-get is not available: install them by hand",
                packages.join(" ")
            );
        }
        let sudo = if is_root() {
            None
        } else if probe("sudo", &["-n", "true"]) {
            Some("sudo")
        } else {
            bail!(
                "missing packages {} and not running as root (and no password-less sudo): \
                 run `apt-get install {}` as root",
                packages.join(" "),
                packages.join(" ")
            );
        };
        let run = |args: &[&str]| -> Result<()> {
            let (program, args) = match sudo {
                Some(sudo) => {
                    let mut all = vec!["apt-get"];
                    all.extend_from_slice(args);
                    (sudo, all)
                }
                None => ("apt-get", args.to_vec()),
            };
            let step =
                Step::new(program, &args, Path::new("/")).env("DEBIAN_FRONTEND", "noninteractive");
            let captured = background(step, self.log.as_deref()).run()?;
            if !captured.success {
                bail!("`apt-get {}` {}", args.join(" "), captured.status_text());
            }
            Ok(())
        };
        if !self.updated {
            run(&["update"])?;
            self.updated = true;
        }
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend_from_slice(packages);
        run(&args)
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Whether dpkg knows `package` as installed.
fn dpkg_installed(package: &str) -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).ends_with("install ok installed")
        })
}

/// Installs every package of `names` (described in [`APT_PACKAGES`]) that is neither installed
/// nor otherwise satisfied.
pub fn ensure_apt_packages(installer: &mut AptInstaller, names: &[&str]) -> Result<()> {
    let mut missing = Vec::new();
    for name in names {
        let Some(package) = APT_PACKAGES.iter().find(|p| p.name == *name) else {
            bail!("no Debian package {name} is described in APT_PACKAGES");
        };
        let satisfied = package
            .satisfied_by
            .and_then(|cmd| cmd.split_first())
            .is_some_and(|(program, args)| probe(program, args));
        if satisfied || dpkg_installed(package.name) {
            continue;
        }
        say(
            installer.log.as_deref(),
            &format!(
                "xtask: installing Debian package {} ({})",
                package.name, package.why
            ),
        );
        missing.push(package.name);
    }
    installer.install(&missing)
}

/// The interop tests' virtual environment.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join(".venv")
}

/// The venv's Python interpreter.
pub fn venv_python(root: &Path) -> PathBuf {
    venv_dir(root).join("bin").join("python")
}

/// The pinned requirements of the interop tests.
fn requirements_file(root: &Path) -> PathBuf {
    root.join("ctap-tests")
        .join("python")
        .join("requirements.txt")
}

/// Records which requirements (and which interpreter) the venv was installed from.
fn stamp_file(root: &Path) -> PathBuf {
    venv_dir(root).join(".passgate-requirements.stamp")
}

/// A step as it is, or run in the background with its output in `log`.
fn background(step: Step, log: Option<&Path>) -> Step {
    match log {
        Some(log) => step.in_background(log),
        None => step,
    }
}

/// Prints `text`, or appends it to `log` for a background setup.
fn say(log: Option<&Path>, text: &str) {
    match log {
        Some(log) => {
            use std::io::Write as _;
            if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(file, "{text}");
            }
        }
        None => println!("{text}"),
    }
}

/// Creates `.venv` if needed and installs the pinned requirements when they changed since the
/// last install (compared with a stamp file inside the venv).
pub fn ensure_venv(root: &Path) -> Result<()> {
    ensure_venv_logged(root, None)
}

/// [`ensure_venv`], with the output in `log` when it is set (a background setup).
pub fn ensure_venv_logged(root: &Path, log: Option<&Path>) -> Result<()> {
    let venv = venv_dir(root);
    let python = venv_python(root);
    if venv.exists() && !probe(&python.to_string_lossy(), &["-c", "import sys"]) {
        say(
            log,
            &format!(
                "xtask: {} is broken (no working interpreter), recreating it",
                venv.display()
            ),
        );
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    if !venv.exists() {
        let venv_arg = venv.to_string_lossy().into_owned();
        let created =
            background(Step::new("python3", &["-m", "venv", &venv_arg], root), log).run()?;
        if !created.success {
            // Do not leave a half-made venv behind: the next run would think it exists.
            let _ = fs::remove_dir_all(&venv);
            bail!(
                "`python3 -m venv {}` {} (is python3-venv installed?)",
                venv.display(),
                created.status_text()
            );
        }
    }

    let requirements_path = requirements_file(root);
    let requirements = fs::read_to_string(&requirements_path)
        .with_context(|| format!("reading {}", requirements_path.display()))?;
    let interpreter = std::process::Command::new(&python)
        .args(["-c", "import sys; print(sys.version)"])
        .output()
        .context("asking the venv's python for its version")?;
    let wanted_stamp = format!(
        "python {}\n{}",
        String::from_utf8_lossy(&interpreter.stdout).trim(),
        requirements
    );
    let stamp = stamp_file(root);
    if fs::read_to_string(&stamp).is_ok_and(|current| current == wanted_stamp) {
        say(log, &format!("xtask: {} is up to date", venv.display()));
        return Ok(());
    }

    let python_str = python.to_string_lossy().into_owned();
    let requirements_arg = requirements_path.to_string_lossy().into_owned();
    let installed = background(
        Step::new(
            &python_str,
            &[
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "-r",
                &requirements_arg,
            ],
            root,
        ),
        log,
    )
    .run()?;
    if !installed.success {
        bail!(
            "installing {} into {} {}",
            requirements_path.display(),
            venv.display(),
            installed.status_text()
        );
    }
    fs::write(&stamp, wanted_stamp).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// Whether `node_modules` in `dir` is missing or older than the lockfile.
pub fn npm_is_stale(dir: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&dir.join("package-lock.json")),
        modified(&dir.join("node_modules").join(".package-lock.json")),
    ) {
        (Some(lock), Some(installed)) => installed < lock,
        _ => true,
    }
}
