//! The churn soak: `lab churn` for `HOPWATCH_SOAK_SECONDS` (300 by default; `tests/soak`
//! chooses, docs/RELIABILITY.md has the hour) against the real API server: pods flip Ready 10
//! times a second, a Service and an Ingress are created every 3 s and deleted 15 s later, and
//! every agent's config is rewritten every minute. Every 10 s each agent is sampled.
//!
//! What must hold, on every node:
//! - after the warm-up (the first fifth, at least 60 s), resident memory stays within ±10 % of
//!   its median; open descriptors and runtime tasks stay within ±10 % of theirs, give or take
//!   the probes in flight at the moment of the scrape;
//! - a churn object alive for 10 s has its series, one deleted 10 s ago has none;
//! - once the churn stops, the series are those of the baseline (a baseline target may have
//!   counted an outcome it had not before: the Ingress answers 502 while every pod behind it is
//!   not Ready, a headless Service's name is NXDOMAIN while none of its pods is; nothing else);
//! - no probe starts more than a second late (`hopwatch_schedule_lag_seconds`).
//!
//! The figures are printed, and written as JSON to `HOPWATCH_SOAK_REPORT` when it is set.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::expo::Expo;
use crate::harness::{Lab, NODES, eventually, run_dir, script};
use crate::{WAIT, all_healthy, series, steady_series};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long a churn object must have been alive (or gone) before its series must show (or be
/// gone): the watch, the first probe (1 s interval) and the scrape, with room to spare.
const SETTLED: Duration = Duration::from_secs(10);
/// Probes that may be in flight at a scrape, each holding a socket and a task.
const IN_FLIGHT: f64 = 12.0;

fn soak_seconds() -> u64 {
    match std::env::var("HOPWATCH_SOAK_SECONDS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("HOPWATCH_SOAK_SECONDS={v:?} is not a number of seconds")),
        Err(_) => 300,
    }
}

/// The churn process, killed (by its PID, which this test started) if the test fails.
struct Churning(Child);

impl Drop for Churning {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// When each churn object was created and deleted, as `lab churn` reported it.
#[derive(Default)]
struct Events {
    created: BTreeMap<String, Instant>,
    deleted: BTreeMap<String, Instant>,
    summary: Option<Value>,
}

fn start_churn(seconds: u64, events: Arc<Mutex<Events>>) -> Churning {
    let mut child = Command::new(script())
        .args(["churn", "--seconds", &seconds.to_string(), "--keep", "5"])
        .env("HOPWATCH_LAB_DIR", run_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run lab churn: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let mut e = events.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(name) = event["created"].as_str() {
                e.created.insert(name.into(), Instant::now());
            } else if let Some(name) = event["deleted"].as_str() {
                e.deleted.insert(name.into(), Instant::now());
            } else if event["summary"].is_object() {
                e.summary = Some(event["summary"].clone());
            }
        }
    });
    Churning(child)
}

/// Whether a series names the churn object `name` (its Service, its port or its Ingress).
fn names(series: &str, name: &str) -> bool {
    [
        format!("/{name}:"),
        format!("/{name}/"),
        format!("service=\"{name}\""),
        format!("ingress=\"{name}\""),
    ]
    .iter()
    .any(|p| series.contains(p.as_str()))
}

/// Checks the churn objects against one scrape of every node.
fn check_objects(events: &Events, scrapes: &[(&str, Expo)]) -> Result<usize, String> {
    let now = Instant::now();
    let mut checked = 0;
    for (name, created) in &events.created {
        let deleted = events.deleted.get(name);
        let alive_long = deleted.is_none() && now - *created >= SETTLED;
        let gone_long = deleted.is_some_and(|d| now - *d >= SETTLED);
        for (node, e) in scrapes {
            let has = e.series().iter().any(|s| names(s, name));
            if alive_long
                && !e
                    .all("hopwatch_probes_total", &[("hop", "service")])
                    .any(|s| s.label("target") == format!("shop/{name}:80"))
            {
                return Err(format!(
                    "{node}: {name} alive for 10 s without Service-hop series"
                ));
            }
            if gone_long && has {
                return Err(format!("{node}: {name} deleted 10 s ago still has series"));
            }
        }
        checked += usize::from(alive_long || gone_long);
    }
    Ok(checked)
}

/// A series' identity without its outcome labels (`result`, `code`, `rcode`): the same series
/// of a target whatever outcome it has counted.
fn without_outcome(identity: &str) -> String {
    let Some((name, labels)) = identity.split_once('{') else {
        return identity.into();
    };
    let kept: Vec<&str> = labels
        .trim_end_matches('}')
        .split("\",")
        .filter(|l| {
            !["result=", "code=", "rcode="]
                .iter()
                .any(|o| l.starts_with(o))
        })
        .collect();
    format!("{name}{{{}}}", kept.join("\","))
}

/// One agent's footprint at one scrape.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    rss: f64,
    fds: f64,
    tasks: f64,
    series: f64,
}

fn footprint(e: &Expo) -> Footprint {
    Footprint {
        rss: e.sum("process_resident_memory_bytes", &[]),
        fds: e.sum("process_open_fds", &[]),
        tasks: e.sum("hopwatch_runtime_alive_tasks", &[]),
        series: e.samples.len() as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// The upper bound of the bucket holding the 99th percentile of the lag observed between two
/// scrapes.
fn lag_p99(before: &Expo, after: &Expo) -> f64 {
    let name = "hopwatch_schedule_lag_seconds_bucket";
    let count = |e: &Expo, le: &str| e.get(name, &[("le", le)]).unwrap_or(0.0);
    let total = count(after, "+Inf") - count(before, "+Inf");
    let mut bounds: Vec<(f64, String)> = after
        .all(name, &[])
        .map(|s| {
            let le = s.label("le").to_string();
            (le.parse().unwrap_or(f64::INFINITY), le)
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    bounds
        .into_iter()
        .find(|(_, le)| count(after, le) - count(before, le) >= 0.99 * total)
        .map_or(f64::INFINITY, |(bound, _)| bound)
}

#[test]
#[ignore = "side lane: tests/run runs it beside the other tests, with --ignored"]
fn churn_soak_keeps_memory_descriptors_tasks_and_series_flat_and_in_step_with_the_api() {
    let seconds = soak_seconds();
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let baseline = steady_series(&lab);
    let first = lab.all_metrics();
    let events = Arc::new(Mutex::new(Events::default()));
    let start = Instant::now();
    let mut churn = start_churn(seconds, Arc::clone(&events));
    let warm_up = Duration::from_secs((seconds / 5).max(60));
    let mut samples: BTreeMap<&str, Vec<Footprint>> = BTreeMap::new();
    let mut checked = 0;
    let running = |churn: &mut Churning| churn.0.try_wait().ok().flatten().is_none();
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let scrapes: Vec<(&str, Expo)> = NODES.iter().map(|n| (*n, lab.metrics(n))).collect();
        // Only scrapes taken while the churn runs: its end deletes every churn object at once.
        if !running(&mut churn) {
            break;
        }
        let e = events.lock().unwrap_or_else(|p| p.into_inner());
        checked += check_objects(&e, &scrapes).unwrap_or_else(|err| panic!("{err}"));
        drop(e);
        if start.elapsed() >= warm_up {
            for (node, e) in &scrapes {
                samples.entry(node).or_default().push(footprint(e));
            }
        }
    }
    let status = churn.0.wait().expect("lab churn ran");
    assert!(status.success(), "lab churn failed: {status}");
    let summary = events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .summary
        .clone();
    let summary = summary.expect("lab churn printed its summary");
    let last = lab.all_metrics();
    assert!(
        checked > 0,
        "no churn object was alive or gone long enough to be checked"
    );
    let mut report = BTreeMap::new();
    for ((node, before), after) in NODES.iter().zip(&first).zip(&last) {
        let s = &samples[node];
        assert!(
            s.len() >= 3,
            "{node}: {} samples after the warm-up",
            s.len()
        );
        let rss: Vec<f64> = s.iter().map(|f| f.rss).collect();
        let fds: Vec<f64> = s.iter().map(|f| f.fds).collect();
        let tasks: Vec<f64> = s.iter().map(|f| f.tasks).collect();
        let (rss_m, fds_m, tasks_m) = (
            median(rss.clone()),
            median(fds.clone()),
            median(tasks.clone()),
        );
        let flat = |what: &str, values: &[f64], m: f64, slack: f64| {
            let (lo, hi) = range(values);
            assert!(
                lo >= 0.9 * m - slack && hi <= 1.1 * m + slack,
                "{node}: {what} not flat after the warm-up: {lo}..{hi} around {m}: {values:?}"
            );
        };
        flat("resident memory", &rss, rss_m, 0.0);
        flat("open descriptors", &fds, fds_m, IN_FLIGHT);
        flat("runtime tasks", &tasks, tasks_m, IN_FLIGHT);
        let lag = lag_p99(before, after);
        assert!(lag <= 1.0, "{node}: schedule lag p99 {lag} s");
        let (rss_lo, rss_hi) = range(&rss);
        let (series_lo, series_hi) = range(&s.iter().map(|f| f.series).collect::<Vec<_>>());
        report.insert(
            *node,
            json!({
                "rss_mib": [rss_lo / 1048576.0, rss_hi / 1048576.0],
                "open_fds": range(&fds),
                "tasks": range(&tasks),
                "series_during_churn": [series_lo, series_hi],
                "lag_p99_seconds": lag,
            }),
        );
    }
    let mut report = json!({
        "seconds": seconds,
        "churn": summary,
        "object_checks": checked,
        "nodes": report,
    });
    write_report(&report);
    // Once the churn stops, every series of a churn object is gone and nothing else is new.
    let mut end = BTreeMap::new();
    eventually("the series are back to the baseline", WAIT, || {
        let now = series(&lab);
        for node in NODES {
            let strip = |set: &BTreeSet<String>| -> BTreeSet<String> {
                set.iter().map(|s| without_outcome(s)).collect()
            };
            let (b, n) = (strip(&baseline[node]), strip(&now[node]));
            if b != n {
                let extra: Vec<&String> = b.symmetric_difference(&n).collect();
                return Err(format!("{node}: differs from the baseline: {extra:?}"));
            }
            end.insert(node, (baseline[node].len(), now[node].len()));
        }
        Ok(())
    });
    eventually("healthy after the churn", WAIT, || all_healthy(&lab));
    report["series_baseline_and_end"] = json!(end);
    write_report(&report);
}

/// Prints the report, and writes it to `HOPWATCH_SOAK_REPORT` when that is set.
fn write_report(report: &Value) {
    println!("soak report: {report:#}");
    if let Ok(path) = std::env::var("HOPWATCH_SOAK_REPORT") {
        std::fs::write(&path, format!("{report:#}\n"))
            .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
}
