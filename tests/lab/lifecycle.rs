//! The lab itself: `lab down` leaves nothing behind, also after an interrupted `lab up`.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{self, eventually};

#[test]
fn lab_down_leaves_nothing_behind_also_after_an_interrupted_up() {
    harness::require_root_and_tools();
    let _serial = harness::serial();
    harness::lab_ok(&["down"]);
    let links_before = root_links();
    // A complete lab, then down.
    let args = harness::up_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    harness::lab_ok(&args);
    let status: serde_json::Value =
        serde_json::from_str(&harness::lab_ok(&["status", "--json"])).expect("status JSON");
    let pids: Vec<(u64, u64)> = status["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect();
    assert!(pids.len() >= 15, "only {} processes recorded", pids.len());
    assert!(!lab_namespaces().is_empty());
    harness::lab_ok(&["down"]);
    assert_nothing_left(&pids, &links_before);
    // An `up` interrupted half-way (SIGINT, as Ctrl-C) cleans up after itself.
    let mut up = Command::new(harness::script())
        .args(&args)
        .env("HOPWATCH_LAB_DIR", harness::run_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab up");
    // A busy machine (a second lab beside this one) can take most of a minute to get there.
    eventually(
        "up has started its processes",
        Duration::from_secs(60),
        || {
            let state = std::fs::read_to_string(format!("{}/state.json", harness::run_dir()))
                .unwrap_or_default();
            if state.contains("\"coredns\"") {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    );
    let state =
        std::fs::read_to_string(format!("{}/state.json", harness::run_dir())).expect("state");
    let state: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    let pids: Vec<(u64, u64)> = state["procs"]
        .as_array()
        .expect("procs")
        .iter()
        .filter_map(|p| Some((p["pid"].as_u64()?, p["start"].as_u64()?)))
        .collect();
    let kill = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let code = up.wait().expect("wait for lab up");
    assert_eq!(code.code(), Some(130), "an interrupted up exits 130");
    assert_nothing_left(&pids, &links_before);
    harness::lab_ok(&["down"]);
}

fn lab_namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&harness::prefix()))
        .map(str::to_string)
        .collect()
}

fn root_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().to_string())
        .collect()
}

/// The fields of /proc/PID/stat after the command name; `None` when the PID is gone.
fn stat(pid: u64) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When the process started (clock ticks since boot): with the PID, it names one process.
fn start_time(pid: u64) -> Option<u64> {
    stat(pid)?.get(19)?.parse().ok()
}

/// The process `(pid, start time)` still runs and is not a zombie (a PID reused by
/// another process does not count).
fn running((pid, start): (u64, u64)) -> bool {
    stat(pid).is_some_and(|f| f[0] != "Z" && f.get(19).and_then(|s| s.parse().ok()) == Some(start))
}

fn assert_nothing_left(pids: &[(u64, u64)], links_before: &BTreeSet<String>) {
    assert_eq!(lab_namespaces(), Vec::<String>::new(), "namespaces left");
    let alive: Vec<&(u64, u64)> = pids.iter().filter(|p| running(**p)).collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    let links = root_links();
    let new: Vec<&String> = links.difference(links_before).collect();
    assert!(new.is_empty(), "links left in the root namespace: {new:?}");
    let netns_files: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !netns_files
            .iter()
            .any(|n| n.starts_with(&harness::prefix())),
        "/etc/netns entries left: {netns_files:?}"
    );
}
