//! Where the authenticator is reached and the stream sockets that carry its reports.
//!
//! [`Address`] is the one syntax every passgate command takes (`--listen`, `--authenticator`):
//!
//! - `unix:PATH`: a Unix socket. The default: it lives in the 0700 state directory and the
//!   server answers only processes of its own user (checked with `SO_PEERCRED` on every
//!   connection), so other local accounts cannot reach the authenticator at all.
//! - `tcp://HOST:PORT`: for test rigs and CTAP tools with a TCP HID transport. Loopback only
//!   (a listener on any other address is refused); any local account can connect, so a server
//!   with a real presence prompt also requires the per-start secret of [`super::secret`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where an authenticator listens, or where a client finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Neither `unix:PATH` nor `tcp://HOST:PORT`.
    #[error("{0:?} is not an authenticator address: expected unix:PATH or tcp://HOST:PORT")]
    Syntax(String),
    /// The host does not resolve.
    #[error("{address} does not resolve: {reason}")]
    Resolve {
        /// The address as given.
        address: String,
        /// What the resolver said.
        reason: String,
    },
    /// A TCP listener on an address other users (or other machines) reach.
    #[error(
        "{address} is not a loopback address: the authenticator listens on TCP only on 127.0.0.1 or ::1 \
         (other machines must never reach it; local clients should use unix:PATH)"
    )]
    NotLoopback {
        /// The address as given.
        address: String,
    },
}

impl Address {
    /// Parses `unix:PATH` (also `unix://PATH`) or `tcp://HOST:PORT`.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(AddressError::Syntax(text.to_owned()));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        match text.strip_prefix("tcp://") {
            Some(host_port)
                if host_port.rsplit_once(':').is_some_and(|(h, p)| {
                    !h.is_empty() && !p.is_empty() && p.parse::<u16>().is_ok()
                }) =>
            {
                Ok(Self::Tcp(host_port.to_owned()))
            }
            _ => Err(AddressError::Syntax(text.to_owned())),
        }
    }

    /// The default: the Unix socket `authenticator.sock` in the authenticator's state directory.
    pub fn default_in(state_dir: &Path) -> Self {
        Self::Unix(state_dir.join(SOCKET_NAME))
    }

    /// The socket addresses of a TCP address, each checked to be loopback (a listener must
    /// never be reachable from other machines).
    pub fn loopback_socket_addrs(host_port: &str) -> Result<Vec<SocketAddr>, AddressError> {
        let addrs: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| AddressError::Resolve {
                address: host_port.to_owned(),
                reason: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(AddressError::NotLoopback {
                address: host_port.to_owned(),
            });
        }
        Ok(addrs)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(host_port) => write!(f, "tcp://{host_port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The name of the authenticator's Unix socket in its state directory.
pub const SOCKET_NAME: &str = "authenticator.sock";

/// One connection, TCP or Unix: the same 64-byte reports either way.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection (loopback).
    Tcp(TcpStream),
    /// A Unix socket connection.
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `address`, waiting at most `timeout` for a TCP connection.
    pub fn connect(address: &Address, timeout: Duration) -> io::Result<Self> {
        match address {
            Address::Unix(path) => UnixStream::connect(path).map(Self::Unix),
            Address::Tcp(host_port) => {
                let mut last = None;
                for addr in host_port.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            return Ok(Self::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| io::Error::other("the host has no address")))
            }
        }
    }

    /// Another handle on the same connection.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
            Self::Unix(s) => s.try_clone().map(Self::Unix),
        }
    }

    /// Shuts the connection down (both handles see it).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            Self::Unix(s) => s.shutdown(how),
        }
    }

    /// How long a read waits.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(timeout),
            Self::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// How long a write waits.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(timeout),
            Self::Unix(s) => s.set_write_timeout(timeout),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Unix(s) => s.flush(),
        }
    }
}

/// A listening socket, TCP or Unix.
#[derive(Debug)]
pub enum Listener {
    /// Loopback TCP.
    Tcp(TcpListener),
    /// A Unix socket; the path is removed again when the server stops.
    Unix(UnixListener, PathBuf),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

impl Listener {
    /// Binds `address`: a TCP address must be loopback; a Unix socket is created by
    /// [`bind_unix`].
    pub fn bind(address: &Address) -> io::Result<Self> {
        match address {
            Address::Tcp(host_port) => {
                let addrs = Address::loopback_socket_addrs(host_port)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                TcpListener::bind(addrs.as_slice()).map(Self::Tcp)
            }
            Address::Unix(path) => bind_unix(path).map(|l| Self::Unix(l, path.clone())),
        }
    }

    /// Where clients connect (with the port a `:0` listener was given).
    pub fn address(&self) -> io::Result<Address> {
        match self {
            Self::Tcp(l) => Ok(Address::Tcp(l.local_addr()?.to_string())),
            Self::Unix(_, path) => Ok(Address::Unix(path.clone())),
        }
    }

    /// Waits for the next connection. A Unix connection from another user is refused here
    /// (closed at once) and reported as `PermissionDenied`.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Self::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Self::Unix(l, _) => {
                let (s, _) = l.accept()?;
                check_same_user(&s)?;
                Ok(Stream::Unix(s))
            }
        }
    }
}

/// Binds a Unix socket at `path` for this user only: its directory is created 0700 (an
/// existing one must belong to this user and be closed to group and others), a stale socket
/// left by a crashed server is replaced, and the socket itself is made 0600.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::fs::private_dir(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must belong to this user and be closed to others (chmod 700) to hold the authenticator's socket",
                dir.display()
            ),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use: another authenticator is serving there",
                    path.display()
                ),
            ));
        }
        Err(_) if path.exists() => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Refuses a Unix connection whose peer runs as another user (`SO_PEERCRED`: the kernel's
/// record of who connected, which the peer cannot forge).
pub fn check_same_user(stream: &UnixStream) -> io::Result<()> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    let me = rustix::process::geteuid();
    if peer.uid == me {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refused a connection from uid {} (pid {}): the authenticator answers only uid {}",
                peer.uid.as_raw(),
                peer.pid.as_raw_nonzero(),
                me.as_raw()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for (text, address) in [
            ("unix:/run/a.sock", Address::Unix("/run/a.sock".into())),
            ("unix:///run/a.sock", Address::Unix("/run/a.sock".into())),
            ("unix:rel.sock", Address::Unix("rel.sock".into())),
            (
                "tcp://127.0.0.1:8765",
                Address::Tcp("127.0.0.1:8765".into()),
            ),
            ("tcp://[::1]:0", Address::Tcp("[::1]:0".into())),
        ] {
            assert_eq!(Address::parse(text), Ok(address.clone()), "{text}");
            assert_eq!(Address::parse(&address.to_string()), Ok(address));
        }
        for bad in [
            "",
            "unix:",
            "127.0.0.1:8765",
            "tcp://",
            "tcp://127.0.0.1",
            "tcp://:80",
            "tcp://h:99999",
            "http://x:1",
        ] {
            assert_eq!(
                Address::parse(bad),
                Err(AddressError::Syntax(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_tcp_listener_must_be_loopback() {
        for refused in ["0.0.0.0:0", "[::]:0"] {
            let err = Listener::bind(&Address::Tcp(refused.into())).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{refused}");
            assert!(err.to_string().contains("not a loopback address"), "{err}");
        }
        let ok = Listener::bind(&Address::Tcp("127.0.0.1:0".into())).unwrap();
        assert!(
            ok.address()
                .unwrap()
                .to_string()
                .starts_with("tcp://127.0.0.1:")
        );
    }

    #[test]
    fn the_unix_socket_is_private_and_a_live_one_is_not_taken_over() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/authenticator.sock");
        let listener = bind_unix(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
        let again = bind_unix(&path).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        // A stale socket (its server is gone) is replaced.
        let _replaced = bind_unix(&path).unwrap();
        // A directory others can enter is refused.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = bind_unix(&open.join("a.sock")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
    }

    #[test]
    fn the_same_user_is_accepted() {
        let (a, _b) = UnixStream::pair().unwrap();
        check_same_user(&a).unwrap();
    }
}
