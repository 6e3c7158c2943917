//! A minimal Tauri v2 app on passgate: its page checks the biometric status, authenticates with
//! a proof a relying party verifies, signs up and in with a passkey against `passgate rp`, and
//! keeps a token in the vault.
//!
//! `PASSGATE_EXAMPLE_URL` makes the window load a page of a server instead of the bundled one
//! (the tests load the same page from `passgate rp --static-dir examples/tauri-app/dist`, so
//! that the page and the relying party share an origin); that origin is then allowed too.
//! `PASSGATE_EXAMPLE_CAPABILITY=no-authenticate` drops `biometric:allow-authenticate` from the
//! window's capability, to show Tauri's permission error. `PASSGATE_EXAMPLE_GUIDE=rust` runs
//! the Rust snippets of Tauri's biometric guide once the app is up (see `guide.rs`);
//! `PASSGATE_EXAMPLE_STDOUT=FILE` sends what the app prints there.

mod guide;

use tauri::ipc::CapabilityBuilder;
use tauri::{Manager, WebviewUrl, WebviewWindowBuilder};

/// Sends this process's standard output to `path` (created or appended), so a test can read
/// what the guide's snippets print: WebKitWebDriver does not pass the app's output on.
fn stdout_to(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // SAFETY: both descriptors are open for the duration of the call (`file` is alive, 1 is
    // standard output); dup2 only makes descriptor 1 refer to the file's description.
    let done = unsafe { libc::dup2(file.as_raw_fd(), libc::STDOUT_FILENO) };
    if done < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn main() {
    if let Some(path) = std::env::var_os("PASSGATE_EXAMPLE_STDOUT") {
        if let Err(e) = stdout_to(std::path::Path::new(&path)) {
            eprintln!("passgate-tauri-example: PASSGATE_EXAMPLE_STDOUT: {e}");
            std::process::exit(1);
        }
    }
    let url = std::env::var("PASSGATE_EXAMPLE_URL").ok();
    let mut passgate = tauri_plugin_passgate::Builder::new();
    if let Some(origin) = url
        .as_deref()
        .and_then(|u| tauri::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
    {
        passgate = passgate.allow_origin(origin);
    }
    let restricted =
        std::env::var("PASSGATE_EXAMPLE_CAPABILITY").as_deref() == Ok("no-authenticate");
    let result = tauri::Builder::default()
        .plugin(passgate.build())
        .plugin(tauri_plugin_passgate_biometric::init())
        .setup(move |app| {
            if restricted {
                // The same window, without `biometric:allow-authenticate`.
                app.add_capability(
                    CapabilityBuilder::new("restricted")
                        .window("restricted")
                        .remote("http://localhost:*".into())
                        .permission("core:default")
                        .permission("passgate:default")
                        .permission("biometric:allow-status"),
                )?;
            }
            let label = if restricted { "restricted" } else { "main" };
            let target = match &url {
                Some(u) => WebviewUrl::External(u.parse()?),
                None => WebviewUrl::App("index.html".into()),
            };
            WebviewWindowBuilder::new(app, label, target)
                .title("passgate — Tauri example")
                .inner_size(900.0, 700.0)
                .build()?;
            let _ = app.get_webview_window(label);
            if std::env::var("PASSGATE_EXAMPLE_GUIDE").as_deref() == Ok("rust") {
                // The guide's snippets block on passgate's prompt: off the main thread.
                let handle = app.handle().clone();
                std::thread::spawn(move || {
                    guide::check_biometric(handle.clone());
                    guide::authenticate::bio_auth(handle);
                    println!("guide snippets done");
                });
            }
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("passgate-tauri-example: {e}");
        std::process::exit(1);
    }
}
