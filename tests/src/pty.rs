//! Exposes one end of a simulated link as a pseudo-terminal, so the real
//! `host-server --serial` and `host-cli --server serial://…` binaries can use it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A pseudo-terminal whose master side is pumped to and from a byte stream.
pub struct PtyBridge {
    /// Path of the terminal (e.g. `/dev/pts/7`) to hand to a binary.
    pub path: PathBuf,
    /// Kept open so the master never reads EIO while the binary reopens the port.
    _slave: OwnedFd,
    task: tokio::task::JoinHandle<()>,
}

impl PtyBridge {
    /// Opens a raw pseudo-terminal and starts pumping bytes between it and `stream`.
    pub fn new<S>(stream: S) -> io::Result<PtyBridge>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let pty = openpty(None, None).map_err(io::Error::from)?;
        let mut termios = tcgetattr(&pty.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        let path = nix::unistd::ttyname(pty.slave.as_fd()).map_err(io::Error::from)?;
        let master = File::from(pty.master);
        let task = tokio::spawn(pump(master, stream));
        Ok(PtyBridge {
            path,
            _slave: pty.slave,
            task,
        })
    }

    /// The terminal's path as a string.
    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for PtyBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump<S>(master: File, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_stream, mut to_stream) = tokio::io::split(stream);
    let Ok(writer) = master.try_clone() else {
        return;
    };
    // tokio's File runs each read and write on its blocking pool, which suits a
    // pty master in blocking mode; two handles let both directions flow at once.
    let mut reader = tokio::fs::File::from_std(master);
    let mut writer = tokio::fs::File::from_std(writer);
    let from_pty = async move {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    if to_stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                // EIO: no process has the terminal open right now; wait for one.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(_) => return,
            }
        }
    };
    let to_pty = async move {
        let mut buf = [0u8; 4096];
        loop {
            let n = match from_stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if writer.write_all(&buf[..n]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    };
    tokio::join!(from_pty, to_pty);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LineModel, Link};

    #[tokio::test]
    async fn bytes_cross_the_pty_and_the_link_both_ways() {
        let link = Link::symmetric(LineModel::clean(921_600));
        let bridge = PtyBridge::new(link.b).unwrap();
        let mut device = link.a;
        let mut port = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&bridge.path)
            .await
            .unwrap();
        port.write_all(b"hello device").await.unwrap();
        let mut got = [0u8; 12];
        device.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello device");
        device.write_all(b"hello port").await.unwrap();
        let mut got = [0u8; 10];
        port.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello port");
    }
}
