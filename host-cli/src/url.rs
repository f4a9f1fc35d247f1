//! The `--server` URL: `tcp://HOST:PORT`, `tcps://HOST:PORT[?ca=PEM]` (TLS) or
//! `serial:///dev/ttyUSB0?baud=115200`.

use std::fmt;

use crate::error::CliError;

/// The server address used when none is configured.
pub const DEFAULT_SERVER: &str = "tcp://127.0.0.1:7878";

/// The baud rate used when a serial URL names none.
pub const DEFAULT_BAUD: u32 = 115_200;

/// Where the server is and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerUrl {
    /// A TCP connection to `HOST:PORT`.
    Tcp {
        /// `HOST:PORT` as given (a name or an address).
        address: String,
    },
    /// A TCP connection to `HOST:PORT` inside TLS (a server started with `--tls-cert`).
    Tls {
        /// `HOST:PORT` as given; HOST must match the server's certificate.
        address: String,
        /// A PEM file of the certificate(s) to trust (a private CA or the server's own
        /// self-signed certificate); `None` trusts the common public CAs.
        ca: Option<String>,
    },
    /// A serial line (a UART, USB adapter or pseudo-terminal) the server listens on.
    Serial {
        /// The device path, e.g. `/dev/ttyUSB0` or `COM3`.
        path: String,
        /// Line rate in baud.
        baud: u32,
    },
}

impl ServerUrl {
    /// Parses a `--server` value.
    pub fn parse(text: &str) -> Result<ServerUrl, CliError> {
        let bad = |why: &str| {
            CliError::Usage(format!(
                "bad server URL `{text}`: {why}; use tcp://HOST:PORT, tcps://HOST:PORT[?ca=PEM] or serial:///dev/ttyUSB0?baud=115200"
            ))
        };
        let host_port = |rest: &str| -> Result<String, CliError> {
            let address = rest.trim_end_matches('/');
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| bad("the port is missing"))?;
            if host.is_empty() {
                return Err(bad("the host is missing"));
            }
            port.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
            Ok(address.to_owned())
        };
        if let Some(rest) = text.strip_prefix("tcp://") {
            return Ok(ServerUrl::Tcp {
                address: host_port(rest)?,
            });
        }
        if let Some(rest) = text.strip_prefix("tcps://") {
            let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut ca = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("ca", path)) if !path.is_empty() => ca = Some(path.to_owned()),
                    _ => return Err(bad(&format!("unknown parameter `{pair}`"))),
                }
            }
            return Ok(ServerUrl::Tls {
                address: host_port(address)?,
                ca,
            });
        }
        if let Some(rest) = text.strip_prefix("serial://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(bad("the port path is missing"));
            }
            let mut baud = DEFAULT_BAUD;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("baud", value)) => {
                        baud = value
                            .parse()
                            .ok()
                            .filter(|b| *b > 0)
                            .ok_or_else(|| bad("baud must be a positive number"))?;
                    }
                    _ => return Err(bad(&format!("unknown parameter `{pair}`"))),
                }
            }
            return Ok(ServerUrl::Serial {
                path: path.to_owned(),
                baud,
            });
        }
        Err(bad("unknown scheme"))
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerUrl::Tcp { address } => write!(f, "tcp://{address}"),
            ServerUrl::Tls { address, ca: None } => write!(f, "tcps://{address}"),
            ServerUrl::Tls {
                address,
                ca: Some(ca),
            } => write!(f, "tcps://{address}?ca={ca}"),
            ServerUrl::Serial { path, baud } => write!(f, "serial://{path}?baud={baud}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_serial_urls_parse() {
        assert_eq!(
            ServerUrl::parse("tcp://127.0.0.1:7878").unwrap(),
            ServerUrl::Tcp {
                address: "127.0.0.1:7878".into()
            }
        );
        assert_eq!(
            ServerUrl::parse("tcp://[::1]:9/").unwrap(),
            ServerUrl::Tcp {
                address: "[::1]:9".into()
            }
        );
        assert_eq!(
            ServerUrl::parse("serial:///dev/ttyUSB0?baud=921600").unwrap(),
            ServerUrl::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 921_600
            }
        );
        assert_eq!(
            ServerUrl::parse("serial:///dev/pts/3").unwrap(),
            ServerUrl::Serial {
                path: "/dev/pts/3".into(),
                baud: DEFAULT_BAUD
            }
        );
    }

    #[test]
    fn tls_urls_parse_with_an_optional_ca_file() {
        assert_eq!(
            ServerUrl::parse("tcps://sync.example:7879").unwrap(),
            ServerUrl::Tls {
                address: "sync.example:7879".into(),
                ca: None
            }
        );
        let url = ServerUrl::parse("tcps://127.0.0.1:7879?ca=/etc/statesync/ca.pem").unwrap();
        assert_eq!(
            url,
            ServerUrl::Tls {
                address: "127.0.0.1:7879".into(),
                ca: Some("/etc/statesync/ca.pem".into())
            }
        );
        assert_eq!(
            url.to_string(),
            "tcps://127.0.0.1:7879?ca=/etc/statesync/ca.pem"
        );
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for bad in [
            "http://x:1",
            "tcp://host",
            "tcp://:80",
            "tcp://h:99999",
            "serial://?baud=1",
            "serial:///dev/x?baud=0",
            "serial:///dev/x?parity=odd",
            "tcps://h",
            "tcps://h:1?ca=",
            "tcps://h:1?pin=x",
        ] {
            assert!(
                matches!(ServerUrl::parse(bad), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
    }
}
