//! Generates `allow-status`, `allow-authenticate` and their `deny-*` twins, as the official
//! plugin has.

/// The official plugin's commands.
const COMMANDS: &[&str] = &["status", "authenticate"];

fn main() {
    tauri_plugin::Builder::new(COMMANDS).build();
}
