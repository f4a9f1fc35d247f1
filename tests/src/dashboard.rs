//! The web dashboard from the outside: a real `host-server serve --http` on
//! `127.0.0.1:0`, its admin token, a small HTTP client for the JSON API, and
//! a reader of its Server-Sent Events.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tempfile::TempDir;

use crate::device::ServerAddr;
use crate::process::{bin_dir, Profile};

/// How long one HTTP exchange or one awaited event may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running `host-server` with its dashboard on.
pub struct DashboardServer {
    /// The server process.
    pub child: Child,
    /// Where devices connect (`127.0.0.1:PORT`).
    pub addr: ServerAddr,
    /// The dashboard's base URL, `http://127.0.0.1:PORT`.
    pub http: String,
    /// Its data directory.
    pub data: TempDir,
    /// The admin token made before the server started (empty when none was made).
    pub token: String,
    /// Remaining stdout, kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl DashboardServer {
    /// Makes an admin token on a fresh data dir, then starts `host-server
    /// serve --listen 127.0.0.1:0 --http 127.0.0.1:0` on it.
    pub fn start() -> DashboardServer {
        DashboardServer::start_with(&[])
    }

    /// Like [`DashboardServer::start`], with extra `serve` arguments.
    pub fn start_with(serve_args: &[&str]) -> DashboardServer {
        let data = tempfile::tempdir().expect("temp dir");
        let token = admin_token(data.path());
        DashboardServer::launch(data, token, serve_args)
    }

    /// Starts the server without making an admin token first.
    pub fn start_without_token() -> DashboardServer {
        let data = tempfile::tempdir().expect("temp dir");
        DashboardServer::launch(data, String::new(), &[])
    }

    fn launch(data: TempDir, token: String, serve_args: &[&str]) -> DashboardServer {
        let mut child = Command::new(bin_dir(Profile::Debug).join("host-server"))
            .arg("--data")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(serve_args)
            .env("STATESYNC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("host-server starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = || {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("a stdout line");
            line.trim().to_owned()
        };
        let first = line();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from host-server: {first:?}"))
            .to_owned();
        let second = line();
        let http = second
            .strip_prefix("dashboard on ")
            .unwrap_or_else(|| panic!("unexpected second line from host-server: {second:?}"))
            .to_owned();
        DashboardServer {
            child,
            addr: ServerAddr::new(&addr),
            http,
            data,
            token,
            _stdout: stdout,
        }
    }

    /// Runs `host-server admin token` again and returns the new token (the old one stops working).
    pub fn new_admin_token(&self) -> String {
        admin_token(self.data.path())
    }

    /// Registers a device and returns its key.
    pub fn register(&self, name: &str) -> Vec<u8> {
        let json: Value = serde_json::from_str(&host_server(
            self.data.path(),
            &["--json", "device", "add", name],
        ))
        .expect("device add --json prints JSON");
        hex::decode(json["key"].as_str().expect("a key")).expect("a hex key")
    }

    /// An HTTP client for this dashboard.
    pub fn client(&self) -> Http {
        Http::new(&self.http)
    }
}

/// Runs `host-server --data DATA ARGS` and returns its stdout.
fn host_server(data: &Path, args: &[&str]) -> String {
    let out = Command::new(bin_dir(Profile::Debug).join("host-server"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("host-server runs");
    assert!(
        out.status.success(),
        "host-server {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `host-server admin token` on `data` and returns the token.
fn admin_token(data: &Path) -> String {
    let json: Value = serde_json::from_str(&host_server(data, &["--json", "admin", "token"]))
        .expect("admin token --json prints JSON");
    json["token"].as_str().expect("a token").to_owned()
}

impl Drop for DashboardServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "answer {} is not JSON ({error}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header as text (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A minimal HTTP/1.1 client for the dashboard (no cookie jar: tests pass headers).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client for the dashboard at `base` (`http://HOST:PORT`).
    pub fn new(base: &str) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Response<Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).expect("a well-formed request");
        tokio::time::timeout(WAIT, self.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("no answer to {path} within {WAIT:?}"))
            .unwrap_or_else(|error| panic!("request to {path} failed: {error}"))
    }

    async fn read(response: Response<Incoming>) -> Answer {
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(WAIT, body.collect())
            .await
            .expect("the body arrives in time")
            .expect("the body can be read")
            .to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// `GET path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        Self::read(self.send(Method::GET, path, headers, None).await).await
    }

    /// `POST path` with a JSON body and `headers`.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
        Self::read(self.send(Method::POST, path, headers, Some(body)).await).await
    }

    /// Opens the event stream at `path` (it must answer 200).
    pub async fn events(&self, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let response = self.send(Method::GET, path, headers, None).await;
        assert_eq!(response.status(), 200, "the event stream opens");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            content_type.starts_with("text/event-stream"),
            "events are Server-Sent Events, not {content_type}"
        );
        EventStream {
            body: response.into_body(),
            buffer: String::new(),
        }
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    /// Its `event:` name.
    pub name: String,
    /// Its `data:` as JSON.
    pub data: Value,
}

/// A stream of Server-Sent Events being read.
pub struct EventStream {
    body: Incoming,
    buffer: String,
}

impl EventStream {
    /// The next event (keep-alive comments skipped); `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {data}"));
                return Some(SseEvent { name, data });
            }
            let frame = self
                .body
                .frame()
                .await?
                .expect("the event stream can be read");
            if let Ok(bytes) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8 events"));
            }
        }
    }

    /// Waits (at most [`WAIT`]) for the first event `pick` accepts; earlier events are dropped.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&SseEvent) -> Option<T>,
    ) -> T {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(event) = self.next().await {
                if let Some(found) = pick(&event) {
                    return Some(found);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(found)) => found,
            Ok(None) => panic!("the event stream ended before {what}"),
            Err(_) => panic!("no event {what} within {WAIT:?}"),
        }
    }
}
