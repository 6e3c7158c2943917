//! `cargo xtask vm-test`: passgate as a HID security key under a real Linux kernel.
//!
//! This machine has no `/dev/uhid`, so the test boots Debian's own kernel under QEMU (TCG:
//! KVM guests hang on some hosts; `PASSGATE_VM_ACCEL=kvm` tries KVM) with a busybox initramfs
//! that loads the virtio, 9p, hid, hid-generic and uhid modules, mounts the host's root
//! read-only over 9p and `chroot`s into it. So the guest runs the very `passgate`, libfido2,
//! OpenSSH and python binaries of the host, against `passgate authenticator serve --transport
//! uhid` on a fresh state directory on tmpfs. `xtask/vm/guest.sh` holds the checks; each writes
//! one `ok NAME` or `FAIL NAME: why` line to a results file on a second, writable 9p share,
//! which this module counts.
//!
//! The guest then runs python-fido2's own device suite (`tests/device` of the sdist that the
//! `device-suite` suite runs over TCP, see `crate::device_suite`) over hidraw, through
//! python-fido2's Linux backend, in two pytest sessions (the files that need fprintd, then the
//! rest: starting python is slow under emulation), each writing its output to
//! `device-suite/{fprintd,others}.txt` on the results share. Its tests count here like the
//! checks; a session that printed no pytest summary counts as one failure.
//!
//! The initramfs is cached under `target/vm/` by a hash of its inputs (the busybox binary, the
//! modules, the init script), so only the first run builds it.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::device_suite;
use crate::parse::{TestCounts, pytest_counts};

/// Kernel modules the guest loads, in dependency order (no modprobe in the initramfs).
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "hid",
    "hid-generic",
    "uhid",
];

/// How long the whole guest run may take before QEMU is killed. Measured on 2 cores at a load
/// average of 20: the checks and the device suite 33 min (the checks alone took 125 s on an
/// idle machine and 6-9 min at that load); the whole `cargo xtask test` must fit in CI's
/// 45 min on 2 idle cores.
const GUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// The checks `xtask/vm/guest.sh` reports; one missing from the results counts as failed.
pub const EXPECTED_CHECKS: &[&str] = &[
    "uhid-device-appears",
    "fido2-token-list",
    "fido2-token-info",
    "fido2-token-set-pin",
    "fido2-cred-make-resident-uv",
    "fido2-cred-verify-attestation",
    "fido2-assert-get-uv",
    "fido2-assert-verify",
    "fido2-token-list-credentials",
    "fido2-token-delete",
    "python-fido2-hidraw",
    "ssh-keygen-ecdsa-sk-resident",
    "ssh-login-with-sk-key",
    "install-user-unit",
    "udev-rules-tag-uaccess",
    "uhid-device-removed-on-exit",
    "conformance-over-hidraw",
];

/// The busybox `/init` of the guest: modules, the host's root over 9p, then the checks.
const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do
    insmod "/modules/$m.ko" || echo "VMTEST insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /mnt || echo "VMTEST no hostroot"
mount -t proc proc /mnt/proc
mount -t sysfs sys /mnt/sys
mount -t devtmpfs dev /mnt/dev
mkdir -p /mnt/dev/pts /mnt/dev/shm
mount -t devpts devpts /mnt/dev/pts
mount -t tmpfs shm /mnt/dev/shm
mount -t tmpfs tmp /mnt/tmp
mount -t tmpfs run /mnt/run
mkdir -p /mnt/tmp/results
mount -t 9p -o trans=virtio,version=9p2000.L results /mnt/tmp/results || echo "VMTEST no results share"
ip link set lo up
echo "VMTEST booted"
chroot /mnt /bin/sh /tmp/results/run.sh
echo "VMTEST guest finished"
sync
poweroff -f
"#;

/// Runs the VM test with the `passgate` binary at `binary`; the counts of passed and failed
/// checks, and a note when something went wrong outside the checks.
pub fn run(root: &Path, target: &Path, binary: &Path) -> Result<(TestCounts, String)> {
    let sdist = device_suite::ensure_sdist(root, &target.join("device-suite"))?;
    // The guest runs the suite in two pytest sessions (see guest.sh): the files that need
    // fprintd, then the rest; each leaves one output.
    let files = device_suite::test_files(&sdist)?;
    let mut sessions = Vec::new();
    if files
        .iter()
        .any(|f| device_suite::FPRINTD_FILES.contains(&f.as_str()))
    {
        sessions.push("fprintd".to_owned());
    }
    sessions.push("others".to_owned());
    let guest_script = root.join("xtask").join("vm").join("guest.sh");
    // The guest sees the host's root at /, so the host's paths work unchanged.
    let command = format!(
        "/bin/bash {} {} {} {} {} '{}'",
        shell_quote(&guest_script),
        shell_quote(binary),
        shell_quote(root),
        shell_quote(&crate::deps::venv_python(root)),
        shell_quote(&sdist),
        device_suite::FPRINTD_FILES.join(" "),
    );
    let guest = boot(
        target,
        "results",
        &command,
        &["device-suite"],
        GUEST_TIMEOUT,
    )?;
    let results = &guest.results;
    let results_text = fs::read_to_string(results.join("results.txt")).unwrap_or_default();
    let (mut counts, mut notes) = count_results(&results_text);
    let suite = count_device_suite(&sessions, |name| {
        fs::read_to_string(results.join("device-suite").join(format!("{name}.txt"))).ok()
    });
    println!(
        "xtask: vm-test: python-fido2's device suite over hidraw: {} passed, {} failed, {}",
        suite.counts.passed,
        suite.counts.failed,
        suite.note()
    );
    counts.add(suite.counts);
    counts.failed = counts
        .failed
        .saturating_add(u64::try_from(suite.broken_files.len()).unwrap_or(u64::MAX));
    if !suite.ok() {
        notes.push(format!(
            "device suite over hidraw: {} passed, {} failed, {} (outputs in {})",
            suite.counts.passed,
            suite.counts.failed,
            suite.note(),
            results.join("device-suite").display()
        ));
    }
    notes.extend(guest.problems);
    Ok((counts, notes.join("; ")))
}

/// What a guest run left behind.
pub struct GuestRun {
    /// The results share: what the guest wrote under `/tmp/results`.
    pub results: PathBuf,
    /// Whatever went wrong outside the guest's own results (no boot, a timeout).
    pub problems: Vec<String>,
}

/// Boots the guest, which runs `command` (a shell command line, chrooted into the host's
/// root, its output in `/tmp/results/guest.log`) and powers off. The results share is
/// `target/vm/RESULTS` (emptied first, then `subdirs` created in it), so that guests of
/// different jobs do not share one. Waits at most `timeout`.
pub fn boot(
    target: &Path,
    results: &str,
    command: &str,
    subdirs: &[&str],
    timeout: Duration,
) -> Result<GuestRun> {
    let work = target.join("vm");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let (kernel, release) = newest_kernel()?;
    let started = Instant::now();
    let initramfs = initramfs(&work, &release)?;
    println!(
        "xtask: vm: kernel {}, initramfs {} ({} ms to prepare)",
        kernel.display(),
        initramfs.display(),
        started.elapsed().as_millis()
    );
    let results = work.join(results);
    if results.exists() {
        fs::remove_dir_all(&results).with_context(|| format!("clearing {}", results.display()))?;
    }
    fs::create_dir_all(&results)?;
    for dir in subdirs {
        fs::create_dir_all(results.join(dir))?;
    }
    let run_script = format!("#!/bin/sh\nexec {command} > /tmp/results/guest.log 2>&1\n");
    fs::write(results.join("run.sh"), run_script)?;

    let accel = std::env::var("PASSGATE_VM_ACCEL").unwrap_or_else(|_| "tcg".to_owned());
    let append = "console=ttyS0 panic=-1 quiet loglevel=3";
    let hostroot =
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap";
    let results_share = format!(
        "local,path={},mount_tag=results,security_model=none,multidevs=remap",
        results.display()
    );
    let console_log = results.with_extension("console.log");
    let console = fs::File::create(&console_log)?;
    let mut qemu = Command::new("qemu-system-x86_64");
    // Two vCPUs: the client writing reports and passgate reading them run at once, as on a
    // desktop (the kernel's uhid queue holds 32 events and drops what overflows it).
    qemu.args(["-accel", &accel, "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initramfs)
        .args(["-append", append])
        .args(["-virtfs", hostroot])
        .args(["-virtfs", &results_share])
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    println!(
        "xtask: vm: booting the guest ({accel}); console in {}",
        console_log.display()
    );
    let boot = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-x86_64")?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if boot.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let elapsed = boot.elapsed();
    let console_text = fs::read_to_string(&console_log).unwrap_or_default();
    let guest_log = fs::read_to_string(results.join("guest.log")).unwrap_or_default();
    println!("---- guest log ----\n{guest_log}---- end of guest log ----");
    println!("xtask: vm: guest ran {} s", elapsed.as_secs());
    let mut problems = Vec::new();
    if status.is_none() {
        problems.push(format!(
            "the guest did not finish within {} s (console: {})",
            timeout.as_secs(),
            console_log.display()
        ));
    }
    if !console_text.contains("VMTEST booted") {
        problems.push(format!(
            "the guest did not boot: {}",
            console_text
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    Ok(GuestRun { results, problems })
}

/// Counts `ok NAME` and `FAIL NAME: why` lines; every expected check that reported nothing
/// counts as failed, and so does a result reported twice.
pub fn count_results(text: &str) -> (TestCounts, Vec<String>) {
    let mut counts = TestCounts::default();
    let mut notes = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for line in text.lines() {
        let (name, ok) = if let Some(name) = line.strip_prefix("ok ") {
            (name.trim(), true)
        } else if let Some(rest) = line.strip_prefix("FAIL ") {
            (rest.split(':').next().unwrap_or(rest).trim(), false)
        } else {
            continue;
        };
        if seen.contains(&name) {
            counts.failed = counts.failed.saturating_add(1);
            notes.push(format!("{name} reported twice"));
            continue;
        }
        seen.push(name);
        if ok {
            counts.passed = counts.passed.saturating_add(1);
        } else {
            counts.failed = counts.failed.saturating_add(1);
            notes.push(line.to_owned());
        }
    }
    for expected in EXPECTED_CHECKS {
        if !seen.contains(expected) {
            counts.failed = counts.failed.saturating_add(1);
            notes.push(format!("{expected} did not report"));
        }
    }
    (counts, notes)
}

/// Sums the pytest summaries of the device suite's sessions; `output(NAME)` is the pytest
/// output of session `NAME`. A session with no output or no summary is broken.
pub fn count_device_suite(
    files: &[String],
    output: impl Fn(&str) -> Option<String>,
) -> device_suite::Outcome {
    let mut outcome = device_suite::Outcome {
        counts: TestCounts::default(),
        skipped: 0,
        broken_files: Vec::new(),
    };
    for name in files {
        match output(name)
            .as_deref()
            .and_then(|text| pytest_counts(text.lines()))
        {
            Some(counts) => {
                outcome.counts.add(TestCounts {
                    passed: counts.passed,
                    failed: counts.failed,
                });
                outcome.skipped = outcome.skipped.saturating_add(counts.skipped);
            }
            None => outcome.broken_files.push(name.clone()),
        }
    }
    outcome
}

/// `path` quoted for a POSIX shell.
pub fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The newest `/boot/vmlinuz-*` that has its modules under `/lib/modules`.
fn newest_kernel() -> Result<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = fs::read_dir("/boot")
        .context("reading /boot")?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let release = name.strip_prefix("vmlinuz-")?.to_owned();
            Path::new("/lib/modules")
                .join(&release)
                .is_dir()
                .then(|| (entry.path(), release))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
        .pop()
        .context("no /boot/vmlinuz-* with modules: install linux-image-amd64")
}

/// Finds `NAME.ko` under `dir`.
fn find_module(dir: &Path, name: &str) -> Option<PathBuf> {
    let file = format!("{name}.ko");
    for entry in fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_module(&path, name) {
                return Some(found);
            }
        } else if entry.file_name().to_string_lossy() == file {
            return Some(path);
        }
    }
    None
}

/// Builds (or reuses) the initramfs for kernel `release`; returns its path.
fn initramfs(work: &Path, release: &str) -> Result<PathBuf> {
    let busybox = Path::new("/bin/busybox");
    let busybox_bytes =
        fs::read(busybox).context("reading /bin/busybox: install busybox-static")?;
    let modules_dir = Path::new("/lib/modules").join(release).join("kernel");
    let builtin = fs::read_to_string(
        Path::new("/lib/modules")
            .join(release)
            .join("modules.builtin"),
    )
    .unwrap_or_default();
    let mut hasher = DefaultHasher::new();
    INIT_SCRIPT.hash(&mut hasher);
    busybox_bytes.hash(&mut hasher);
    let mut modules = Vec::new();
    for name in MODULES {
        match find_module(&modules_dir, name) {
            Some(path) => {
                let bytes = fs::read(&path)?;
                bytes.hash(&mut hasher);
                modules.push((*name, bytes));
            }
            None if builtin.lines().any(|l| {
                l.ends_with(&format!("/{name}.ko"))
                    || l.ends_with(&format!("/{}.ko", name.replace('-', "_")))
            }) =>
            {
                // Built into this kernel: nothing to load.
            }
            None => bail!(
                "kernel module {name}.ko not found under {}",
                modules_dir.display()
            ),
        }
    }
    let out = work.join(format!("initramfs-{:016x}.cpio", hasher.finish()));
    if out.is_file() {
        return Ok(out);
    }
    let staging = work.join("initramfs-staging");
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    for dir in ["bin", "dev", "proc", "sys", "mnt", "modules"] {
        fs::create_dir_all(staging.join(dir))?;
    }
    write_executable(&staging.join("bin").join("busybox"), &busybox_bytes)?;
    write_executable(&staging.join("init"), INIT_SCRIPT.as_bytes())?;
    let mut order = String::new();
    for (name, bytes) in &modules {
        fs::write(staging.join("modules").join(format!("{name}.ko")), bytes)?;
        order.push_str(name);
        order.push('\n');
    }
    fs::write(staging.join("modules.order"), order)?;
    // busybox cpio builds the newc archive the kernel unpacks.
    let mut list = String::new();
    for entry in walk(&staging)? {
        let relative = entry.strip_prefix(&staging)?;
        list.push_str(&relative.display().to_string());
        list.push('\n');
    }
    let partial = out.with_extension("partial");
    let archive = fs::File::create(&partial)?;
    let mut cpio = Command::new(busybox)
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&staging)
        .stdin(Stdio::piped())
        .stdout(archive)
        .stderr(Stdio::null())
        .spawn()
        .context("running busybox cpio")?;
    cpio.stdin
        .take()
        .context("cpio's stdin")?
        .write_all(list.as_bytes())?;
    let status = cpio.wait()?;
    if !status.success() {
        bail!("busybox cpio failed: {status}");
    }
    fs::rename(&partial, &out)?;
    fs::remove_dir_all(&staging)?;
    Ok(out)
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Every path under `dir` (directories before their contents).
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        out.push(path.clone());
        if path.is_dir() {
            out.extend(walk(&path)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expected_check_must_pass_once() {
        let expected = u64::try_from(EXPECTED_CHECKS.len()).unwrap();
        let all: String = EXPECTED_CHECKS
            .iter()
            .map(|c| format!("ok {c}\n"))
            .collect();
        let (counts, notes) = count_results(&all);
        assert_eq!((counts.passed, counts.failed), (expected, 0), "{notes:?}");
        let (counts, notes) = count_results("ok fido2-token-list\nFAIL fido2-token-info: no\n");
        assert_eq!(counts.passed, 1);
        assert_eq!(counts.failed, expected - 1);
        assert!(
            notes.iter().any(|n| n == "FAIL fido2-token-info: no"),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n == "ssh-login-with-sk-key did not report")
        );
        let (counts, _) = count_results("ok fido2-token-list\nok fido2-token-list\n");
        assert_eq!(counts.passed, 1);
        assert_eq!(counts.failed, expected);
    }

    #[test]
    fn the_device_suite_sums_pytest_summaries_and_flags_files_without_one() {
        let files: Vec<String> = ["test_a", "test_b", "test_c", "test_d"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let outcome = count_device_suite(&files, |name| match name {
            "test_a" => Some("x\n===== 5 passed, 2 skipped in 3.10s =====\n".to_owned()),
            "test_b" => Some("== 1 failed, 4 passed, 1 error in 9.00s ==".to_owned()),
            "test_c" => Some("Traceback: the plugin crashed\n".to_owned()),
            _ => None,
        });
        assert_eq!((outcome.counts.passed, outcome.counts.failed), (9, 2));
        assert_eq!(outcome.skipped, 2);
        assert_eq!(outcome.broken_files, ["test_c", "test_d"]);
        assert!(!outcome.ok());
        let clean = count_device_suite(&files[..1], |_| {
            Some("== 5 passed, 2 skipped in 3.10s ==".to_owned())
        });
        assert!(clean.ok());
    }
}
