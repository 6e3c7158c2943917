//! Who may reach the authenticator, and how many at once: the Unix socket answers only its own
//! user (checked as `nobody` in a real child process when the tests run as root), a TCP server
//! with a connection secret answers only clients that send it first, and every server caps
//! its connections and closes idle ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::ctaphid::{
    BROADCAST_CID, CMD_INIT, CtapHandler, PACKET_SIZE, encode_message,
};
use passgate_authenticator::transport::secret::ConnectionSecret;
use passgate_authenticator::transport::stream::{Address, Stream};
use passgate_authenticator::transport::tcp::{ServeOptions, TcpServer, UnixServer};

struct Echo;

impl CtapHandler for Echo {
    fn handle_cbor(&mut self, request: &[u8], _: &Interaction) -> Vec<u8> {
        [&[0x00], request].concat()
    }
}

const NONCE: [u8; 8] = [7, 6, 5, 4, 3, 2, 1, 0];

/// Sends INIT and says whether the server answered it (`false`: closed without an answer).
fn init_answered(stream: &mut impl ReadWrite) -> bool {
    if stream
        .write_all(&encode_message(BROADCAST_CID, CMD_INIT, &NONCE).concat())
        .is_err()
    {
        return false;
    }
    let mut reply = [0u8; PACKET_SIZE];
    match stream.read_exact(&mut reply) {
        Ok(()) => {
            assert_eq!(reply[..4], BROADCAST_CID.to_be_bytes());
            assert_eq!(reply[4], 0x80 | CMD_INIT);
            assert_eq!(reply[7..15], NONCE);
            true
        }
        Err(e) => {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ),
                "{e}"
            );
            false
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn timed(stream: Stream) -> Stream {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

#[test]
fn the_unix_socket_answers_its_own_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/authenticator.sock");
    let server = UnixServer::start_with(&path, Echo, ServeOptions::default()).unwrap();
    let mut s = timed(Stream::connect(&server.address(), Duration::from_secs(1)).unwrap());
    assert!(init_answered(&mut s));
    server.stop().unwrap();
    assert!(
        !path.exists(),
        "the socket file is removed when the server stops"
    );
}

/// Runs a python client as `nobody` that connects to `path` and sends INIT; answers what it
/// saw: `refused` (connect failed), `closed` (no answer) or `answered`.
fn as_nobody(path: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e.errno); sys.exit(0)
init = bytes([255, 255, 255, 255, 0x86, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0]) + bytes(49)
try:
    s.sendall(init)
    data = s.recv(64)
except OSError:
    data = b""
print("answered" if data else "closed")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn another_user_is_refused_by_the_directory_and_by_so_peercred() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: cannot run a client as another user; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let path = state.join("authenticator.sock");
    let server = UnixServer::start_with(&path, Echo, ServeOptions::default()).unwrap();
    // The tempdir itself is 0700 (root's): open the way to the state directory.
    use std::os::unix::fs::PermissionsExt;
    let perms = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    perms(dir.path(), 0o755);
    // As bound: the 0700 directory and 0600 socket keep nobody out.
    assert!(as_nobody(&path).starts_with("refused 13"), "EACCES");
    // Even if the filesystem let them in, the kernel's peer credentials refuse them: the
    // connection is closed before any report is read.
    perms(&state, 0o711);
    perms(&path, 0o666);
    assert_eq!(as_nobody(&path), "closed");
    // The owner is still served.
    let mut s = timed(Stream::connect(&server.address(), Duration::from_secs(1)).unwrap());
    assert!(init_answered(&mut s));
}

fn tcp_server(options: ServeOptions) -> TcpServer {
    TcpServer::start_with(TcpListener::bind("127.0.0.1:0").unwrap(), Echo, options).unwrap()
}

fn tcp(server: &TcpServer) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn with_a_secret_only_a_client_that_sends_it_first_is_answered() {
    let secret = ConnectionSecret::generate().unwrap();
    let server = tcp_server(ServeOptions {
        secret: Some(secret.clone()),
        ..ServeOptions::default()
    });
    // No hello: closed unanswered.
    assert!(!init_answered(&mut tcp(&server)));
    // Another secret: closed unanswered.
    let mut wrong = tcp(&server);
    wrong
        .write_all(&ConnectionSecret::generate().unwrap().hello())
        .unwrap();
    assert!(!init_answered(&mut wrong));
    // Silence: closed after the hello timeout.
    let mut silent = tcp(&server);
    let started = Instant::now();
    assert_eq!(silent.read(&mut [0u8; 1]).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(4));
    // The secret: served.
    let mut right = tcp(&server);
    right.write_all(&secret.hello()).unwrap();
    assert!(init_answered(&mut right));
}

#[test]
fn without_a_secret_a_hello_is_ignored() {
    let server = tcp_server(ServeOptions::default());
    let mut s = tcp(&server);
    s.write_all(&ConnectionSecret::generate().unwrap().hello())
        .unwrap();
    assert!(init_answered(&mut s));
    assert!(init_answered(&mut tcp(&server)));
}

#[test]
fn connections_over_the_cap_are_closed_and_idle_ones_too() {
    let server = tcp_server(ServeOptions {
        max_connections: 2,
        idle_timeout: Duration::from_millis(600),
        ..ServeOptions::default()
    });
    let mut a = tcp(&server);
    let mut b = tcp(&server);
    assert!(init_answered(&mut a));
    assert!(init_answered(&mut b));
    assert!(!init_answered(&mut tcp(&server)), "a third is closed");
    // Idle connections are closed, which makes room again.
    let started = Instant::now();
    assert_eq!(a.read(&mut [0u8; 1]).unwrap(), 0);
    let idle = started.elapsed();
    assert!(idle < Duration::from_secs(3), "{idle:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(init_answered(&mut tcp(&server)));
}

#[test]
fn a_listener_address_must_be_loopback() {
    for refused in ["tcp://0.0.0.0:0", "tcp://[::]:0"] {
        let err = passgate_authenticator::transport::stream::Listener::bind(
            &Address::parse(refused).unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }
    // A socket pair of this user passes the peer check.
    let (a, _b) = UnixStream::pair().unwrap();
    passgate_authenticator::transport::stream::check_same_user(&a).unwrap();
}
