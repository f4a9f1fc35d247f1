//! A real browser for the dashboard tests: Debian's headless Chromium driven
//! over WebDriver (`chromedriver`) by `fantoccini`.
//!
//! Chromium and chromedriver come from the `chromium` and `chromium-driver`
//! packages (`.ci/run` installs them). When they are missing the test fails
//! and says so; it never passes without having looked at the page.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Folder of the profile that downloads go to.
const DOWNLOADS: &str = "downloads";
/// How often [`Browser::downloaded`] looks for the file.
const DOWNLOAD_CHECK: Duration = Duration::from_millis(50);
/// How long chromedriver may take to start.
const DRIVER_START: Duration = Duration::from_secs(20);

/// Panics with what to install when Chromium or chromedriver is missing.
pub fn require_chromium() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard's browser test needs headless Chromium and chromedriver, and {} is missing; \
         install them with `apt-get install -y chromium chromium-driver` (Debian; .ci/run does this)",
        missing.join(" and ")
    );
}

/// chromedriver with one headless Chromium session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session of a
    /// fresh, headless Chromium with a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        require_chromium();
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let mut driver = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--log-level=WARNING"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so the browser it starts goes with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
        let port = driver_port(&mut driver);
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "download.default_directory": profile.path().join(DOWNLOADS),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|error| panic!("chromedriver cannot start Chromium: {error}"));
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Waits (at most `within`) until the browser has finished downloading
    /// `file_name` and returns its bytes.
    pub async fn downloaded(&self, file_name: &str, within: Duration) -> Vec<u8> {
        let folder = self.profile.path().join(DOWNLOADS);
        let path = folder.join(file_name);
        let partial = folder.join(format!("{file_name}.crdownload"));
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Chromium writes `NAME.crdownload` and renames it when complete.
            if path.exists() && !partial.exists() {
                return std::fs::read(&path).expect("the downloaded file can be read");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the browser did not download {file_name} within {within:?}"
            );
            tokio::time::sleep(DOWNLOAD_CHECK).await;
        }
    }

    /// Ends the session (Chromium exits) and chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Reads the port chromedriver announces (`... started successfully on port N.`).
fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                let _ = tx.send(port);
            }
            // Keep reading so chromedriver never blocks on a full pipe.
        }
    });
    match rx.recv_timeout(DRIVER_START) {
        Ok(Some(port)) => port,
        Ok(None) => panic!("chromedriver announced a port that is not a number"),
        Err(_) => panic!("chromedriver did not start within {DRIVER_START:?}"),
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium it left behind.
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
