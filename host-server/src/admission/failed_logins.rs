//! Failed logins per peer address: after too many in a window, an address is
//! refused without its key being checked, so guessing keys costs time whether
//! the guesses come one connection after another or many at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most; past this, expired entries are dropped, then all.
const MAX_TRACKED: usize = 65_536;

/// Counts failed logins per address in fixed windows.
pub struct FailedLogins {
    allowed: u32,
    window: Duration,
    seen: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    failures: u32,
}

impl FailedLogins {
    /// Allows `allowed` failures per `window` from one address (0 allows any number).
    pub fn new(allowed: u32, window: Duration) -> FailedLogins {
        FailedLogins {
            allowed,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The address logins are counted by: the IP of a TCP peer (any port), else the
    /// link's name (a serial port).
    pub fn address_of(peer: &str) -> String {
        match peer.parse::<SocketAddr>() {
            Ok(addr) => addr.ip().to_string(),
            Err(_) => peer.to_string(),
        }
    }

    /// How long `address` must wait before its next attempt is checked; `None` when it may try now.
    pub fn blocked_for(&self, address: &str, now: Instant) -> Option<Duration> {
        if self.allowed == 0 {
            return None;
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let window = seen.get(address)?;
        let ends = window.started + self.window;
        (window.failures >= self.allowed && now < ends).then(|| ends - now)
    }

    /// Counts a failed login of `address`.
    pub fn failed(&self, address: &str, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_TRACKED && !seen.contains_key(address) {
            let window = self.window;
            seen.retain(|_, w| now.duration_since(w.started) < window);
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
        }
        let entry = seen.entry(address.to_string()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(entry.started) >= self.window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_allowance_until_the_window_ends() {
        let logins = FailedLogins::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(logins.blocked_for("10.0.0.1", start), None);
            logins.failed("10.0.0.1", start);
        }
        let wait = logins.blocked_for("10.0.0.1", start + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(logins.blocked_for("10.0.0.2", start), None, "per address");
        assert_eq!(
            logins.blocked_for("10.0.0.1", start + Duration::from_secs(60)),
            None
        );
        logins.failed("10.0.0.1", start + Duration::from_secs(61));
        assert_eq!(
            logins.blocked_for("10.0.0.1", start + Duration::from_secs(62)),
            None,
            "a new window starts counting from zero"
        );
    }

    #[test]
    fn tcp_peers_count_by_ip_and_serial_ports_by_path() {
        assert_eq!(FailedLogins::address_of("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(FailedLogins::address_of("[::1]:5000"), "::1");
        assert_eq!(FailedLogins::address_of("/dev/ttyUSB0"), "/dev/ttyUSB0");
    }
}
