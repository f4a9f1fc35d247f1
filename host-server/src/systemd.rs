//! Readiness for systemd (`Type=notify`): `READY=1` once every listener is
//! bound, `STOPPING=1` when shutdown begins.
//!
//! The protocol is one datagram to the Unix socket `$NOTIFY_SOCKET` names (a
//! path, or an abstract name when it starts with `@`); without the variable
//! this does nothing. Written out rather than through the `sd-notify` crate:
//! it is these few lines.

use std::os::unix::net::UnixDatagram;

/// Tells the service manager `state` (e.g. `READY=1`), if one is listening.
/// A failure is logged: the server runs on, and systemd reports the missing
/// readiness after its start timeout.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket, state) {
        tracing::warn!(%error, socket = ?socket, state, "cannot notify the service manager");
    }
}

fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sender.send_to_addr(state.as_bytes(), &address)?;
    } else {
        sender.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}
