//! Scenarios of discovery on the real control plane: kube-apiserver stopped and started again,
//! then etcd compacted under it (410 Gone), and an endpoint flapping Ready.

use std::time::{Duration, Instant};

use crate::expo::Expo;
use crate::harness::{Lab, NODES, eventually};
use crate::{WAIT, all_healthy, owned, probes, series, steady_series};

/// `hopwatch_kube_watch_restarts_total` of one resource on one node.
fn restarts(e: &Expo, resource: &str) -> f64 {
    e.sum(
        "hopwatch_kube_watch_restarts_total",
        &[("resource", resource)],
    )
}

/// The resources every agent watches.
const WATCHED: [&str; 4] = ["services", "endpointslices", "nodes", "ingresses"];

#[test]
fn api_server_outage_then_410_keeps_probing_relists_and_keeps_every_series() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let before_series = steady_series(&lab);
    let before = lab.all_metrics();
    lab.fault(&["api-down"]);
    let outage = Instant::now();
    let state = lab.api_state();
    assert_eq!(
        state["running"], false,
        "kube-apiserver still runs: {state}"
    );
    // Probing goes on from the cached targets.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(10));
        for (node, b) in NODES.iter().zip(&before) {
            let e = lab.metrics(node);
            for (hop, target) in [("service", "shop/web:80"), ("pod", "shop/web:80")] {
                assert!(
                    probes(&e, hop, target, "success") > probes(b, hop, target, "success") + 5.0,
                    "{node}: {hop} probes of {target} stalled during the API outage"
                );
            }
        }
    }
    std::thread::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed()));
    lab.heal(&["api-down"]);
    assert_eq!(lab.api_state()["ready"], true);
    // Every agent's four watches restarted and are synced again (their backoff after the
    // outage can reach 30 s).
    eventually("the agents watch again", Duration::from_secs(60), || {
        for (node, b) in NODES.iter().zip(&before) {
            let e = lab.try_metrics(node)?;
            for resource in WATCHED {
                if restarts(&e, resource) <= restarts(b, resource) {
                    return Err(format!("{node}: {resource} watch not restarted"));
                }
                if e.sum("hopwatch_kube_synced", &[("resource", resource)]) != 1.0 {
                    return Err(format!("{node}: {resource} not synced"));
                }
            }
        }
        Ok(())
    });
    let mid = lab.all_metrics();
    lab.fault(&["api-gone"]);
    // A watch resuming from its old resourceVersion gets 410 and relists; one that was still
    // backing off from the outage above (kube-rs resets its backoff after 120 s without an
    // error, and a retry can wait 30 s) may relist without asking to resume, and so without a
    // 410. So: the 410s are seen on every node, and every watch is synced again.
    eventually(
        "the 410s seen and every watch synced",
        Duration::from_secs(60),
        || {
            for (node, m) in NODES.iter().zip(&mid) {
                let e = lab.try_metrics(node)?;
                let gone: Vec<&str> = WATCHED
                    .into_iter()
                    .filter(|r| restarts(&e, r) > restarts(m, r))
                    .collect();
                if gone.is_empty() {
                    return Err(format!("{node}: no watch restarted"));
                }
                for resource in WATCHED {
                    if e.sum("hopwatch_kube_synced", &[("resource", resource)]) != 1.0 {
                        return Err(format!("{node}: {resource} not synced"));
                    }
                }
            }
            Ok(())
        },
    );
    eventually("healthy after the relist", WAIT, || all_healthy(&lab));
    let after_series = series(&lab);
    for node in NODES {
        let (b, a) = (&before_series[node], &after_series[node]);
        let lost: Vec<&String> = b.difference(a).collect();
        // While kube-apiserver was down its own Service refused connections, and said so: the
        // only series the outage may add are those failure counters of default/kubernetes.
        let api_down = |s: &&String| {
            s.contains("target=\"default/kubernetes:443\"") && !s.contains("result=\"success\"")
        };
        let gained: Vec<&String> = a.difference(b).filter(|s| !api_down(s)).collect();
        assert!(
            lost.is_empty() && gained.is_empty(),
            "{node}: series lost {lost:#?}, gained {gained:#?}"
        );
    }
}

#[test]
fn endpoint_flapping_is_counted_and_leaves_no_series_behind() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let baseline = steady_series(&lab);
    let labels = [("namespace", "shop"), ("service", "web")];
    let transitions = || owned(&lab, "hopwatch_endpoint_ready_transitions_total", &labels);
    let (owner, start) = transitions().unwrap_or_else(|e| panic!("{e}"));
    // web-3's Ready condition flips every second for 20 s: each flip is a new version of the
    // slice written by the endpointslice controller, and kube-proxy re-syncs each time. 20 flips prove that every version is counted and
    // that nothing accumulates; a minute would prove the same three times slower.
    let flap = lab.fault(&[
        "flap",
        "--service",
        "shop/web",
        "--pod",
        "web-3",
        "--count",
        "20",
        "--period",
        "1",
    ]);
    let flips = flap["flips"].as_f64().expect("flips");
    assert_eq!(flips, 20.0);
    // Every agent sees every flip; the Service's owner, one agent, exports the count.
    eventually("every flip counted once, by shop/web's owner", WAIT, || {
        let (node, now) = transitions()?;
        if node != owner || now != start + flips {
            return Err(format!(
                "{node}: {now} transitions, expected {} from {owner}",
                start + flips
            ));
        }
        Ok(())
    });
    eventually("the series are back to the baseline", WAIT, || {
        let now = series(&lab);
        for node in NODES {
            if now[node] != baseline[node] {
                let extra: Vec<&String> = now[node].symmetric_difference(&baseline[node]).collect();
                return Err(format!(
                    "{node}: {} series, baseline {}: {extra:?}",
                    now[node].len(),
                    baseline[node].len()
                ));
            }
        }
        Ok(())
    });
    eventually("recovered", WAIT, || all_healthy(&lab));
}
