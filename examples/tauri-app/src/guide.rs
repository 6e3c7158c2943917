//! The Rust snippets of Tauri's biometric guide (v2.tauri.app/plugin/biometric, "Check Status"
//! and "Authenticate"), unchanged except the `use` lines: `tauri_plugin_biometric` is
//! `tauri_plugin_passgate_biometric` here. `PASSGATE_EXAMPLE_GUIDE=rust` runs them once the app
//! is up; the WebKitGTK journeys read what they print.

use tauri_plugin_passgate_biometric::BiometricExt;

#[rustfmt::skip]
pub fn check_biometric(app_handle: tauri::AppHandle) {
    let status = app_handle.biometric().status().unwrap();
    if status.is_available {
        println!("Yes! Biometric Authentication is available");
    } else {
        println!("No! Biometric Authentication is not available due to: {}", status.error.unwrap());
    }
}

/// In a module of its own: its `use` line names `BiometricExt` again.
#[rustfmt::skip]
pub mod authenticate {
    use tauri_plugin_passgate_biometric::{BiometricExt, AuthOptions};

    pub fn bio_auth(app_handle: tauri::AppHandle) {

        let options = AuthOptions {
            // Set True if you want the user to be able to authenticate using phone password
            allow_device_credential:false,
            cancel_title: Some("Feature won't work if Canceled".to_string()),

            // iOS only feature
            fallback_title: Some("Sorry, authentication failed".to_string()),

            // Android only features
            title: Some("Tauri feature".to_string()),
            subtitle: Some("Authenticate to access the locked Tauri function".to_string()),
            confirmation_required: Some(true),
        };

        // if the authentication was succesfull, the function returns Result::Ok()
        // otherwise returns Result::Error()
        match app_handle.biometric().authenticate("This feature is locked".to_string(), options) {
            Ok(_) => {
                println!("Hooray! Successfully Authenticated! We can now perform the locked Tauri function!");
            }
            Err(e) => {
                println!("Oh no! Authentication failed because : {e}");
            }
        }
    }
}
