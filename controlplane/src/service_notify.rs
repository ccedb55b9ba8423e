//! The service manager's notification protocol (systemd's `sd_notify`): a
//! datagram of `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`.
//! levee says `READY=1` once it forwards, `WATCHDOG=1` every second while its
//! control loop turns (a stuck control plane stops the feeding, and the
//! service manager restarts levee), and `STOPPING=1` on its way out. Without
//! the variable nothing is sent.

use std::os::unix::net::UnixDatagram;

#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`, if it is set and reachable.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let socket = UnixDatagram::unbound().ok()?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let connected = match bytes.strip_prefix(b"@") {
            // An abstract socket (Linux).
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| socket.connect_addr(&addr))
            }
            None => socket.connect(&path),
        };
        match connected {
            Ok(()) => Some(Notifier { socket }),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET {path:?}: {e}; the service manager is not told");
                None
            }
        }
    }

    /// Send one notification (`READY=1`, `WATCHDOG=1`...); a lost one is no fault.
    pub fn send(&self, state: &str) {
        let _ = self.socket.send(state.as_bytes());
    }
}
