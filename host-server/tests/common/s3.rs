//! The S3-compatible store the object-storage tests use: `HOST_SERVER_TEST_S3`
//! names its endpoint (`.ci/run` starts `moto_server` on 127.0.0.1 and sets it).
//! Each test gets a fresh prefix in one bucket, so tests never see each other's
//! objects. Requests are plain HTTP to a local test store that checks no
//! signature (moto in server mode does not), so no client library is needed.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The variable naming the test object store's endpoint (`http://127.0.0.1:PORT`).
pub const TEST_S3_ENV: &str = "HOST_SERVER_TEST_S3";

/// The bucket every test uses (made on first use).
pub const TEST_BUCKET: &str = "statesync-test";

/// A fresh prefix in the test bucket: where one test's servers keep blobs.
#[derive(Clone, Debug)]
pub struct TestBlobs {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The prefix (no slashes at either end).
    pub prefix: String,
}

impl TestBlobs {
    /// A fresh prefix on the store [`TEST_S3_ENV`] names. When the variable is
    /// missing, CI (`CI=true`) fails; elsewhere the whole test crate is skipped
    /// loudly (every test in it needs the store) by exiting with success.
    pub fn create() -> TestBlobs {
        let Ok(endpoint) = std::env::var(TEST_S3_ENV) else {
            let hint = format!(
                "{TEST_S3_ENV} is not set: the object-storage tests need an S3-compatible server \
                 (`moto_server -p PORT`, then {TEST_S3_ENV}=http://127.0.0.1:PORT); .ci/run starts one"
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{hint}");
            }
            // Straight to stderr: the test harness captures `eprintln!`, and
            // exiting would lose what it captured.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED (all tests of this crate): {hint}"
            );
            std::process::exit(0);
        };
        let blobs = TestBlobs {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            prefix: format!("t{}-{:08x}", std::process::id(), rand::random::<u32>()),
        };
        let (status, body) = blobs.http("PUT", &format!("/{TEST_BUCKET}"));
        assert!(
            status == 200 || body.contains("BucketAlreadyOwnedByYou"),
            "cannot make the test bucket on {}: {status} {body}",
            blobs.endpoint
        );
        blobs
    }

    /// The `serve` arguments that keep blobs here.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--blobs".into(),
            format!("s3://{TEST_BUCKET}/{}", self.prefix),
            "--s3-endpoint".into(),
            self.endpoint.clone(),
        ]
    }

    /// The keys of every object under the prefix, without the prefix.
    pub fn keys(&self) -> Vec<String> {
        let (status, body) = self.http(
            "GET",
            &format!("/{TEST_BUCKET}?list-type=2&prefix={}/", self.prefix),
        );
        assert_eq!(status, 200, "listing the test bucket failed: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(|key| {
                key.trim_start_matches(&format!("{}/", self.prefix))
                    .to_string()
            })
            .collect()
    }

    /// One request without a body; the status and the body as text.
    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let host = self
            .endpoint
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("{TEST_S3_ENV} must be http://HOST:PORT"));
        let mut stream = TcpStream::connect(host).unwrap_or_else(|e| {
            panic!("cannot reach the test object store at {host} ({TEST_S3_ENV}): {e}")
        });
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, response)
    }
}
