//! Reading the agent's series about Services and their targets out of a scrape.

use std::collections::BTreeSet;

use crate::support::prom::Exposition;

/// The `broken_hop` of every `hopwatch_path_status` series of a Service, with its value.
pub fn path_status(e: &Exposition, namespace: &str, service: &str) -> Vec<(String, f64)> {
    let labels = [("namespace", namespace), ("service", service)];
    e.series("hopwatch_path_status", &labels)
        .iter()
        .map(|s| (s.label("broken_hop").unwrap_or("?").to_string(), s.value))
        .collect()
}

/// Whether the Service's verdict is exactly one series, `broken_hop=hop`, at 1.
pub fn verdict_is(e: &Exposition, namespace: &str, service: &str, hop: &str) -> bool {
    path_status(e, namespace, service) == [(hop.to_string(), 1.0)]
}

/// Probe attempts of `hop` on `target` with `result` (any result when `None`).
pub fn probes(e: &Exposition, hop: &str, target: &str, result: Option<&str>) -> f64 {
    let mut labels = vec![("hop", hop), ("target", target)];
    labels.extend(result.map(|r| ("result", r)));
    e.sum("hopwatch_probes_total", &labels)
}

/// A gauge or counter of one Service, `None` when the series does not exist.
pub fn of_service(
    e: &Exposition,
    name: &str,
    namespace: &str,
    service: &str,
    more: &[(&str, &str)],
) -> Option<f64> {
    let mut labels = vec![("namespace", namespace), ("service", service)];
    labels.extend_from_slice(more);
    match e.series(name, &labels).as_slice() {
        [] => None,
        [one] => Some(one.value),
        many => panic!("{} series {name} match {labels:?}: {many:#?}", many.len()),
    }
}

/// Every sample line of an exposition that names the Service: its own series
/// (`service="NAME"`; service names are unique within a test) and those of its targets
/// (`namespace/service:port`, and `namespace/service` for a headless Service's lookup).
pub fn lines_naming(text: &str, namespace: &str, service: &str) -> Vec<String> {
    let own = format!("service=\"{service}\"");
    let port = format!("target=\"{namespace}/{service}:");
    let lookup = format!("target=\"{namespace}/{service}\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains(&own) || l.contains(&port) || l.contains(&lookup))
        .map(str::to_string)
        .collect()
}

/// The series (name and labels, not values) of the families `names`, for comparing two
/// scrapes.
pub fn series_set(e: &Exposition, names: &[&str]) -> BTreeSet<String> {
    e.samples
        .iter()
        .filter(|s| names.contains(&s.name.as_str()))
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect()
}
