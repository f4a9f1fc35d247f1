//! The serial cable between a QEMU board's UART and the server's pseudo-terminal.
//!
//! QEMU's UART is a TCP chardev that connects to a [`UartCable`]; the cable
//! pumps it to and from a [`PtyBridge`]. The pty outlives QEMU, so the test can
//! reboot the board (kill QEMU, boot again) while the server keeps the same
//! serial port open — like a board that resets while its cable stays plugged.
//! [`UartCable::through_line`] puts the link simulator into the cable.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::link::{LineModel, LineStats, Link};
use crate::pty::PtyBridge;

/// A serial cable between the board's UART (QEMU's TCP chardev, which
/// connects to [`UartCable::board_addr`]) and a pseudo-terminal for the server.
///
/// While no board is connected, bytes from the server are dropped, as on an
/// unplugged line. A new QEMU connection takes over the line.
pub struct UartCable {
    pty: PtyBridge,
    board_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl UartCable {
    /// Opens the pty and starts listening for the board on `127.0.0.1:0`.
    pub async fn new() -> io::Result<UartCable> {
        let (server_side, board_side) = tokio::io::duplex(64 * 1024);
        let pty = PtyBridge::new(server_side)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let board_addr = listener.local_addr()?;
        let task = tokio::spawn(carry(listener, board_side));
        Ok(UartCable {
            pty,
            board_addr,
            task,
        })
    }

    /// Like [`UartCable::new`], with the link simulator in the line: bytes
    /// between the board and the server move as `model` says in both
    /// directions (QEMU's own UART is not throttled, so this is what gives
    /// the board a real line rate). Returns the link's counters, board → server
    /// first.
    pub async fn through_line(
        model: LineModel,
    ) -> io::Result<(UartCable, Arc<LineStats>, Arc<LineStats>)> {
        let link = Link::symmetric(model);
        let pty = PtyBridge::new(link.b)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let board_addr = listener.local_addr()?;
        let task = tokio::spawn(carry(listener, link.a));
        let cable = UartCable {
            pty,
            board_addr,
            task,
        };
        Ok((cable, link.a_to_b, link.b_to_a))
    }

    /// The pty path to give `host-server serve --serial PATH:BAUD`.
    pub fn pty_path(&self) -> String {
        self.pty.path_str()
    }

    /// Where QEMU's UART chardev must connect.
    pub fn board_addr(&self) -> SocketAddr {
        self.board_addr
    }
}

impl Drop for UartCable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pumps bytes between the server's side of the line and whichever board is connected.
async fn carry<S>(listener: TcpListener, server_side: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_server, mut to_server) = tokio::io::split(server_side);
    let mut dropped = [0u8; 4096];
    loop {
        // No board: drain what the server sends until one connects.
        let board = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => break stream,
                    Err(_) => return,
                },
                read = from_server.read(&mut dropped) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                }
            }
        };
        let _ = board.set_nodelay(true);
        let (mut from_board, mut to_board) = board.into_split();
        // Until the board goes away (QEMU killed): the pty side stays.
        tokio::select! {
            _ = tokio::io::copy(&mut from_board, &mut to_server) => {}
            _ = tokio::io::copy(&mut from_server, &mut to_board) => {}
        }
        let _ = to_board.shutdown().await;
    }
}
