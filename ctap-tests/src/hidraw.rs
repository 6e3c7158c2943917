//! Reports to and from a Linux hidraw node: a USB security key, or passgate on uhid.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use crate::hid::{Report, Transport};

/// The FIDO usage page item of a report descriptor: Usage Page (0xF1D0).
const FIDO_USAGE_PAGE: [u8; 3] = [0x06, 0xd0, 0xf1];
/// Reports read ahead of the suite before the reader thread waits.
const QUEUE: usize = 256;

/// One open handle on a hidraw node. A thread reads reports (a hidraw read blocks and this
/// crate does not poll), so [`Transport::recv`] can wait with a timeout; the thread ends at the
/// first report after the transport is dropped, or when the node goes away.
pub struct HidrawTransport {
    file: File,
    reports: Receiver<io::Result<Report>>,
}

impl HidrawTransport {
    /// Opens `path` for reading and writing.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut reader = file.try_clone()?;
        let (sender, reports) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("hidraw-reader".into())
            .spawn(move || read_reports(&mut reader, &sender))?;
        Ok(Self { file, reports })
    }
}

fn read_reports(reader: &mut File, sender: &SyncSender<io::Result<Report>>) {
    loop {
        let mut buf = [0u8; 64];
        let item = match reader.read(&mut buf) {
            Ok(64) => Ok(buf),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {n}-byte input report (a FIDO device sends 64)"),
            )),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if sender.send(item).is_err() || failed {
            return;
        }
    }
}

impl Transport for HidrawTransport {
    fn send(&mut self, report: &Report) -> io::Result<()> {
        // hidraw takes the report number first; FIDO devices have none (0).
        let mut out = [0u8; 65];
        out[1..].copy_from_slice(report);
        let written = self.file.write(&out)?;
        if written == out.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "hidraw took {written} of 65 bytes"
            )))
        }
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Report>> {
        match self.reports.recv_timeout(timeout) {
            Ok(item) => item.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the hidraw node stopped delivering reports",
            )),
        }
    }
}

/// Whether a HID report descriptor declares the FIDO usage page.
pub fn is_fido_descriptor(descriptor: &[u8]) -> bool {
    descriptor
        .windows(FIDO_USAGE_PAGE.len())
        .any(|w| w == FIDO_USAGE_PAGE)
}

/// The `/dev/hidrawN` nodes whose report descriptor (from sysfs) has the FIDO usage page,
/// sorted by name.
pub fn fido_devices(sys_class_hidraw: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(sys_class_hidraw) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read(entry.path().join("device").join("report_descriptor"))
                .is_ok_and(|d| is_fido_descriptor(&d))
        })
        .map(|entry| Path::new("/dev").join(entry.file_name()))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fido_usage_page_is_found_in_a_descriptor_and_nowhere_else() {
        let fido = [0x06, 0xd0, 0xf1, 0x09, 0x01, 0xa1, 0x01, 0xc0];
        assert!(is_fido_descriptor(&fido));
        // A keyboard: Usage Page (Generic Desktop), Usage (Keyboard).
        assert!(!is_fido_descriptor(&[0x05, 0x01, 0x09, 0x06, 0xa1, 0x01]));
        assert!(!is_fido_descriptor(&[]));
    }

    #[test]
    fn fido_devices_reads_sysfs_descriptors() {
        let sys = tempfile::tempdir().unwrap();
        for (name, descriptor) in [
            ("hidraw0", vec![0x05, 0x01, 0x09, 0x06]),
            ("hidraw3", vec![0x06, 0xd0, 0xf1, 0x09, 0x01]),
            ("hidraw1", vec![0x06, 0xd0, 0xf1, 0x09, 0x01]),
        ] {
            let device = sys.path().join(name).join("device");
            std::fs::create_dir_all(&device).unwrap();
            std::fs::write(device.join("report_descriptor"), descriptor).unwrap();
        }
        assert_eq!(
            fido_devices(sys.path()),
            vec![PathBuf::from("/dev/hidraw1"), PathBuf::from("/dev/hidraw3")]
        );
        assert!(fido_devices(&sys.path().join("missing")).is_empty());
    }

    #[test]
    fn a_missing_node_is_an_error() {
        let err = HidrawTransport::open(Path::new("/nonexistent/hidraw9"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
