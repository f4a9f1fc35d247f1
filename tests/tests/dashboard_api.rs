//! The dashboard's JSON API and event stream against a real `host-server
//! serve --http`, with simulated devices making the changes: the admin token
//! and logins, everything `host-cli status|ls|devices|history` shows, live
//! events from the hub, downloads only of finished files, delete and retry.

use proto_core::auth::ContentHasher;
use serde_json::{json, Value};
use tests::dashboard::{DashboardServer, Http};
use tests::device::{Device, DeviceEvent, DeviceOptions, DownloadOutcome, MemStore, Transport};
use tests::rig::content;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The entries of `list` (an array) whose `key` is `value`.
fn find<'a>(list: &'a Value, key: &str, value: &str) -> Vec<&'a Value> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .filter(|item| item[key] == value)
        .collect()
}

/// A connected TCP device of `server` with `files` (name, content).
async fn device(server: &DashboardServer, name: &str, files: &[(&str, Vec<u8>)]) -> Device {
    let key = server.register(name);
    let mut store = MemStore::new();
    for (file, data) in files {
        store.add_file(file, data.clone());
    }
    let mut device = Device::spawn(
        name,
        &key,
        Transport::tcp(&server.addr),
        store,
        DeviceOptions::default(),
    );
    device.connect().await.expect("the device connects");
    device
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_needs_the_admin_token_and_actions_need_the_csrf_header_too() {
    let server = tokio::task::block_in_place(DashboardServer::start_without_token);
    let http = server.client();

    // The page itself loads without a login (it shows the login form) and locks itself down.
    let page = http.get("/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .contains("default-src 'self'"));
    assert_eq!(http.get("/assets/app.js", &[]).await.status, 200);

    // No token: nobody gets in, and the answer says how to make one.
    let refused = http.get("/api/records", &[]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("admin token"));

    let token = tokio::task::block_in_place(|| server.new_admin_token());
    let mut stored = Vec::new();
    for file in ["statesync.db", "statesync.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data.path().join(file)) {
            stored.extend(bytes);
        }
    }
    let holds = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(
        !holds(token.as_bytes()),
        "only a digest of the token is stored"
    );
    assert!(
        holds(&ContentHasher::digest(token.as_bytes()).0),
        "its digest is in the database"
    );

    assert_eq!(http.get("/api/records", &[]).await.status, 401);
    let wrong = bearer(&"0".repeat(64));
    assert_eq!(
        http.get("/api/records", &[("authorization", &wrong)])
            .await
            .status,
        401
    );
    let auth = bearer(&token);
    assert_eq!(
        http.get("/api/records", &[("authorization", &auth)])
            .await
            .status,
        200
    );

    // A browser login: an HttpOnly, SameSite=Strict cookie, and a CSRF value for actions.
    let failed = http.post("/login", &[], &json!({ "token": "nope" })).await;
    assert_eq!(failed.status, 401);
    let login = http.post("/login", &[], &json!({ "token": token })).await;
    assert_eq!(login.status, 200);
    let set_cookie = login.header("set-cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP without --behind-tls-proxy: a Secure cookie would never come back: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let csrf = login.json()["csrf"].as_str().unwrap().to_owned();
    let session = http.get("/api/session", &[("cookie", &cookie)]).await;
    assert_eq!(session.json()["access"], "login");
    assert_eq!(session.json()["csrf"], csrf.as_str());
    assert_eq!(
        http.get("/api/devices", &[("cookie", &cookie)])
            .await
            .status,
        200
    );

    // The cookie alone cannot act: a forged cross-site form has no CSRF header.
    let body = json!({ "name": "no/such.file" });
    let forged = http.post("/api/retry", &[("cookie", &cookie)], &body).await;
    assert_eq!(forged.status, 403, "{}", forged.json());
    let guessed = http
        .post(
            "/api/retry",
            &[("cookie", &cookie), ("x-csrf-token", "guess")],
            &body,
        )
        .await;
    assert_eq!(guessed.status, 403);
    let allowed = http
        .post(
            "/api/retry",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            &body,
        )
        .await;
    assert_eq!(
        allowed.status, 404,
        "let in, and told there is no such record"
    );

    // A new token ends every login made with the old one, and the old token.
    let newer = tokio::task::block_in_place(|| server.new_admin_token());
    let ended = http.get("/api/records", &[("cookie", &cookie)]).await;
    assert_eq!(ended.status, 401);
    assert_eq!(ended.json()["login_required"], true);
    assert_eq!(
        http.get("/api/records", &[("authorization", &auth)])
            .await
            .status,
        401
    );
    assert_eq!(
        http.get("/api/records", &[("authorization", &bearer(&newer))])
            .await
            .status,
        200
    );

    let logout = http
        .post("/logout", &[("cookie", &cookie)], &json!({}))
        .await;
    assert_eq!(logout.status, 204);
    assert!(logout.header("set-cookie").contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_api_shows_devices_batches_records_downloads_and_history() {
    let server = tokio::task::block_in_place(DashboardServer::start);
    let auth = bearer(&server.token);
    let http = server.client();
    let get = |path: &'static str| {
        let (http, auth) = (http.clone(), auth.clone());
        async move {
            let answer = http.get(path, &[("authorization", &auth)]).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.json());
            answer.json()
        }
    };

    let files = [
        ("holiday/a.jpg", content(1, 3000)),
        ("holiday/b.jpg", content(2, 5000)),
        ("holiday/c.jpg", content(3, 7000)),
    ];
    let mut camera = device(&server, "camera", &files).await;
    camera.manifest("holiday", 0..3).await.unwrap();
    camera.upload(proto_core::client::FileId(0)).await.unwrap();
    let mut tv_store = MemStore::new();
    let target = tv_store.add_target("holiday/b.jpg");
    let tv_key = server.register("tv");
    let mut tv = Device::spawn(
        "tv",
        &tv_key,
        Transport::tcp(&server.addr),
        tv_store,
        DeviceOptions::default(),
    );
    tv.connect().await.unwrap();
    let rejected = tv.download(target, true).await.unwrap();
    assert!(matches!(
        rejected,
        DownloadOutcome::Rejected { notify: true, .. }
    ));
    server.register("shelf");

    // devices: active or silent, link, last seen.
    let devices = get("/api/devices").await;
    let devices = &devices["devices"];
    let camera_row = find(devices, "device", "camera")[0];
    assert_eq!(camera_row["active"], true);
    assert_eq!(camera_row["link"], "tcp");
    assert!(camera_row["last_seen"].as_u64().unwrap() > 0);
    let shelf = find(devices, "device", "shelf")[0];
    assert_eq!(
        (&shelf["active"], &shelf["link"]),
        (&json!(false), &json!("none"))
    );
    assert_eq!(shelf["last_seen"], 0);

    // batches: m of N uploaded, and the counts per state.
    let batches = get("/api/batches").await;
    let holiday = find(&batches["batches"], "batch", "holiday")[0].clone();
    assert_eq!(holiday["owner"], "camera");
    assert_eq!(
        [
            &holiday["expected"],
            &holiday["uploaded"],
            &holiday["needed"],
            &holiday["uploading"],
            &holiday["failed"]
        ],
        [&json!(3), &json!(1), &json!(2), &json!(0), &json!(0)]
    );

    // records: state word and bits, received/size, hash, owner, batch.
    let records = get("/api/records").await;
    assert!(records["revision"].as_u64().unwrap() >= 4);
    let records = &records["records"];
    assert_eq!(records.as_array().unwrap().len(), 3);
    let a = find(records, "name", "holiday/a.jpg")[0];
    assert_eq!(
        (&a["state"], &a["bits"]),
        (&json!("uploaded"), &json!("11"))
    );
    assert_eq!((&a["received"], &a["size"]), (&json!(3000), &json!(3000)));
    assert_eq!(
        a["hash"],
        ContentHasher::digest(&files[0].1).to_string().as_str()
    );
    assert_eq!(
        (&a["owner"], &a["batch"]),
        (&json!("camera"), &holiday["id"])
    );
    let b = find(records, "name", "holiday/b.jpg")[0];
    assert_eq!((&b["state"], &b["bits"]), (&json!("needed"), &json!("01")));
    assert_eq!((&b["received"], &b["size"]), (&json!(0), &json!(5000)));
    let uploaded = http
        .get("/api/records?state=uploaded", &[("authorization", &auth)])
        .await
        .json();
    assert_eq!(uploaded["records"].as_array().unwrap().len(), 1);
    let by_owner = http
        .get("/api/records?owner=tv", &[("authorization", &auth)])
        .await
        .json();
    assert!(by_owner["records"].as_array().unwrap().is_empty());
    let bad = http
        .get("/api/records?state=half", &[("authorization", &auth)])
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("half"));

    // downloads: who is waiting for what.
    let downloads = get("/api/downloads").await;
    let waiting = find(&downloads["downloads"], "device", "tv");
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (&waiting[0]["name"], &waiting[0]["state"]),
        (&json!("holiday/b.jpg"), &json!("pending"))
    );
    assert_eq!(
        (&waiting[0]["acknowledged"], &waiting[0]["detail"]),
        (&json!(0), &json!("")),
        "nothing stored yet, nothing failed"
    );

    // history: joins, the batch, the upload, oldest first; `since` pages on.
    let history = get("/api/history").await;
    let entries = history["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["device-added", "joined", "batch-announced", "uploaded"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let since = seqs[seqs.len() - 2];
    let tail = http
        .get(
            &format!("/api/history?since={since}"),
            &[("authorization", &auth)],
        )
        .await
        .json();
    assert_eq!(tail["entries"].as_array().unwrap().len(), 1);
    let latest = http
        .get("/api/history?limit=2", &[("authorization", &auth)])
        .await
        .json();
    let latest: Vec<u64> = latest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(latest, seqs[seqs.len() - 2..]);

    // A device that leaves is silent, keeps its last link, and its files stay visible.
    camera.bye().await.unwrap();
    let devices = get("/api/devices").await;
    let camera_row = find(&devices["devices"], "device", "camera")[0];
    assert_eq!(
        (&camera_row["active"], &camera_row["link"]),
        (&json!(false), &json!("tcp"))
    );
    assert_eq!(
        get("/api/records").await["records"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    drop(tv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_events_follow_the_hub_and_only_finished_files_download() {
    let server = tokio::task::block_in_place(DashboardServer::start);
    let auth = bearer(&server.token);
    let http: Http = server.client();
    let mut events = http
        .events("/api/events", &[("authorization", &auth)])
        .await;
    let ready = events
        .wait_for("ready", |e| (e.name == "ready").then(|| e.data.clone()))
        .await;
    assert!(ready["revision"].is_u64());

    let body = content(7, 40_000);
    let mut camera = device(&server, "camera", &[("clips/one.bin", body.clone())]).await;
    events
        .wait_for("camera's presence", |e| {
            (e.name == "presence" && e.data["device"] == "camera" && e.data["active"] == true)
                .then_some(())
        })
        .await;
    camera.manifest("clips", 0..1).await.unwrap();
    let announced = events
        .wait_for("the announced record", |e| {
            (e.name == "record" && e.data["name"] == "clips/one.bin").then(|| e.data.clone())
        })
        .await;
    assert_eq!(
        (&announced["state"], &announced["bits"]),
        (&json!("needed"), &json!("01"))
    );

    // Not uploaded: refused with its state and progress, never partial bytes.
    let refused = http
        .get("/api/content/clips/one.bin", &[("authorization", &auth)])
        .await;
    assert_eq!(refused.status, 409);
    let why = refused.json();
    assert_eq!(
        (&why["bits"], &why["received"], &why["size"]),
        (&json!("01"), &json!(0), &json!(40_000))
    );
    assert!(
        why["error"].as_str().unwrap().contains("not uploaded yet"),
        "{why}"
    );

    // A device waiting for the file shows up as a download event.
    let mut tv_store = MemStore::new();
    let target = tv_store.add_target("clips/one.bin");
    let tv_key = server.register("tv");
    let mut tv = Device::spawn(
        "tv",
        &tv_key,
        Transport::tcp(&server.addr),
        tv_store,
        DeviceOptions::default(),
    );
    tv.connect().await.unwrap();
    tv.download(target, true).await.unwrap();
    events
        .wait_for("tv's pending download", |e| {
            (e.name == "download" && e.data["device"] == "tv" && e.data["state"] == "pending")
                .then_some(())
        })
        .await;

    camera.upload(proto_core::client::FileId(0)).await.unwrap();
    let uploaded = events
        .wait_for("the record at 11", |e| {
            (e.name == "record" && e.data["name"] == "clips/one.bin" && e.data["bits"] == "11")
                .then(|| e.data.clone())
        })
        .await;
    assert_eq!(uploaded["received"], 40_000);

    let file = http
        .get("/api/content/clips/one.bin", &[("authorization", &auth)])
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.body.as_ref(), &body[..]);
    assert_eq!(file.header("content-type"), "application/octet-stream");
    assert!(file
        .header("content-disposition")
        .starts_with("attachment; filename=\"one.bin\""));
    assert_eq!(
        http.get("/api/content/clips/none.bin", &[("authorization", &auth)])
            .await
            .status,
        404
    );
    assert_eq!(
        http.get("/api/content/clips/one.bin", &[]).await.status,
        401,
        "files need a login too"
    );

    // The tv was notified and downloads it; its download state follows.
    tv.wait_for("DownloadAvailable", |e| {
        matches!(e, DeviceEvent::DownloadAvailable { .. }).then_some(())
    })
    .await
    .unwrap();
    drop(tv);
    drop(camera);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_deletes_and_asks_for_a_reupload_like_the_cli() {
    // Deleted files' bytes are not kept here, so the delete removes the blob at once.
    let server =
        tokio::task::block_in_place(|| DashboardServer::start_with(&["--keep-deleted", "0"]));
    let auth = bearer(&server.token);
    let http = server.client();
    let keep = content(11, 2000);
    let drop_me = content(12, 3000);
    let mut camera = device(
        &server,
        "camera",
        &[("keep.bin", keep.clone()), ("drop.bin", drop_me.clone())],
    )
    .await;
    camera.upload(proto_core::client::FileId(0)).await.unwrap();
    camera.upload(proto_core::client::FileId(1)).await.unwrap();
    let mut events = http
        .events("/api/events", &[("authorization", &auth)])
        .await;
    events
        .wait_for("ready", |e| (e.name == "ready").then_some(()))
        .await;

    // Retry: back to 01, the owner is told, history says who asked.
    let retried = http
        .post(
            "/api/retry",
            &[("authorization", &auth)],
            &json!({ "name": "keep.bin" }),
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.json());
    assert_eq!(retried.json()["record"]["bits"], "01");
    camera
        .wait_for("RetryRequested", |e| match e {
            DeviceEvent::RetryRequested { name, .. } if name == "keep.bin" => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    events
        .wait_for("keep.bin back at 01", |e| {
            (e.name == "record" && e.data["name"] == "keep.bin" && e.data["bits"] == "01")
                .then_some(())
        })
        .await;

    // Delete: the record and its blob are gone, subscribers hear it.
    let blob = server
        .data
        .path()
        .join("blobs")
        .join(ContentHasher::digest(&drop_me).to_string());
    assert!(blob.exists());
    let deleted = http
        .post(
            "/api/delete",
            &[("authorization", &auth)],
            &json!({ "name": "drop.bin" }),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.json());
    events
        .wait_for("drop.bin deleted", |e| {
            (e.name == "deleted" && e.data["name"] == "drop.bin").then_some(())
        })
        .await;
    assert!(!blob.exists(), "the deleted record's blob is removed");
    let records = http
        .get("/api/records", &[("authorization", &auth)])
        .await
        .json();
    let names: Vec<&str> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keep.bin"]);
    let history = http
        .get("/api/history", &[("authorization", &auth)])
        .await
        .json();
    let by_dashboard: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["device"] == "(dashboard)")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(by_dashboard, ["retry-requested", "deleted"]);

    // Mistakes get clear answers.
    let missing = http
        .post(
            "/api/delete",
            &[("authorization", &auth)],
            &json!({ "name": "drop.bin" }),
        )
        .await;
    assert_eq!(missing.status, 404);
    let bad = http
        .post(
            "/api/delete",
            &[("authorization", &auth)],
            &json!({ "name": "../etc/passwd" }),
        )
        .await;
    assert_eq!(bad.status, 400);
    let malformed = http
        .post(
            "/api/retry",
            &[("authorization", &auth)],
            &json!({ "file": 1 }),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["error"].as_str().unwrap().contains("name"));
    drop(camera);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_lists_deleted_files_and_restores_one_with_its_kept_bytes() {
    let server = tokio::task::block_in_place(DashboardServer::start);
    let auth = bearer(&server.token);
    let http = server.client();
    let photo = content(13, 4000);
    let mut camera = device(&server, "camera", &[("photo.jpg", photo.clone())]).await;
    camera.upload(proto_core::client::FileId(0)).await.unwrap();
    camera.delete("photo.jpg").await.unwrap();

    let deleted = http
        .get("/api/deleted", &[("authorization", &auth)])
        .await
        .json();
    let entries = deleted["deleted"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{deleted}");
    assert_eq!(entries[0]["record"]["name"], "photo.jpg");
    assert_eq!(entries[0]["deleted_by"], "camera");
    assert_eq!(entries[0]["bytes_kept"], true);

    let body = json!({ "name": "photo.jpg" });
    assert_eq!(http.post("/api/restore", &[], &body).await.status, 401);
    let restored = http
        .post("/api/restore", &[("authorization", &auth)], &body)
        .await;
    assert_eq!(restored.status, 200, "{}", restored.json());
    assert_eq!(restored.json()["record"]["bits"], "11");
    assert_eq!(restored.json()["owner_asked"], false);
    let downloaded = http
        .get("/api/content/photo.jpg", &[("authorization", &auth)])
        .await;
    assert_eq!(downloaded.status, 200);
    assert_eq!(downloaded.body.as_ref(), photo.as_slice());
    let now = http
        .get("/api/deleted", &[("authorization", &auth)])
        .await
        .json();
    assert!(now["deleted"].as_array().unwrap().is_empty(), "{now}");

    let again = http
        .post("/api/restore", &[("authorization", &auth)], &body)
        .await;
    assert_eq!(again.status, 409, "{}", again.json());
    let nothing = http
        .post(
            "/api/restore",
            &[("authorization", &auth)],
            &json!({ "name": "never.jpg" }),
        )
        .await;
    assert_eq!(nothing.status, 404);
    let history = http
        .get("/api/history", &[("authorization", &auth)])
        .await
        .json();
    let restored_by: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "restored")
        .map(|e| e["device"].as_str().unwrap())
        .collect();
    assert_eq!(restored_by, ["(dashboard)"]);
    drop(camera);
}

/// Behind a TLS-terminating proxy (`--behind-tls-proxy`) the login cookie is
/// `Secure`, so a browser never sends it over plain HTTP; so is the logout's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_cookie_is_secure_behind_a_tls_proxy() {
    let server = DashboardServer::start_with(&["--behind-tls-proxy"]);
    let http = server.client();
    let login = http
        .post("/login", &[], &json!({ "token": server.token }))
        .await;
    assert_eq!(login.status, 200);
    let set_cookie = login.header("set-cookie").to_owned();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let logout = http
        .post("/logout", &[("cookie", &cookie)], &json!({}))
        .await;
    assert!(
        logout.header("set-cookie").contains("Secure"),
        "{}",
        logout.header("set-cookie")
    );
}
