//! A TCP proxy on `127.0.0.1:0` that a test or bench can cut: it forwards
//! every connection to a server, at a bounded rate, and drops the link
//! (both sockets shut down) once a given number of bytes went one way, or
//! refuses every connection for a while or until told otherwise.
//!
//! It stands for a Wi-Fi link that drops: the client sees its connection
//! end mid-transfer and must reconnect on its own. The proxy counts the bytes
//! it forwarded each way over all connections, so a test can bound what was
//! sent twice.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes moved per read; also the pacing step.
const BLOCK: usize = 64 * 1024;

/// Which way bytes go through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server (uploads).
    ToServer,
    /// From the server to the client (downloads).
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// A planned cut: after `after` bytes went `direction` on one connection.
#[derive(Clone, Copy, Debug)]
struct PlannedCut {
    direction: Direction,
    after: u64,
    /// How long new connections are refused once the cut happened.
    down_for: Duration,
}

#[derive(Default)]
struct State {
    /// Sockets of the open connections (client side, server side).
    open: Vec<(TcpStream, TcpStream)>,
    planned: Option<PlannedCut>,
    /// Connections are refused until then.
    down_until: Option<Instant>,
    /// Connections are refused until [`CutProxy::restore`].
    down: bool,
    cuts: u32,
    connections: u32,
}

struct Shared {
    state: Mutex<State>,
    forwarded: [AtomicU64; 2],
    /// Bytes per second each direction of each connection may carry (0: unbounded).
    rate: u64,
}

/// A running proxy; it forwards until the process ends (tests and benches are short-lived).
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl CutProxy {
    /// Starts forwarding `127.0.0.1:PORT` to `server`, each direction of each
    /// connection paced at `rate` bytes per second (0: as fast as it goes).
    pub fn start(server: &str, rate: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
            rate,
        });
        let server = server.to_owned();
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                accept(&accepting, client, &server);
            }
        });
        CutProxy { addr, shared }
    }

    /// `tcp://ADDR` of the proxy.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Cuts the link once `after` bytes went `direction` on one connection;
    /// new connections are refused for `down_for` after that.
    pub fn cut_after(&self, direction: Direction, after: u64, down_for: Duration) {
        self.lock().planned = Some(PlannedCut {
            direction,
            after,
            down_for,
        });
    }

    /// Cuts every open connection now.
    pub fn cut_now(&self) {
        cut_all(&mut self.lock());
    }

    /// Cuts every open connection and refuses new ones until [`CutProxy::restore`]:
    /// the link is down for as long as the test needs.
    pub fn go_down(&self) {
        let mut state = self.lock();
        state.down = true;
        cut_all(&mut state);
    }

    /// Accepts connections again after [`CutProxy::go_down`].
    pub fn restore(&self) {
        self.lock().down = false;
    }

    /// How many times the link was cut.
    pub fn cuts(&self) -> u32 {
        self.lock().cuts
    }

    /// How many connections were accepted (and forwarded).
    pub fn connections(&self) -> u32 {
        self.lock().connections
    }

    /// Bytes forwarded `direction` over all connections.
    pub fn forwarded(&self, direction: Direction) -> u64 {
        self.shared.forwarded[direction.index()].load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn cut_all(state: &mut State) {
    for (client, server) in state.open.drain(..) {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
    state.cuts += 1;
}

fn accept(shared: &Arc<Shared>, client: TcpStream, server: &str) {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    if state.down || state.down_until.is_some_and(|until| Instant::now() < until) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(upstream) = TcpStream::connect(server) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(c1), Ok(c2), Ok(u1), Ok(u2)) = (
        client.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    state.open.push((client, upstream));
    state.connections += 1;
    drop(state);
    let to_server = Arc::clone(shared);
    thread::spawn(move || pump(&to_server, c1, u1, Direction::ToServer));
    let to_client = Arc::clone(shared);
    thread::spawn(move || pump(&to_client, u2, c2, Direction::ToClient));
}

/// Copies `from` to `to` at the proxy's rate, counting bytes and cutting as planned.
fn pump(shared: &Shared, mut from: TcpStream, mut to: TcpStream, direction: Direction) {
    let mut buffer = vec![0u8; BLOCK];
    let started = Instant::now();
    let mut moved = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
        moved += n as u64;
        shared.forwarded[direction.index()].fetch_add(n as u64, Ordering::SeqCst);
        {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(plan) = state.planned {
                if plan.direction == direction && moved >= plan.after {
                    state.planned = None;
                    state.down_until = Some(Instant::now() + plan.down_for);
                    cut_all(&mut state);
                    break;
                }
            }
        }
        if shared.rate > 0 {
            let due = Duration::from_secs_f64(moved as f64 / shared.rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                thread::sleep(ahead);
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
