//! A [`Trace`] for people (one line per hop, then the verdict) and for scripts (one JSON
//! object with the same content).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Hop, Status, Trace};

/// Width of the hop-name column: the longest name, `loadbalancer`, and a space.
const NAME_WIDTH: usize = 13;

fn symbol(status: Status) -> char {
    match status {
        Status::Ok => '✓',
        Status::Broken => '✗',
        Status::Unknown => '?',
        Status::Skipped => '-',
        Status::Denied => '⊘',
    }
}

/// `2.1 ms`, or `-` when nothing was timed.
fn millis(duration: Option<Duration>) -> String {
    match duration {
        Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
        None => "-".to_string(),
    }
}

/// The hop's line, then its facts indented below it.
fn hop_text(hop: &Hop) -> String {
    let mut out = format!(
        "{} {:<NAME_WIDTH$}{:>9}  {}\n",
        symbol(hop.status),
        hop.name.as_str(),
        millis(hop.duration),
        hop.summary
    );
    for fact in &hop.facts {
        let _ = writeln!(out, "      {fact}");
    }
    out
}

/// Every hop, a blank line, then the verdict and the commands that confirm it.
pub fn text(trace: &Trace) -> String {
    let mut out = format!("trace {}\n", trace.target);
    for hop in &trace.hops {
        out += &hop_text(hop);
    }
    out.push('\n');
    out += &verdict_text(trace);
    out
}

fn verdict_text(trace: &Trace) -> String {
    let v = &trace.verdict;
    let mut out = match (&v.broken, &v.finding) {
        (Some(hop), Some(finding)) => format!(
            "verdict: broken at {} ({})\n  {}\n",
            hop.as_str(),
            finding.cause.as_str(),
            finding.detail
        ),
        (Some(hop), None) => format!("verdict: broken at {}\n", hop.as_str()),
        (None, _) if v.unchecked.is_empty() && !v.denied.is_empty() => {
            "verdict: healthy; the NetworkPolicies deny this source, as written (expected)\n".into()
        }
        (None, _) if v.unchecked.is_empty() => "verdict: healthy, every hop answered\n".into(),
        (None, _) => "verdict: no broken hop found, but not every hop could be checked\n".into(),
    };
    if !v.denied.is_empty() {
        if v.broken.is_some() || !v.unchecked.is_empty() {
            out += "denied by NetworkPolicy (expected):\n";
        }
        for (hop, finding) in &v.denied {
            let _ = writeln!(out, "  {}: {}", hop.as_str(), finding.detail);
        }
    }
    if !v.unchecked.is_empty() {
        out += "not checked:\n";
        for (hop, why) in &v.unchecked {
            let _ = writeln!(out, "  {}: {why}", hop.as_str());
        }
    }
    let confirm = confirm_commands(trace);
    if !confirm.is_empty() {
        out += "confirm with:\n";
        for command in confirm {
            let _ = writeln!(out, "  {command}");
        }
    }
    out
}

/// The blamed hop's commands, then those of unchecked and denied hops, then those a hop
/// lists whatever its status (the NetworkPolicy step's), without repeats.
fn confirm_commands(trace: &Trace) -> Vec<String> {
    let blamed = trace.verdict.finding.iter();
    let unchecked = trace
        .hops
        .iter()
        .filter(|h| matches!(h.status, Status::Unknown | Status::Denied))
        .filter_map(|h| h.finding.as_ref());
    let findings = blamed.chain(unchecked).flat_map(|f| f.confirm.iter());
    let listed = trace.hops.iter().flat_map(|h| h.confirm.iter());
    let mut out: Vec<String> = Vec::new();
    for command in findings.chain(listed) {
        if !out.contains(command) {
            out.push(command.clone());
        }
    }
    out
}

fn hop_json(hop: &Hop) -> Value {
    json!({
        "name": hop.name.as_str(),
        "ok": hop.status == Status::Ok,
        "status": hop.status.as_str(),
        "duration_seconds": hop.duration.map(|d| d.as_secs_f64()),
        "summary": hop.summary,
        "facts": hop.facts,
        "data": hop.data,
        "cause": hop.finding.as_ref().map(|f| f.cause.as_str()),
        "detail": hop.finding.as_ref().map(|f| f.detail.as_str()),
        "confirm": hop.confirm,
    })
}

/// One object: `target`, `ok`, `hops` (name, ok, status, duration_seconds, summary, facts,
/// data, cause, detail) and `verdict` (ok, broken_hop, cause, detail, confirm, unchecked).
pub fn json(trace: &Trace) -> Value {
    let v = &trace.verdict;
    let unchecked: Vec<Value> = v
        .unchecked
        .iter()
        .map(|(hop, why)| json!({"hop": hop.as_str(), "why": why}))
        .collect();
    let denied: Vec<Value> = v
        .denied
        .iter()
        .map(|(hop, f)| json!({"hop": hop.as_str(), "cause": f.cause.as_str(), "detail": f.detail}))
        .collect();
    json!({
        "target": trace.target,
        "ok": v.healthy(),
        "hops": trace.hops.iter().map(hop_json).collect::<Vec<_>>(),
        "verdict": {
            "ok": v.healthy(),
            "broken_hop": v.broken.map(|h| h.as_str()),
            "cause": v.finding.as_ref().map(|f| f.cause.as_str()),
            "detail": v.finding.as_ref().map(|f| f.detail.as_str()),
            "confirm": confirm_commands(trace),
            "unchecked": unchecked,
            "denied": denied,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::verdict::kubectl;
    use crate::trace::{Cause, Finding, HopName};

    fn ms(n: u64) -> Duration {
        Duration::from_micros(n * 100)
    }

    fn broken_trace() -> Trace {
        let selector = Finding::new(
            Cause::SelectorMismatch,
            "selector app=payments-api, pods carry app=payments (payments-1)",
            vec![
                kubectl::endpointslices("shop", "payments"),
                kubectl::pods_labels("shop"),
            ],
        );
        let hops = vec![
            Hop::new(HopName::Dns)
                .ok("payments.shop.svc.cluster.local → 10.96.0.30 (2 queries, 0 NXDOMAIN)")
                .timed(ms(21))
                .fact("1 payments.shop.svc.cluster.local.  A  udp  NOERROR  1.00 ms"),
            Hop::new(HopName::Service)
                .broken(
                    "shop/payments 80 → 8080: 10.96.0.30:80 refused",
                    Finding::new(Cause::ServiceUnreachable, "refused", Vec::new()),
                )
                .timed(ms(3)),
            Hop::new(HopName::Endpoints).broken("0 ready, 0 not ready, 0 terminating", selector),
            Hop::skipped(HopName::Pod, "no ready endpoint to connect to"),
        ];
        Trace::new("svc/shop/payments".into(), hops)
    }

    #[test]
    fn text_is_a_line_per_hop_then_the_verdict() {
        let want = "\
trace svc/shop/payments
✓ dns             2.1 ms  payments.shop.svc.cluster.local → 10.96.0.30 (2 queries, 0 NXDOMAIN)
      1 payments.shop.svc.cluster.local.  A  udp  NOERROR  1.00 ms
✗ service         0.3 ms  shop/payments 80 → 8080: 10.96.0.30:80 refused
✗ endpoints            -  0 ready, 0 not ready, 0 terminating
- pod                  -  no ready endpoint to connect to

verdict: broken at endpoints (selector_mismatch)
  selector app=payments-api, pods carry app=payments (payments-1)
confirm with:
  kubectl -n shop get endpointslices -l kubernetes.io/service-name=payments
  kubectl -n shop get pods --show-labels
";
        assert_eq!(text(&broken_trace()), want);
    }

    #[test]
    fn json_carries_the_same_content() {
        let value = json(&broken_trace());
        assert_eq!(value["ok"], false);
        assert_eq!(value["hops"][0]["name"], "dns");
        assert_eq!(value["hops"][0]["ok"], true);
        assert_eq!(value["hops"][0]["duration_seconds"], 0.0021);
        assert_eq!(value["hops"][2]["cause"], "selector_mismatch");
        assert_eq!(value["hops"][3]["status"], "skipped");
        assert_eq!(value["hops"][3]["duration_seconds"], Value::Null);
        assert_eq!(value["verdict"]["broken_hop"], "endpoints");
        assert_eq!(value["verdict"]["cause"], "selector_mismatch");
        assert_eq!(
            value["verdict"]["confirm"][1],
            "kubectl -n shop get pods --show-labels"
        );
        assert_eq!(value["verdict"]["unchecked"], json!([]));
    }

    #[test]
    fn a_healthy_walk_says_so() {
        let hops = vec![Hop::new(HopName::Dns).ok("fine").timed(ms(5))];
        let trace = Trace::new("https://a.test/".into(), hops);
        assert!(text(&trace).ends_with("\nverdict: healthy, every hop answered\n"));
        assert_eq!(trace.exit_code(), 0);
        assert_eq!(json(&trace)["verdict"]["confirm"], json!([]));
    }

    #[test]
    fn a_denial_by_policy_is_expected_and_its_commands_are_listed() {
        let finding = Finding::new(
            Cause::PolicyDenied,
            "shop/web-1 → shop/db 8080/TCP: denied",
            vec![kubectl::networkpolicies("shop")],
        );
        let mut netpol =
            Hop::new(HopName::NetworkPolicy).denied("shop/web-1 → shop/db: denied", finding);
        netpol.confirm = vec![
            kubectl::networkpolicies("shop"),
            kubectl::describe_networkpolicy("shop", "allow-api-to-db"),
        ];
        let hops = vec![Hop::new(HopName::Pod).ok("1 of 1").timed(ms(2)), netpol];
        let trace = Trace::new("svc/shop/db".into(), hops);
        assert_eq!(trace.exit_code(), 0);
        let want = "\
trace svc/shop/db
✓ pod             0.2 ms  1 of 1
⊘ netpol               -  shop/web-1 → shop/db: denied

verdict: healthy; the NetworkPolicies deny this source, as written (expected)
  netpol: shop/web-1 → shop/db 8080/TCP: denied
confirm with:
  kubectl -n shop get networkpolicy
  kubectl -n shop describe networkpolicy allow-api-to-db
";
        assert_eq!(text(&trace), want);
        let value = json(&trace);
        assert_eq!(value["ok"], true);
        assert_eq!(value["hops"][1]["status"], "denied");
        assert_eq!(value["hops"][1]["cause"], "policy_denied");
        assert_eq!(value["verdict"]["denied"][0]["hop"], "netpol");
        assert_eq!(
            value["verdict"]["confirm"][1],
            "kubectl -n shop describe networkpolicy allow-api-to-db"
        );
    }
}
