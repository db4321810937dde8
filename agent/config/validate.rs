//! Raw config → [`Config`]: defaults applied, every value and every cross-field rule checked,
//! the first problem reported with its field path and line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::Location;

use super::fields::{self, DEFAULT_INTERVAL_SECONDS};
use super::raw::{Problem, RawConfig, RawDefaults, RawDnsTarget, S};
use super::{Config, DnsTarget, Schedule};
use super::{canary, kubernetes, otlp, statics};
use crate::probe::dns::{Flavor, Qtype, QueryTypes};

pub(super) fn config(raw: RawConfig) -> Result<Config, Problem> {
    let listen = check_opt(raw.listen.as_ref(), "listen", |s| fields::listen(s))?;
    let max_concurrency = check_opt(raw.max_concurrency.as_ref(), "max_concurrency", |&n| {
        fields::max_concurrency(n)
    })?;
    let defaults = defaults(raw.defaults.unwrap_or_default())?;
    let dns = dns_targets(raw.dns.as_deref().unwrap_or_default(), &defaults)?;
    let http = statics::http_targets(raw.http.as_deref().unwrap_or_default(), &defaults)?;
    let tcp = statics::tcp_targets(raw.tcp.as_deref().unwrap_or_default(), &defaults)?;
    let kubernetes = raw
        .kubernetes
        .map(|k| kubernetes::section(k, &defaults))
        .transpose()?;
    let otlp = raw.otlp.map(otlp::section).transpose()?;
    let listen = listen.unwrap_or(fields::DEFAULT_LISTEN);
    let canary = raw
        .canary
        .map(|c| canary::section(c, listen, kubernetes.is_some()))
        .transpose()?;
    Ok(Config {
        listen,
        max_concurrency: max_concurrency.unwrap_or(fields::DEFAULT_CONCURRENCY),
        dns,
        http,
        tcp,
        kubernetes,
        otlp,
        canary: canary.unwrap_or_default(),
    })
}

/// Runs `f` on a value; a failure names `path` and the value's line.
pub(super) fn check<T, U>(
    v: &S<T>,
    path: &str,
    f: impl FnOnce(&T) -> Result<U, String>,
) -> Result<U, Problem> {
    f(&v.value).map_err(|message| Problem::new(Some(v.referenced), path, message))
}

/// [`check`] for a value that may not be written; `None` if it is not.
pub(super) fn check_opt<T, U>(
    v: Option<&S<T>>,
    path: &str,
    f: impl FnOnce(&T) -> Result<U, String>,
) -> Result<Option<U>, Problem> {
    v.map(|v| check(v, path, f)).transpose()
}

/// A number of seconds as written, with where it was written.
#[derive(Debug, Clone)]
struct Setting {
    value: f64,
    at: Location,
    path: String,
}

/// The schedule settings one block (`defaults`, a target, `kubernetes.connect`, …) writes.
#[derive(Debug, Default)]
pub(super) struct Timing {
    interval: Option<Setting>,
    timeout: Option<Setting>,
    jitter: Option<Setting>,
}

/// `defaults`, validated, still knowing which settings were written.
pub(super) struct Defaults {
    pub timing: Timing,
    pub flavor: Flavor,
    pub qtypes: QueryTypes,
    pub resolv_conf: PathBuf,
}

/// What a schedule falls back to for a setting neither its block nor the block it inherits
/// from writes: an interval, and the timeout and jitter as functions of the interval in
/// effect (so that they always stay below it).
pub(super) struct Computed {
    pub interval: f64,
    pub timeout: fn(f64) -> f64,
    pub jitter: fn(f64) -> f64,
}

/// The fallbacks of `defaults` and of every DNS lookup schedule.
pub(super) const PROBE_DEFAULTS: Computed = Computed {
    interval: DEFAULT_INTERVAL_SECONDS,
    timeout: fields::default_timeout,
    jitter: fields::default_jitter,
};

fn defaults(raw: RawDefaults) -> Result<Defaults, Problem> {
    let timing = timing(
        "defaults",
        raw.interval_seconds.as_ref(),
        raw.timeout_seconds.as_ref(),
        raw.jitter_seconds.as_ref(),
    )?;
    // The defaults must make a schedule on their own, so that a problem shows where it was
    // written and not on every target that inherits it.
    schedule(&timing, &Timing::default(), &PROBE_DEFAULTS)?;
    let dns = raw.dns.unwrap_or_default();
    let flavor = check_opt(dns.flavor.as_ref(), "defaults.dns.flavor", |s| {
        fields::flavor(s)
    })?;
    let qtypes = dns
        .qtypes
        .as_ref()
        .map(|v| qtypes(v, "defaults.dns.qtypes"))
        .transpose()?;
    let resolv_conf = check_opt(dns.resolv_conf.as_ref(), "defaults.dns.resolv_conf", |s| {
        fields::file_path(s)
    })?;
    Ok(Defaults {
        timing,
        flavor: flavor.unwrap_or(Flavor::Glibc),
        qtypes: qtypes.unwrap_or(QueryTypes::Both),
        resolv_conf: resolv_conf.unwrap_or_else(|| PathBuf::from(fields::DEFAULT_RESOLV_CONF)),
    })
}

/// The schedule settings written in `block` (a path like `defaults` or `dns[3]`), each checked
/// on its own; how they fit together is [`schedule`]'s business.
pub(super) fn timing(
    block: &str,
    interval: Option<&S<f64>>,
    timeout: Option<&S<f64>>,
    jitter: Option<&S<f64>>,
) -> Result<Timing, Problem> {
    let setting = |v: Option<&S<f64>>, field: &str, f: fn(f64) -> Result<f64, String>| {
        v.map(|v| {
            let path = format!("{block}.{field}");
            check(v, &path, |&x| f(x)).map(|value| Setting {
                value,
                at: v.referenced,
                path,
            })
        })
        .transpose()
    };
    Ok(Timing {
        interval: setting(interval, "interval_seconds", fields::interval)?,
        timeout: setting(timeout, "timeout_seconds", fields::timeout)?,
        jitter: setting(jitter, "jitter_seconds", fields::jitter)?,
    })
}

/// A setting in effect for a block, and whether the block wrote it itself.
#[derive(Clone, Copy)]
struct Picked<'a> {
    setting: &'a Setting,
    own: bool,
}

fn pick<'a>(own: &'a Option<Setting>, inherited: &'a Option<Setting>) -> Option<Picked<'a>> {
    match (own, inherited) {
        (Some(setting), _) => Some(Picked { setting, own: true }),
        (None, Some(setting)) => Some(Picked {
            setting,
            own: false,
        }),
        (None, None) => None,
    }
}

/// The schedule of a block: its own settings, else the inherited ones, else the computed
/// defaults (which are always consistent).
pub(super) fn schedule(
    own: &Timing,
    inherited: &Timing,
    computed: &Computed,
) -> Result<Schedule, Problem> {
    let interval = pick(&own.interval, &inherited.interval);
    let timeout = pick(&own.timeout, &inherited.timeout);
    let jitter = pick(&own.jitter, &inherited.jitter);
    let interval_value = interval.map_or(computed.interval, |p| p.setting.value);
    below(timeout, "timeout_seconds", interval, interval_value)?;
    below(jitter, "jitter_seconds", interval, interval_value)?;
    let value = |p: Option<Picked>, default: fn(f64) -> f64| {
        p.map_or(default(interval_value), |p| p.setting.value)
    };
    Ok(Schedule {
        interval: seconds(interval_value, interval)?,
        timeout: seconds(value(timeout, computed.timeout), timeout)?,
        jitter: seconds(value(jitter, computed.jitter), jitter)?,
    })
}

/// Checks `lower < interval`. The error goes to the setting the block wrote itself, so that
/// it points at the line to change.
fn below(
    lower: Option<Picked>,
    name: &str,
    interval: Option<Picked>,
    interval_value: f64,
) -> Result<(), Problem> {
    let Some(lower) = lower else { return Ok(()) };
    let value = lower.setting.value;
    if value < interval_value {
        return Ok(());
    }
    match interval {
        Some(i) if i.own && !lower.own => Err(Problem::new(
            Some(i.setting.at),
            &i.setting.path,
            format!(
                "{interval_value} must be above {name} ({value}, from {})",
                lower.setting.path
            ),
        )),
        _ => {
            let source = match interval {
                None => ", the default".to_string(),
                Some(i) if i.own == lower.own => String::new(),
                Some(i) => format!(", from {}", i.setting.path),
            };
            Err(Problem::new(
                Some(lower.setting.at),
                &lower.setting.path,
                format!("{value} must be below interval_seconds ({interval_value}{source})"),
            ))
        }
    }
}

fn seconds(value: f64, from: Option<Picked>) -> Result<Duration, Problem> {
    // Cannot fail on values the checks above let through; reported rather than unwrapped.
    Duration::try_from_secs_f64(value).map_err(|e| {
        let (at, path) = from.map_or((None, ""), |p| {
            (Some(p.setting.at), p.setting.path.as_str())
        });
        Problem::new(at, path, format!("{value}: {e}"))
    })
}

/// `qtypes`: a non-empty list of `A` and `AAAA`, each at most once.
pub(super) fn qtypes(list: &S<Vec<S<String>>>, path: &str) -> Result<QueryTypes, Problem> {
    let mut seen: Vec<Qtype> = Vec::new();
    for (i, entry) in list.value.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let qtype = check(entry, &item, |s| fields::qtype(s))?;
        if seen.contains(&qtype) {
            let message = format!("duplicate record type `{}`", qtype.as_str());
            return Err(Problem::new(Some(entry.referenced), item, message));
        }
        seen.push(qtype);
    }
    match (seen.contains(&Qtype::A), seen.contains(&Qtype::Aaaa)) {
        (true, true) => Ok(QueryTypes::Both),
        (true, false) => Ok(QueryTypes::A),
        (false, true) => Ok(QueryTypes::Aaaa),
        (false, false) => Err(Problem::new(
            Some(list.referenced),
            path,
            "must list at least one of `A`, `AAAA`",
        )),
    }
}

/// The targets in order, each with its defaults applied; ids must be unique.
fn dns_targets(raw: &[RawDnsTarget], defaults: &Defaults) -> Result<Vec<DnsTarget>, Problem> {
    let mut first_with_id: HashMap<String, usize> = HashMap::new();
    let mut targets = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let target = dns_target(&format!("dns[{i}]"), t, defaults)?;
        if let Some(first) = first_with_id.insert(target.id.clone(), i) {
            return Err(duplicate_id(i, t, first));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Target `i` has the id target `first` has: blame the `id`, or the name that stands in for it.
fn duplicate_id(i: usize, t: &RawDnsTarget, first: usize) -> Problem {
    duplicate(("dns", i, first), t.id.as_ref(), ("name", &t.name))
}

/// Entry `i` of `section` has the id entry `first` has: blame its `id` when it sets one, else
/// the field (`name`, `url`, `address`) whose text stands in for the id.
pub(super) fn duplicate(
    (section, i, first): (&str, usize, usize),
    id: Option<&S<String>>,
    (field, stand_in): (&str, &S<String>),
) -> Problem {
    match id {
        Some(id) => Problem::new(
            Some(id.referenced),
            format!("{section}[{i}].id"),
            format!(
                "duplicate id {}, {section}[{first}] has it too",
                fields::show(&id.value)
            ),
        ),
        None => Problem::new(
            Some(stand_in.referenced),
            format!("{section}[{i}].{field}"),
            format!(
                "duplicate id {} (the {field}, as no `id` is set), {section}[{first}] has it too; set `id` to tell them apart",
                fields::show(&stand_in.value)
            ),
        ),
    }
}

/// One target; `at` is its path, like `dns[3]`.
fn dns_target(at: &str, t: &RawDnsTarget, defaults: &Defaults) -> Result<DnsTarget, Problem> {
    let field = |name: &str| format!("{at}.{name}");
    check(&t.name, &field("name"), |s| fields::dns_name(s))?;
    let id = match &t.id {
        Some(id) => check(id, &field("id"), |s| fields::id(s).map(|()| s.clone()))?,
        None => check(&t.name, &field("name"), |s| fields::id_from_name(s))?,
    };
    let server = check_opt(t.server.as_ref(), &field("server"), |s| fields::server(s))?;
    let flavor = check_opt(t.flavor.as_ref(), &field("flavor"), |s| fields::flavor(s))?;
    let qtypes = t
        .qtypes
        .as_ref()
        .map(|v| qtypes(v, &field("qtypes")))
        .transpose()?;
    let resolv_conf = check_opt(t.resolv_conf.as_ref(), &field("resolv_conf"), |s| {
        fields::file_path(s)
    })?;
    let own = timing(
        at,
        t.interval_seconds.as_ref(),
        t.timeout_seconds.as_ref(),
        t.jitter_seconds.as_ref(),
    )?;
    Ok(DnsTarget {
        id,
        name: t.name.value.clone(),
        flavor: flavor.unwrap_or(defaults.flavor),
        qtypes: qtypes.unwrap_or(defaults.qtypes),
        resolv_conf: resolv_conf.unwrap_or_else(|| defaults.resolv_conf.clone()),
        server,
        schedule: schedule(&own, &defaults.timing, &PROBE_DEFAULTS)?,
    })
}
