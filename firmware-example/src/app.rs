//! What the board does on the link: a to-do list run over proto-core's
//! blocking driver, or its async driver (feature `async-driver`).
//!
//! Once per boot, announce the samples (manifest). After every `Connected`:
//! upload each sample not known to be `11` yet (the server says where to
//! resume), subscribe to record changes and list what is there, and download
//! every file published in the board's inbox — asking to be notified when one
//! is still uploading, and fetching it when `DownloadAvailable` comes. When the
//! session ends for any reason, say `Hello` again after a pause.
//!
//! No protocol logic lives here: framing, handshake, windows, resume offsets,
//! retransmission and hash checks are the driver's and the client's. This file
//! only decides what to ask for next and reports what happened.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use heapless::String;
use proto_core::client::{
    Client, ClientError, Config, Event, FileId, FileStore, LinkState, ListItem,
};
#[cfg(not(feature = "async-driver"))]
use proto_core::driver::BlockingDriver;
#[cfg(feature = "async-driver")]
use proto_core::driver::{AsyncClock, AsyncDriver};
use proto_core::driver::{Clock, DriverError};
use proto_core::framing::Framing;
use proto_core::message::RequestId;
#[cfg(feature = "full")]
use proto_core::model::ListFilter;
use proto_core::model::{ContentHash, Record};
use proto_core::state::UploadState;

#[cfg(all(feature = "async-driver", not(feature = "embassy")))]
use crate::async_uart::AsyncUart;
use crate::buffers::{Buffers, FrameBuffer};
#[cfg(feature = "async-driver")]
use crate::executor::{self, Either};
use crate::identity::Identity;
use crate::nonces::Nonces;
use crate::store::BoardStore;
#[cfg(feature = "full")]
use crate::store::{Placement, RAM_SLOT_BYTES};
use crate::{board, stack};

/// Largest frame payload the board offers (its RAM decides).
const MAX_FRAME: usize = board::MAX_FRAME;
/// Receive and send buffer size for frames of [`MAX_FRAME`] bytes.
pub const FRAME_BUFFER: usize = Framing::Serial.max_wire_len(MAX_FRAME);
/// Pause before saying `Hello` again after a session ended.
const RECONNECT_DELAY_MS: u64 = 1_000;
/// Pause before retrying an upload the client gave up on.
const UPLOAD_RETRY_DELAY_MS: u64 = 2_000;
/// Inbox files the board tracks at once; more wait for the next list.
const INBOX_CAPACITY: usize = 4;
/// Longest inbox name the board tracks.
const NAME_CAPACITY: usize = 96;

type Name = String<NAME_CAPACITY>;

// `Plan::uploads_pending` has one bit per sample.
const _: () = assert!(crate::samples::FILES.len() <= 32);
/// proto-core's blocking driver over the board's UART (the default).
#[cfg(not(feature = "async-driver"))]
type Driver = BlockingDriver<
    'static,
    BoardStore,
    &'static mut FrameBuffer,
    board::Uart,
    BoardClock,
    [u8; 64],
>;
/// proto-core's async driver over the board's UART (feature `async-driver`),
/// [`run`] awaited by [`crate::executor::block_on`] or by embassy-executor.
#[cfg(feature = "async-driver")]
type Driver =
    AsyncDriver<'static, BoardStore, &'static mut FrameBuffer, Stream, BoardClock, [u8; 64]>;
/// The async driver's stream: the board's UART behind the polled wrapper of
/// `async_uart.rs`, for the firmware's executor.
#[cfg(all(feature = "async-driver", not(feature = "embassy")))]
type Stream = AsyncUart;
/// The async driver's stream: the board's UART itself, whose embassy driver
/// implements `embedded-io-async` and wakes the task when bytes arrive.
#[cfg(feature = "embassy")]
type Stream = board::Uart;
/// The driver's name, for the boot log.
const DRIVER_KIND: &str = if cfg!(feature = "async-driver") {
    "async driver (embedded-io-async)"
} else {
    "blocking driver (embedded-io)"
};
/// Longest an async step waits for input before the plan gets a turn (its
/// own timers: reconnecting, retrying an upload).
#[cfg(feature = "async-driver")]
const ASYNC_STEP_MS: u64 = 10;

/// RAM the protocol takes: both frame buffers and the driver's state (client,
/// framing, transfer windows, input buffer), without the board's file store
/// and UART that the driver holds by value. Logged at boot; checked here
/// against the 8 KiB budget.
pub const PROTOCOL_RAM: usize = 2 * FRAME_BUFFER + core::mem::size_of::<Driver>()
    - core::mem::size_of::<BoardStore>()
    - core::mem::size_of::<board::Uart>();
// The async driver's stream is the board's UART, or a wrapper of the same size.
#[cfg(feature = "async-driver")]
const _: () = assert!(core::mem::size_of::<Stream>() == core::mem::size_of::<board::Uart>());
const _: () = assert!(
    PROTOCOL_RAM <= 8 * 1024,
    "the protocol must fit in 8 KiB of RAM"
);

/// [`PROTOCOL_RAM`] for a board with 512-byte frames: the driver holds its
/// buffers by reference, so only the two buffers change. Small parts budget
/// 3 KiB for it, checked here.
pub const PROTOCOL_RAM_AT_512: usize =
    2 * Framing::Serial.max_wire_len(512) + PROTOCOL_RAM - 2 * FRAME_BUFFER;
const _: () = assert!(
    PROTOCOL_RAM_AT_512 <= 3 * 1024,
    "with 512-byte frames the protocol must fit in 3 KiB of RAM"
);

/// The board's millisecond clock for the driver.
struct BoardClock;

impl BoardClock {
    /// Milliseconds since boot (the one clock both driver traits read).
    fn now_ms(&self) -> u64 {
        board::now_us() / 1_000
    }
}

impl Clock for BoardClock {
    fn now_ms(&mut self) -> u64 {
        BoardClock::now_ms(self)
    }
}

#[cfg(feature = "async-driver")]
impl AsyncClock for BoardClock {
    fn now_ms(&mut self) -> u64 {
        BoardClock::now_ms(self)
    }

    /// Ready once the clock reached `at_ms`; the executor polls again after
    /// every tick.
    #[cfg(not(feature = "embassy"))]
    fn sleep_until(&mut self, at_ms: u64) -> impl core::future::Future<Output = ()> {
        core::future::poll_fn(move |_| {
            if BoardClock.now_ms() >= at_ms {
                core::task::Poll::Ready(())
            } else {
                core::task::Poll::Pending
            }
        })
    }

    /// An embassy-time timer: the time driver's alarm wakes the task at `at_ms`.
    #[cfg(feature = "embassy")]
    fn sleep_until(&mut self, at_ms: u64) -> impl core::future::Future<Output = ()> {
        embassy_time::Timer::at(embassy_time::Instant::from_millis(at_ms))
    }
}

/// What one driver step gave.
type Polled<'a> =
    Result<Option<Event<'a>>, DriverError<<board::Uart as embedded_io::ErrorType>::Error>>;

/// One step of the blocking driver.
/// Not inlined (nor are the plan's steps): siblings inlined into `run` would
/// add their temporaries up in its frame.
#[cfg(not(feature = "async-driver"))]
#[inline(never)]
fn step(driver: &mut Driver, plan: &mut Plan, inbox_prefix: &str) -> Happening {
    describe(driver.poll(), plan, inbox_prefix)
}

/// One step of the async driver: it waits for input at most
/// [`ASYNC_STEP_MS`], then gives the plan its turn.
#[cfg(feature = "async-driver")]
async fn step(driver: &mut Driver, plan: &mut Plan, inbox_prefix: &str) -> Happening {
    let turn_ends = BoardClock.now_ms() + ASYNC_STEP_MS;
    let polled = match executor::first_of(
        driver.poll(),
        AsyncClock::sleep_until(&mut BoardClock, turn_ends),
    )
    .await
    {
        Either::First(polled) => polled,
        Either::Second(()) => Ok(None),
    };
    describe(polled, plan, inbox_prefix)
}

/// A file published in the inbox that the board wants.
struct Wanted {
    name: Name,
    size: u64,
    hash: ContentHash,
    /// Refused as not uploaded yet: wait for `DownloadAvailable`.
    waiting: bool,
}

/// What happened in one driver step, copied out of the borrowed event.
enum Happening {
    Nothing,
    Connected,
    Closed,
    BatchCreated,
    RequestFailed {
        id: RequestId,
    },
    UploadDone {
        file: FileId,
        uploaded: bool,
    },
    TransferFailed {
        id: RequestId,
    },
    Published {
        name: Name,
        size: u64,
        hash: ContentHash,
        available: bool,
    },
    DownloadRejected {
        id: RequestId,
    },
    DownloadDone {
        id: RequestId,
        file: FileId,
        verified: bool,
    },
    RetryRequested {
        file: FileId,
    },
    /// The server already holds this file's content: it is `11`, nothing to upload.
    Held {
        file: FileId,
    },
}

/// The board's to-do list.
struct Plan {
    /// The manifest was stored this boot (`BatchCreated`); later sessions skip it.
    manifest_done: bool,
    manifest_due: bool,
    subscribe_due: bool,
    list_due: bool,
    /// Bit `i` set: sample `i` is not known to be `11` yet.
    uploads_pending: u32,
    upload_not_before_ms: u64,
    manifest_id: Option<RequestId>,
    upload: Option<(RequestId, FileId)>,
    /// The running download and the inbox entry it fetches.
    download: Option<(RequestId, usize)>,
    inbox: [Option<Wanted>; INBOX_CAPACITY],
    reconnect_at_ms: Option<u64>,
    /// Last upload progress logged, in quarters of the file.
    upload_quarter_logged: u64,
}

/// Runs the board forever as `identity`: connects, syncs, reconnects.
///
/// The start-up is written out here rather than shared with the async loop
/// through [`start`]: on the 8 KiB `lm3s811evb` that split cost the last 28
/// bytes of free stack.
#[cfg(not(feature = "async-driver"))]
pub fn run(
    identity: &'static Identity,
    mut nonces: Nonces,
    uart: board::Uart,
    buffers: Buffers,
) -> ! {
    let driver = start_driver(identity, uart, buffers);
    let store = driver.client().store();
    let samples = store.samples();
    for file in samples.clone() {
        if let Ok(meta) = store.meta(FileId(file)) {
            info!(
                "holds {} ({} bytes) sha256 {}",
                meta.name, meta.size, meta.hash
            );
        }
    }
    let mut plan = Plan {
        manifest_done: false,
        manifest_due: false,
        subscribe_due: false,
        list_due: false,
        uploads_pending: samples.fold(0, |bits, file| bits | 1 << file),
        upload_not_before_ms: 0,
        manifest_id: None,
        upload: None,
        download: None,
        inbox: [const { None }; INBOX_CAPACITY],
        reconnect_at_ms: None,
        upload_quarter_logged: 0,
    };
    info!(
        "protocol RAM: {} bytes (frame buffers 2 x {}, driver state {}; {} with 512-byte frames)",
        PROTOCOL_RAM,
        FRAME_BUFFER,
        PROTOCOL_RAM - 2 * FRAME_BUFFER,
        PROTOCOL_RAM_AT_512
    );
    info!(
        "connecting as `{}` through the {}",
        identity.name(),
        DRIVER_KIND
    );
    driver.connect(nonces.next());
    loop {
        let happening = step(driver, &mut plan, identity.inbox_prefix());
        plan.apply(happening, driver);
        let now = BoardClock.now_ms();
        if plan.reconnect_at_ms.is_some_and(|at| now >= at) {
            plan.reconnect_at_ms = None;
            info!("saying Hello again");
            driver.connect(nonces.next());
        }
        plan.make_requests(driver, now);
        if is_idle(driver, now) {
            board::wait_for_interrupt();
        }
    }
}

/// Runs the board forever as `identity`: connects, syncs, reconnects. The
/// waiting happens in [`step`]'s awaits (for the UART or a timer).
#[cfg(feature = "async-driver")]
pub async fn run(
    identity: &'static Identity,
    mut nonces: Nonces,
    uart: board::Uart,
    buffers: Buffers,
) -> ! {
    let (driver, mut plan) = start(identity, &mut nonces, uart, buffers);
    loop {
        let happening = step(driver, &mut plan, identity.inbox_prefix()).await;
        plan.follow(happening, driver, &mut nonces);
    }
}

/// Starts the driver, logs what the board holds, says the first `Hello` and
/// returns the driver with a fresh to-do list (the async loop's start-up).
#[cfg(feature = "async-driver")]
#[inline(never)]
// The mutable reference is to DRIVER, made once (see `start_driver`).
#[allow(clippy::mut_from_ref)]
fn start(
    identity: &'static Identity,
    nonces: &mut Nonces,
    uart: board::Uart,
    buffers: Buffers,
) -> (&'static mut Driver, Plan) {
    let driver = start_driver(identity, uart, buffers);
    let store = driver.client().store();
    let samples = store.samples();
    for file in samples.clone() {
        if let Ok(meta) = store.meta(FileId(file)) {
            info!(
                "holds {} ({} bytes) sha256 {}",
                meta.name, meta.size, meta.hash
            );
        }
    }
    let plan = Plan {
        manifest_done: false,
        manifest_due: false,
        subscribe_due: false,
        list_due: false,
        uploads_pending: samples.fold(0, |bits, file| bits | 1 << file),
        upload_not_before_ms: 0,
        manifest_id: None,
        upload: None,
        download: None,
        inbox: [const { None }; INBOX_CAPACITY],
        reconnect_at_ms: None,
        upload_quarter_logged: 0,
    };
    info!(
        "protocol RAM: {} bytes (frame buffers 2 x {}, driver state {}; {} with 512-byte frames)",
        PROTOCOL_RAM,
        FRAME_BUFFER,
        PROTOCOL_RAM - 2 * FRAME_BUFFER,
        PROTOCOL_RAM_AT_512
    );
    info!(
        "connecting as `{}` through the {}",
        identity.name(),
        DRIVER_KIND
    );
    driver.connect(nonces.next());
    (driver, plan)
}

/// The driver's home: `.bss`, not `run`'s stack frame, which would otherwise
/// hold it (and, around the moves that build it, copies of it) for good: on
/// an 8 KiB part that is the difference between fitting and not.
static mut DRIVER: MaybeUninit<Driver> = MaybeUninit::uninit();
/// Set once [`DRIVER`] is built.
static DRIVER_STARTED: AtomicBool = AtomicBool::new(false);

/// Builds the store, the client (as `identity`) and its driver into
/// [`DRIVER`], in a stack frame of its own that is gone before the main loop
/// runs.
#[inline(never)]
// The mutable reference is to DRIVER, made once (see below), not one derived from `identity`.
#[allow(clippy::mut_from_ref)]
fn start_driver(
    identity: &'static Identity,
    uart: board::Uart,
    buffers: Buffers,
) -> &'static mut Driver {
    // Load and store under a critical section: thumbv6m and rv32imc have no atomic swap.
    let first = critical_section::with(|_| {
        let started = DRIVER_STARTED.load(Ordering::Relaxed);
        DRIVER_STARTED.store(true, Ordering::Relaxed);
        !started
    });
    if !first {
        panic!("the driver is started once");
    }
    // SAFETY: `first` is true exactly once (tested and set with interrupts
    // off on a single core), so this is the only reference ever made to DRIVER.
    let slot = unsafe { &mut *core::ptr::addr_of_mut!(DRIVER) };
    let config = Config::serial(identity.name(), identity.key());
    let store = BoardStore::new(identity.name(), buffers.slots);
    let client = match Client::new(config, store, buffers.rx, buffers.tx) {
        Ok(client) => client,
        // Only a bad device name (`Identity` checks it) or small buffers (a constant) get here.
        Err(error) => {
            error!("the client cannot start: {}", error);
            panic!("the client cannot start");
        }
    };
    #[cfg(not(feature = "async-driver"))]
    let driver = BlockingDriver::new(client, uart, BoardClock, [0u8; 64]);
    #[cfg(all(feature = "async-driver", not(feature = "embassy")))]
    let driver = AsyncDriver::new(client, AsyncUart(uart), BoardClock, [0u8; 64]);
    #[cfg(feature = "embassy")]
    let driver = AsyncDriver::new(client, uart, BoardClock, [0u8; 64]);
    slot.write(driver)
}

/// True when neither the UART nor the client needs the CPU before the next interrupt.
#[cfg(not(feature = "async-driver"))]
fn is_idle(driver: &mut Driver, now: u64) -> bool {
    let input = embedded_io::ReadReady::read_ready(driver.io()).unwrap_or(true);
    let timer_due = driver.client().poll_at().is_some_and(|at| at <= now);
    !input && !timer_due
}

/// Logs what one driver step gave and copies out what the plan needs.
/// Inlined into `step`: the event then stays where the driver left it
/// instead of being copied into a frame of its own (on the 8 KiB
/// `lm3s811evb` every byte of stack counts).
#[inline(always)]
fn describe(polled: Polled<'_>, plan: &mut Plan, inbox_prefix: &str) -> Happening {
    let event = match polled {
        Ok(Some(event)) => event,
        Ok(None) => return Happening::Nothing,
        Err(error) => {
            warn!("link error: {}", error);
            return Happening::Closed;
        }
    };
    match event {
        Event::Connected {
            device,
            revision,
            max_frame,
        } => {
            info!(
                "connected as `{}` (server revision {}, frames of {} bytes)",
                device, revision, max_frame
            );
            Happening::Connected
        }
        Event::Closed { error, message } => {
            warn!("session closed: {} {}", error, message);
            Happening::Closed
        }
        Event::BatchCreated {
            batch,
            records,
            conflicts,
            ..
        } => {
            info!(
                "batch {} created: {} files expected, {} conflicts",
                batch, records, conflicts
            );
            Happening::BatchCreated
        }
        Event::RequestFailed { id, code, message } => {
            warn!("request {} refused: {} {}", id, code, message);
            Happening::RequestFailed { id }
        }
        Event::UploadStarted {
            record,
            offset,
            size,
            ..
        } => {
            if offset > 0 {
                info!(
                    "upload of record {} resumes at byte {} of {}",
                    record, offset, size
                );
            } else {
                info!("upload of record {} starts ({} bytes)", record, size);
            }
            plan.upload_quarter_logged = offset * 4 / size.max(1);
            Happening::Nothing
        }
        Event::UploadProgress { durable, size, .. } => {
            let quarter = durable * 4 / size.max(1);
            if quarter > plan.upload_quarter_logged && quarter < 4 {
                plan.upload_quarter_logged = quarter;
                info!(
                    "upload progress: {} of {} bytes on the server",
                    durable, size
                );
            }
            Happening::Nothing
        }
        Event::UploadDone { file, record, .. } => {
            let uploaded = record.state == UploadState::Uploaded;
            if uploaded {
                info!(
                    "uploaded {} ({} bytes): {}",
                    record.name, record.size, record.state
                );
            } else {
                error!(
                    "upload of {} ended {}: {}",
                    record.name, record.state, record.reason
                );
            }
            Happening::UploadDone { file, uploaded }
        }
        Event::TransferFailed { id, error, .. } => {
            warn!("transfer {} failed: {}", id, error);
            Happening::TransferFailed { id }
        }
        Event::Item {
            item: ListItem::Record(record),
            ..
        }
        | Event::RecordChanged { record } => published(&record, inbox_prefix),
        Event::DownloadAvailable {
            name, size, hash, ..
        } => {
            info!("notified: {} is uploaded now ({} bytes)", name, size);
            match Name::try_from(name) {
                Ok(name) => Happening::Published {
                    name,
                    size,
                    hash,
                    available: true,
                },
                Err(()) => Happening::Nothing,
            }
        }
        Event::DownloadRejected {
            id,
            record,
            state,
            received,
            size,
            notify,
            ..
        } => {
            if notify {
                info!(
                    "record {} is {} ({} of {} bytes): waiting for the server's notification",
                    record, state, received, size
                );
            } else {
                warn!(
                    "record {} is {} and the server will not notify",
                    record, state
                );
            }
            Happening::DownloadRejected { id }
        }
        Event::DownloadStarted {
            record,
            offset,
            size,
            ..
        } => {
            info!(
                "download of record {} starts at {} of {} bytes",
                record, offset, size
            );
            Happening::Nothing
        }
        Event::DownloadDone {
            id, file, verified, ..
        } => Happening::DownloadDone { id, file, verified },
        Event::RetryRequested { name, file, .. } => {
            info!("the server asks to upload {} again", name);
            match file {
                Some(file) => Happening::RetryRequested { file },
                None => Happening::Nothing,
            }
        }
        Event::Subscribed { revision, .. } => {
            info!("subscribed at revision {}", revision);
            Happening::Nothing
        }
        Event::EntryHeld { file, record, .. } => {
            info!("file {} already on the server (record {})", file.0, record);
            Happening::Held { file }
        }
        Event::FrameDropped { error } => {
            warn!("frame dropped: {}", error);
            Happening::Nothing
        }
        _ => Happening::Nothing,
    }
}

/// An inbox record seen in a list or a change: the board may want it.
fn published(record: &Record<'_>, inbox_prefix: &str) -> Happening {
    if !record.name.starts_with(inbox_prefix) {
        return Happening::Nothing;
    }
    match Name::try_from(record.name) {
        Ok(name) => Happening::Published {
            name,
            size: record.size,
            hash: record.hash,
            available: false,
        },
        Err(()) => {
            warn!("inbox name too long for this board: {}", record.name);
            Happening::Nothing
        }
    }
}

impl Plan {
    /// Everything after one async driver step: updates the to-do list, says
    /// `Hello` again when it is time, and makes the requests that are due.
    #[cfg(feature = "async-driver")]
    fn follow(&mut self, happening: Happening, driver: &mut Driver, nonces: &mut Nonces) {
        self.apply(happening, driver);
        let now = BoardClock.now_ms();
        if self.reconnect_at_ms.is_some_and(|at| now >= at) {
            self.reconnect_at_ms = None;
            info!("saying Hello again");
            driver.connect(nonces.next());
        }
        self.make_requests(driver, now);
    }

    /// Updates the to-do list after one step.
    #[inline(never)]
    fn apply(&mut self, happening: Happening, driver: &mut Driver) {
        match happening {
            Happening::Nothing => {}
            Happening::Connected => {
                self.manifest_due = !self.manifest_done;
                // An upload-only board (without the `full` feature) only announces and uploads.
                self.subscribe_due = cfg!(feature = "full");
                self.list_due = cfg!(feature = "full");
                self.upload_not_before_ms = 0;
                // Ask again for files refused earlier: a notification may have been missed.
                for wanted in self.inbox.iter_mut().flatten() {
                    wanted.waiting = false;
                }
            }
            Happening::Closed => {
                self.manifest_id = None;
                self.upload = None;
                self.download = None;
                self.manifest_due = false;
                self.subscribe_due = false;
                self.list_due = false;
                if self.reconnect_at_ms.is_none() {
                    self.reconnect_at_ms = Some(BoardClock.now_ms() + RECONNECT_DELAY_MS);
                }
                let lost = driver.io().lost_bytes();
                if lost > 0 {
                    warn!("{} received bytes lost to line errors so far", lost);
                }
            }
            Happening::BatchCreated => {
                self.manifest_id = None;
                self.manifest_done = true;
            }
            Happening::Held { file } => self.uploads_pending &= !(1 << file.0),
            Happening::RequestFailed { id } => {
                if self.manifest_id == Some(id) {
                    // Uploads work without a manifest too (direct upload).
                    self.manifest_id = None;
                } else if let Some((_, file)) = self.upload.filter(|(upload, _)| *upload == id) {
                    // Refused (e.g. a conflict): trying again would not help.
                    self.uploads_pending &= !(1 << file.0);
                    self.upload = None;
                } else if let Some(index) = self.take_download(id) {
                    self.inbox[index] = None;
                }
            }
            Happening::UploadDone { file, uploaded } => {
                self.upload = None;
                self.uploads_pending &= !(1 << file.0);
                if uploaded && self.uploads_pending == 0 {
                    info!(
                        "all {} files uploaded (stack used so far: {} bytes)",
                        driver.client().store().samples().len(),
                        stack::high_water_bytes()
                    );
                }
            }
            Happening::TransferFailed { id } => {
                if self.upload.is_some_and(|(upload, _)| upload == id) {
                    self.upload = None;
                    self.upload_not_before_ms = BoardClock.now_ms() + UPLOAD_RETRY_DELAY_MS;
                } else if let Some(index) = self.take_download(id) {
                    // Fetched again when it is listed or notified next.
                    self.inbox[index] = None;
                }
            }
            Happening::Published {
                name,
                size,
                hash,
                available,
            } => {
                if !driver.client().store().holds(&name, &hash) {
                    self.want(name, size, hash, available);
                }
            }
            Happening::DownloadRejected { id } => {
                if let Some(wanted) = self
                    .take_download(id)
                    .and_then(|index| self.inbox[index].as_mut())
                {
                    wanted.waiting = true;
                }
            }
            Happening::DownloadDone { id, file, verified } => {
                report_download(driver, file, verified);
                if let Some(index) = self.take_download(id) {
                    self.inbox[index] = None;
                }
            }
            Happening::RetryRequested { file } => {
                // Only the samples are the board's own files.
                if driver.client().store().samples().contains(&file.0) {
                    self.uploads_pending |= 1 << file.0;
                }
            }
        }
    }

    /// Adds or refreshes an inbox file to fetch.
    fn want(&mut self, name: Name, size: u64, hash: ContentHash, available: bool) {
        if let Some(wanted) = self.inbox.iter_mut().flatten().find(|w| w.name == name) {
            let changed = wanted.hash != hash;
            wanted.size = size;
            wanted.hash = hash;
            // A notification (or a new version) ends the wait.
            wanted.waiting &= !(available || changed);
            return;
        }
        match self.inbox.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                info!(
                    "published for this board: {} ({} bytes)",
                    name.as_str(),
                    size
                );
                *slot = Some(Wanted {
                    name,
                    size,
                    hash,
                    waiting: false,
                });
            }
            None => warn!("inbox full; {} waits for the next list", name.as_str()),
        }
    }

    /// Ends the running download if `id` is it; returns its inbox entry.
    fn take_download(&mut self, id: RequestId) -> Option<usize> {
        let (running, index) = self.download?;
        (running == id).then(|| {
            self.download = None;
            index
        })
    }

    /// Makes the next requests the client has room for.
    #[inline(never)]
    fn make_requests(&mut self, driver: &mut Driver, now: u64) {
        // Nothing new while a new session is due: the old one may look alive to the client.
        let ready = matches!(driver.client().state(), LinkState::Ready);
        if !ready || self.reconnect_at_ms.is_some() {
            return;
        }
        let client = driver.client();
        if self.manifest_due {
            let samples = client.store().samples();
            // The batch is named after the device.
            let batch = client.config().device;
            match client.send_manifest(batch, samples) {
                Ok(id) => {
                    self.manifest_id = Some(id);
                    self.manifest_due = false;
                }
                Err(error) => {
                    self.note_refusal("manifest", error, |plan| plan.manifest_due = false)
                }
            }
        }
        #[cfg(feature = "full")]
        self.make_sync_requests(driver);
        let client = driver.client();
        // Uploads follow the manifest, so their records join the batch.
        let manifest_sent = !self.manifest_due && self.manifest_id.is_none();
        if self.upload.is_none()
            && self.uploads_pending != 0
            && manifest_sent
            && now >= self.upload_not_before_ms
        {
            let file = FileId(self.uploads_pending.trailing_zeros() as u16);
            match client.upload(file) {
                Ok(id) => {
                    if let Ok(meta) = client.store().meta(file) {
                        info!("uploading {} ({} bytes)", meta.name, meta.size);
                    }
                    self.upload = Some((id, file));
                }
                Err(error) => self.note_refusal("upload", error, |plan| {
                    plan.uploads_pending &= !(1 << file.0)
                }),
            }
        }
        #[cfg(feature = "full")]
        if self.download.is_none() {
            self.start_next_download(driver);
        }
    }

    /// Subscribes and lists (the full client).
    #[cfg(feature = "full")]
    fn make_sync_requests(&mut self, driver: &mut Driver) {
        let client = driver.client();
        if self.subscribe_due {
            match client.subscribe(ListFilter::All, 0) {
                Ok(_) => self.subscribe_due = false,
                Err(error) => {
                    self.note_refusal("subscribe", error, |plan| plan.subscribe_due = false)
                }
            }
        }
        if self.list_due && !self.subscribe_due {
            match client.list(0, ListFilter::All) {
                Ok(_) => self.list_due = false,
                Err(error) => self.note_refusal("list", error, |plan| plan.list_due = false),
            }
        }
    }

    /// Starts the download of the first inbox file not waiting for a notification.
    #[cfg(feature = "full")]
    fn start_next_download(&mut self, driver: &mut Driver) {
        let Some(index) = self
            .inbox
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|w| !w.waiting))
        else {
            return;
        };
        let Some(wanted) = self.inbox[index].as_ref() else {
            return;
        };
        let client = driver.client();
        if client.store().holds(&wanted.name, &wanted.hash) {
            self.inbox[index] = None;
            return;
        }
        let placement = match client.store_mut().place(&wanted.name, wanted.size) {
            Ok(placement) => placement,
            Err(_) => {
                warn!("cannot hold {}: name too long", wanted.name.as_str());
                self.inbox[index] = None;
                return;
            }
        };
        match client.download(placement.file(), true) {
            Ok(id) => {
                if let Placement::Streamed(_) = placement {
                    info!(
                        "{} ({} bytes) is larger than a RAM slot ({} bytes): verifying it by hash while it streams",
                        wanted.name.as_str(),
                        wanted.size,
                        RAM_SLOT_BYTES
                    );
                }
                self.download = Some((id, index));
            }
            Err(error) => {
                let retry_later = matches!(error, ClientError::QueueFull | ClientError::Busy);
                if !retry_later {
                    warn!("download refused by the client: {}", error);
                    self.inbox[index] = None;
                }
            }
        }
    }

    /// Logs a request the client refused; `give_up` runs unless it is worth retrying.
    fn note_refusal(&mut self, what: &str, error: ClientError, give_up: impl FnOnce(&mut Plan)) {
        if !matches!(
            error,
            ClientError::QueueFull | ClientError::Busy | ClientError::NotConnected
        ) {
            warn!("{} refused by the client: {}", what, error);
            give_up(self);
        }
    }
}

/// Reports a finished download: verified or not, kept or streamed.
fn report_download(driver: &mut Driver, file: FileId, verified: bool) {
    let store = driver.client().store();
    let Ok(meta) = store.meta(file) else { return };
    if !verified {
        error!(
            "download of {} FAILED: content does not match its hash",
            meta.name
        );
        return;
    }
    let preview = store.preview(file, 32);
    if preview.is_empty() && meta.size > 0 {
        info!(
            "downloaded {} ({} bytes, streamed), sha256 {} verified",
            meta.name, meta.size, meta.hash
        );
    } else {
        info!(
            "downloaded {} ({} bytes, kept in RAM), sha256 {} verified; starts with {}",
            meta.name,
            meta.size,
            meta.hash,
            core::str::from_utf8(preview).unwrap_or("(binary)")
        );
    }
    info!("stack used so far: {} bytes", stack::high_water_bytes());
}
