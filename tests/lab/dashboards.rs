//! Every panel query of `dashboards/*.json` returns data from the lab's Prometheus. The
//! queries are read with the asset checks' own extraction (`tests/assets/promql.py`, Grafana's
//! variables replaced: label variables by `.*`, `$__rate_interval` by 5m) and run as instant
//! queries. The check runs at the end of the alerts scenario ([`crate::alerts`]), when the lab
//! has minutes of healthy history and several faults active at once, so that the panels of
//! broken paths have data too; no extra lab is built for it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::Lab;

/// Panel queries (`dashboard file`, `panel title`) allowed to be empty in the lab, and why.
pub const ALLOWED_EMPTY: [(&str, &str, &str); 3] = [
    (
        "hopwatch-agent.json",
        "Agents not synced",
        "lists the agents whose Kubernetes lists are not synced (`== 0`): empty while the API \
         server answers, which it does throughout this scenario",
    ),
    (
        "hopwatch-endpoints.json",
        "NetworkPolicies not enforced, by node",
        "lists the unenforced policies (`== 1`): this scenario creates no NetworkPolicy; \
         netpol:: shows the series",
    ),
    (
        "hopwatch-endpoints.json",
        "Targets the policies deny to the agents",
        "exists only for targets NetworkPolicies deny to the agents: this scenario creates none; \
         netpol:: shows the series",
    ),
];

/// Prints `[{"file", "panel", "expr"}]`: every target of every panel (rows included), with
/// Grafana's variables replaced by `promql.grafana_to_promql`.
const EXTRACT: &str = r#"
import glob, json, os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "assets"))
import promql
out = []
def walk(panels, f):
    for p in panels:
        walk(p.get("panels", []), f)
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append({"file": os.path.basename(f), "panel": p.get("title", ""),
                            "expr": promql.grafana_to_promql(t["expr"])})
for f in sorted(glob.glob(os.path.join(sys.argv[1], "dashboards", "*.json"))):
    with open(f, encoding="utf-8") as fh:
        walk(json.load(fh).get("panels", []), f)
print(json.dumps(out))
"#;

/// Every panel query of the repository's dashboards.
fn queries() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args(["-c", EXTRACT])
        .arg(root)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "extracting the dashboards' queries failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the extraction prints JSON");
    doc.as_array().cloned().unwrap_or_default()
}

/// Fails listing every panel query that returns nothing (or an error) and is not allowed to.
pub fn every_panel_has_data(lab: &Lab) {
    let all = queries();
    assert!(all.len() > 20, "only {} dashboard queries found", all.len());
    let mut empty = Vec::new();
    for q in &all {
        let (file, panel) = (q["file"].as_str(), q["panel"].as_str());
        if ALLOWED_EMPTY
            .iter()
            .any(|(f, p, _)| Some(*f) == file && Some(*p) == panel)
        {
            continue;
        }
        let expr = q["expr"].as_str().unwrap_or_default();
        match lab.prom_query(expr) {
            Ok(result) if !result.is_empty() => {}
            Ok(_) => empty.push(format!("{} / {}: empty: {expr}", q["file"], q["panel"])),
            Err(e) => empty.push(format!("{} / {}: {e}", q["file"], q["panel"])),
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} dashboard queries have no data in the lab:\n{}",
        empty.len(),
        all.len(),
        empty.join("\n")
    );
}
