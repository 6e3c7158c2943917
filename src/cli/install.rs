//! `passgate install` / `passgate uninstall`: passgate as the desktop's security key.
//!
//! `install --user` writes a systemd user unit that starts `passgate authenticator serve
//! --transport uhid` at login, so browsers, OpenSSH and every libfido2 program see a FIDO HID
//! device, and prints the udev rules that let the user's group create it (`/dev/uhid`) and
//! open it (`/dev/hidrawN`, tagged `uaccess` like a USB security key); `--system` installs the
//! rules instead of printing them. `uninstall` removes both.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use passgate_authenticator::transport::uhid::{PRODUCT_ID, VENDOR_ID};

/// The systemd user unit's file name.
pub const UNIT_NAME: &str = "passgate-authenticator.service";
/// Where `--system` installs the udev rules.
pub const UDEV_RULES_PATH: &str = "/etc/udev/rules.d/70-passgate-uhid.rules";

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Install for the current user: a systemd user unit started at login.
    #[arg(long, required = true)]
    pub user: bool,
    /// Also install the udev rules (needs root); without it they are printed.
    #[arg(long)]
    pub system: bool,
    /// The group whose members may create virtual HID devices through /dev/uhid.
    #[arg(long, default_value = "passgate")]
    pub group: String,
    /// Write the unit but do not enable and start it with `systemctl --user`.
    #[arg(long)]
    pub no_start: bool,
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    /// Also remove the udev rules (needs root).
    #[arg(long)]
    pub system: bool,
}

/// The systemd user unit running `binary` on uhid with `--presence auto-detect`: a finger
/// enrolled in fprintd, else a GUI pinentry window, else the terminal. It belongs to the
/// graphical session (systemd.special(7)'s pattern for session services), so it starts once
/// the desktop has put `$DISPLAY`/`$WAYLAND_DISPLAY` in the user manager's environment, which
/// the pinentry window needs, and stops at logout.
pub fn user_unit(binary: &Path) -> String {
    format!(
        "\
[Unit]
Description=passgate: a FIDO security key on /dev/uhid for browsers, OpenSSH and libfido2
PartOf=graphical-session.target
After=graphical-session.target

[Service]
ExecStart={binary} authenticator serve --transport uhid --presence auto-detect
Restart=on-failure
RestartSec=2
UMask=0077
NoNewPrivileges=yes

[Install]
WantedBy=graphical-session.target
",
        binary = systemd_quote(&binary.display().to_string()),
    )
}

/// systemd's command-line quoting: a path with spaces or quotes is written in double quotes.
fn systemd_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The udev rules: `group` may open /dev/uhid, and passgate's hidraw node is handed to the
/// user at the seat (`uaccess`) like a USB security key.
pub fn udev_rules(group: &str) -> Result<String> {
    if group.is_empty()
        || !group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bail!("--group {group:?}: a group name is letters, digits, '_' and '-'");
    }
    // A HID device's kernel name is BUS:VENDOR:PRODUCT.N in upper-case hex; bus 0003 is USB.
    let hid = format!("0003:{VENDOR_ID:04X}:{PRODUCT_ID:04X}.*");
    Ok(format!(
        "\
# passgate (passgate install --user): members of {group} may create virtual HID devices.
# /dev/uhid can create ANY HID device, keyboards included: grant it only to trusted users.
KERNEL==\"uhid\", SUBSYSTEM==\"misc\", GROUP=\"{group}\", MODE=\"0660\", OPTIONS+=\"static_node=uhid\"
# passgate's security key is opened like a USB one: by the user at the seat.
KERNEL==\"hidraw*\", SUBSYSTEM==\"hidraw\", KERNELS==\"{hid}\", TAG+=\"uaccess\"
"
    ))
}

fn user_unit_path() -> Result<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(config.join("systemd").join("user").join(UNIT_NAME))
}

fn systemctl_user(args: &[&str]) -> Result<()> {
    let status = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .status()
        .context("running systemctl --user")?;
    if !status.success() {
        bail!("systemctl --user {} {status}", args.join(" "));
    }
    Ok(())
}

/// `passgate install --user [--system]`.
pub fn install(args: &InstallArgs) -> Result<()> {
    let rules = udev_rules(&args.group)?;
    let binary = std::env::current_exe().context("finding the passgate binary")?;
    let unit_path = user_unit_path()?;
    let unit_dir = unit_path.parent().context("unit path has no parent")?;
    std::fs::create_dir_all(unit_dir)
        .with_context(|| format!("creating {}", unit_dir.display()))?;
    passgate_authenticator::fs::write_atomic(
        &unit_path,
        user_unit(&binary).as_bytes(),
        &passgate_authenticator::fs::NoHook,
    )
    .with_context(|| format!("writing {}", unit_path.display()))?;
    println!("wrote {}", unit_path.display());
    if args.system {
        // udev rules are world-readable configuration, like the distribution's own.
        let options = passgate_authenticator::fs::WriteOptions {
            mode: 0o644,
            ..passgate_authenticator::fs::WriteOptions::default()
        };
        passgate_authenticator::fs::write_atomic_with(
            Path::new(UDEV_RULES_PATH),
            rules.as_bytes(),
            &options,
        )
        .with_context(|| format!("writing {UDEV_RULES_PATH} (run as root)"))?;
        println!("wrote {UDEV_RULES_PATH}");
        for reload in [
            &["control", "--reload"][..],
            &[
                "trigger",
                "--subsystem-match=misc",
                "--subsystem-match=hidraw",
            ][..],
        ] {
            if let Err(e) = Command::new("udevadm").args(reload).status() {
                eprintln!("warning: udevadm {}: {e}", reload.join(" "));
            }
        }
        println!(
            "add yourself to the group: groupadd -f {g} && usermod -aG {g} $USER (then log in again)",
            g = args.group
        );
    } else {
        println!(
            "\nThe uhid device needs these udev rules (as root, in {UDEV_RULES_PATH}, or run \
             `passgate install --user --system` as root):\n\n{rules}\nand membership of group {}.",
            args.group
        );
    }
    if args.no_start {
        println!("start it with: systemctl --user enable --now {UNIT_NAME}");
    } else if let Err(e) = systemctl_user(&["daemon-reload"])
        .and_then(|()| systemctl_user(&["enable", "--now", UNIT_NAME]))
    {
        eprintln!("warning: {e:#}; start it later with: systemctl --user enable --now {UNIT_NAME}");
    } else {
        println!("enabled and started {UNIT_NAME}");
    }
    Ok(())
}

/// `passgate uninstall [--system]`.
pub fn uninstall(args: &UninstallArgs) -> Result<()> {
    let unit_path = user_unit_path()?;
    if let Err(e) = systemctl_user(&["disable", "--now", UNIT_NAME]) {
        eprintln!("warning: {e:#}");
    }
    match std::fs::remove_file(&unit_path) {
        Ok(()) => println!("removed {}", unit_path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("{} was not installed", unit_path.display());
        }
        Err(e) => return Err(e).with_context(|| format!("removing {}", unit_path.display())),
    }
    let _ = systemctl_user(&["daemon-reload"]);
    if args.system {
        match std::fs::remove_file(UDEV_RULES_PATH) {
            Ok(()) => println!("removed {UDEV_RULES_PATH}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("{UDEV_RULES_PATH} was not installed");
            }
            Err(e) => return Err(e).with_context(|| format!("removing {UDEV_RULES_PATH}")),
        }
        let _ = Command::new("udevadm")
            .args(["control", "--reload"])
            .status();
    } else if Path::new(UDEV_RULES_PATH).exists() {
        println!(
            "the udev rules stay in {UDEV_RULES_PATH}: remove them with `passgate uninstall --system` as root"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_binary_on_uhid_in_the_graphical_session() {
        let unit = user_unit(Path::new("/home/ann/.cargo/bin/passgate"));
        assert!(unit.contains(
            "\nExecStart=/home/ann/.cargo/bin/passgate authenticator serve --transport uhid --presence auto-detect\n"
        ));
        assert!(unit.contains("\nWantedBy=graphical-session.target\n"));
        assert!(unit.contains("\nPartOf=graphical-session.target\n"));
        assert!(unit.contains("\nRestart=on-failure\n"));
        assert!(unit.contains("\nUMask=0077\n"));
        assert!(!unit.contains("--presence auto\n"), "never auto-approve");
        let spaced = user_unit(Path::new("/opt/my apps/passgate"));
        assert!(spaced.contains("ExecStart=\"/opt/my apps/passgate\" authenticator"));
    }

    #[test]
    fn the_rules_give_uhid_to_the_group_and_the_hidraw_node_to_the_seat() {
        let rules = udev_rules("passgate").unwrap();
        let lines: Vec<&str> = rules.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "KERNEL==\"uhid\", SUBSYSTEM==\"misc\", GROUP=\"passgate\", MODE=\"0660\", OPTIONS+=\"static_node=uhid\"",
                "KERNEL==\"hidraw*\", SUBSYSTEM==\"hidraw\", KERNELS==\"0003:1209:000A.*\", TAG+=\"uaccess\"",
            ]
        );
        assert!(
            rules.contains("keyboards included"),
            "the warning is part of the file"
        );
    }

    #[test]
    fn a_group_that_would_break_the_rules_file_is_refused() {
        for bad in ["", "a\"b", "wheel\nKERNEL==\"*\"", "a b"] {
            let err = udev_rules(bad).unwrap_err().to_string();
            assert!(err.contains("--group"), "{bad:?}: {err}");
        }
    }
}
