//! `--presence auto-detect`, the default of `authenticator serve --transport uhid`: a browser
//! user never sees the terminal passgate was started from (a systemd user unit has none), so
//! the prompt goes where the person is:
//!
//! 1. a finger enrolled in fprintd: the finger is presence and user verification, as on a
//!    security key with a fingerprint sensor (while the sensor cannot scan, the prompt below
//!    asks for presence instead);
//! 2. a graphical session (`$WAYLAND_DISPLAY` or `$DISPLAY`) and a GUI pinentry: a pinentry
//!    window (`--pinentry`/`$PASSGATE_PINENTRY` when given, else the first of
//!    [`GUI_PINENTRIES`] on `PATH`; plain `pinentry` may be the curses one, which has no
//!    terminal to draw on here);
//! 3. otherwise this terminal.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// GUI pinentry programs, in the order they are preferred.
pub const GUI_PINENTRIES: &[&str] = &[
    "pinentry-gnome3",
    "pinentry-qt",
    "pinentry-gtk-2",
    "pinentry-gtk2",
];

/// Where presence prompts go when no finger answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresencePrompt {
    /// A pinentry window: this program.
    Pinentry(PathBuf),
    /// The terminal passgate runs on.
    Terminal,
}

/// What `--presence auto-detect` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedPresence {
    /// Whether fprintd has a finger enrolled for the user: the finger is presence and UV.
    pub fingerprint: bool,
    /// Where presence is asked otherwise.
    pub prompt: PresencePrompt,
}

impl DetectedPresence {
    /// A line for the log and the person starting passgate.
    pub fn describe(&self) -> String {
        let prompt = match &self.prompt {
            PresencePrompt::Pinentry(program) => {
                format!("a pinentry window ({})", program.display())
            }
            PresencePrompt::Terminal => "this terminal".to_owned(),
        };
        if self.fingerprint {
            format!("presence and user verification: a fingerprint (fprintd), else {prompt}")
        } else {
            format!("presence: {prompt}")
        }
    }
}

/// What the machine offers, as [`detect`] reads it.
#[derive(Debug, Clone, Default)]
pub struct Desktop {
    /// `$WAYLAND_DISPLAY` or `$DISPLAY` is set and not empty.
    pub graphical: bool,
    /// `--pinentry` or `$PASSGATE_PINENTRY`: the person chose this program.
    pub chosen_pinentry: Option<PathBuf>,
    /// The first of [`GUI_PINENTRIES`] found on `PATH`.
    pub gui_pinentry: Option<PathBuf>,
    /// fprintd has a finger enrolled for the user.
    pub finger_enrolled: bool,
}

impl Desktop {
    /// Reads this process's environment and `PATH`; `finger_enrolled` comes from fprintd.
    pub fn probe(pinentry_flag: Option<&Path>, finger_enrolled: bool) -> Self {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            graphical: set("WAYLAND_DISPLAY").is_some() || set("DISPLAY").is_some(),
            chosen_pinentry: pinentry_flag
                .map(Path::to_path_buf)
                .or_else(|| set(passgate_bridge::prompt::pinentry::ENV_PROGRAM).map(PathBuf::from)),
            gui_pinentry: first_on_path(set("PATH"), GUI_PINENTRIES),
            finger_enrolled,
        }
    }
}

/// The choice `--presence auto-detect` makes on `desktop`.
pub fn detect(desktop: &Desktop) -> DetectedPresence {
    let window = desktop
        .chosen_pinentry
        .clone()
        .or_else(|| desktop.gui_pinentry.clone());
    let prompt = match window {
        Some(program) if desktop.graphical => PresencePrompt::Pinentry(program),
        _ => PresencePrompt::Terminal,
    };
    DetectedPresence {
        fingerprint: desktop.finger_enrolled,
        prompt,
    }
}

/// The first of `names` that is an executable file in a directory of `path`.
fn first_on_path(path: Option<OsString>, names: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = path?;
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    names.iter().find_map(|name| {
        dirs.iter().map(|dir| dir.join(name)).find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desktop(graphical: bool, chosen: Option<&str>, gui: Option<&str>, finger: bool) -> Desktop {
        Desktop {
            graphical,
            chosen_pinentry: chosen.map(PathBuf::from),
            gui_pinentry: gui.map(PathBuf::from),
            finger_enrolled: finger,
        }
    }

    #[test]
    fn a_finger_comes_first_and_the_prompt_still_backs_it() {
        let found = detect(&desktop(true, None, Some("/usr/bin/pinentry-qt"), true));
        assert!(found.fingerprint);
        assert_eq!(
            found.prompt,
            PresencePrompt::Pinentry(PathBuf::from("/usr/bin/pinentry-qt"))
        );
        assert_eq!(
            found.describe(),
            "presence and user verification: a fingerprint (fprintd), else a pinentry window (/usr/bin/pinentry-qt)"
        );
    }

    #[test]
    fn a_window_needs_a_graphical_session_and_a_gui_pinentry() {
        let gui = Some("/usr/bin/pinentry-gnome3");
        assert_eq!(
            detect(&desktop(true, None, gui, false)).prompt,
            PresencePrompt::Pinentry(PathBuf::from("/usr/bin/pinentry-gnome3"))
        );
        assert_eq!(
            detect(&desktop(false, None, gui, false)).prompt,
            PresencePrompt::Terminal
        );
        assert_eq!(
            detect(&desktop(true, None, None, false)).prompt,
            PresencePrompt::Terminal
        );
        // The person's own choice wins over the search, in a graphical session only.
        assert_eq!(
            detect(&desktop(true, Some("/opt/my-pinentry"), gui, false)).prompt,
            PresencePrompt::Pinentry(PathBuf::from("/opt/my-pinentry"))
        );
        assert_eq!(
            detect(&desktop(false, Some("/opt/my-pinentry"), gui, false)).prompt,
            PresencePrompt::Terminal
        );
        assert_eq!(
            detect(&desktop(false, None, None, false)).describe(),
            "presence: this terminal"
        );
    }

    #[test]
    fn the_search_takes_the_preferred_executable_flavour() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("passgate-presence-{}", std::process::id()));
        let (first, second) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        let write = |path: &Path, mode: u32| {
            std::fs::write(path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write(&first.join("pinentry-qt"), 0o755);
        write(&second.join("pinentry-gnome3"), 0o755);
        // Not executable: not a candidate.
        write(&first.join("pinentry-gnome3"), 0o644);
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(
            first_on_path(Some(path.clone()), GUI_PINENTRIES),
            Some(second.join("pinentry-gnome3"))
        );
        std::fs::remove_file(second.join("pinentry-gnome3")).unwrap();
        assert_eq!(
            first_on_path(Some(path), GUI_PINENTRIES),
            Some(first.join("pinentry-qt"))
        );
        assert_eq!(first_on_path(None, GUI_PINENTRIES), None);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
