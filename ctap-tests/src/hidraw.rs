//! Reports to and from a Linux hidraw node: a USB security key, or passgate on uhid.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::hid::{BROADCAST, Report, Transport, cmd};

/// The FIDO usage page item of a report descriptor: Usage Page (0xF1D0).
const FIDO_USAGE_PAGE: [u8; 3] = [0x06, 0xd0, 0xf1];
/// Reports read ahead of the suite before the reader thread waits.
const QUEUE: usize = 256;
/// The least time between two output reports: a USB security key's interrupt endpoint takes
/// one report per 1 ms frame, and the host controller paces a burst to that. A hidraw write to
/// a uhid device has no such flow control and the kernel's uhid queue holds 32 events, so an
/// unpaced burst of a maximum-size message (129 reports) can overrun a busy device; pacing
/// keeps the suite's HID path like a USB key's.
const REPORT_INTERVAL: Duration = Duration::from_millis(1);

/// One open handle on a hidraw node. A thread reads reports (a hidraw read blocks and this
/// crate does not poll), so [`Transport::recv`] can wait with a timeout; the thread ends at the
/// first report after the transport is dropped, or when the node goes away.
///
/// A HID device sends every input report to every open handle, so other clients' traffic
/// arrives here too. Like a real client, the transport keeps only reports on channels this
/// handle sent on, and broadcast INIT responses carrying a nonce it sent (whose allocated
/// channel it then keeps too): the suite sees what a TCP connection would deliver.
pub struct HidrawTransport {
    file: File,
    reports: Receiver<io::Result<Report>>,
    ours: Ours,
    last_sent: Option<Instant>,
    report_interval: Duration,
}

/// The channels and INIT nonces this handle used.
#[derive(Debug, Default)]
struct Ours {
    channels: Vec<u32>,
    nonces: Vec<[u8; 8]>,
}

impl Ours {
    fn sent(&mut self, report: &Report) {
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        if cid == BROADCAST {
            if report[4] == 0x80 | cmd::INIT {
                let mut nonce = [0u8; 8];
                nonce.copy_from_slice(&report[7..15]);
                self.nonces.push(nonce);
            }
        } else if !self.channels.contains(&cid) {
            self.channels.push(cid);
        }
    }

    /// Whether `report` is for this handle (and learns the channel an INIT gave it).
    fn claims(&mut self, report: &Report) -> bool {
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        if cid != BROADCAST {
            return self.channels.contains(&cid);
        }
        if report[4] != 0x80 | cmd::INIT {
            // Errors on the broadcast channel answer a report this handle may have sent.
            return true;
        }
        let ours = self.nonces.iter().any(|n| report[7..15] == n[..]);
        if ours {
            let allocated = u32::from_be_bytes([report[15], report[16], report[17], report[18]]);
            if !self.channels.contains(&allocated) {
                self.channels.push(allocated);
            }
        }
        ours
    }
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
        Ok(Self {
            file,
            reports,
            ours: Ours::default(),
            last_sent: None,
            report_interval: REPORT_INTERVAL,
        })
    }

    /// Sends reports as fast as the kernel takes them, without a USB host controller's 1 ms
    /// pacing: for measuring the transport itself (a message of a few reports cannot
    /// overrun the kernel's 32-event uhid queue).
    pub fn unpaced(mut self) -> Self {
        self.report_interval = Duration::ZERO;
        self
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
        self.ours.sent(report);
        if let Some(last) = self.last_sent {
            let since = last.elapsed();
            if since < self.report_interval {
                std::thread::sleep(self.report_interval.saturating_sub(since));
            }
        }
        self.last_sent = Some(Instant::now());
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
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = match self.reports.recv_timeout(left) {
                Ok(item) => item?,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the hidraw node stopped delivering reports",
                    ));
                }
            };
            if self.ours.claims(&report) {
                return Ok(Some(report));
            }
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

    fn report(cid: u32, bytes: &[(usize, u8)]) -> Report {
        let mut r = [0u8; 64];
        r[..4].copy_from_slice(&cid.to_be_bytes());
        for &(i, b) in bytes {
            r[i] = b;
        }
        r
    }

    #[test]
    fn only_this_handles_channels_and_init_nonces_are_claimed() {
        let mut ours = Ours::default();
        // INIT on broadcast with nonce 1..=8.
        let nonce: Vec<(usize, u8)> = (7..15).map(|i| (i, u8::try_from(i - 6).unwrap())).collect();
        let mut init = nonce.clone();
        init.push((4, 0x86));
        ours.sent(&report(BROADCAST, &init));
        // Another client's INIT response (another nonce) is not ours.
        assert!(!ours.claims(&report(BROADCAST, &[(4, 0x86), (7, 9), (18, 7)])));
        // Ours allocates channel 5, which is then ours.
        let mut response = init.clone();
        response.push((18, 5));
        assert!(ours.claims(&report(BROADCAST, &response)));
        assert!(ours.claims(&report(5, &[(4, 0x90)])));
        assert!(
            !ours.claims(&report(7, &[(4, 0x90)])),
            "channel 7 is someone else's"
        );
        // A channel this handle sent on is ours even if it never allocated it.
        ours.sent(&report(0x1234, &[(4, 0x90)]));
        assert!(ours.claims(&report(0x1234, &[(4, 0xbf)])));
    }

    #[test]
    fn a_missing_node_is_an_error() {
        let err = HidrawTransport::open(Path::new("/nonexistent/hidraw9"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
