//! Chrome native messaging: the host side of `chrome.runtime.connectNative`.
//!
//! Each message is a 4-byte length in native byte order followed by that many bytes of UTF-8
//! JSON. Requests from the extension's background script:
//!
//! ```text
//! {"requestId": any, "type": "create" | "get" | "isUvpaa" | "cancel",
//!  "origin": "https://...", "topOrigin": "https://..." (optional), "options": {...}}
//! ```
//!
//! The background script fills `origin` (and `topOrigin`) from the sender's tab, never from
//! the page. Replies: `{"requestId", "ok": true, "credential": {...}}` (create, get),
//! `{"requestId", "ok": true, "result": bool}` (isUvpaa), or
//! `{"requestId", "ok": false, "error": {"name", "message"}}`. A `cancel` names the
//! `requestId` of the request to abort and gets no reply of its own: the aborted request
//! answers `AbortError`.
//!
//! The app-facing APIs' messages (`biometric.*`, `vault.*`, `soter.*`) are refused with
//! `NotSupportedError`: the extension only forwards what `chrome.webAuthenticationProxy`
//! intercepts (`navigator.credentials`), and giving every site of the profile a way to open
//! vaults through it is not something this host should do on the extension's word (see
//! docs/src/app-apis/webview.md, "Which hosts carry the app APIs").
//!
//! Requests run one at a time on a worker thread, so a `cancel` is read while a ceremony
//! waits for the person. A message longer than [`MAX_MESSAGE`] is answered with an error and
//! ends the session (the stream cannot be trusted after it); malformed JSON is answered and
//! the session goes on.

use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use passgate_platform_api::user_verifier::Interaction;
use serde_json::{Map, Value as Json, json};

use crate::error::BridgeError;
use crate::{Bridge, WebAuthnRequest};

/// The longest message accepted from, and sent to, the browser (Chrome's limit for messages
/// from a native host; the bridge holds the other direction to it too).
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// The host name the manifest registers.
pub const HOST_NAME: &str = "dev.passgate.bridge";

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is over [`MAX_MESSAGE`].
    #[error("a message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(u32),
    /// The stream ended inside a message.
    #[error("the stream ended inside a message")]
    Truncated,
    /// Reading failed.
    #[error("reading a message failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads one framed message; `None` at a clean end of stream.
pub fn read_frame<R: Read>(input: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        match input.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let declared = u32::from_ne_bytes(prefix);
    let len = usize::try_from(declared).map_err(|_| FrameError::TooLarge(declared))?;
    if len > MAX_MESSAGE {
        return Err(FrameError::TooLarge(declared));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(Some(body))
}

/// Writes one framed message and flushes.
pub fn write_frame<W: Write>(output: &mut W, message: &[u8]) -> io::Result<()> {
    let len = u32::try_from(message.len())
        .ok()
        .filter(|_| message.len() <= MAX_MESSAGE)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "message over the 1 MB limit"))?;
    output.write_all(&len.to_ne_bytes())?;
    output.write_all(message)?;
    output.flush()
}

/// A reply for `request_id`.
fn reply(request_id: &Json, result: Result<(String, Json), BridgeError>) -> Json {
    match result {
        Ok((key, value)) => {
            let mut r = json!({ "requestId": request_id, "ok": true });
            r[key] = value;
            r
        }
        Err(e) => json!({ "requestId": request_id, "ok": false, "error": e.to_json() }),
    }
}

fn send<W: Write>(output: &Mutex<W>, message: &Json) -> io::Result<()> {
    let mut bytes = message.to_string().into_bytes();
    if bytes.len() > MAX_MESSAGE {
        let error = BridgeError::unknown("the reply is over the 1 MB native-messaging limit");
        bytes = reply(&message["requestId"], Err(error))
            .to_string()
            .into_bytes();
    }
    let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
    write_frame(&mut *output, &bytes)
}

/// Runs one request on the bridge, never unwinding into the host loop.
fn run(
    bridge: &Bridge,
    request: &Map<String, Json>,
    interaction: &Interaction,
) -> Result<(String, Json), BridgeError> {
    let kind = request
        .get("type")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if let Some(namespace) = passgate_platform_api::host_channel::namespace_of(kind) {
        return Err(BridgeError::new(
            crate::ErrorName::NotSupportedError,
            format!(
                "{kind:?}: the browser extension carries WebAuthn only; namespaced APIs such as the app APIs ({namespace}*) are served to hybrid-app webviews and to pages paired with the local bridge, whose host names the calling origin"
            ),
        ));
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        WebAuthnRequest::from_extension(request)
            .and_then(|request| bridge.execute(&request, Some(interaction)))
    }))
    .unwrap_or_else(|_| Err(BridgeError::unknown("internal error")));
    let value = outcome?;
    Ok(if kind == "isUvpaa" {
        (
            "result".to_owned(),
            value.get("result").cloned().unwrap_or(Json::Null),
        )
    } else {
        ("credential".to_owned(), value)
    })
}

struct Job {
    request_id: Json,
    request: Map<String, Json>,
    /// Cancels this request, queued or running.
    interaction: Interaction,
}

/// What the reader and the worker share: the cancellation handles of the requests not
/// answered yet, by requestId (oldest first).
#[derive(Default)]
struct State {
    pending: HashMap<String, Vec<Interaction>>,
}

/// Drops the oldest cancellation handle of `key`: its request was answered.
fn forget(state: &Mutex<State>, key: &str) {
    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(list) = s.pending.get_mut(key) {
        if !list.is_empty() {
            list.remove(0);
        }
        if list.is_empty() {
            s.pending.remove(key);
        }
    }
}

/// Serves native-messaging requests from `input` until it ends, replying on `output`.
/// Returns an error only when replies can no longer be written or the input broke framing.
pub fn serve<R: Read, W: Write + Send + 'static>(
    bridge: Arc<Bridge>,
    mut input: R,
    output: W,
) -> Result<(), FrameError> {
    let output = Arc::new(Mutex::new(output));
    let state = Arc::new(Mutex::new(State::default()));
    let (jobs, queue) = mpsc::channel::<Job>();
    let worker = {
        let bridge = Arc::clone(&bridge);
        let output = Arc::clone(&output);
        let state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("native-host-worker".into())
            .spawn(move || -> io::Result<()> {
                for job in queue {
                    let result = if job.interaction.is_cancelled() {
                        Err(BridgeError::new(
                            crate::ErrorName::AbortError,
                            "the request was cancelled",
                        ))
                    } else {
                        run(&bridge, &job.request, &job.interaction)
                    };
                    forget(&state, &job.request_id.to_string());
                    send(&output, &reply(&job.request_id, result))?;
                }
                Ok(())
            })?
    };
    let outcome = loop {
        let message = match read_frame(&mut input) {
            Ok(Some(message)) => message,
            Ok(None) => break Ok(()),
            Err(e) => {
                let error = BridgeError::type_error(e.to_string());
                // The stream is no longer in step after a bad frame: answer, then stop.
                let _ = send(&output, &reply(&Json::Null, Err(error)));
                break Err(e);
            }
        };
        let request = match serde_json::from_slice(&message) {
            Ok(Json::Object(r)) => r,
            Ok(_) => {
                let error = BridgeError::type_error("the message is not a JSON object");
                send(&output, &reply(&Json::Null, Err(error)))?;
                continue;
            }
            Err(e) => {
                let error = BridgeError::type_error(format!("the message is not JSON: {e}"));
                send(&output, &reply(&Json::Null, Err(error)))?;
                continue;
            }
        };
        let request_id = request.get("requestId").cloned().unwrap_or(Json::Null);
        let key = request_id.to_string();
        if request.get("type").and_then(Json::as_str) == Some("cancel") {
            let s = state.lock().unwrap_or_else(PoisonError::into_inner);
            for interaction in s.pending.get(&key).into_iter().flatten() {
                interaction.cancel();
            }
            continue;
        }
        let interaction = Interaction::new();
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending
            .entry(key)
            .or_default()
            .push(interaction.clone());
        let job = Job {
            request_id,
            request,
            interaction,
        };
        if jobs.send(job).is_err() {
            break Ok(());
        }
    };
    // The browser closed the port (or broke framing): abort what is pending, let the worker
    // answer it, and stop.
    drop(jobs);
    for interaction in state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pending
        .values()
        .flatten()
    {
        interaction.cancel();
    }
    let written = worker
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the worker panicked")));
    outcome?;
    written.map_err(FrameError::Io)
}

/// Where a browser looks for native-messaging host manifests of this user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    /// Chromium.
    Chromium,
    /// Google Chrome.
    Chrome,
}

impl Browser {
    /// `~/.config/<browser>/NativeMessagingHosts` (honouring `XDG_CONFIG_HOME`).
    pub fn manifest_dir(self, home: &Path, xdg_config_home: Option<&Path>) -> PathBuf {
        let config = xdg_config_home
            .filter(|p| p.is_absolute())
            .map_or_else(|| home.join(".config"), Path::to_path_buf);
        config
            .join(match self {
                Self::Chromium => "chromium",
                Self::Chrome => "google-chrome",
            })
            .join("NativeMessagingHosts")
    }
}

/// What `passgate bridge install` writes.
#[derive(Debug, Clone)]
pub struct Install {
    /// The NativeMessagingHosts directory.
    pub manifest_dir: PathBuf,
    /// The `passgate` executable.
    pub executable: PathBuf,
    /// The extension allowed to connect (32 letters a-p).
    pub extension_id: String,
    /// The authenticator the host talks to, `tcp://HOST:PORT`.
    pub authenticator: String,
    /// More arguments for `passgate bridge native-host` (e.g. `--pinentry PATH`).
    pub host_args: Vec<String>,
}

/// Whether `id` looks like a Chrome extension ID.
pub fn valid_extension_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Writes `contents` to `path` atomically and durably with exactly `mode` (temp file, fsync,
/// rename, directory fsync).
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let options = passgate_platform_api::fs::WriteOptions {
        mode,
        ..passgate_platform_api::fs::WriteOptions::default()
    };
    passgate_platform_api::fs::write_atomic_with(path, contents, &options)
}

/// Writes the launcher script and the host manifest; returns the manifest's path.
pub fn install(options: &Install) -> io::Result<PathBuf> {
    if !valid_extension_id(&options.extension_id) {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{:?} is not an extension ID (32 letters a to p, shown on chrome://extensions)",
                options.extension_id
            ),
        ));
    }
    let executable = options.executable.to_str().ok_or_else(|| {
        io::Error::new(ErrorKind::InvalidInput, "the executable path is not UTF-8")
    })?;
    fs::create_dir_all(&options.manifest_dir)?;
    // Chrome starts `path` with the caller's origin as its only argument: a launcher adds the
    // subcommand and the authenticator address.
    let launcher = options.manifest_dir.join(format!("{HOST_NAME}.sh"));
    let mut extra = String::new();
    for arg in &options.host_args {
        extra.push(' ');
        extra.push_str(&shell_quote(arg));
    }
    let script = format!(
        "#!/bin/sh\n# Written by `passgate bridge install`: Chrome's native-messaging host for passgate.\nexec {} bridge native-host --authenticator {}{extra} \"$@\"\n",
        shell_quote(executable),
        shell_quote(&options.authenticator)
    );
    write_atomic(&launcher, script.as_bytes(), 0o755)?;
    let launcher_str = launcher.to_str().ok_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidInput,
            "the manifest directory is not UTF-8",
        )
    })?;
    let manifest = json!({
        "name": HOST_NAME,
        "description": "passgate: passkeys from the platform authenticator",
        "path": launcher_str,
        "type": "stdio",
        "allowed_origins": [format!("chrome-extension://{}/", options.extension_id)],
    });
    let path = options.manifest_dir.join(format!("{HOST_NAME}.json"));
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    text.push(b'\n');
    write_atomic(&path, &text, 0o644)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use passgate_client::{CtapTransport, TransportError};

    /// An authenticator that must never be reached.
    struct Unreachable;

    impl CtapTransport for Unreachable {
        fn call(&mut self, _: &[u8], _: &Interaction) -> Result<Vec<u8>, TransportError> {
            Err(TransportError::Unreachable("test".into()))
        }
    }

    fn frame(bytes: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(bytes.len()).unwrap().to_ne_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn replies(mut output: &[u8]) -> Vec<Json> {
        let mut out = Vec::new();
        while let Some(m) = read_frame(&mut output).unwrap() {
            out.push(serde_json::from_slice(&m).unwrap());
        }
        out
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn bridge() -> Arc<Bridge> {
        Arc::new(Bridge::new(
            Box::new(Unreachable),
            Box::new(crate::NoUserInterface),
        ))
    }

    #[test]
    fn framing_round_trip_and_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"a\":1}").unwrap();
        assert_eq!(&buf[..4], &7u32.to_ne_bytes());
        assert_eq!(read_frame(&mut &buf[..]).unwrap().unwrap(), b"{\"a\":1}");
        assert!(read_frame(&mut &[][..]).unwrap().is_none());
        assert!(matches!(
            read_frame(&mut &[1u8, 0][..]),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &frame(b"abc")[..5]),
            Err(FrameError::Truncated)
        ));
        let huge = (u32::try_from(MAX_MESSAGE).unwrap() + 1).to_ne_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..]),
            Err(FrameError::TooLarge(n)) if usize::try_from(n).unwrap() == MAX_MESSAGE + 1
        ));
        assert!(write_frame(&mut Vec::new(), &vec![b' '; MAX_MESSAGE + 1]).is_err());
    }

    /// Hands out its chunks in order; before each chunk, waits until the sink holds at least
    /// that many replies (so a test decides what the host has answered before it reads on).
    struct Gated {
        chunks: std::collections::VecDeque<(usize, Vec<u8>)>,
        current: Vec<u8>,
        sink: Sink,
    }

    impl Gated {
        fn new(sink: &Sink, chunks: Vec<(usize, Vec<u8>)>) -> Self {
            Self {
                chunks: chunks.into(),
                current: Vec::new(),
                sink: sink.clone(),
            }
        }
    }

    impl Read for Gated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.current.is_empty() {
                let Some((wait_for, chunk)) = self.chunks.pop_front() else {
                    return Ok(0);
                };
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while replies(&self.sink.0.lock().unwrap()).len() < wait_for {
                    assert!(std::time::Instant::now() < deadline, "no reply came");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                self.current = chunk;
            }
            let n = buf.len().min(self.current.len());
            buf[..n].copy_from_slice(&self.current[..n]);
            self.current.drain(..n);
            Ok(n)
        }
    }

    /// An authenticator that never answers until the request is cancelled.
    struct Stalled;

    impl CtapTransport for Stalled {
        fn call(&mut self, _: &[u8], i: &Interaction) -> Result<Vec<u8>, TransportError> {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !i.is_cancelled() {
                if std::time::Instant::now() > deadline {
                    return Err(TransportError::Timeout);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(vec![0x2d])
        }
    }

    #[test]
    fn host_loop_answers_every_message_and_stops_on_an_oversized_length() {
        let sink = Sink::default();
        let input = Gated::new(
            &sink,
            vec![
                (0, frame(b"not json")),
                (0, frame(b"[1,2]")),
                (0, frame(br#"{"requestId":7,"type":"create","origin":"https://evil.example","options":{"rp":{"id":"localhost","name":"x"},"user":{"id":"AQ","name":"a","displayName":"a"},"challenge":"AAAA","pubKeyCredParams":[{"type":"public-key","alg":-7}]}}"#)),
                (0, frame(br#"{"requestId":"g","type":"get","origin":"https://example.com","options":{}}"#)),
                (0, frame(br#"{"requestId":"u","type":"isUvpaa"}"#)),
                (0, frame(br#"{"requestId":"c","type":"cancel"}"#)),
                (5, u32::MAX.to_ne_bytes().to_vec()),
                (0, frame(br#"{"requestId":"never","type":"isUvpaa"}"#)),
            ],
        );
        let result = serve(bridge(), input, sink.clone());
        assert!(matches!(result, Err(FrameError::TooLarge(u32::MAX))));
        let out = replies(&sink.0.lock().unwrap());
        assert_eq!(out.len(), 6, "{out:?}");
        // Malformed messages are answered as they are read; requests run on the worker, so
        // compare by requestId.
        let by_id = |id: Json| out.iter().find(|r| r["requestId"] == id).unwrap().clone();
        let type_errors: Vec<_> = out
            .iter()
            .filter(|r| r["requestId"].is_null())
            .map(|r| r["error"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(type_errors, ["TypeError", "TypeError", "TypeError"]);
        assert_eq!(
            out[5]["error"]["message"],
            "a message of 4294967295 bytes is over the 1048576-byte limit"
        );
        let evil = by_id(json!(7));
        assert_eq!(evil["ok"], false);
        assert_eq!(evil["error"]["name"], "SecurityError");
        let get = by_id(json!("g"));
        assert_eq!(get["error"]["name"], "TypeError");
        assert!(
            get["error"]["message"]
                .as_str()
                .unwrap()
                .contains("challenge")
        );
        // isUVPAA never rejects: an unreachable authenticator is "not available".
        assert_eq!(
            by_id(json!("u")),
            json!({"requestId": "u", "ok": true, "result": false})
        );
        assert!(out.iter().all(|r| r["requestId"] != "never"));
    }

    #[test]
    fn app_api_messages_are_refused_with_the_reason() {
        let sink = Sink::default();
        let input = Gated::new(
            &sink,
            vec![
                (0, frame(br#"{"requestId":"v","type":"vault.open","origin":"https://shop.example","vaultId":"x","username":"u"}"#)),
                (1, frame(br#"{"requestId":"b","type":"biometric.checkStatus","origin":"https://shop.example"}"#)),
                (2, frame(br#"{"requestId":"s","type":"soter.startSoterAuthentication","origin":"https://shop.example"}"#)),
                // The end of input once all three are answered (it would abort a pending one).
                (3, Vec::new()),
            ],
        );
        serve(bridge(), input, sink.clone()).unwrap();
        let out = replies(&sink.0.lock().unwrap());
        assert_eq!(out.len(), 3, "{out:?}");
        for (reply, (id, namespace)) in
            out.iter()
                .zip([("v", "vault."), ("b", "biometric."), ("s", "soter.")])
        {
            assert_eq!(reply["requestId"], id);
            assert_eq!(reply["ok"], false);
            assert_eq!(reply["error"]["name"], "NotSupportedError");
            let message = reply["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("the browser extension carries WebAuthn only")
                    && message.contains(&format!("({namespace}*)")),
                "{message}"
            );
        }
    }

    #[test]
    fn cancel_aborts_the_running_and_a_queued_request_and_eof_aborts_the_rest() {
        let sink = Sink::default();
        let bridge = Arc::new(Bridge::new(
            Box::new(Stalled),
            Box::new(crate::NoUserInterface),
        ));
        let create = |id: &str| {
            frame(
                json!({"requestId": id, "type": "create", "origin": "https://example.com", "options": {
                    "rp": {"name": "x"}, "user": {"id": "AQ", "name": "a", "displayName": "a"},
                    "challenge": "AAAA", "pubKeyCredParams": [],
                }})
                .to_string()
                .as_bytes(),
            )
        };
        let input = Gated::new(
            &sink,
            vec![
                (0, create("a")),
                (0, create("b")),
                (0, create("c")),
                // b waits behind a: cancelling it answers it when its turn comes.
                (0, frame(br#"{"requestId":"b","type":"cancel"}"#)),
                (0, frame(br#"{"requestId":"a","type":"cancel"}"#)),
                // a and b answered; c is running: the port closes.
                (2, Vec::new()),
            ],
        );
        serve(bridge, input, sink.clone()).unwrap();
        let out = replies(&sink.0.lock().unwrap());
        let ids: Vec<_> = out.iter().map(|r| r["requestId"].clone()).collect();
        assert_eq!(ids, [json!("a"), json!("b"), json!("c")]);
        for r in &out {
            assert_eq!(r["ok"], false);
            assert_eq!(r["error"]["name"], "AbortError", "{r}");
        }
    }

    #[test]
    fn install_writes_manifest_and_launcher_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = Browser::Chromium.manifest_dir(dir.path(), None);
        assert!(target.ends_with(".config/chromium/NativeMessagingHosts"));
        assert!(
            Browser::Chrome
                .manifest_dir(dir.path(), Some(Path::new("/xdg")))
                .starts_with("/xdg/google-chrome")
        );
        let options = Install {
            manifest_dir: target.clone(),
            executable: PathBuf::from("/opt/pass gate/it's/passgate"),
            extension_id: "abcdefghijklmnopabcdefghijklmnop".into(),
            authenticator: "tcp://127.0.0.1:8765".into(),
            host_args: Vec::new(),
        };
        let path = install(&options).unwrap();
        let manifest: Json = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(manifest["name"], HOST_NAME);
        assert_eq!(manifest["type"], "stdio");
        assert_eq!(
            manifest["allowed_origins"],
            json!(["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"])
        );
        let launcher = PathBuf::from(manifest["path"].as_str().unwrap());
        let script = fs::read_to_string(&launcher).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains(
            "exec '/opt/pass gate/it'\\''s/passgate' bridge native-host --authenticator 'tcp://127.0.0.1:8765' \"$@\""
        ));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&launcher).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // Installing again replaces both files and leaves no temporary files behind.
        install(&options).unwrap();
        let names: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // Host arguments are quoted into the launcher.
        let with_prompt = Install {
            host_args: vec!["--pinentry".into(), "/usr/bin/pin entry".into()],
            ..options.clone()
        };
        install(&with_prompt).unwrap();
        assert!(fs::read_to_string(&launcher).unwrap().contains(
            "--authenticator 'tcp://127.0.0.1:8765' '--pinentry' '/usr/bin/pin entry' \"$@\""
        ));
        let bad = Install {
            extension_id: "not-an-id".into(),
            ..options
        };
        assert_eq!(install(&bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
}
