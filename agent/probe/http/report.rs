//! An [`HttpReport`] for people (`render_text`) and for scripts (`to_json`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{HttpReport, Phase, TlsInfo};
use crate::probe::result_label;

const DAY: i64 = 86_400;

impl HttpReport {
    /// Several lines for a terminal: the URL, one line per phase in milliseconds, the status,
    /// the certificate's expiry and verdict, and the result. Days left are counted from now.
    pub fn render_text(&self) -> String {
        self.render_text_at(unix_now())
    }

    /// [`render_text`](Self::render_text) with "now" given, in Unix seconds.
    pub fn render_text_at(&self, now: i64) -> String {
        let mut out = format!("{} {}\n", self.method, self.url);
        for url in &self.redirects {
            let _ = writeln!(out, "redirect → {url}");
        }
        if let Some(address) = self.address {
            let _ = writeln!(out, "address  {address}");
        }
        out.push_str(&self.dns_line());
        for (phase, duration) in self.phases.iter().filter(|(p, _)| *p != Phase::Dns) {
            out.push_str(&timed(phase.as_str(), *duration, ""));
        }
        out.push_str(&timed("total", self.total, ""));
        if let Some(code) = self.status {
            let over = self
                .protocol
                .map_or(String::new(), |p| format!(" ({})", p.as_str()));
            let _ = writeln!(out, "status   {code}{over}");
        }
        if let Some(tls) = &self.tls {
            out.push_str(&tls_lines(tls, now));
        }
        let _ = writeln!(out, "result   {}", self.result_text());
        out
    }

    fn dns_line(&self) -> String {
        match self.phase(Phase::Dns) {
            None => "dns              -    (address given, not resolved)\n".to_string(),
            Some(duration) if self.answers.is_empty() => timed("dns", duration, ""),
            Some(duration) => {
                let answers: Vec<String> = self.answers.iter().map(|ip| ip.to_string()).collect();
                timed("dns", duration, &format!("  → {}", answers.join(", ")))
            }
        }
    }

    fn result_text(&self) -> String {
        match (self.result, self.failed_phase) {
            (Err(failure), Some(phase)) => format!("{failure} (in {})", phase.as_str()),
            (result, _) => result_label(&result).to_string(),
        }
    }

    /// One JSON object: phases in seconds keyed by name (absent phases left out), the status,
    /// the certificate facts and the verdict.
    pub fn to_json(&self) -> Value {
        let phases: Map<String, Value> = self
            .phases
            .iter()
            .map(|(p, d)| (p.as_str().to_string(), json!(d.as_secs_f64())))
            .collect();
        json!({
            "url": self.url,
            "address": self.address.map(|a| a.to_string()),
            "answers": self.answers.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
            "result": result_label(&self.result),
            "failed_phase": self.failed_phase.map(Phase::as_str),
            "phases": phases,
            "total_seconds": self.total.as_secs_f64(),
            "status": self.status,
            "protocol": self.protocol.map(|p| p.as_str()),
            "redirects": self.redirects,
            "tls": self.tls.as_ref().map(tls_json),
        })
    }
}

fn timed(name: &str, duration: Duration, suffix: &str) -> String {
    format!(
        "{name:<8} {:>9.3} ms{suffix}\n",
        duration.as_secs_f64() * 1e3
    )
}

fn tls_lines(tls: &TlsInfo, now: i64) -> String {
    let verdict = match (tls.verify_error, &tls.protocol) {
        (None, _) => "certificate verified".to_string(),
        // The handshake completed despite the verdict: the target is insecure.
        (Some(reason), Some(_)) => {
            format!("certificate NOT verified: {reason} (ignored: insecure)")
        }
        (Some(reason), None) => format!("certificate NOT verified: {reason}"),
    };
    let protocol = tls.protocol.as_deref().unwrap_or("handshake not completed");
    let mut out = format!("tls      {protocol}, {verdict}\n");
    let _ = writeln!(
        out,
        "cert     expires {} ({}), valid since {}",
        format_utc(tls.not_after_earliest),
        days_left(tls.not_after_earliest, now),
        format_utc(tls.not_before)
    );
    if !tls.sans.is_empty() {
        let _ = writeln!(out, "names    {}", tls.sans.join(", "));
    }
    out
}

fn tls_json(tls: &TlsInfo) -> Value {
    json!({
        "protocol": tls.protocol,
        "verified": tls.verified,
        "verify_error": tls.verify_error.map(|f| f.as_str()),
        "not_after": tls.not_after_earliest,
        "not_after_utc": format_utc(tls.not_after_earliest),
        "not_before": tls.not_before,
        "sans": tls.sans,
    })
}

fn days_left(not_after: i64, now: i64) -> String {
    let days = (not_after - now) as f64 / DAY as f64;
    if days >= 0.0 {
        format!("{days:.1} days left")
    } else {
        format!("expired {:.1} days ago", -days)
    }
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| d.as_secs() as i64)
}

/// `2027-03-01 12:00:00 UTC` for Unix seconds.
pub fn format_utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(DAY), unix.rem_euclid(DAY));
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        render_unix_date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DD` of a count of days since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn render_unix_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Failure;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let cases = [
            (0, "1970-01-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_704_067_199, "2023-12-31 23:59:59 UTC"),
            (1_709_208_000, "2024-02-29 12:00:00 UTC"),
            (4_102_444_800, "2100-01-01 00:00:00 UTC"),
            (-1, "1969-12-31 23:59:59 UTC"),
        ];
        for (unix, want) in cases {
            assert_eq!(format_utc(unix), want, "{unix}");
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_micros(n * 1000 + 250)
    }

    fn tls_report() -> HttpReport {
        HttpReport {
            url: "https://shop.example.com/".into(),
            method: hyper::Method::GET,
            address: Some("203.0.113.10:443".parse().unwrap()),
            answers: vec!["203.0.113.10".parse().unwrap()],
            result: Ok(()),
            failed_phase: None,
            phases: vec![
                (Phase::Dns, ms(2)),
                (Phase::Connect, ms(1)),
                (Phase::Tls, ms(3)),
                (Phase::Ttfb, ms(4)),
            ],
            status: Some(200),
            protocol: Some(crate::probe::http::Protocol::Http2),
            redirects: Vec::new(),
            tls: Some(TlsInfo {
                not_after_earliest: 1_704_067_200 + 5 * DAY,
                not_before: 1_704_067_200 - 30 * DAY,
                verified: false,
                verify_error: Some(Failure::TlsUnknownCa),
                sans: vec!["shop.example.com".into(), "api.example.com".into()],
                protocol: Some("TLSv1.3".into()),
            }),
            total: ms(11),
        }
    }

    #[test]
    fn text_has_a_line_per_phase_then_status_certificate_and_result() {
        let text = tls_report().render_text_at(1_704_067_200);
        let want = "\
GET https://shop.example.com/
address  203.0.113.10:443
dns          2.250 ms  → 203.0.113.10
connect      1.250 ms
tls          3.250 ms
ttfb         4.250 ms
total       11.250 ms
status   200 (h2)
tls      TLSv1.3, certificate NOT verified: tls_unknown_ca (ignored: insecure)
cert     expires 2024-01-06 00:00:00 UTC (5.0 days left), valid since 2023-12-02 00:00:00 UTC
names    shop.example.com, api.example.com
result   success
";
        assert_eq!(text, want);
    }

    #[test]
    fn text_of_a_failed_handshake_names_the_phase_and_an_absent_dns() {
        let mut report = tls_report();
        report.phases = vec![(Phase::Connect, ms(1)), (Phase::Tls, ms(3))];
        report.answers.clear();
        report.status = None;
        report.result = Err(Failure::TlsExpired);
        report.failed_phase = Some(Phase::Tls);
        if let Some(tls) = report.tls.as_mut() {
            tls.protocol = None;
            tls.verify_error = Some(Failure::TlsExpired);
        }
        let text = report.render_text_at(1_704_067_200 + 7 * DAY);
        assert!(
            text.contains("dns              -    (address given, not resolved)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "tls      handshake not completed, certificate NOT verified: tls_expired\n"
            ),
            "{text}"
        );
        assert!(text.contains("(expired 2.0 days ago)"), "{text}");
        assert!(text.ends_with("result   tls_expired (in tls)\n"), "{text}");
    }

    #[test]
    fn json_keys_phases_by_name_in_seconds() {
        let json = tls_report().to_json();
        assert_eq!(json["result"], "success");
        assert_eq!(json["failed_phase"], Value::Null);
        assert_eq!(json["phases"]["tls"], 0.00325);
        assert_eq!(json["status"], 200);
        assert_eq!(json["protocol"], "h2");
        assert_eq!(json["tls"]["verify_error"], "tls_unknown_ca");
        assert_eq!(json["tls"]["not_after"], 1_704_067_200 + 5 * DAY);
        assert_eq!(json["tls"]["not_after_utc"], "2024-01-06 00:00:00 UTC");
        assert_eq!(json["answers"], json!(["203.0.113.10"]));
    }
}
