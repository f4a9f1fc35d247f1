//! The loop that runs one simulated device: proto-core's client over a tokio
//! byte stream, a thin driver in the style of `proto_core::driver`.
//!
//! proto-core's `AsyncDriver` needs `embedded-io-async` streams and stops
//! reading while it writes a frame; this loop reads and writes at once (a
//! UART has separate wires for each direction), taps every byte for the
//! [`WireLog`], takes commands from the test between steps and reconnects on
//! its own when told to.

use std::sync::Arc;
use std::time::Duration;

use proto_core::client::{Client, ClientError, Config};
use proto_core::framing::Framing;
use proto_core::message::RequestId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::event::DeviceEvent;
use super::store::MemStore;
use super::wire::{Tap, WireLog};
use super::Transport;
use crate::link::Link;

/// A byte stream the driver can run a session over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The client as the driver holds it.
pub type DeviceClient = Client<'static, MemStore, Vec<u8>>;

/// A request made on the client from the test's side.
pub(crate) type ClientCall =
    Box<dyn FnOnce(&mut DeviceClient) -> Result<RequestId, ClientError> + Send>;

/// What the test asks of the driver.
pub(crate) enum Command {
    /// Start a session (opening a TCP connection first).
    Connect,
    /// Drop the TCP connection abruptly, as a crash or a pulled network cable would.
    Hangup,
    /// Say `Bye`, flush it and close.
    Bye,
    /// Reconnect this long after every lost session (`None`: only when told).
    Reconnect(Option<Duration>),
    /// Run a request on the client.
    Call(ClientCall, oneshot::Sender<Result<RequestId, ClientError>>),
    /// Run something on the file store.
    Store(Box<dyn FnOnce(&mut MemStore) + Send>),
}

/// An open link: its halves and, for a simulated line in front of TCP, the
/// signal that the TCP side closed and the switch that closes it.
struct Conn {
    read: ReadHalf<Box<dyn Stream>>,
    write: WriteHalf<Box<dyn Stream>>,
    hangup: Option<oneshot::Receiver<()>>,
    /// Dropped with the connection: the bridge then closes the TCP socket at
    /// once (a line end that is dropped does not end the other end's stream).
    _close: Option<oneshot::Sender<()>>,
}

impl Conn {
    fn new(stream: Box<dyn Stream>) -> Conn {
        let (read, write) = tokio::io::split(stream);
        Conn {
            read,
            write,
            hangup: None,
            _close: None,
        }
    }
}

/// What woke the loop.
enum Wake {
    Command(Option<Command>),
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Hangup,
    Timer,
    Reconnect,
}

/// The device's task.
pub(crate) struct Runner {
    pub client: DeviceClient,
    pub transport: Transport,
    pub framing: Framing,
    pub events: mpsc::UnboundedSender<DeviceEvent>,
    pub log: Arc<WireLog>,
    pub reconnect_after: Option<Duration>,
    /// Print every event to stderr (`SIM_TRACE=1`).
    trace: bool,
    conn: Option<Conn>,
    tap: Option<Tap>,
    sessions: u32,
    started: Instant,
    reconnect_at: Option<Instant>,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    out: Vec<u8>,
    out_pos: usize,
}

/// Far enough in the future to stand for "never".
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

impl Runner {
    /// A driver for `client` over `transport`; nothing happens until it runs.
    pub fn new(
        config: Config<'static>,
        store: MemStore,
        transport: Transport,
        events: mpsc::UnboundedSender<DeviceEvent>,
        log: Arc<WireLog>,
    ) -> Result<Runner, ClientError> {
        let framing = config.framing;
        let wire = framing.max_wire_len(config.max_frame as usize);
        let client = Client::new(config, store, vec![0; wire], vec![0; wire])?;
        Ok(Runner {
            client,
            transport,
            framing,
            events,
            log,
            reconnect_after: None,
            trace: std::env::var_os("SIM_TRACE").is_some_and(|v| v == "1"),
            conn: None,
            tap: None,
            sessions: 0,
            started: Instant::now(),
            reconnect_at: None,
            input: vec![0; 16 * 1024],
            in_start: 0,
            in_end: 0,
            out: Vec::new(),
            out_pos: 0,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    fn emit(&self, event: DeviceEvent) {
        if self.trace {
            eprintln!(
                "[{:>8.3}s {}] {event:?}",
                self.started.elapsed().as_secs_f64(),
                self.client.config().device
            );
        }
        // The test may have dropped its handle; the device just runs on.
        let _ = self.events.send(event);
    }

    /// Runs until the test drops its handle; gives the store back.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> MemStore {
        if let Transport::Serial(stream) = &mut self.transport {
            if let Some(stream) = stream.take() {
                self.conn = Some(Conn::new(stream));
            }
        }
        loop {
            let now = self.now_ms();
            self.feed(now);
            self.fill_output(now);
            let wake = self.wait(&mut commands, now).await;
            let now = self.now_ms();
            match wake {
                Wake::Command(None) => return self.client.into_store(),
                Wake::Command(Some(command)) => self.command(command, now).await,
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) | Wake::Wrote(Err(_)) | Wake::Hangup => {
                    self.link_lost(now, true)
                }
                Wake::Read(Ok(n)) => {
                    if let Some(tap) = self.tap.as_mut() {
                        tap.received(&self.input[..n]);
                    }
                    self.in_start = 0;
                    self.in_end = n;
                }
                Wake::Wrote(Ok(n)) => self.out_pos += n,
                Wake::Timer => {}
                Wake::Reconnect => {
                    self.reconnect_at = None;
                    self.connect().await;
                }
            }
        }
    }

    /// Feeds buffered input to the client and runs its timers, passing every event on.
    fn feed(&mut self, now: u64) {
        loop {
            let received = self
                .client
                .receive(now, &self.input[self.in_start..self.in_end]);
            let consumed = received.consumed;
            let event = received.event.as_ref().map(DeviceEvent::from);
            self.in_start += consumed;
            match event {
                Some(event) => self.on_event(event, now),
                None if self.in_start < self.in_end => {}
                None => return,
            }
        }
    }

    fn on_event(&mut self, event: DeviceEvent, now: u64) {
        if let DeviceEvent::Closed { .. } = event {
            if matches!(self.transport, Transport::Tcp { .. }) {
                self.conn = None;
            }
            self.schedule_reconnect(now);
        }
        self.emit(event);
    }

    fn schedule_reconnect(&mut self, now: u64) {
        if let Some(delay) = self.reconnect_after {
            self.reconnect_at = Some(self.at(now) + delay);
        }
    }

    /// Takes the next frame to send when the previous one is written.
    fn fill_output(&mut self, now: u64) {
        if self.conn.is_none() || self.out_pos < self.out.len() {
            return;
        }
        self.out.clear();
        self.out_pos = 0;
        if let Some(bytes) = self.client.poll_transmit(now) {
            if let Some(tap) = self.tap.as_mut() {
                tap.sent(bytes);
            }
            self.out.extend_from_slice(bytes);
        }
    }

    async fn wait(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>, now: u64) -> Wake {
        let writing = self.out_pos < self.out.len();
        let timer = match self.client.poll_at() {
            // Something is due at once but the line is busy: the write wakes us.
            Some(at) if at <= now && writing => None,
            Some(at) => Some(self.at(at.max(now + 1))),
            None => None,
        };
        let timer = timer.unwrap_or_else(|| Instant::now() + NEVER);
        let reconnect = self.reconnect_at;
        let reconnect_at = reconnect.unwrap_or_else(|| Instant::now() + NEVER);
        let reading = self.in_start >= self.in_end;
        let Some(conn) = self.conn.as_mut() else {
            return tokio::select! {
                command = commands.recv() => Wake::Command(command),
                () = tokio::time::sleep_until(timer) => Wake::Timer,
                () = tokio::time::sleep_until(reconnect_at), if reconnect.is_some() => Wake::Reconnect,
            };
        };
        let Conn {
            read,
            write,
            hangup,
            ..
        } = conn;
        let out = &self.out[self.out_pos..];
        let input = &mut self.input[..];
        let has_hangup = hangup.is_some();
        let wake = tokio::select! {
            command = commands.recv() => Wake::Command(command),
            read = read.read(input), if reading => Wake::Read(read),
            wrote = write.write(out), if writing => Wake::Wrote(wrote),
            _ = async { hangup.as_mut().expect("checked").await }, if has_hangup => Wake::Hangup,
            () = tokio::time::sleep_until(timer) => Wake::Timer,
            () = tokio::time::sleep_until(reconnect_at), if reconnect.is_some() => Wake::Reconnect,
        };
        if let Wake::Wrote(Ok(_)) = wake {
            // Written bytes reach the line without waiting for a buffer to fill.
            let _ = write.flush().await;
        }
        wake
    }

    async fn command(&mut self, command: Command, now: u64) {
        match command {
            Command::Connect => self.connect().await,
            Command::Hangup => self.link_lost(now, false),
            Command::Bye => self.bye(now).await,
            Command::Reconnect(after) => self.reconnect_after = after,
            Command::Call(call, reply) => {
                let _ = reply.send(call(&mut self.client));
            }
            Command::Store(change) => change(self.client.store_mut()),
        }
    }

    /// The session's link is gone: the stream ended or failed, or the test
    /// hung up. A TCP connection is dropped; a serial stream only when it ended.
    fn link_lost(&mut self, now: u64, stream_ended: bool) {
        if stream_ended || matches!(self.transport, Transport::Tcp { .. }) {
            self.conn = None;
        }
        self.in_start = 0;
        self.in_end = 0;
        self.client.disconnected(now);
        // `disconnected` queues `Closed` (and the reconnect) unless no session ran.
        self.feed(now);
    }

    /// Starts a session: a new TCP connection, or a new `Hello` on the serial line.
    async fn connect(&mut self) {
        self.out.clear();
        self.out_pos = 0;
        self.in_start = 0;
        self.in_end = 0;
        if let Transport::Tcp { addr, line } = &self.transport {
            self.conn = None;
            let addr = addr.get();
            let stream = match TcpStream::connect(&addr).await {
                Ok(stream) => stream,
                Err(_) => {
                    self.emit(DeviceEvent::ConnectFailed);
                    let now = self.now_ms();
                    self.schedule_reconnect(now);
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            self.conn = Some(match line {
                None => Conn::new(Box::new(stream)),
                Some(models) => {
                    let (up, down) = &**models;
                    let link = Link::new(up.clone(), down.clone());
                    let (closed_tx, closed_rx) = oneshot::channel();
                    let (close_tx, close_rx) = oneshot::channel::<()>();
                    let mut line_end = link.b;
                    tokio::spawn(async move {
                        let mut stream = stream;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut line_end, &mut stream) => {}
                            _ = close_rx => {}
                        }
                        drop(stream);
                        let _ = closed_tx.send(());
                    });
                    let mut conn = Conn::new(Box::new(link.a));
                    conn.hangup = Some(closed_rx);
                    conn._close = Some(close_tx);
                    conn
                }
            });
        }
        if self.conn.is_none() {
            self.emit(DeviceEvent::ConnectFailed);
            return;
        }
        self.sessions += 1;
        let wire = self
            .framing
            .max_wire_len(self.client.offered_max_frame() as usize);
        self.tap = Some(Tap::new(
            self.log.clone(),
            self.sessions,
            self.framing,
            wire,
        ));
        let now = self.now_ms();
        self.client.connect(now, rand::random());
    }

    /// Sends `Bye`, waits until it is written, then closes a TCP connection.
    async fn bye(&mut self, now: u64) {
        if self.client.close(now).is_err() {
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            let mut pending = self.out[self.out_pos..].to_vec();
            while let Some(bytes) = self.client.poll_transmit(now) {
                if let Some(tap) = self.tap.as_mut() {
                    tap.sent(bytes);
                }
                pending.extend_from_slice(bytes);
            }
            let flushed = async {
                conn.write.write_all(&pending).await?;
                conn.write.flush().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
        }
        self.out.clear();
        self.out_pos = 0;
        if matches!(self.transport, Transport::Tcp { .. }) {
            self.conn = None;
        }
        self.emit(DeviceEvent::Closed {
            error: ClientError::LinkClosed,
            message: "bye".to_owned(),
        });
    }
}
