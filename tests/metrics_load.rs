//! The metrics endpoint under load, and a storm of reloads, on loopback.
//!
//! - 50 scrapers GET `/metrics` back to back for `HOPWATCH_LOAD_SECONDS` (60 by default) while
//!   the agent probes 100 TCP targets every second: every scrape answers 200, and no probe
//!   starts more than 250 ms late.
//! - 100 reloads by SIGHUP, alternating the config between two target sets: each is applied,
//!   and afterwards the agent holds the series, descriptors and runtime tasks it held before,
//!   and its resident memory is within 10 % of what it was.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::process::{Process, http_get};
use support::prom::Exposition;
use support::{TempDir, loopback_ip};

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");
const SCRAPERS: usize = 50;
const TARGETS: usize = 100;
/// Probes that may be in flight when a scrape is taken, each holding a socket and a task.
const IN_FLIGHT: f64 = 16.0;

/// A TCP server on loopback that accepts and closes every connection.
fn healthy_server() -> SocketAddr {
    let listener = TcpListener::bind((loopback_ip(), 0)).expect("bind the target");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    addr
}

/// A config probing `targets` TCP targets named `{prefix}-N` every second.
fn config(listen: SocketAddr, target: SocketAddr, prefix: &str, targets: usize) -> String {
    let mut text = format!(
        "listen: \"{listen}\"\nmax_concurrency: 32\n\
         defaults: {{interval_seconds: 1, timeout_seconds: 0.5}}\ntcp:\n"
    );
    for n in 0..targets {
        text.push_str(&format!(
            "  - {{address: \"{target}\", id: {prefix}-{n}}}\n"
        ));
    }
    text
}

struct Agent {
    process: Process,
    listen: SocketAddr,
}

impl Agent {
    fn start(dir: &TempDir, text: &str, listen: SocketAddr) -> Agent {
        let path = dir.file("config.yaml", text);
        let mut command = Command::new(BIN);
        command.args(["run", "--config"]).arg(&path);
        let process = Process::spawn("hopwatch", command, dir.path().join("agent.log"));
        let agent = Agent { process, listen };
        agent.wait_for(|e| e.sum("hopwatch_probes_total", &[]) >= 2.0 * TARGETS as f64);
        agent
    }

    fn scrape(&self) -> Result<Exposition, String> {
        let response = http_get(self.listen, "/metrics")?;
        if response.status != 200 {
            return Err(format!("HTTP {}", response.status));
        }
        Exposition::parse(&response.body)
    }

    /// Scrapes until `ok` holds, for at most 20 s.
    fn wait_for(&self, ok: impl Fn(&Exposition) -> bool) -> Exposition {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(e) = self.scrape()
                && ok(&e)
            {
                return e;
            }
            assert!(
                Instant::now() < until,
                "not within 20 s:\n{}",
                self.process.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Probes started late by more than 250 ms, and all probes, between two scrapes.
fn late(before: &Exposition, after: &Exposition) -> (f64, f64) {
    let on_time =
        |e: &Exposition| e.value("hopwatch_schedule_lag_seconds_bucket", &[("le", "0.25")]);
    let all = |e: &Exposition| e.value("hopwatch_schedule_lag_seconds_count", &[]);
    let total = all(after) - all(before);
    (total - (on_time(after) - on_time(before)), total)
}

fn load_seconds() -> u64 {
    match std::env::var("HOPWATCH_LOAD_SECONDS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("HOPWATCH_LOAD_SECONDS={v:?} is not a number of seconds")),
        Err(_) => 60,
    }
}

#[test]
fn fifty_scrapers_for_a_minute_leave_every_probe_on_time() {
    let dir = TempDir::new("scrapers");
    let listen = SocketAddr::from((loopback_ip(), support::free_port(loopback_ip())));
    let target = healthy_server();
    let agent = Agent::start(&dir, &config(listen, target, "t", TARGETS), listen);
    let before = agent.scrape().expect("a scrape before the load");
    let seconds = load_seconds();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, slowest_ms) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let scrapers: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let (stop, ok, failed, slowest_ms) = (
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&slowest_ms),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match http_get(listen, "/metrics") {
                        Ok(r) if r.status == 200 && r.body.contains("hopwatch_build_info") => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let ms = started.elapsed().as_millis() as u64;
                    slowest_ms.fetch_max(ms, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for scraper in scrapers {
        scraper.join().expect("a scraper thread");
    }
    let after = agent.scrape().expect("a scrape after the load");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let slowest = slowest_ms.load(Ordering::Relaxed);
    let (late, probes) = late(&before, &after);
    eprintln!(
        "{ok} scrapes in {seconds} s ({:.0}/s), {failed} failed, slowest {slowest} ms; \
         {probes} probes, {late} late by more than 250 ms",
        ok as f64 / seconds as f64
    );
    assert_eq!(
        failed,
        0,
        "scrapes failed under load:\n{}",
        agent.process.log()
    );
    assert!(ok > 0, "no scrape answered");
    assert!(
        probes >= 0.9 * (TARGETS as u64 * seconds) as f64,
        "{probes} probes in {seconds} s of {TARGETS} targets every second"
    );
    assert_eq!(late, 0.0, "probes started late under scrape load");
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib * 1024.0)
}

/// The identities of every series but the agent's own footprint, whose values move anyway.
fn identities(e: &Exposition) -> BTreeSet<String> {
    e.samples
        .iter()
        .filter(|s| !s.name.starts_with("process_") && !s.name.starts_with("hopwatch_config_"))
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect()
}

fn hangup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid}: {status}");
}

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the config");
    std::fs::rename(&tmp, path).expect("replace the config");
}

#[test]
fn a_hundred_reloads_leave_series_descriptors_tasks_and_memory_as_they_were() {
    let dir = TempDir::new("reloads");
    let listen = SocketAddr::from((loopback_ip(), support::free_port(loopback_ip())));
    let target = healthy_server();
    let (a, b) = (
        config(listen, target, "a", TARGETS),
        config(listen, target, "b", TARGETS / 2),
    );
    let agent = Agent::start(&dir, &a, listen);
    let path = dir.path().join("config.yaml");
    // The series of every target have appeared (each has probed twice at least).
    std::thread::sleep(Duration::from_secs(3));
    let before = agent.scrape().expect("a scrape before the reloads");
    let rss_before = rss(agent.process.pid());
    let reloads = |e: &Exposition| e.sum("hopwatch_config_reloads_total", &[("result", "success")]);
    let started = Instant::now();
    for n in 1..=100 {
        write(&path, if n % 2 == 1 { &b } else { &a });
        let done = reloads(&before) + n as f64;
        hangup(agent.process.pid());
        agent.wait_for(|e| reloads(e) >= done);
    }
    let took = started.elapsed();
    // The last reload put config `a` back; its targets probe again and `b`'s are gone.
    std::thread::sleep(Duration::from_secs(3));
    let after = agent.wait_for(|e| identities(e) == identities(&before));
    let rss_after = rss(agent.process.pid());
    let gauge = |e: &Exposition, name: &str| e.value(name, &[]);
    let (fds, tasks) = (
        (
            gauge(&before, "process_open_fds"),
            gauge(&after, "process_open_fds"),
        ),
        (
            gauge(&before, "hopwatch_runtime_alive_tasks"),
            gauge(&after, "hopwatch_runtime_alive_tasks"),
        ),
    );
    eprintln!(
        "100 reloads in {:.1} s; descriptors {} → {}, tasks {} → {}, RSS {:.1} → {:.1} MiB",
        took.as_secs_f64(),
        fds.0,
        fds.1,
        tasks.0,
        tasks.1,
        rss_before / 1048576.0,
        rss_after / 1048576.0
    );
    assert_eq!(
        after.sum("hopwatch_config_reloads_total", &[("result", "failure")]),
        0.0
    );
    assert!(
        fds.1 <= fds.0 + IN_FLIGHT,
        "descriptors {} → {}",
        fds.0,
        fds.1
    );
    assert!(
        tasks.1 <= tasks.0 + IN_FLIGHT,
        "tasks {} → {}",
        tasks.0,
        tasks.1
    );
    assert!(
        rss_after <= rss_before * 1.1,
        "resident memory {rss_before} → {rss_after} bytes"
    );
}
