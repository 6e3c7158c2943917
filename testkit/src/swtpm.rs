//! A swtpm started by a test, on two free loopback ports; killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm; killed on drop.
pub struct Swtpm {
    child: Child,
    /// The TPM command port (the control port is the next one).
    pub port: u16,
}

impl Swtpm {
    /// Starts swtpm with its state in `state` (started with `startup-clear`, no init needed).
    pub fn start(state: &Path) -> Self {
        // Two consecutive free ports (server and control).
        let port = loop {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = probe.local_addr().unwrap().port();
            if port < 65000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is installed (cargo xtask test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    #[allow(dead_code)] // Not every test reaches swtpm directly.
    /// The TCTI string that reaches it (`swtpm:host=127.0.0.1,port=P`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs `tpm2_dictionarylockout` with `args` (no client may be connected meanwhile).
    #[allow(dead_code)] // Only the lockout tests change the DA parameters.
    pub fn dictionary_lockout(&self, args: &[&str]) {
        let out = Command::new("tpm2_dictionarylockout")
            .args(["-T", &self.tcti()])
            .args(args)
            .output()
            .expect("tpm2-tools is installed (cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "tpm2_dictionarylockout {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
