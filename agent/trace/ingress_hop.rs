//! The TLS and Ingress hops: one request through the load balancer with SNI and `Host` set
//! to the URL's host, the certificate's verdict, expiry and names, then the rule the request
//! matches and the status the Ingress answers with.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::time::Instant;

use super::routes::{IngressView, Routes, covers};
use super::verdict::{Cause, Finding, kubectl};
use super::{Hop, HopName};
use crate::probe::Failure;
use crate::probe::http::{self, CaBundle, HttpReport, HttpSpec, HttpUrl, Phase, Resolver, TlsInfo};

const DAY: f64 = 86_400.0;

/// The request through the load balancer. When the certificate fails verification, it is
/// sent once more without verifying, to learn what the Ingress answers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub verified: HttpReport,
    pub unverified: Option<HttpReport>,
}

impl Exchange {
    /// The report that got furthest: the unverified retry when there was one.
    pub fn answer(&self) -> &HttpReport {
        self.unverified.as_ref().unwrap_or(&self.verified)
    }
}

/// Requests `url` from `address`, verifying against `ca` unless `insecure`.
pub async fn request(
    url: &HttpUrl,
    address: SocketAddr,
    ca: &CaBundle,
    insecure: bool,
    timeout: Duration,
) -> Exchange {
    let spec = HttpSpec {
        connect_to: Some(address),
        insecure,
        ca: ca.clone(),
        resolver: Resolver::Static(Vec::new()),
        ..HttpSpec::new(url.clone())
    };
    let verified = http::request(&spec, Instant::now() + timeout).await;
    let rejected = verified.failed_phase == Some(Phase::Tls)
        && verified
            .tls
            .as_ref()
            .is_some_and(|t| t.verify_error.is_some());
    let unverified = if rejected {
        let retry = HttpSpec {
            insecure: true,
            ..spec
        };
        Some(http::request(&retry, Instant::now() + timeout).await)
    } else {
        None
    };
    Exchange {
        verified,
        unverified,
    }
}

/// Unix seconds now, for the days left on a certificate.
pub fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| d.as_secs() as i64)
}

/// `expires 2026-09-01 12:00:00 UTC (62.0 days left)` or `expired … (3.0 days ago)`.
fn expiry(not_after: i64, now: i64) -> String {
    let days = (not_after - now) as f64 / DAY;
    let date = http::format_utc(not_after);
    if days >= 0.0 {
        format!("expires {date} ({days:.1} days left)")
    } else {
        format!("expired {date} ({:.1} days ago)", -days)
    }
}

/// The TLS hop of an https URL, from the verified request; `now` in Unix seconds.
pub fn tls_hop(url: &HttpUrl, exchange: &Exchange, claimed: Option<&IngressView>, now: i64) -> Hop {
    let report = &exchange.verified;
    let mut hop = Hop::new(HopName::Tls);
    if let Some(d) = report.phase(Phase::Tls) {
        hop = hop.timed(d);
    }
    let Some(tls) = &report.tls else {
        return match report.failed_phase {
            Some(Phase::Tls) => {
                let failure = report.result.err().unwrap_or(Failure::TlsHandshake);
                let detail = format!(
                    "the TLS handshake with {} failed before any certificate arrived: {failure}",
                    address(report)
                );
                hop.broken(
                    format!("handshake failed: {failure}"),
                    Finding::new(Cause::TlsHandshake, detail, confirm_tls(claimed, &url.host)),
                )
            }
            _ => Hop::skipped(HopName::Tls, "no connection to hand-shake on"),
        };
    };
    hop = describe_certificate(hop, url, tls, claimed, now);
    let summary = tls_summary(url, tls, now);
    match (tls.verify_error, report.failed_phase) {
        (Some(reason), Some(Phase::Tls)) => {
            let finding = certificate_finding(url, tls, reason, claimed, now);
            hop.broken(summary, finding)
        }
        (Some(reason), _) => hop
            .fact(format!("not verified ({reason}), ignored: --insecure"))
            .ok(summary),
        (None, _) => hop.ok(summary),
    }
}

fn address(report: &HttpReport) -> String {
    report
        .address
        .map_or_else(|| "the load balancer".to_string(), |a| a.to_string())
}

/// `TLSv1.3, verified, expires … (62.0 days left), covers shop.example.com`.
fn tls_summary(url: &HttpUrl, tls: &TlsInfo, now: i64) -> String {
    let verdict = match tls.verify_error {
        None => "certificate verified".to_string(),
        Some(reason) => format!("certificate NOT verified: {reason}"),
    };
    let covered = if tls.sans.iter().any(|n| covers(n, &url.host)) {
        format!("covers {}", url.host)
    } else {
        format!("does not cover {}", url.host)
    };
    let protocol = tls.protocol.as_deref().unwrap_or("handshake not completed");
    format!(
        "{protocol}, {verdict}, {}, {covered}",
        expiry(tls.not_after_earliest, now)
    )
}

fn describe_certificate(
    hop: Hop,
    url: &HttpUrl,
    tls: &TlsInfo,
    claimed: Option<&IngressView>,
    now: i64,
) -> Hop {
    let mut hop = hop
        .fact(format!("names {}", tls.sans.join(", ")))
        .with("verified", json!(tls.verified))
        .with("verify_error", json!(tls.verify_error.map(Failure::as_str)))
        .with("not_after", json!(tls.not_after_earliest))
        .with(
            "days_left",
            json!((tls.not_after_earliest - now) as f64 / DAY),
        )
        .with("sans", json!(tls.sans))
        .with(
            "covers_host",
            json!(tls.sans.iter().any(|n| covers(n, &url.host))),
        );
    if let Some(ing) = claimed {
        hop = hop.fact(match ing.tls_secret(&url.host) {
            Some(Some(secret)) => {
                format!("Ingress {} names Secret {secret} for {}", ing.key, url.host)
            }
            Some(None) => format!(
                "Ingress {} has a tls entry without a Secret: the controller's default certificate",
                ing.key
            ),
            None => format!(
                "Ingress {} has no tls entry for {}: the controller's default certificate",
                ing.key, url.host
            ),
        });
    }
    hop
}

fn certificate_finding(
    url: &HttpUrl,
    tls: &TlsInfo,
    reason: Failure,
    claimed: Option<&IngressView>,
    now: i64,
) -> Finding {
    let host = &url.host;
    let (cause, detail) = match reason {
        Failure::TlsExpired => (
            Cause::TlsExpired,
            format!(
                "the certificate for {host} {}",
                expiry(tls.not_after_earliest, now)
            ),
        ),
        Failure::TlsNotYetValid => (
            Cause::TlsNotYetValid,
            format!(
                "the certificate for {host} is valid only from {}",
                http::format_utc(tls.not_before)
            ),
        ),
        Failure::TlsHostnameMismatch => (Cause::TlsHostnameMismatch, mismatch(host, tls, claimed)),
        Failure::TlsUnknownCa => (
            Cause::TlsUnknownCa,
            format!(
                "the certificate chain for {host} does not lead to a trusted CA (the built-in roots, or --ca-file)"
            ),
        ),
        other => (
            Cause::TlsHandshake,
            format!("the TLS handshake for {host} failed: {other}"),
        ),
    };
    Finding::new(cause, detail, confirm_tls(claimed, host))
}

fn mismatch(host: &str, tls: &TlsInfo, claimed: Option<&IngressView>) -> String {
    let mut detail = format!("the certificate names {}, not {host}", tls.sans.join(", "));
    if let Some(ing) = claimed
        && ing.tls_secret(host).is_none()
    {
        detail += &format!(
            "; Ingress {} has no tls entry for {host}, so the controller serves its default certificate",
            ing.key
        );
    }
    detail
}

fn confirm_tls(claimed: Option<&IngressView>, host: &str) -> Vec<String> {
    let Some(ing) = claimed else {
        return vec![kubectl::ingresses()];
    };
    let (ns, name) = (&ing.key.namespace, &ing.key.name);
    let mut out = vec![kubectl::ingress_tls(ns, name)];
    if let Some(Some(secret)) = ing.tls_secret(host) {
        out.push(kubectl::secret_cert(ns, secret));
    }
    out
}

/// The Ingress hop: the rule under both semantics, then the answer. `exchange` is `None`
/// when no request could be sent, with `why`.
pub fn ingress_hop(url: &HttpUrl, routes: &Routes, exchange: Option<&Exchange>, why: &str) -> Hop {
    let answer = exchange.map(Exchange::answer);
    let mut hop = Hop::new(HopName::Ingress)
        .with("routing", routes.to_json())
        .with("status", json!(answer.and_then(|r| r.status)));
    if let Some(d) = answer.and_then(|r| r.phase(Phase::Ttfb)) {
        hop = hop.timed(d);
    }
    let status = status_text(answer, why);
    if let Some(err) = &routes.error {
        return hop.unknown(format!("{}; {status}", err.text()), err.finding());
    }
    hop = routing_facts(hop, routes);
    let routing = routes.routing(routes.semantics);
    if routing.candidates.is_empty() {
        let detail = format!("no Ingress has a rule for {} ({status})", url.host);
        let finding = Finding::new(Cause::NoIngress, detail, vec![kubectl::ingresses()]);
        return hop.broken(format!("no rule for {}; {status}", url.host), finding);
    }
    let Some(rule) = routes.chosen() else {
        return hop.broken(
            format!("no rule matches {}; {status}", url.path),
            no_rule(url, routes, &status),
        );
    };
    let summary = format!("{}, {status}", routes.describe(routes.semantics));
    let confirm = vec![kubectl::describe_ingress(
        &rule.ingress.namespace,
        &rule.ingress.name,
    )];
    if rule.backend.is_none() {
        let detail = format!(
            "the rule {} does not send to a Service port",
            rule.describe()
        );
        return hop.broken(
            summary,
            Finding::new(Cause::NoServiceBackend, detail, confirm),
        );
    }
    match answer {
        None => hop.skip(summary),
        Some(report) => judge_answer(hop, summary, report, routes, confirm),
    }
}

fn status_text(answer: Option<&HttpReport>, why: &str) -> String {
    match answer {
        None => format!("no request: {why}"),
        Some(r) => match (r.status, r.result) {
            (Some(code), _) => format!("HTTP {code}"),
            (None, Err(failure)) => format!("no response ({failure})"),
            (None, Ok(())) => "no response".to_string(),
        },
    }
}

fn routing_facts(mut hop: Hop, routes: &Routes) -> Hop {
    for semantics in super::ingress_match::Semantics::ALL {
        let label = format!("{}:", semantics.as_str());
        hop = hop.fact(format!("{label:<15}{}", routes.describe(semantics)));
    }
    if routes.differ() {
        hop = hop.fact(format!(
            "ingress-nginx and Gateway API route this request differently; following {}",
            routes.semantics.as_str()
        ));
    }
    for &i in &routes.routing(routes.semantics).unevaluated {
        hop = hop.fact(format!(
            "not evaluated (regex path): {}",
            routes.rules[i].describe()
        ));
    }
    hop
}

fn no_rule(url: &HttpUrl, routes: &Routes, status: &str) -> Finding {
    let candidates = routes.candidates();
    let detail = format!(
        "no rule matches {} under {} routing (the controller answered: {status}); rules for the host: {}",
        url.path,
        routes.semantics.as_str(),
        candidates.join("; ")
    );
    let routing = routes.routing(routes.semantics);
    let mut confirm: Vec<String> = Vec::new();
    for &i in &routing.candidates {
        let key = &routes.rules[i].ingress;
        let command = kubectl::describe_ingress(&key.namespace, &key.name);
        if !confirm.contains(&command) {
            confirm.push(command);
        }
    }
    Finding::new(Cause::NoRuleMatch, detail, confirm)
}

fn judge_answer(
    hop: Hop,
    summary: String,
    report: &HttpReport,
    routes: &Routes,
    confirm: Vec<String>,
) -> Hop {
    let backend = routes
        .backend()
        .map_or_else(String::new, |(svc, _)| svc.to_string());
    match (report.status, report.failed_phase) {
        (Some(200..=399), _) => hop.ok(summary),
        (Some(code @ 502..=504), _) => {
            let detail =
                format!("the Ingress answered {code}: its upstream, Service {backend}, failed");
            hop.broken(summary, Finding::new(Cause::UpstreamError, detail, confirm))
        }
        (Some(404), _) => {
            let detail = format!(
                "the Ingress answered 404 although {} matches: the controller does not serve this Ingress (check ingressClassName) or routes it otherwise",
                routes.describe(routes.semantics)
            );
            hop.broken(summary, Finding::new(Cause::HttpStatus, detail, confirm))
        }
        (Some(code), _) => {
            let detail = format!("the Ingress answered {code}");
            hop.broken(summary, Finding::new(Cause::HttpStatus, detail, confirm))
        }
        (None, Some(Phase::Ttfb)) => {
            let failure = report.result.err().unwrap_or(Failure::HttpError);
            let detail =
                format!("no HTTP response from the Ingress after the handshake: {failure}");
            hop.broken(summary, Finding::new(Cause::HttpFailed, detail, confirm))
        }
        (None, _) => hop.skip(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::http::HttpReport;
    use crate::trace::Status;
    use crate::trace::ingress_match::Semantics;
    use k8s_openapi::api::networking::v1::Ingress;

    const NOW: i64 = 1_704_067_200;

    fn routes(path: &str) -> Routes {
        let ing: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "shop", "name": "front"},
            "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/api", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}]}
        }))
        .unwrap();
        Routes::new(
            Ok(vec![ing]),
            "shop.example.com",
            path,
            Semantics::IngressNginx,
        )
    }

    fn url(path: &str) -> HttpUrl {
        HttpUrl::parse(&format!("https://shop.example.com{path}")).unwrap()
    }

    fn answered(code: u16) -> Exchange {
        let mut report = HttpReport::for_tests("https://shop.example.com/api");
        report.status = Some(code);
        report.phases = vec![(Phase::Ttfb, Duration::from_millis(2))];
        if !(200..400).contains(&code) {
            report.result = Err(Failure::HttpStatus);
            report.failed_phase = Some(Phase::Ttfb);
        }
        Exchange {
            verified: report,
            unverified: None,
        }
    }

    #[test]
    fn the_ingress_hop_judges_rule_and_status() {
        let ok = ingress_hop(&url("/api/x"), &routes("/api/x"), Some(&answered(200)), "");
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(
            ok.summary,
            "shop/front shop.example.com /api (Prefix) → web:80, HTTP 200"
        );
        let upstream = ingress_hop(&url("/api"), &routes("/api"), Some(&answered(503)), "");
        assert_eq!(upstream.cause(), Some(Cause::UpstreamError));
        let none = ingress_hop(&url("/apiv2"), &routes("/apiv2"), Some(&answered(404)), "");
        assert_eq!(none.cause(), Some(Cause::NoRuleMatch));
        assert_eq!(none.summary, "no rule matches /apiv2; HTTP 404");
        let unsent = ingress_hop(
            &url("/api"),
            &routes("/api"),
            None,
            "the load balancer refused",
        );
        assert_eq!(unsent.status, Status::Skipped);
        let other = HttpUrl::parse("https://other.example.com/").unwrap();
        let routes = Routes::new(
            Ok(Vec::new()),
            "other.example.com",
            "/",
            Semantics::GatewayApi,
        );
        let nobody = ingress_hop(&other, &routes, Some(&answered(404)), "");
        assert_eq!(nobody.cause(), Some(Cause::NoIngress));
    }

    #[test]
    fn a_certificate_for_another_name_points_at_the_missing_tls_entry() {
        let mut report = HttpReport::for_tests("https://shop.example.com/api");
        report.result = Err(Failure::TlsHostnameMismatch);
        report.failed_phase = Some(Phase::Tls);
        report.tls = Some(TlsInfo {
            not_after_earliest: NOW + 30 * 86_400,
            not_before: NOW - 86_400,
            verified: false,
            verify_error: Some(Failure::TlsHostnameMismatch),
            sans: vec!["ingress.local".into()],
            protocol: None,
        });
        let exchange = Exchange {
            verified: report,
            unverified: None,
        };
        let routes = routes("/api");
        let claimed = routes.claiming("shop.example.com");
        let hop = tls_hop(&url("/api"), &exchange, claimed, NOW);
        assert_eq!(hop.status, Status::Broken);
        let finding = hop.finding.unwrap();
        assert_eq!(finding.cause, Cause::TlsHostnameMismatch);
        assert_eq!(
            finding.detail,
            "the certificate names ingress.local, not shop.example.com; Ingress shop/front has no tls entry for shop.example.com, so the controller serves its default certificate"
        );
        assert_eq!(
            hop.summary,
            "handshake not completed, certificate NOT verified: tls_hostname_mismatch, expires 2024-01-31 00:00:00 UTC (30.0 days left), does not cover shop.example.com"
        );
    }

    #[test]
    fn expiry_counts_days_both_ways() {
        let now = 1_704_067_200;
        assert_eq!(
            expiry(now + 5 * 86_400, now),
            "expires 2024-01-06 00:00:00 UTC (5.0 days left)"
        );
        assert_eq!(
            expiry(now - 86_400 * 3 / 2, now),
            "expired 2023-12-30 12:00:00 UTC (1.5 days ago)"
        );
    }
}
