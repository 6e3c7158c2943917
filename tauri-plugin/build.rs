//! Generates the plugin's permissions (`allow-*` / `deny-*` per command) from its command list.

/// The `passgate` plugin's commands.
const COMMANDS: &[&str] = &["message"];

fn main() {
    tauri_plugin::Builder::new(COMMANDS).build();
}
