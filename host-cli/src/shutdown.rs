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
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{CliError, CliResult};

/// How often an interruptible pause looks at the flag.
const SLICE: Duration = Duration::from_millis(100);

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Makes SIGINT and SIGTERM set the flag instead of ending the process.
pub fn install() -> CliResult<()> {
    for signal in [SIGINT, SIGTERM] {
        // The conditional exit is registered first, so it sees the flag before
        // this signal sets it: only a second signal ends the process.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(flag()))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(flag())))
            .map_err(|e| CliError::Failed(format!("cannot handle SIGINT/SIGTERM: {e}")))?;
    }
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

/// Sleeps `pause`, or less when a stop is asked for meanwhile.
pub fn sleep(pause: Duration) {
    let until = Instant::now() + pause;
    while !requested() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(SLICE));
    }
}
