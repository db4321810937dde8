//! Scheduling under load: thousands of connect targets on one core, and how late their probes
//! start. The real `Scheduler` with the real `Metrics` as its sink runs on the agent's
//! current-thread runtime, pinned to core 0; each target connects to an acceptor on core 1.
//! Lag is what the scheduler itself reports (`hopwatch_schedule_lag_seconds`): the start, slot
//! in hand, minus the planned start with its jitter.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hopwatch::config::Schedule;
use hopwatch::metrics::Metrics;
use hopwatch::probe::tcp::ConnectTarget;
use hopwatch::probe::{Hop, Outcome, Target, TargetKey};
use hopwatch::schedule::{Scheduler, Sink};

use crate::common::{self, ms, quantile};
use crate::servers::{Acceptor, pinned, this_exe};

/// Runs the measurement in a child pinned to core 0 and prints its table.
pub fn run(targets: usize, interval_s: f64, seconds: f64) {
    let acceptor = Acceptor::start(&this_exe(), 1);
    let out = pinned(0, &this_exe())
        .arg("schedule-inner")
        .arg(acceptor.addr().to_string())
        .arg(targets.to_string())
        .arg(interval_s.to_string())
        .arg(seconds.to_string())
        .output()
        .expect("run the schedule worker");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "schedule worker failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Records every lag, then passes everything on to the metrics.
struct Lags {
    metrics: Metrics,
    lags: Mutex<Vec<(tokio::time::Instant, Duration)>>,
    failures: Mutex<usize>,
}

impl Sink for Lags {
    fn started(&self, key: &TargetKey) {
        self.metrics.start(key);
    }

    fn record(&self, key: &TargetKey, outcome: &Outcome) {
        if outcome.result.is_err() {
            *self.failures.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }
        self.metrics.record(key, outcome);
    }

    fn lag(&self, lag: Duration) {
        let now = tokio::time::Instant::now();
        self.lags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((now, lag));
        self.metrics.observe_lag(lag);
    }

    fn forget(&self, key: &TargetKey) {
        self.metrics.forget(key);
    }
}

/// `schedule-inner ADDR TARGETS INTERVAL_S SECONDS`
pub fn inner_main(args: &[String]) {
    let [addr, targets, interval, seconds] = args else {
        panic!("usage: schedule-inner ADDR TARGETS INTERVAL_S SECONDS");
    };
    let addr = addr.parse().expect("ADDR");
    let targets: usize = targets.parse().expect("TARGETS");
    let interval = Duration::from_secs_f64(interval.parse().expect("INTERVAL_S"));
    let seconds = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let schedule = Schedule {
        interval,
        timeout: Duration::from_secs(1).min(interval.mul_f64(0.5)),
        jitter: interval.mul_f64(0.1),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let sink = Arc::new(Lags {
        metrics: Metrics::new(),
        lags: Mutex::new(Vec::new()),
        failures: Mutex::new(0),
    });
    let pid = std::process::id();
    let (began, cpu) = runtime.block_on(async {
        let mut scheduler = Scheduler::new(64, Arc::clone(&sink));
        let list: Vec<Target> = (0..targets)
            .map(|i| {
                Target::Connect(ConnectTarget {
                    key: TargetKey {
                        hop: Hop::Service,
                        id: format!("ns/svc-{i:05}:80"),
                    },
                    addresses: vec![addr],
                    schedule,
                })
            })
            .collect();
        let began = tokio::time::Instant::now();
        let cpu0 = common::cpu_time(pid).expect("own CPU time");
        scheduler.reconcile(list).await;
        tokio::time::sleep(seconds).await;
        let cpu = common::cpu_time(pid).expect("own CPU time") - cpu0;
        scheduler.shutdown().await;
        (began, cpu)
    });
    let lags = std::mem::take(&mut *sink.lags.lock().unwrap_or_else(PoisonError::into_inner));
    let failures = *sink.failures.lock().unwrap_or_else(PoisonError::into_inner);
    report(targets, schedule, seconds, began, &lags, cpu, failures);
}

fn report(
    targets: usize,
    schedule: Schedule,
    seconds: Duration,
    began: tokio::time::Instant,
    lags: &[(tokio::time::Instant, Duration)],
    cpu: Duration,
    failures: usize,
) {
    let all: Vec<Duration> = sorted(lags.iter().map(|l| l.1));
    let steady: Vec<Duration> = sorted(
        lags.iter()
            .filter(|l| l.0 >= began + schedule.interval)
            .map(|l| l.1),
    );
    println!(
        "## Schedule lag: {targets} connect targets every {:?} (jitter {:?}), one core, {:?}\n",
        schedule.interval, schedule.jitter, seconds
    );
    println!("{}\n", common::machine());
    println!(
        "| probes | window | p50 lag | p99 lag | p99.9 lag | max lag | failed probes | CPU of the agent |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let cpu_share = cpu.as_secs_f64() / seconds.as_secs_f64() * 100.0;
    for (name, v) in [
        ("whole run, start included", &all),
        ("after the first interval", &steady),
    ] {
        println!(
            "| {} | {name} | {} ms | {} ms | {} ms | {} ms | {failures} | {cpu_share:.1} % of a core |",
            v.len(),
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.99)),
            ms(quantile(v, 0.999)),
            ms(v.last().copied().unwrap_or_default()),
        );
    }
    println!();
}

fn sorted(it: impl Iterator<Item = Duration>) -> Vec<Duration> {
    let mut v: Vec<Duration> = it.collect();
    v.sort();
    v
}
