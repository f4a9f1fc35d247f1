//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` in the database URL,
//! carried out with rustls.
//!
//! `tokio-postgres` itself understands `sslmode=disable|prefer|require` and
//! nothing about certificates, so this module takes both parameters out of the
//! URL, tells `tokio-postgres` whether TLS is required, and builds the rustls
//! configuration that checks (or, as libpq does for `prefer` and `require`,
//! does not check) the server's certificate:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | no |
//! | `require` | always | no |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert` and names the URL's host |
//!
//! `sslrootcert` is a PEM file of trusted CA certificates, or `system` for the
//! common public CAs (Mozilla's list, as libpq's `system` uses the OS's).

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks of TLS, with the URL that `tokio-postgres` can parse.
#[derive(Debug)]
pub(crate) struct TlsUrl {
    /// The URL without `sslmode` and `sslrootcert`.
    pub url: String,
    mode: Mode,
    root_cert: Option<String>,
}

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsUrl {
    /// Splits `sslmode` and `sslrootcert` off `url`; errs with what is wrong
    /// with them (the URL itself is checked later, by `tokio-postgres`).
    pub(crate) fn parse(url: &str) -> Result<TlsUrl, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut mode = Mode::Prefer;
        let mut root_cert = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    mode = match value {
                        "disable" => Mode::Disable,
                        "prefer" => Mode::Prefer,
                        "require" => Mode::Require,
                        "verify-ca" => Mode::VerifyCa,
                        "verify-full" => Mode::VerifyFull,
                        other => {
                            return Err(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        ))
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(percent_decode(value)?),
                _ => kept.push(pair),
            }
        }
        let verifies = matches!(mode, Mode::VerifyCa | Mode::VerifyFull);
        if verifies && root_cert.is_none() {
            return Err("sslmode=verify-ca and verify-full need sslrootcert=PATH (a PEM file of the CA that signed the server's certificate) or sslrootcert=system".into());
        }
        if !verifies && root_cert.is_some() {
            return Err(
                "sslrootcert is only used with sslmode=verify-ca or verify-full; add one of them"
                    .into(),
            );
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(TlsUrl {
            url,
            mode,
            root_cert,
        })
    }

    /// The `sslmode` to give `tokio-postgres`: it only needs to know whether
    /// TLS is optional; the checks are in the connector.
    pub(crate) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector that makes and checks TLS as the mode asks.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = match self.mode {
            Mode::Disable | Mode::Prefer | Mode::Require => None,
            Mode::VerifyCa | Mode::VerifyFull => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.roots()?),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| format!("cannot check certificates: {e}"))?,
            ),
        };
        let verifier = Arc::new(Verifier {
            provider: Arc::clone(&provider),
            chain,
            check_name: self.mode == Mode::VerifyFull,
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_deref() {
            Some("system") | None => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Some(path) => {
                let bad = |detail: String| format!("sslrootcert={path}: {detail}");
                let file = File::open(path).map_err(|e| bad(e.to_string()))?;
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_reader_iter(BufReader::new(file))
                        .collect::<Result<_, _>>()
                        .map_err(|e| bad(e.to_string()))?;
                if certs.is_empty() {
                    return Err(bad("no CERTIFICATE block in it".into()));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| bad(e.to_string()))?;
                }
            }
        }
        Ok(roots)
    }
}

/// Decodes `%XX` escapes (a path in a URL may carry them, e.g. `%2F`).
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("sslrootcert={value}: a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("sslrootcert={value}: not UTF-8"))
}

/// Checks the server's certificate as the mode asks: with `chain`
/// (`verify-ca`, `verify-full`) it must lead to a trusted root, and with
/// `check_name` (`verify-full`) also name the host; without `chain`
/// (`prefer`, `require`) any certificate is taken (libpq's meaning of these
/// modes: they keep out a passive listener, not a man in the middle). The
/// handshake's signatures are checked in every mode.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the chain before the name, so a name error means
            // the chain is good: all that `verify-ca` asks.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let parsed =
            TlsUrl::parse("postgres://u:p@db:5432/x?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(parsed.url, "postgres://u:p@db:5432/x?connect_timeout=5");
        assert_eq!(parsed.mode, Mode::VerifyFull);
        assert_eq!(parsed.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(parsed.ssl_mode(), SslMode::Require);
    }

    #[test]
    fn without_sslmode_tls_is_preferred_and_the_url_is_unchanged() {
        let parsed = TlsUrl::parse("postgres://u@db/x").unwrap();
        assert_eq!(parsed.url, "postgres://u@db/x");
        assert_eq!(parsed.ssl_mode(), SslMode::Prefer);
    }

    #[test]
    fn verifying_without_a_root_certificate_is_refused_with_what_to_add() {
        let refused = TlsUrl::parse("postgres://u@db/x?sslmode=verify-ca").unwrap_err();
        assert!(refused.contains("sslrootcert=PATH"), "{refused}");
        let refused =
            TlsUrl::parse("postgres://u@db/x?sslmode=require&sslrootcert=a.pem").unwrap_err();
        assert!(refused.contains("verify-ca or verify-full"), "{refused}");
        let refused = TlsUrl::parse("postgres://u@db/x?sslmode=allow").unwrap_err();
        assert!(refused.contains("sslmode=allow"), "{refused}");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let parsed =
            TlsUrl::parse("postgres://u@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let refused = parsed.connector().err().unwrap();
        assert!(refused.contains("/nonexistent/ca.pem"), "{refused}");
    }
}
