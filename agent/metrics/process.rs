//! The agent's own footprint, read from `/proc/self` at each scrape: the standard `process_*`
//! series every Prometheus client exports, for the agent-health dashboard and for checking
//! the requests and limits of the DaemonSet. Next to them, the tasks alive in the agent's
//! async runtime: a leak of tasks (a watch or a probe that never ends) shows there first.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Kernel clock ticks per second as `/proc/self/stat` counts CPU time: 100 on every Linux
/// architecture hopwatch targets (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads `/proc/self` when collected.
pub struct ProcessCollector {
    cpu: Counter,
    rss: Gauge,
    vsize: Gauge,
    fds: Gauge,
    threads: Gauge,
    tasks: Gauge,
    start: Gauge,
    /// CPU seconds already added to `cpu`.
    counted: Mutex<f64>,
    descs: Vec<Desc>,
}

fn metric<T: Collector>(metric: T, descs: &mut Vec<Desc>) -> T {
    descs.extend(metric.desc().into_iter().cloned());
    metric
}

impl ProcessCollector {
    /// `start` is the process start time in Unix seconds.
    pub fn new(start: f64) -> prometheus::Result<ProcessCollector> {
        let mut d = Vec::new();
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        let c = ProcessCollector {
            cpu: metric(
                Counter::with_opts(Opts::new(
                    "process_cpu_seconds_total",
                    "User and system CPU time spent, in seconds.",
                ))?,
                &mut d,
            ),
            rss: metric(
                gauge(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                )?,
                &mut d,
            ),
            vsize: metric(
                gauge(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                )?,
                &mut d,
            ),
            fds: metric(gauge("process_open_fds", "Open file descriptors.")?, &mut d),
            threads: metric(
                gauge("process_threads", "OS threads of the process.")?,
                &mut d,
            ),
            tasks: metric(
                gauge(
                    "hopwatch_runtime_alive_tasks",
                    "Tasks alive in the agent's async runtime.",
                )?,
                &mut d,
            ),
            start: metric(
                gauge(
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch, in seconds.",
                )?,
                &mut d,
            ),
            counted: Mutex::new(0.0),
            descs: d,
        };
        c.start.set(start);
        Ok(c)
    }

    fn refresh(&self) {
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(Stat::parse)
        {
            let seconds = stat.cpu_ticks as f64 / TICKS_PER_SECOND;
            let mut counted = self
                .counted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seconds > *counted {
                self.cpu.inc_by(seconds - *counted);
                *counted = seconds;
            }
            self.vsize.set(stat.vsize as f64);
            self.threads.set(stat.threads as f64);
        }
        if let Some(rss) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .as_deref()
            .and_then(rss_bytes)
        {
            self.rss.set(rss as f64);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(entries.count() as f64);
        }
        // Collected on the runtime when served; from elsewhere (a test) there is none to count.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.set(runtime.metrics().num_alive_tasks() as f64);
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        [
            self.cpu.collect(),
            self.rss.collect(),
            self.vsize.collect(),
            self.fds.collect(),
            self.threads.collect(),
            self.tasks.collect(),
            self.start.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The fields of `/proc/self/stat` that matter here.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    cpu_ticks: u64,
    threads: u64,
    vsize: u64,
}

impl Stat {
    /// Fields are counted after the command name, which is in parentheses and may hold spaces.
    fn parse(text: &str) -> Option<Stat> {
        let after = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After the name: state is field 3 of the man page, so field N is at index N - 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            cpu_ticks: field(14)? + field(15)?,
            threads: field(20)?,
            vsize: field(23)?,
        })
    }
}

/// `VmRSS` from `/proc/self/status`, which is in kB whatever the page size.
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_with_a_name_holding_spaces_and_parentheses() {
        let line = "4242 (hop (watch) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 100 12345678 900 18446744073709551615";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                cpu_ticks: 300,
                threads: 3,
                vsize: 12_345_678
            })
        );
    }

    #[test]
    fn reads_rss_in_kilobytes() {
        assert_eq!(
            rss_bytes("Name:\thopwatch\nVmRSS:\t    8640 kB\n"),
            Some(8640 * 1024)
        );
    }

    #[test]
    fn collects_the_running_process() {
        let c = ProcessCollector::new(1.0).unwrap();
        let families = c.collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert!(
            names.contains(&"process_resident_memory_bytes"),
            "{names:?}"
        );
        let rss = families
            .iter()
            .find(|f| f.name() == "process_resident_memory_bytes")
            .unwrap();
        assert!(rss.get_metric()[0].get_gauge().get_value() > 1e6);
    }
}
