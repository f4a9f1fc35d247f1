//! SIGINT and SIGTERM as a process-wide flag, for `sync --watch`.
//!
//! A daemon must not die between two chunks with a half-renamed file: after
//! [`install`], a signal only sets the flag. Transfers look at it each time a
//! chunk is made durable ([`requested`]) and stop there with
//! [`CliError::Stopped`]; the next run resumes at that byte. A second signal
//! while the first is being honoured ends the process at once (exit 1), so a
//! stuck daemon can still be stopped from the keyboard.
//!
//! Without [`install`] (every other command), signals keep their default
//! action and the flag is never set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::{CliError, CliResult};

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// What [`sleep`] waits on: notified by the signal thread once the flag is set.
fn wake() -> &'static (Mutex<()>, Condvar) {
    static WAKE: OnceLock<(Mutex<()>, Condvar)> = OnceLock::new();
    WAKE.get_or_init(|| (Mutex::new(()), Condvar::new()))
}

/// Makes SIGINT and SIGTERM set the flag instead of ending the process.
pub fn install() -> CliResult<()> {
    let failed = |e: std::io::Error| CliError::Failed(format!("cannot handle SIGINT/SIGTERM: {e}"));
    for signal in [SIGINT, SIGTERM] {
        // The conditional exit is registered first, so it sees the flag before
        // this signal sets it: only a second signal ends the process.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(flag()))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(flag())))
            .map_err(failed)?;
    }
    // The handlers above set the flag inside the signal; this thread then
    // wakes every interruptible pause (a handler cannot take a lock).
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(failed)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                let (lock, woken) = wake();
                let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
                woken.notify_all();
            }
        })
        .map_err(failed)?;
    Ok(())
}

/// True once SIGINT or SIGTERM arrived (after [`install`]).
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Errs with [`CliError::Stopped`] once a stop was asked for.
pub fn check() -> CliResult<()> {
    if requested() {
        Err(CliError::Stopped)
    } else {
        Ok(())
    }
}

/// Sleeps `pause`, or less: it wakes as soon as a stop is asked for.
pub fn sleep(pause: Duration) {
    let (lock, woken) = wake();
    let held = lock.lock().unwrap_or_else(|e| e.into_inner());
    // The flag is checked under the lock the signal thread takes to notify,
    // so a signal between the check and the wait is not missed.
    let _ = woken.wait_timeout_while(held, pause, |_| !requested());
}
