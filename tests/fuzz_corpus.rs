//! Every committed fuzz input, replayed through its entry point in `hopwatch::fuzz` without
//! libFuzzer: the corpora in `tools/fuzz/corpus/<target>/` and the inputs that once failed in
//! `tools/fuzz/regressions/<target>/`. A crash that fuzzing found stays a test here.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use hopwatch::fuzz;

/// Every file of the target's corpus and regressions, sorted by path.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// The stack each replay runs on. The fuzzer runs optimized code on an 8 MiB main thread;
/// unoptimized, the config target's most deeply nested YAML (cut at serde-saphyr's depth
/// budget) needs more than a test thread's 2 MiB, though the release build reads it on 256 KiB.
const STACK: usize = 16 << 20;

/// Runs `entry` on every input of `target`, naming the input that panicked.
fn replay(target: &'static str, entry: fn(&[u8])) {
    let replayer = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || replay_here(target, entry))
        .expect("a replay thread");
    if let Err(panic) = replayer.join() {
        std::panic::resume_unwind(panic);
    }
}

fn replay_here(target: &str, entry: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for path in files {
        let data = std::fs::read(&path).expect("a readable corpus file");
        if catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err() {
            panic!("{target} panicked on {}", path.display());
        }
    }
}

#[test]
fn resolv_conf() {
    replay("resolv_conf", fuzz::resolv_conf);
}

#[test]
fn config() {
    replay("config", fuzz::config);
}

#[test]
fn dns_reply() {
    replay("dns_reply", |data| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
            .block_on(fuzz::dns_reply(data))
    });
}

#[test]
fn kube_objects() {
    replay("kube_objects", fuzz::kube_objects);
}

#[test]
fn x509_chain() {
    replay("x509_chain", fuzz::x509_chain);
}

#[test]
fn http_head() {
    replay("http_head", fuzz::http_head);
}
