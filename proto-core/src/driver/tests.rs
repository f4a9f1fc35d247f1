//! Both drivers run a client against the in-test responder over an in-memory stream.

use core::cell::Cell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::collections::VecDeque;
use std::rc::Rc;

use super::{AsyncClock, AsyncDriver, BlockingDriver, Clock};
use crate::client::tests::responder::Responder;
use crate::client::tests::{content, test_config, DEVICE, KEY};
use crate::client::{Client, Event, FileId, RamFile, RamStore};
use crate::framing::Framing;
use crate::state::UploadState;

/// The responder behind a byte stream; time comes from a shared counter.
struct Loopback {
    server: Responder,
    to_client: VecDeque<u8>,
    clock: Rc<Cell<u64>>,
}

impl Loopback {
    fn new(framing: Framing, clock: Rc<Cell<u64>>) -> Loopback {
        let mut server = Responder::new(framing, DEVICE, KEY, 1024);
        server.publish("down.bin", &content(6_000, 2));
        Loopback {
            server,
            to_client: VecDeque::new(),
            clock,
        }
    }

    fn pump(&mut self) {
        self.server.poll(self.clock.get());
        self.to_client.extend(self.server.take_output());
    }

    fn take(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.to_client.len());
        for (slot, byte) in buf.iter_mut().zip(self.to_client.drain(..n)) {
            *slot = byte;
        }
        n
    }

    fn put(&mut self, buf: &[u8]) -> usize {
        self.server.feed(self.clock.get(), buf);
        self.pump();
        buf.len()
    }
}

impl embedded_io::ErrorType for Loopback {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Loopback {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        match self.take(buf) {
            0 => Err(embedded_io::ErrorKind::Other), // the driver only reads when ready
            n => Ok(n),
        }
    }
}

impl embedded_io::ReadReady for Loopback {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        self.pump();
        Ok(!self.to_client.is_empty())
    }
}

impl embedded_io::Write for Loopback {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(self.put(buf))
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl embedded_io_async::Read for Loopback {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        core::future::poll_fn(|_| {
            self.pump();
            match self.take(buf) {
                0 => Poll::Pending,
                n => Poll::Ready(Ok(n)),
            }
        })
        .await
    }
}

impl embedded_io_async::Write for Loopback {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(self.put(buf))
    }
}

/// A clock that ticks one ms per reading and jumps when asked to sleep.
struct TestClock(Rc<Cell<u64>>);

impl Clock for TestClock {
    fn now_ms(&mut self) -> u64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
}

impl AsyncClock for TestClock {
    fn now_ms(&mut self) -> u64 {
        Clock::now_ms(self)
    }

    fn sleep_until(&mut self, at_ms: u64) -> impl Future<Output = ()> {
        self.0.set(self.0.get().max(at_ms));
        core::future::ready(())
    }
}

/// Runs a future to completion by polling (the test streams never wait for real).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// What the application loop does next, decided from an event.
enum Next {
    Upload,
    Download,
    Finished(bool),
    Nothing,
}

fn react(event: Option<Event<'_>>) -> Next {
    match event {
        Some(Event::Connected { .. }) => Next::Upload,
        Some(Event::UploadDone { record, .. }) => {
            assert_eq!(record.state, UploadState::Uploaded);
            Next::Download
        }
        Some(Event::DownloadDone { verified, .. }) => Next::Finished(verified),
        Some(Event::Closed { error, .. }) => panic!("session closed: {error}"),
        _ => Next::Nothing,
    }
}

fn files<'a>(upload: &'a mut [u8], target: &'a mut [u8]) -> [RamFile<'a>; 2] {
    [
        RamFile::with_content("up.bin", upload),
        RamFile::empty("down.bin", target),
    ]
}

#[test]
fn blocking_driver_uploads_and_downloads_over_a_serial_stream() {
    let (mut upload, mut target) = (content(9_000, 1), std::vec![0u8; 6_000]);
    let mut files = files(&mut upload, &mut target);
    let time = Rc::new(Cell::new(0));
    let config = test_config(Framing::Serial, 1024);
    let wire = Framing::Serial.max_wire_len(1024);
    let client = Client::new(
        config,
        RamStore::new(&mut files),
        std::vec![0u8; wire],
        std::vec![0u8; wire],
    )
    .unwrap();
    let io = Loopback::new(Framing::Serial, time.clone());
    let mut driver = BlockingDriver::new(client, io, TestClock(time), [0u8; 64]);
    driver.connect([9; 16]);
    let mut verified = None;
    for _ in 0..200_000 {
        match react(driver.poll().unwrap()) {
            Next::Upload => {
                driver.client().upload(FileId(0)).unwrap();
            }
            Next::Download => {
                driver.client().download(FileId(1), false).unwrap();
            }
            Next::Finished(ok) => {
                verified = Some(ok);
                break;
            }
            Next::Nothing => {}
        }
    }
    assert_eq!(verified, Some(true));
    let (client, io, _) = driver.into_parts();
    assert_eq!(
        client.store().file(FileId(1)).unwrap().contents(),
        &content(6_000, 2)[..]
    );
    let index = io.server.file_named("up.bin").unwrap();
    assert_eq!(io.server.files[index].data, content(9_000, 1));
}

#[test]
fn async_driver_uploads_and_downloads_over_a_tcp_stream() {
    let (mut upload, mut target) = (content(30_000, 3), std::vec![0u8; 6_000]);
    let mut files = files(&mut upload, &mut target);
    let time = Rc::new(Cell::new(0));
    let config = test_config(Framing::Length, 1024);
    let client = Client::new(
        config,
        RamStore::new(&mut files),
        std::vec![0u8; 1028],
        std::vec![0u8; 1028],
    )
    .unwrap();
    let io = Loopback::new(Framing::Length, time.clone());
    let mut driver = AsyncDriver::new(client, io, TestClock(time), std::vec![0u8; 4096]);
    driver.connect([8; 16]);
    let verified = block_on(async {
        for _ in 0..200_000 {
            match react(driver.poll().await.unwrap()) {
                Next::Upload => {
                    driver.client().upload(FileId(0)).unwrap();
                }
                Next::Download => {
                    driver.client().download(FileId(1), false).unwrap();
                }
                Next::Finished(ok) => return Some(ok),
                Next::Nothing => {}
            }
        }
        None
    });
    assert_eq!(verified, Some(true));
    let (client, io, _) = driver.into_parts();
    assert_eq!(
        client.store().file(FileId(1)).unwrap().contents(),
        &content(6_000, 2)[..]
    );
    let index = io.server.file_named("up.bin").unwrap();
    assert_eq!(io.server.files[index].data, content(30_000, 3));
}
