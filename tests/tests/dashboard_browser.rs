//! The dashboard in a real browser: headless Chromium logs in with the admin
//! token, sees a batch at "1 of 3 uploaded", and watches it turn to "3 of 3
//! uploaded" while a simulated device uploads, without reloading the page.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages; fails (with the
//! command that installs them) when they are missing. Leaves a screenshot in
//! `target/dashboard-screenshot.png`.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, Locator};
use proto_core::client::FileId;
use proto_core::ContentHash;
use serde_json::json;
use tests::browser::Browser;
use tests::dashboard::DashboardServer;
use tests::device::{Device, DeviceOptions, DownloadOutcome, MemStore, Transport};
use tests::rig::content;

/// How long the page may take to show a change.
const PAGE_WAIT: Duration = Duration::from_secs(20);

fn spawn(server: &DashboardServer, name: &str, store: MemStore) -> Device {
    let key = server.register(name);
    Device::spawn(
        name,
        &key,
        Transport::tcp(&server.addr),
        store,
        DeviceOptions::default(),
    )
}

/// Waits until the batch `batch` on the page reads `text`.
async fn batch_reads(page: &Client, batch: &str, text: &str) {
    let xpath = format!(
        "//div[@data-batch-name='{batch}']//span[@class='batch-progress'][normalize-space()='{text}']"
    );
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|error| panic!("the page never showed batch {batch} at `{text}`: {error}"));
}

/// Waits until the page's notice line contains `text`.
async fn notice_reads(page: &Client, text: &str) {
    let xpath = format!("//p[@id='notice'][contains(., \"{text}\")]");
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|error| panic!("the page never said `{text}`: {error}"));
}

/// Where the screenshot goes: `target/` of the workspace (or `CARGO_TARGET_DIR`).
fn screenshot_path() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tests::process::workspace_root().join("target"))
        .join("dashboard-screenshot.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_watches_a_batch_go_from_1_of_3_to_3_of_3_without_reloading() {
    tests::browser::require_chromium();
    let server = tokio::task::block_in_place(DashboardServer::start);

    // camera announces three photos and uploads one.
    let mut store = MemStore::new();
    for (index, name) in ["holiday/beach.jpg", "holiday/hills.jpg", "holiday/town.jpg"]
        .into_iter()
        .enumerate()
    {
        store.add_file(name, content(index as u64, 24_000 + 8_000 * index));
    }
    let mut camera = spawn(&server, "camera", store);
    camera.connect().await.unwrap();
    camera.manifest("holiday", 0..3).await.unwrap();
    camera.upload(FileId(0)).await.unwrap();

    // A sensor whose second log fails its hash check, and a third it has not sent.
    let mut store = MemStore::new();
    store.add_file("logs/monday.csv", content(10, 4_000));
    store.add_file_claiming("logs/tuesday.csv", content(11, 6_000), ContentHash([7; 32]));
    store.add_file("logs/wednesday.csv", content(12, 5_000));
    let mut sensor = spawn(&server, "sensor", store);
    sensor.connect().await.unwrap();
    sensor.manifest("logs", 0..3).await.unwrap();
    sensor.upload(FileId(0)).await.unwrap();
    let _ = sensor.upload(FileId(1)).await;
    sensor.bye().await.unwrap();

    // A TV waits for a photo that is not uploaded yet.
    let mut store = MemStore::new();
    let wanted = store.add_target("holiday/town.jpg");
    let mut tv = spawn(&server, "tv", store);
    tv.connect().await.unwrap();
    let rejected = tv.download(wanted, true).await.unwrap();
    assert!(matches!(
        rejected,
        DownloadOutcome::Rejected { notify: true, .. }
    ));

    let browser = Browser::start(1440, 1500).await;
    let page = &browser.client;
    page.goto(&server.http).await.unwrap();
    let token = page
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#token"))
        .await
        .expect("the login form");
    token.send_keys(&server.token).await.unwrap();
    page.find(Locator::Css("#login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    batch_reads(page, "holiday", "1 of 3 uploaded").await;
    page.execute("window.sameDocument = 'not reloaded'; return true;", vec![])
        .await
        .unwrap();
    // A file that is not uploaded offers no download, and says why.
    let hills = page
        .find(Locator::Css("tr[data-name='holiday/hills.jpg']"))
        .await
        .unwrap();
    assert_eq!(
        hills.attr("data-bits").await.unwrap().as_deref(),
        Some("01")
    );
    assert!(hills.find(Locator::Css("a.download")).await.is_err());
    let why = hills.text().await.unwrap();
    assert!(why.contains("not uploaded yet"), "{why}");
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#live.on"))
        .await
        .expect("the page follows the server's events");
    // Asking for it anyway: the page will fetch it the moment it is 11.
    hills
        .find(Locator::Css("button.download-later"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    notice_reads(page, "it downloads here the moment it is 11").await;

    // The camera sends the rest while the page watches.
    camera.upload(FileId(1)).await.unwrap();
    camera.upload(FileId(2)).await.unwrap();
    batch_reads(page, "holiday", "3 of 3 uploaded").await;
    let link = page
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(
            "tr[data-name='holiday/hills.jpg'][data-bits='11'] a.download",
        ))
        .await
        .expect("a finished file has a download link");
    assert_eq!(
        link.attr("href").await.unwrap().as_deref(),
        Some("/api/content/holiday/hills.jpg")
    );
    let same = page
        .execute("return window.sameDocument;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        json!("not reloaded"),
        "the page changed without a reload"
    );
    notice_reads(
        page,
        "`holiday/hills.jpg` is uploaded (11); downloading it now",
    )
    .await;
    let hills_bytes = browser.downloaded("hills.jpg", PAGE_WAIT).await;
    assert!(
        hills_bytes == content(1, 32_000),
        "the browser got the uploaded bytes"
    );
    batch_reads(page, "logs", "1 of 3 uploaded").await;

    let png = page.screenshot().await.expect("a screenshot");
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());

    // An action from the page: its login cookie plus the CSRF header it holds.
    page.find(Locator::Css(
        "tr[data-name='logs/wednesday.csv'] button.delete",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let question = page.get_alert_text().await.unwrap();
    assert!(question.contains("logs/wednesday.csv"), "{question}");
    page.accept_alert().await.unwrap();
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#history tr[data-kind='deleted']"))
        .await
        .expect("the deletion reaches the history");
    assert!(page
        .find(Locator::Css("tr[data-name='logs/wednesday.csv']"))
        .await
        .is_err());

    // The deleted file is listed; it was never uploaded, so Restore brings it
    // back `01` and its owner is asked for it.
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(
            "#deleted tr[data-deleted-name='logs/wednesday.csv'] button.restore",
        ))
        .await
        .expect("the deleted file is listed")
        .click()
        .await
        .unwrap();
    let question = page.get_alert_text().await.unwrap();
    assert!(question.contains("needed (01)"), "{question}");
    page.accept_alert().await.unwrap();
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(
            "#records tr[data-name='logs/wednesday.csv'][data-bits='01']",
        ))
        .await
        .expect("the restored file is back in the records, 01");
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#history tr[data-kind='restored']"))
        .await
        .expect("the restore reaches the history");

    browser.close().await;
    drop((camera, tv));
}
