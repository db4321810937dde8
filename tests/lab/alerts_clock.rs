//! Every alert of `alerts/hopwatch.rules.yaml` fires in the lab's real Prometheus for the fault
//! it exists for, with labels naming the right Service, node, target or resource.
//!
//! The lab's Prometheus loads the shipped rules on a clock 30 times faster (`lab up
//! --time-scale 30`, tests/lab/hwlab/timescale.py): every range window, `for:` and group
//! `interval:` is divided by 30, and nothing else changes. `for: 1h` becomes 2 minutes, a
//! 5-minute burn-rate window 10 s (ten 1 s scrapes), the 14-day certificate threshold stays 14
//! days. The alerts' timings as written are checked by [`crate::alerts`] and promtool; this
//! test checks that each expression, fed by the agents' real metrics, catches its fault.
//!
//! First a quiet phase: the healthy lab, with NetworkPolicies kube-router enforces (the seed's
//! deny-all in `shop` and a policy denying the agents alone) and an Ingress without
//! load-balancer status, raises no alert at all. Then
//! five phases, each a set of faults that do not hide one another, then healed or kept:
//! 1. the data path: no endpoints, a node's kube-proxy, an expired and an expiring
//!    certificate, a dead pod behind a Ready endpoint, a node's extra search domains;
//! 2. around it: a stale public DNS record, DNS packet loss, DNS blocked from a node's pods, a
//!    bad config edit, a ClusterRole without ingresses, NetworkPolicies nothing enforces
//!    (kube-router stopped);
//! 3. a throttled agent, alone: stopped most of the time, its probes time out at any hop;
//! 4. a Service whose pods refuse on a wrong targetPort, from every node;
//! 5. the agents themselves: one killed, one pod gone, then every pod gone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Lab, NODES, eventually};
use crate::{WAIT, all_healthy};

/// How much faster the lab's rule clock runs.
const SCALE: &str = "30";

const SHOP_INGRESS: &str = "shop/front/shop.example.com/";
const API_INGRESS: &str = "shop/front/api.example.com/";

/// An alert that must be firing, with some of its labels.
type Expected = (&'static str, &'static [(&'static str, &'static str)]);

const DATA_PATH: [Expected; 14] = [
    (
        "HopwatchServiceNoReadyEndpoints",
        &[
            ("namespace", "shop"),
            ("service", "cart"),
            ("reason", "no_endpoints"),
        ],
    ),
    ("HopwatchClusterIPFailingOnNode", &[("node", "node-2")]),
    (
        "HopwatchTLSVerificationFailing",
        &[
            ("hop", "ingress"),
            ("target", SHOP_INGRESS),
            ("result", "tls_expired"),
        ],
    ),
    (
        "HopwatchCertificateExpiryImminent",
        &[("target", SHOP_INGRESS), ("severity", "critical")],
    ),
    (
        "HopwatchCertificateExpiringSoon",
        &[("target", API_INGRESS), ("severity", "warning")],
    ),
    (
        "HopwatchServiceEndpointsUnreachable",
        &[("namespace", "shop"), ("service", "db")],
    ),
    (
        "HopwatchDNSNXDomainRatioHigh",
        &[("target", "shop.example.com"), ("server", "resolv.conf")],
    ),
    (
        "HopwatchDNSAmplificationHigh",
        &[("target", "shop.example.com"), ("server", "resolv.conf")],
    ),
    (
        "HopwatchServiceErrorBudgetBurn",
        &[("severity", "critical")],
    ),
    ("HopwatchServiceErrorBudgetBurn", &[("severity", "warning")]),
    (
        "HopwatchIngressErrorBudgetBurn",
        &[("severity", "critical")],
    ),
    ("HopwatchIngressErrorBudgetBurn", &[("severity", "warning")]),
    ("HopwatchPodErrorBudgetBurn", &[("severity", "critical")]),
    ("HopwatchPodErrorBudgetBurn", &[("severity", "warning")]),
];

const AROUND: [Expected; 7] = [
    (
        "HopwatchLoadBalancerErrorBudgetBurn",
        &[("hop", "loadbalancer"), ("severity", "critical")],
    ),
    (
        "HopwatchDNSResolverTimeouts",
        &[("node", "node-2"), ("server", "static")],
    ),
    (
        "HopwatchDNSErrorBudgetBurn",
        &[("hop", "dns"), ("severity", "critical")],
    ),
    ("HopwatchDNSFailingOnNode", &[("node", "node-1")]),
    ("HopwatchConfigReloadFailing", &[]),
    ("HopwatchKubeNotSynced", &[("resource", "ingresses")]),
    (
        "HopwatchNetworkPolicyNotEnforced",
        &[("namespace", "shop"), ("policy", "default-deny-ingress")],
    ),
];

/// A throttled agent, alone: its own probes time out at any hop while it is stopped, so next to
/// a fault on the same node it would blur that fault's verdicts.
const THROTTLED: [Expected; 1] = [("HopwatchScheduleLagHigh", &[("node", "node-1")])];

const SERVICE: [Expected; 1] = [(
    "HopwatchServiceFailingEverywhere",
    &[("namespace", "shop"), ("service", "cart")],
)];

const AGENTS: [Expected; 2] = [
    (
        "HopwatchAgentDown",
        &[("node", "node-2"), ("pod", "hopwatch-node-2")],
    ),
    ("HopwatchAgentMissingOnNode", &[("node", "node-1")]),
];

const NONE_LEFT: [Expected; 1] = [("HopwatchAgentsAbsent", &[("severity", "critical")])];

fn firing(alert: &Value, (name, labels): &Expected) -> bool {
    let l = &alert["labels"];
    alert["state"] == "firing" && l["alertname"] == *name && labels.iter().all(|(k, v)| l[*k] == *v)
}

/// The firing alerts once every one of `expected` fires; otherwise what is missing.
fn all_firing(lab: &Lab, expected: &[Expected]) -> Result<Vec<Value>, String> {
    let alerts = lab.prom_alerts()?;
    let missing: Vec<String> = expected
        .iter()
        .filter(|e| !alerts.iter().any(|a| firing(a, e)))
        .map(|(name, labels)| format!("{name} {labels:?}"))
        .collect();
    if missing.is_empty() {
        Ok(alerts)
    } else {
        let have: Vec<String> = alerts
            .iter()
            .map(|a| format!("{} {}", a["state"], a["labels"]))
            .collect();
        Err(format!("missing {missing:#?}; present: {have:#?}"))
    }
}

/// Names of the firing alerts among `alerts`.
fn names(alerts: &[Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

/// Every `alert:` of the shipped rules file.
/// Shipped alerts a faster clock cannot raise, each with the reason and where it is shown.
const NOT_ON_A_FASTER_CLOCK: [(&str, &str); 1] = [(
    "HopwatchKubeWatchFailing",
    "counts watch retries, whose backoff no clock scaling speeds up: promtool's \
     alerts/tests/agent.yaml fires it, and rbac::a_revoked_cluster_role shows the retries",
)];

fn shipped_alerts() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts/hopwatch.rules.yaml");
    let text = std::fs::read_to_string(path).expect("read alerts/hopwatch.rules.yaml");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
#[ignore = "side lane: tests/run runs it beside the other tests, with --ignored"]
fn every_alert_fires_for_its_fault_on_a_thirty_times_faster_clock() {
    let started = Instant::now();
    let lab = Lab::up_with(&["--time-scale", SCALE]);
    eventually("healthy", WAIT, || all_healthy(&lab));
    // Denials the policies make on purpose are not outages, nor is a load balancer whose
    // Ingress has no status yet: they page nothing.
    lab.fault(&["netpol"]);
    lab.fault(&["netpol-agents"]);
    lab.fault(&["lb-unpublished"]);
    // 30 s here is 15 minutes of the rules' time: long enough for any `for:` but the hour ones.
    std::thread::sleep(Duration::from_secs(30));
    let quiet = lab.prom_alerts().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        quiet.is_empty(),
        "alerts in the healthy lab with enforced NetworkPolicies: {quiet:#?}\n{}",
        lab.failure_evidence()
    );
    let denied = lab
        .prom_query(r#"sum(hopwatch_probes_total{result="policy_denied"})"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !denied.is_empty(),
        "no policy_denied probe reached Prometheus: the quiet phase proved nothing"
    );
    let unknown = lab
        .prom_query(r#"sum(hopwatch_probes_total{hop="loadbalancer", result="unknown"})"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !unknown.is_empty(),
        "no unknown load-balancer probe reached Prometheus: the quiet phase proved nothing"
    );
    lab.heal(&["lb-unpublished"]);
    lab.heal(&["netpol-agents"]);
    lab.heal(&["netpol"]);
    let mut fired = BTreeSet::new();

    lab.fault(&["no-endpoints", "--service", "shop/cart"]);
    lab.fault(&["kube-proxy", "--node", "node-2", "--service", "shop/api"]);
    lab.fault(&["cert", "--host", "shop.example.com", "--kind", "expired"]);
    lab.fault(&["cert", "--host", "api.example.com", "--kind", "expiring"]);
    // A dead pod of the headless shop/db: web's would be hidden behind its expired
    // certificate (its verdict `ingress`), api's and cart's behind their own faults.
    lab.fault(&["kill-pod", "--pod", "db-2"]);
    lab.fault(&["search", "--node", "node-1"]);
    // The `for: 1h` ones (2 minutes here) are the last.
    let alerts = eventually("the data path's alerts", Duration::from_secs(240), || {
        all_firing(&lab, &DATA_PATH)
    });
    let expected: BTreeSet<String> = DATA_PATH.iter().map(|e| e.0.to_string()).collect();
    let unexpected: Vec<String> = names(&alerts).difference(&expected).cloned().collect();
    assert!(unexpected.is_empty(), "also firing: {unexpected:?}");
    fired.extend(names(&alerts));
    // The NetworkPolicy faults below check that api reaches db: db-2 serves again.
    lab.heal(&["kill-pod", "--pod", "db-2"]);

    // A stale record for api.example.com would turn api's verdicts to `loadbalancer` and
    // hide the ClusterIP alert: it comes now, with the other faults around the data path.
    lab.fault(&["lb-dns", "--host", "api.example.com"]);
    lab.fault(&["dns-loss", "--node", "node-2", "--percent", "30"]);
    lab.fault(&["dns-block", "--node", "node-1"]);
    lab.fault(&["config", "--node", "node-1"]);
    lab.fault(&["rbac", "--resource", "ingresses", "--node", "node-2"]);
    lab.fault(&["cni-off"]);
    lab.fault(&["netpol"]);
    let alerts = eventually(
        "the alerts around the data path",
        Duration::from_secs(150),
        || all_firing(&lab, &AROUND),
    );
    fired.extend(names(&alerts));
    lab.heal(&["config", "--node", "node-1"]);

    // cart's pods refuse on a wrong targetPort, seen from every node: the DNS faults and the
    // policies denying the agents go first, as each would hide the verdict on some node.
    lab.heal(&["netpol"]);
    lab.heal(&["dns-block", "--node", "node-1"]);
    lab.heal(&["dns-loss", "--node", "node-2"]);
    // The throttled agent once node-1's DNS is back: stopped 60 % of the time, its probes time
    // out at whatever hop they are in, which would blur the DNS verdicts above.
    lab.fault(&["throttle", "--node", "node-1"]);
    let alerts = eventually(
        "the throttled agent's alert",
        Duration::from_secs(150),
        || all_firing(&lab, &THROTTLED),
    );
    fired.extend(names(&alerts));
    lab.heal(&["throttle", "--node", "node-1"]);
    lab.heal(&["no-endpoints", "--service", "shop/cart"]);
    lab.fault(&["target-port", "--service", "shop/cart", "--port", "8081"]);
    let alerts = eventually(
        "a Service failing everywhere",
        Duration::from_secs(90),
        || all_firing(&lab, &SERVICE),
    );
    fired.extend(names(&alerts));

    lab.fault(&["agent-stop", "--node", "node-2"]);
    lab.fault(&["agent-gone", "--node", "node-1"]);
    let alerts = eventually("the agents' alerts", Duration::from_secs(90), || {
        all_firing(&lab, &AGENTS)
    });
    fired.extend(names(&alerts));
    lab.fault(&["agent-gone", "--node", "all"]);
    let alerts = eventually("no agent at all", Duration::from_secs(90), || {
        all_firing(&lab, &NONE_LEFT)
    });
    fired.extend(names(&alerts));

    fired.extend(
        NOT_ON_A_FASTER_CLOCK
            .iter()
            .map(|(name, _why)| name.to_string()),
    );
    let never: Vec<String> = shipped_alerts().difference(&fired).cloned().collect();
    assert!(
        never.is_empty(),
        "shipped alerts no fault raised: {never:?}"
    );
    eprintln!(
        "every alert fired ({} names) in {:?}",
        fired.len(),
        started.elapsed()
    );
}

/// A page: an alert of severity critical that Alertmanager holds active, not inhibited.
fn pages(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["severity"] == "critical" && a["status"]["state"] == "active")
        .collect()
}

fn describe(alerts: &[&Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| format!("{} {}", a["status"]["state"], a["labels"]))
        .collect()
}

/// The pages the four faults must give: one each, with the labels that place it.
const FOUR_PAGES: [Expected; 4] = [
    ("HopwatchClusterIPFailingOnNode", &[("node", "node-2")]),
    (
        "HopwatchServiceNoReadyEndpoints",
        &[("namespace", "shop"), ("service", "web")],
    ),
    ("HopwatchDNSFailingOnNode", &[("node", "node-3")]),
    (
        "HopwatchCertificateExpiryImminent",
        &[("namespace", "shop"), ("target", API_INGRESS)],
    ),
];

/// The Service the non-event test scales to zero: no Ingress routes to it.
const CART: [(&str, &str); 2] = [("namespace", "shop"), ("service", "cart")];
const CART_WARNING: Expected = (
    "HopwatchServiceNoReadyEndpoints",
    &[("service", "cart"), ("severity", "warning")],
);
const CART_PAGE: Expected = (
    "HopwatchServiceNoReadyEndpoints",
    &[("service", "cart"), ("severity", "critical")],
);

fn is_page(alert: &Value, (name, labels): &Expected) -> bool {
    let l = &alert["labels"];
    l["alertname"] == *name && labels.iter().all(|(k, v)| l[*k] == *v)
}

/// One fault, one page, in the lab's real Prometheus and Alertmanager (alerts/alertmanager.yaml)
/// on the 30 times faster clock: kube-proxy's rules gone for shop/cart on node-2, no ready pod
/// behind shop/web (which the Ingress shop.example.com routes to), DNS blocked from node-3's
/// pods and an expired certificate on api.example.com, all at once. Each raises several
/// alerts (the burn rates of every hop downstream, the resolver timeouts, the TLS failure);
/// Alertmanager leaves exactly four pages, each naming its node or its Service or host.
#[test]
fn four_faults_at_once_give_four_pages_each_with_its_place() {
    // Three nodes, as in a real cluster: a node-local fault is seen against two healthy ones.
    let lab = Lab::up_with(&["--time-scale", SCALE, "--nodes", "3"]);
    eventually("healthy", WAIT, || all_healthy(&lab));
    lab.fault(&["kube-proxy", "--node", "node-2", "--service", "shop/cart"]);
    lab.fault(&["none-ready", "--service", "shop/web"]);
    lab.fault(&["dns-block", "--node", "node-3"]);
    lab.fault(&["cert", "--host", "api.example.com", "--kind", "expired"]);
    let paged = |alerts: &[Value]| -> Result<(), String> {
        let pages = pages(alerts);
        let missing: Vec<&Expected> = FOUR_PAGES
            .iter()
            .filter(|e| !pages.iter().any(|a| is_page(a, e)))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing {missing:?}; pages {:#?}",
                describe(&pages)
            ))
        }
    };
    eventually("a page for each fault", Duration::from_secs(180), || {
        paged(&lab.am_alerts()?)
    });
    // 40 s more is 20 minutes of the rules' time: every burn rate (for: 10m) has fired.
    std::thread::sleep(Duration::from_secs(40));
    let alerts = lab.am_alerts().unwrap_or_else(|e| panic!("{e}"));
    paged(&alerts).unwrap_or_else(|e| panic!("{e}"));
    let pages = pages(&alerts);
    assert_eq!(
        pages.len(),
        4,
        "one page per fault, no more: {:#?}",
        describe(&pages)
    );
    let inhibited: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            a["status"]["inhibitedBy"]
                .as_array()
                .is_some_and(|by| !by.is_empty())
        })
        .collect();
    let tls = inhibited.iter().any(|a| {
        a["labels"]["alertname"] == "HopwatchTLSVerificationFailing"
            && a["labels"]["target"] == API_INGRESS
    });
    assert!(
        tls && inhibited.len() >= 2,
        "the symptoms were raised and inhibited, not merely absent (the expired certificate's \
         TLS failure at least): {:#?}",
        describe(&inhibited)
    );
}

/// The non-events of day one stay quiet on the 30 times faster clock, and the outage that is
/// one still pages: a single TLS handshake reset from one node (counted, not alerted on); a
/// Service scaled to zero that nothing routes to (verdict `endpoints` on every node, its
/// readiness exported by one agent, a warning after 15 minutes of rule time and never a page);
/// the same Service annotated `hopwatch.io/critical: "true"`, which pages.
#[test]
fn a_tls_reset_and_a_service_scaled_to_zero_do_not_page_unless_critical() {
    let lab = Lab::up_with(&["--time-scale", SCALE]);
    eventually("healthy", WAIT, || all_healthy(&lab));
    let failures = |lab: &Lab| {
        let e = lab.metrics("node-1");
        e.sum("hopwatch_probes_total", &[("hop", "ingress")])
            - e.sum(
                "hopwatch_probes_total",
                &[("hop", "ingress"), ("result", "success")],
            )
    };
    let before = failures(&lab);
    let reset = lab.fault(&["tls-reset", "--node", "node-1"]);
    assert!(reset["reset"].as_u64() >= Some(1), "{reset}");
    eventually("the reset counted on node-1", WAIT, || {
        let after = failures(&lab);
        (after > before).then_some(()).ok_or(format!(
            "{after} Ingress failures on node-1, {before} before"
        ))
    });
    lab.fault(&["scale-zero", "--service", "shop/cart"]);
    let mut warned = false;
    // 40 s is 20 minutes of rule time: the warning's 15 minutes, and then some.
    let until = Instant::now() + Duration::from_secs(40);
    while Instant::now() < until {
        let alerts = lab.prom_alerts().unwrap_or_else(|e| panic!("{e}"));
        let loud: Vec<String> = alerts
            .iter()
            // A page is a firing critical alert (a pending one has not paged: a scrape
            // both agents miss at once makes HopwatchAgentsAbsent pending for a moment); a
            // TLS or Ingress alert must not even be pending.
            .filter(|a| {
                (a["labels"]["severity"] == "critical" && a["state"] == "firing") || {
                    let name = a["labels"]["alertname"].as_str().unwrap_or_default();
                    name.contains("TLS") || name.contains("Ingress")
                }
            })
            .map(|a| format!("{} {}", a["state"], a["labels"]))
            .collect();
        assert!(loud.is_empty(), "a non-event pages: {loud:#?}");
        warned |= alerts.iter().any(|a| firing(a, &CART_WARNING));
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(warned, "shop/cart scaled to zero never warned");
    let all = lab.all_metrics();
    for (node, e) in NODES.iter().zip(&all) {
        let verdict = [CART[0], CART[1], ("broken_hop", "endpoints")];
        assert_eq!(
            e.get("hopwatch_path_status", &verdict),
            Some(1.0),
            "{node}: shop/cart's verdict"
        );
    }
    let owners = all
        .iter()
        .filter(|e| {
            e.get(
                "hopwatch_service_empty_endpoints",
                &[CART[0], CART[1], ("reason", "no_endpoints")],
            ) == Some(1.0)
        })
        .count();
    assert_eq!(owners, 1, "one agent exports shop/cart's readiness");

    lab.fault(&["critical", "--service", "shop/cart"]);
    eventually("shop/cart, now critical, pages", WAIT, || {
        let alerts = lab.prom_alerts()?;
        alerts
            .iter()
            .any(|a| firing(a, &CART_PAGE))
            .then_some(())
            .ok_or(format!("no page yet: {alerts:#?}"))
    });
}
