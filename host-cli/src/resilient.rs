//! Sessions that survive a dropped link: reconnect with back-off and run the
//! interrupted step again.
//!
//! A command keeps one [`Reconnecting`] instead of a bare [`Session`]. Each
//! step it runs (an upload, a download, a list) goes through
//! [`Reconnecting::attempt`]: when the link is lost or stalls, the session is
//! dropped, the next one is opened after a back-off (0.5 s, 1 s, 2 s, … at
//! most 30 s) and the step runs again. Steps resume by themselves: an upload
//! opens at the offset the server holds, a download at the bytes already on
//! disk, so a reconnect costs at most the window that was in flight. Only a
//! lasting failure (`--retries` reconnections in a row without a step getting
//! through) ends the command.

use std::time::{Duration, Instant};

use clap::Args;
use proto_core::ErrorCode;

use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::session::Session;

/// First pause before a reconnection; it doubles with every failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between two reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lived this long before it was lost counts as a fresh start:
/// the back-off and the count of failures in a row begin again.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// `--retries` and `--timeout`, shared by every command.
#[derive(Clone, Debug, Args)]
pub struct RetryArgs {
    /// Reconnect at most N times in a row (with back-off) when the link drops or
    /// stalls; transfers resume where they stopped. 0: fail at the first loss.
    #[arg(
        long,
        global = true,
        env = "STATESYNC_RETRIES",
        value_name = "N",
        default_value_t = 5
    )]
    pub retries: u32,
    /// A link that brings no byte for SECS while an answer is awaited counts as
    /// lost (then reconnected).
    #[arg(
        long,
        global = true,
        env = "STATESYNC_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30.0,
        value_parser = parse_seconds
    )]
    pub timeout: f64,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .ok_or_else(|| format!("`{text}` is not a number of seconds between 0 and 86400"))
}

/// How a command reacts to a lost link.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Reconnections in a row before giving up.
    pub retries: u32,
    /// Silence while an answer is awaited (or a blocked write) that counts as a lost link.
    pub stall: Duration,
}

impl RetryPolicy {
    /// The policy the command line asked for.
    pub fn from_args(args: &RetryArgs) -> RetryPolicy {
        RetryPolicy {
            retries: args.retries,
            stall: Duration::from_secs_f64(args.timeout),
        }
    }

    /// The pause before reconnection number `failures` (1 for the first).
    pub fn backoff(failures: u32) -> Duration {
        let doubled = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        doubled.min(MAX_BACKOFF)
    }
}

/// True for failures a new session may cure: a lost or stalled link, a server
/// that could not be reached again, or one that is busy or shutting down.
pub fn is_transient(error: &CliError) -> bool {
    match error {
        CliError::Link(_) | CliError::Unreachable { .. } => true,
        CliError::Server { code, .. } => {
            matches!(code, ErrorCode::Busy | ErrorCode::ShuttingDown)
        }
        _ => false,
    }
}

/// A session that is opened again whenever its link is lost.
pub struct Reconnecting<'s> {
    settings: &'s Settings,
    session: Option<Session>,
    connected_at: Instant,
    failures: u32,
    reconnects: u32,
    quiet: bool,
}

impl<'s> Reconnecting<'s> {
    /// Opens the first session. A server that cannot be reached at all is
    /// reported at once: that is a wrong address more often than a flaky link.
    pub fn connect(settings: &'s Settings) -> CliResult<Reconnecting<'s>> {
        let session = Session::connect(settings)?;
        Ok(Reconnecting {
            settings,
            session: Some(session),
            connected_at: Instant::now(),
            failures: 0,
            reconnects: 0,
            quiet: settings.quiet(),
        })
    }

    /// Sessions opened again after a lost link so far.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// This client's device name.
    pub fn device(&self) -> &str {
        self.settings.device.as_deref().unwrap_or_default()
    }

    /// The current session, opening a new one (with back-off) if the last was lost.
    pub fn session(&mut self) -> CliResult<&mut Session> {
        let session = match self.session.take() {
            Some(session) => session,
            None => self.reconnect()?,
        };
        Ok(self.session.insert(session))
    }

    fn reconnect(&mut self) -> CliResult<Session> {
        loop {
            match Session::connect(self.settings) {
                Ok(session) => {
                    self.reconnects += 1;
                    self.connected_at = Instant::now();
                    self.say(&format!(
                        "reconnected to {} (reconnection {})",
                        self.settings.server, self.reconnects
                    ));
                    return Ok(session);
                }
                Err(error) if is_transient(&error) => self.back_off(error)?,
                Err(error) => return Err(error),
            }
        }
    }

    /// Runs `step` on the session; when it fails in a way a new session may
    /// cure, reconnects and runs it again, until it gets through or the
    /// failures last.
    pub fn attempt<T>(
        &mut self,
        mut step: impl FnMut(&mut Session) -> CliResult<T>,
    ) -> CliResult<T> {
        loop {
            let session = self.session()?;
            match step(session) {
                Ok(value) => {
                    self.failures = 0;
                    return Ok(value);
                }
                Err(error) if is_transient(&error) => self.lost(error)?,
                Err(error) => return Err(error),
            }
        }
    }

    /// Drops the session after `error`; the next [`Reconnecting::session`] opens
    /// another after the back-off. Errs when the failures last.
    pub fn lost(&mut self, error: CliError) -> CliResult<()> {
        if self.session.take().is_some() && self.connected_at.elapsed() >= HEALTHY_SESSION {
            self.failures = 0;
        }
        self.back_off(error)
    }

    fn back_off(&mut self, error: CliError) -> CliResult<()> {
        self.failures += 1;
        if self.failures > self.settings.retry.retries {
            return Err(lasting(error, self.settings.retry.retries));
        }
        let pause = RetryPolicy::backoff(self.failures);
        self.say(&format!(
            "{error}; reconnecting in {:.1} s (attempt {} of {})",
            pause.as_secs_f64(),
            self.failures,
            self.settings.retry.retries
        ));
        crate::shutdown::sleep(pause);
        crate::shutdown::check()
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Ends the session politely, if one is open.
    pub fn close(self) {
        if let Some(session) = self.session {
            session.close();
        }
    }
}

/// The error a command ends with when reconnecting did not help.
fn lasting(error: CliError, retries: u32) -> CliError {
    let note = format!("still failing after {retries} reconnection attempts");
    match error {
        CliError::Link(detail) if retries > 0 => CliError::Link(format!("{detail} ({note})")),
        CliError::Unreachable { server, source } if retries > 0 => CliError::Unreachable {
            server,
            source: std::io::Error::new(source.kind(), format!("{source} ({note})")),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_up_to_thirty() {
        assert_eq!(RetryPolicy::backoff(1), Duration::from_millis(500));
        assert_eq!(RetryPolicy::backoff(2), Duration::from_secs(1));
        assert_eq!(RetryPolicy::backoff(4), Duration::from_secs(4));
        assert_eq!(RetryPolicy::backoff(7), MAX_BACKOFF);
        assert_eq!(RetryPolicy::backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn lost_links_and_busy_servers_are_transient_refusals_are_not() {
        assert!(is_transient(&CliError::Link("cut".into())));
        assert!(is_transient(&CliError::Server {
            context: String::new(),
            code: ErrorCode::Busy,
            message: String::new(),
        }));
        assert!(!is_transient(&CliError::Server {
            context: String::new(),
            code: ErrorCode::Conflict,
            message: String::new(),
        }));
        assert!(!is_transient(&CliError::Auth {
            device: "d".into(),
            detail: String::new(),
        }));
    }
}
