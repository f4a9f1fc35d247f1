//! A simulated serial link: a bidirectional byte pipe whose two directions each
//! behave like a UART line (8N1 rate, latency, bit errors, byte drops, fades,
//! cable pulls).
//!
//! Faults hit every byte alike: delimiters, handshake frames and payload, so
//! a corrupted `0x00` merges two frames and a damaged `Hello` is lost like
//! any other frame.
//!
//! Either end is an ordinary tokio `AsyncRead + AsyncWrite` ([`LinkEnd`]), so a
//! device simulated in-process can use it directly, and [`crate::pty::PtyBridge`]
//! can expose an end as a pseudo-terminal for the real binaries.
//!
//! Time comes from `tokio::time`, so tests that only need the model's time can
//! run under a paused clock (`#[tokio::test(start_paused = true)]`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::Instant;

/// One end of a simulated link.
pub type LinkEnd = DuplexStream;

/// The cable of a link, pulled and plugged again by a test at any moment
/// (for pulls at fixed times, see [`LineModel::pulls`]).
///
/// While it is out, both directions lose every byte written and every byte
/// still in flight, exactly as during a scheduled [`CablePull`].
#[derive(Clone, Debug, Default)]
pub struct Cable {
    out: Arc<AtomicBool>,
}

impl Cable {
    /// Pulls the cable: from now on nothing gets through.
    pub fn pull(&self) {
        self.out.store(true, Ordering::SeqCst);
    }

    /// Plugs it in again: bytes written from now on are carried.
    pub fn plug(&self) {
        self.out.store(false, Ordering::SeqCst);
    }

    /// True while the cable is out.
    pub fn is_pulled(&self) -> bool {
        self.out.load(Ordering::SeqCst)
    }
}

/// A period during which the cable is unplugged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CablePull {
    /// When the cable is pulled, measured from the link's creation.
    pub at: Duration,
    /// How long it stays out.
    pub duration: Duration,
}

/// A radio-like fade: the line drops every byte for a while, again and
/// again, at random (uniformly drawn) intervals and lengths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fades {
    /// Shortest and longest time from the end of one fade to the start of the next.
    pub every: (Duration, Duration),
    /// Shortest and longest fade.
    pub length: (Duration, Duration),
}

impl Fades {
    /// Fades of a telemetry radio or a long RS-485 run: 20–50 ms every 1–3 s.
    pub fn radio() -> Fades {
        Fades {
            every: (Duration::from_secs(1), Duration::from_secs(3)),
            length: (Duration::from_millis(20), Duration::from_millis(50)),
        }
    }
}

/// How one direction of the link behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct LineModel {
    /// Line rate in baud; with 8N1 framing a byte takes 10 bit times.
    pub baud: u32,
    /// One-way latency added to every byte.
    pub latency: Duration,
    /// Probability that any one bit is flipped.
    pub bit_error_rate: f64,
    /// Bit errors only on the first this many bytes the line carries, then a
    /// clean line (`None`: on every byte): a line that is noisy, then quiet.
    pub noisy_bytes: Option<u64>,
    /// Probability that any one byte is lost.
    pub byte_drop_rate: f64,
    /// Times the cable is pulled (everything in flight and written meanwhile is lost).
    pub pulls: Vec<CablePull>,
    /// Fades: every byte on the wire during one is lost.
    pub fades: Option<Fades>,
    /// Seed of the error generator, so a run can be reproduced.
    pub seed: u64,
    /// Bytes the sender may write before it blocks (a UART driver's buffer).
    pub buffer: usize,
}

impl LineModel {
    /// A clean line at `baud`, no latency, no errors.
    pub fn clean(baud: u32) -> LineModel {
        LineModel {
            baud,
            latency: Duration::ZERO,
            bit_error_rate: 0.0,
            noisy_bytes: None,
            byte_drop_rate: 0.0,
            pulls: Vec::new(),
            fades: None,
            seed: 1,
            buffer: 4096,
        }
    }

    /// The nominal goodput limit of the line: baud / 10 bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        f64::from(self.baud) / 10.0
    }

    fn byte_time(&self) -> Duration {
        Duration::from_nanos(10_000_000_000 / u64::from(self.baud.max(1)))
    }

    fn pulled_at(&self, since_start: Duration) -> bool {
        self.pulls
            .iter()
            .any(|p| since_start >= p.at && since_start < p.at + p.duration)
    }
}

/// When the fades of one direction happen, drawn lazily as time goes on.
struct FadeSchedule {
    fades: Fades,
    rng: StdRng,
    /// The current or next fade, measured from the link's start.
    start: Duration,
    end: Duration,
}

impl FadeSchedule {
    /// The schedule of `fades`, from its own generator (so the bit errors of
    /// a seed stay the same with or without fades).
    fn new(fades: Fades, seed: u64) -> FadeSchedule {
        let mut schedule = FadeSchedule {
            fades,
            rng: StdRng::seed_from_u64(seed ^ 0xFADE_FADE_FADE_FADE),
            start: Duration::ZERO,
            end: Duration::ZERO,
        };
        schedule.start = schedule.draw(fades.every);
        schedule.end = schedule.start + schedule.draw(fades.length);
        schedule
    }

    fn draw(&mut self, (low, high): (Duration, Duration)) -> Duration {
        if high <= low {
            return low;
        }
        Duration::from_secs_f64(self.rng.gen_range(low.as_secs_f64()..high.as_secs_f64()))
    }

    /// True when a byte on the wire at `at` (non-decreasing between calls) is lost to a fade.
    fn faded(&mut self, at: Duration) -> bool {
        while at >= self.end {
            self.start = self.end + self.draw(self.fades.every);
            self.end = self.start + self.draw(self.fades.length);
        }
        at >= self.start
    }
}

/// Counters of one direction, updated live.
#[derive(Debug, Default)]
pub struct LineStats {
    /// Bytes the sender wrote into the line.
    pub offered: AtomicU64,
    /// Bytes that came out at the other end (corrupted ones included).
    pub delivered: AtomicU64,
    /// Delivered bytes with at least one flipped bit.
    pub corrupted: AtomicU64,
    /// Bytes dropped or lost to a fade or a cable pull.
    pub lost: AtomicU64,
}

/// A snapshot of [`LineStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineCounts {
    /// Bytes the sender wrote into the line.
    pub offered: u64,
    /// Bytes that came out at the other end.
    pub delivered: u64,
    /// Delivered bytes with at least one flipped bit.
    pub corrupted: u64,
    /// Bytes dropped or lost to a cable pull.
    pub lost: u64,
}

impl LineStats {
    /// The counters now.
    pub fn snapshot(&self) -> LineCounts {
        LineCounts {
            offered: self.offered.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            corrupted: self.corrupted.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// A running simulated link: two ends and the counters of both directions.
pub struct Link {
    /// End A (e.g. the device).
    pub a: LinkEnd,
    /// End B (e.g. the server).
    pub b: LinkEnd,
    /// Counters of the direction A → B.
    pub a_to_b: Arc<LineStats>,
    /// Counters of the direction B → A.
    pub b_to_a: Arc<LineStats>,
    /// The cable between the ends, to pull and plug at will.
    pub cable: Cable,
}

impl Link {
    /// A link whose directions follow `a_to_b` and `b_to_a`. Must be called inside a tokio runtime.
    pub fn new(a_to_b: LineModel, b_to_a: LineModel) -> Link {
        let (a, a_inner) = tokio::io::duplex(a_to_b.buffer.max(1));
        let (b, b_inner) = tokio::io::duplex(b_to_a.buffer.max(1));
        let (a_read, a_write) = tokio::io::split(a_inner);
        let (b_read, b_write) = tokio::io::split(b_inner);
        let stats_ab = Arc::new(LineStats::default());
        let stats_ba = Arc::new(LineStats::default());
        let start = Instant::now();
        let cable = Cable::default();
        let ab = Line {
            model: a_to_b,
            stats: stats_ab.clone(),
            cable: cable.clone(),
            start,
        };
        let ba = Line {
            model: b_to_a,
            stats: stats_ba.clone(),
            cable: cable.clone(),
            start,
        };
        tokio::spawn(carry(a_read, b_write, ab));
        tokio::spawn(carry(b_read, a_write, ba));
        Link {
            a,
            b,
            a_to_b: stats_ab,
            b_to_a: stats_ba,
            cable,
        }
    }

    /// The same model in both directions (the B → A seed is offset so errors differ).
    pub fn symmetric(model: LineModel) -> Link {
        let mut back = model.clone();
        back.seed = model.seed.wrapping_add(0x9E37_79B9);
        Link::new(model, back)
    }
}

/// Bytes the line takes from the sender at once: small, so pacing stays smooth.
const SLICE: usize = 64;

/// How late a timer may wake before the line counts as having gone idle,
/// when no bytes were waiting for it.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// How late a timer may wake, with bytes waiting, and the line still count as
/// busy all along: a real UART does not slow down when the host is loaded.
const LATE_WAKE_LIMIT: Duration = Duration::from_millis(100);

/// One direction of a link: its model, counters, the shared cable and the link's start.
struct Line {
    model: LineModel,
    stats: Arc<LineStats>,
    cable: Cable,
    start: Instant,
}

/// Moves bytes from `from` to `to` at the line's pace, applying its faults.
async fn carry(mut from: ReadHalf<DuplexStream>, to: WriteHalf<DuplexStream>, line: Line) {
    let Line {
        model,
        stats,
        cable,
        start,
    } = line;
    let mut rng = StdRng::seed_from_u64(model.seed);
    let mut fades = model.fades.map(|f| FadeSchedule::new(f, model.seed));
    let (deliver_tx, deliver_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(deliver(deliver_rx, to, stats.clone(), cable.clone()));
    let byte_time = model.byte_time();
    let mut line_free_at = Instant::now();
    let mut carried: u64 = 0;
    let mut buf = [0u8; SLICE];
    loop {
        // The line takes bytes only when it is free, so the sender feels backpressure.
        tokio::time::sleep_until(line_free_at).await;
        // Reading is cancel-safe: a read that is not ready at once is dropped and awaited.
        let (read, waiting) = tokio::select! {
            biased;
            read = from.read(&mut buf) => (read, true),
            () = std::future::ready(()) => (from.read(&mut buf).await, false),
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        stats.offered.fetch_add(n as u64, Ordering::Relaxed);
        // Timers wake late (by a millisecond, or by far more on a loaded
        // machine); a line that stayed busy keeps its exact schedule so the
        // rate does not drift below baud / 10.
        let now = Instant::now();
        let late = now.saturating_duration_since(line_free_at);
        let busy = late <= TIMER_SLACK || (waiting && late <= LATE_WAKE_LIMIT);
        let began = if busy { line_free_at } else { now };
        let mut out = Vec::with_capacity(n);
        for (i, &byte) in buf[..n].iter().enumerate() {
            let on_wire_until = began + byte_time * (i as u32 + 1);
            let since_start = on_wire_until - start;
            let pulled = cable.is_pulled() || model.pulled_at(since_start);
            let faded = fades.as_mut().is_some_and(|f| f.faded(since_start));
            if pulled || faded || rng.gen_bool(model.byte_drop_rate) {
                stats.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut flipped = byte;
            carried += 1;
            let noisy = model.noisy_bytes.is_none_or(|noisy| carried <= noisy);
            if noisy && model.bit_error_rate > 0.0 {
                for bit in 0..8 {
                    if rng.gen_bool(model.bit_error_rate) {
                        flipped ^= 1 << bit;
                    }
                }
            }
            if flipped != byte {
                stats.corrupted.fetch_add(1, Ordering::Relaxed);
            }
            out.push(flipped);
        }
        line_free_at = began + byte_time * n as u32;
        if !out.is_empty() {
            let at = line_free_at + model.latency;
            // Bytes still in flight when the cable is pulled are lost too.
            if model.latency > Duration::ZERO && model.pulled_at(at - start) {
                stats.lost.fetch_add(out.len() as u64, Ordering::Relaxed);
                continue;
            }
            stats
                .delivered
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            if deliver_tx.send((at, out)).is_err() {
                return;
            }
        }
    }
}

/// Hands bytes to the receiving end once their latency has passed; bytes
/// still in flight when the cable is pulled are lost.
async fn deliver(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut to: WriteHalf<DuplexStream>,
    stats: Arc<LineStats>,
    cable: Cable,
) {
    while let Some((at, bytes)) = queue.recv().await {
        tokio::time::sleep_until(at).await;
        if cable.is_pulled() {
            let n = bytes.len() as u64;
            stats.delivered.fetch_sub(n, Ordering::Relaxed);
            stats.lost.fetch_add(n, Ordering::Relaxed);
            continue;
        }
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send_and_count(model: LineModel, len: usize) -> (Vec<u8>, Duration, LineCounts) {
        let link = Link::new(model.clone(), model);
        let (mut a, mut b) = (link.a, link.b);
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            a.write_all(&data).await.unwrap();
            a
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while got.len() < len {
            match tokio::time::timeout(Duration::from_secs(5), b.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let elapsed = started.elapsed();
        drop(writer.await.unwrap());
        (got, elapsed, link.a_to_b.snapshot())
    }

    #[tokio::test(start_paused = true)]
    async fn clean_line_carries_exactly_baud_over_ten_bytes_per_second() {
        let (got, elapsed, counts) = send_and_count(LineModel::clean(115_200), 115_200).await;
        assert_eq!(got.len(), 115_200);
        assert_eq!(
            got,
            (0..115_200).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>()
        );
        // 115,200 bytes at 11,520 B/s take 10 s of model time.
        let secs = elapsed.as_secs_f64();
        assert!((secs - 10.0).abs() < 0.01, "took {secs} s");
        assert_eq!(counts.offered, 115_200);
        assert_eq!(counts.delivered, 115_200);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_delivery_but_not_rate() {
        let mut model = LineModel::clean(9_600);
        model.latency = Duration::from_millis(250);
        let (got, elapsed, _) = send_and_count(model, 960).await;
        assert_eq!(got.len(), 960);
        let secs = elapsed.as_secs_f64();
        assert!((secs - 1.25).abs() < 0.01, "took {secs} s");
    }

    #[tokio::test(start_paused = true)]
    async fn bit_errors_are_seeded_and_counted() {
        let mut model = LineModel::clean(921_600);
        model.bit_error_rate = 1e-3;
        let (first, _, counts) = send_and_count(model.clone(), 100_000).await;
        let (second, _, _) = send_and_count(model, 100_000).await;
        assert_eq!(first, second, "same seed, same errors");
        let sent: Vec<u8> = (0..100_000).map(|i| (i * 7 + 3) as u8).collect();
        let differing = first.iter().zip(&sent).filter(|(a, b)| a != b).count() as u64;
        assert_eq!(differing, counts.corrupted);
        // About 8e-3 of the bytes carry an error: 800 expected.
        assert!((600..1000).contains(&counts.corrupted), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn cable_pull_loses_what_is_sent_meanwhile() {
        let mut model = LineModel::clean(10_000);
        model.pulls.push(CablePull {
            at: Duration::from_secs(1),
            duration: Duration::from_secs(1),
        });
        // 3,000 bytes take 3 s; the middle second (1,000 bytes) is lost.
        let (got, _, counts) = send_and_count(model, 3_000).await;
        assert_eq!(counts.lost, 1_000, "{counts:?}");
        assert_eq!(got.len(), 2_000);
    }

    #[tokio::test(start_paused = true)]
    async fn cable_pulled_by_hand_loses_bytes_until_plugged_again() {
        let mut model = LineModel::clean(10_000);
        model.latency = Duration::from_millis(50);
        let link = Link::symmetric(model);
        let cable = link.cable.clone();
        let (mut a, mut b) = (link.a, link.b);
        // 1,000 bytes take 1 s; pull at 0.5 s for 1 s: the second half, and
        // the 50 ms of bytes in flight when the cable went out, are lost.
        let writer = tokio::spawn(async move {
            a.write_all(&[0x55; 1_000]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            a.write_all(&[0xAA; 100]).await.unwrap();
            a
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        cable.pull();
        assert!(cable.is_pulled());
        tokio::time::sleep(Duration::from_secs(1)).await;
        cable.plug();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(&[0xAA; 100]) {
            let n = tokio::time::timeout(Duration::from_secs(5), b.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        drop(writer.await.unwrap());
        let counts = link.a_to_b.snapshot();
        let kept = got.iter().filter(|&&x| x == 0x55).count() as u64;
        assert!(
            (440..=460).contains(&kept),
            "kept {kept} of the first 1,000"
        );
        assert_eq!(kept + counts.lost, 1_000, "{counts:?}");
        assert_eq!(counts.delivered, kept + 100, "{counts:?}");
    }

    #[test]
    fn fades_last_20_to_50_ms_and_come_every_1_to_3_s() {
        let mut schedule = FadeSchedule::new(Fades::radio(), 5);
        let mut runs = Vec::new(); // (start, end) in tenths of a millisecond
        let mut open = None;
        for tick in 0..600_000u64 {
            let faded = schedule.faded(Duration::from_micros(tick * 100));
            match (faded, open) {
                (true, None) => open = Some(tick),
                (false, Some(start)) => {
                    runs.push((start, tick));
                    open = None;
                }
                _ => {}
            }
        }
        assert!(
            (20..=60).contains(&runs.len()),
            "{} fades in 60 s",
            runs.len()
        );
        for &(start, end) in &runs {
            assert!(
                (200..=501).contains(&(end - start)),
                "a fade of {start}..{end}"
            );
        }
        for pair in runs.windows(2) {
            let between = pair[1].0 - pair[0].1;
            assert!(
                (9_999..=30_001).contains(&between),
                "{between} between fades"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fades_lose_the_bytes_on_the_wire_meanwhile() {
        let mut model = LineModel::clean(921_600);
        model.fades = Some(Fades::radio());
        // 20 s of line time: about ten fades of 35 ms, ≈ 1.7 % of the bytes.
        let (got, _, counts) = send_and_count(model, 1_843_200).await;
        assert_eq!(got.len() as u64 + counts.lost, 1_843_200);
        assert!((9_000..=60_000).contains(&counts.lost), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn byte_drops_are_counted() {
        let mut model = LineModel::clean(921_600);
        model.byte_drop_rate = 0.01;
        let (got, _, counts) = send_and_count(model, 50_000).await;
        assert_eq!(got.len() as u64 + counts.lost, 50_000);
        assert!((300..700).contains(&counts.lost), "{counts:?}");
    }
}
