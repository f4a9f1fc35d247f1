//! Replays the server fuzz targets' committed corpus with `cargo test`, so what fuzzing found
//! keeps being tested without nightly or libFuzzer.
//!
//! Every file of `host-server/fuzz/corpus/session/` goes through the `session` harness, every
//! file of `host-server/fuzz/corpus/manifest/` through the `manifest` harness, and every input
//! that once crashed (`host-server/fuzz/artifacts-regressions/` and
//! `proto-core/fuzz/artifacts-regressions/`) through both — the very code the fuzz targets run
//! (the `host-server-fuzz` crate in `fuzz/`, a dev-dependency), with the same checks. (Each
//! input starts a real server state, so the corpus is not crossed between the two harnesses.)
//! A panic anywhere (this thread, a session task, a blocking writer thread) fails the test and
//! names the file.

use host_server_fuzz as server;

use server::corpus::files_in;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A harness: takes one fuzz input, panics if the server broke a promise.
type Harness = fn(&[u8]);

/// Panics seen on any thread since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_server_corpus_file_and_regression_passes_its_server_harness() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
    let session = files_in(&fuzz_dir().join("corpus/session"));
    let manifest = files_in(&fuzz_dir().join("corpus/manifest"));
    assert!(
        !session.is_empty() && !manifest.is_empty(),
        "the server targets' corpus is committed"
    );
    let both: [(&str, Harness); 2] = [("session", server::session), ("manifest", server::manifest)];
    let mut regressions = files_in(&fuzz_dir().join("artifacts-regressions"));
    // proto-core's crash inputs reach the server as bytes too.
    regressions.extend(files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto-core/fuzz/artifacts-regressions"),
    ));
    let runs = regressions
        .iter()
        .flat_map(|file| both.iter().map(move |harness| (file, *harness)))
        .chain(session.iter().map(|file| (file, both[0])))
        .chain(manifest.iter().map(|file| (file, both[1])));
    for (file, (name, harness)) in runs {
        let data = std::fs::read(file).expect("a readable corpus file");
        let before = PANICS.load(Ordering::SeqCst);
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(
            outcome.is_ok() && PANICS.load(Ordering::SeqCst) == before,
            "harness `{name}` panicked on {}",
            file.display()
        );
    }
}
