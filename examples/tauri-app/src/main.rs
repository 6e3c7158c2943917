//! A minimal Tauri v2 app on passgate: its page checks the biometric status, authenticates with
//! a proof a relying party verifies, signs up and in with a passkey against `passgate rp`, and
//! keeps a token in the vault.
//!
//! `PASSGATE_EXAMPLE_URL` makes the window load a page of a server instead of the bundled one
//! (the tests load the same page from `passgate rp --static-dir examples/tauri-app/dist`, so
//! that the page and the relying party share an origin); that origin is then allowed too.
//! `PASSGATE_EXAMPLE_CAPABILITY=no-authenticate` drops `biometric:allow-authenticate` from the
//! window's capability, to show Tauri's permission error.

use tauri::ipc::CapabilityBuilder;
use tauri::{Manager, WebviewUrl, WebviewWindowBuilder};

fn main() {
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
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("passgate-tauri-example: {e}");
        std::process::exit(1);
    }
}
