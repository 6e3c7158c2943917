//! Chrome native-messaging frames (a native-endian u32 length, then JSON) through the
//! bridge's host loop (`native::serve`), on a real bridge over a software authenticator with
//! presence approved at once.
//!
//! Checks: no panic; the frames read write back to exactly the bytes they came from; every
//! reply the host writes is one frame of a JSON object.
#![no_main]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use passgate_bridge::native::{read_frame, serve, write_frame};
use passgate_bridge::{Bridge, NoUserInterface};
use passgate_client::InProcess;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bridge() -> Arc<Bridge> {
    static BRIDGE: OnceLock<Arc<Bridge>> = OnceLock::new();
    Arc::clone(BRIDGE.get_or_init(|| {
        let dir = passgate_fuzz::scratch_dir("native");
        let authenticator = passgate_testkit::auto_presence_authenticator(&dir, 64);
        Arc::new(Bridge::new(
            Box::new(InProcess::new(authenticator)),
            Box::new(NoUserInterface),
        ))
    }))
}

// The rig is built in `init` (before libFuzzer's per-input timer starts): built by the
// first input, its set-up counted against that input's 1 s and showed as a hang on a
// loaded machine.
fuzz_target!(init: { bridge(); }, |data: &[u8]| {
    // The framing round trip.
    let mut input = data;
    let mut rewritten = Vec::new();
    let mut consumed = 0;
    while let Ok(Some(frame)) = read_frame(&mut input) {
        write_frame(&mut rewritten, &frame).unwrap();
        consumed = data.len() - input.len();
    }
    assert_eq!(
        rewritten,
        data[..consumed],
        "frames did not write back as they were read"
    );

    // The host loop.
    let sink = Sink::default();
    let _ = serve(bridge(), data, sink.clone());
    let output = sink.0.lock().unwrap().clone();
    let mut replies = output.as_slice();
    while let Some(reply) = read_frame(&mut replies).expect("the host writes whole frames") {
        let json: serde_json::Value = serde_json::from_slice(&reply).expect("the host writes JSON");
        assert!(json.is_object(), "{json}");
    }
});
