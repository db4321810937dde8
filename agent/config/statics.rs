//! The `http:` and `tcp:` target lists → [`StaticHttp`] and [`ConnectTarget`], with `defaults`
//! applied as for DNS targets; and the settings `http` targets share with `kubernetes.ingress`:
//! the expected response codes and the CA file.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::fields;
use super::http_options;
use super::net_fields;
use super::raw::{Problem, RawHttpTarget, RawTcpTarget, S};
use super::validate::{
    Defaults, PROBE_DEFAULTS, check, check_opt, duplicate, qtypes, schedule, timing,
};
use super::{StaticHttp, StubResolver};
use crate::probe::http::{CaBundle, DEFAULT_EXPECTED_STATUS, Scheme};
use crate::probe::tcp::ConnectTarget;
use crate::probe::{Hop, TargetKey};

/// `http:`, in order; ids must be unique among them.
pub(super) fn http_targets(
    raw: &[RawHttpTarget],
    defaults: &Defaults,
) -> Result<Vec<StaticHttp>, Problem> {
    let mut first_with_id: HashMap<String, usize> = HashMap::new();
    let mut targets = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let target = http_target(&format!("http[{i}]"), t, defaults)?;
        if let Some(first) = first_with_id.insert(target.id.clone(), i) {
            return Err(duplicate(
                ("http", i, first),
                t.id.as_ref(),
                ("url", &t.url),
            ));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// One `http` target; `at` is its path, like `http[2]`.
fn http_target(at: &str, t: &RawHttpTarget, defaults: &Defaults) -> Result<StaticHttp, Problem> {
    let field = |name: &str| format!("{at}.{name}");
    let url = check(&t.url, &field("url"), |s| net_fields::url(s))?;
    let id = match &t.id {
        Some(id) => check(id, &field("id"), |s| fields::id(s).map(|()| s.clone()))?,
        None => check(&t.url, &field("url"), |s| fields::id_from("url", s))?,
    };
    let connect_to = check_opt(t.connect_to.as_ref(), &field("connect_to"), |s| {
        net_fields::connect_to(s, url.port)
    })?;
    let expected_status = t
        .expected_status
        .as_ref()
        .map(|list| expected_status(list, &field("expected_status")))
        .transpose()?;
    let insecure = t.insecure.as_ref().is_some_and(|b| b.value);
    let ca = ca_file(t.ca_file.as_ref(), &field("ca_file"))?;
    if url.scheme == Scheme::Http {
        only_for_https(t, at)?;
    }
    let request = http_options::options(at, &http_options::raw_options!(t))?;
    let resolver = stub_resolver(at, t, defaults)?;
    if resolver.is_some() {
        resolver_used(t, at, connect_to.is_some(), url.ip().is_some())?;
    }
    let own = timing(
        at,
        t.interval_seconds.as_ref(),
        t.timeout_seconds.as_ref(),
        t.jitter_seconds.as_ref(),
    )?;
    Ok(StaticHttp {
        id,
        url,
        connect_to,
        expected_status: expected_status.unwrap_or_else(|| vec![DEFAULT_EXPECTED_STATUS]),
        insecure,
        ca: ca.unwrap_or(CaBundle::WebPki),
        resolver,
        schedule: schedule(&own, &defaults.timing, &PROBE_DEFAULTS)?,
        request,
    })
}

/// `ca_file`, `cert_file`, `key_file` and `insecure: true` are about TLS, which an http:// URL
/// never uses.
fn only_for_https(t: &RawHttpTarget, at: &str) -> Result<(), Problem> {
    let message =
        |name: &str| format!("{name} applies to https:// URLs only, and `url` is http://");
    let files = [
        ("ca_file", &t.ca_file),
        ("cert_file", &t.cert_file),
        ("key_file", &t.key_file),
    ];
    if let Some((name, Some(file))) = files.into_iter().find(|(_, f)| f.is_some()) {
        return Err(Problem::new(
            Some(file.referenced),
            format!("{at}.{name}"),
            message(&format!("`{name}`")),
        ));
    }
    match &t.insecure {
        Some(b) if b.value => Err(Problem::new(
            Some(b.referenced),
            format!("{at}.insecure"),
            message("`insecure: true`"),
        )),
        _ => Ok(()),
    }
}

/// `resolv_conf`, `flavor` and `qtypes`: when any is written, the host is resolved by the
/// emulated stub resolver, the others coming from `defaults.dns`.
fn stub_resolver(
    at: &str,
    t: &RawHttpTarget,
    defaults: &Defaults,
) -> Result<Option<StubResolver>, Problem> {
    let field = |name: &str| format!("{at}.{name}");
    let resolv_conf = check_opt(t.resolv_conf.as_ref(), &field("resolv_conf"), |s| {
        fields::file_path(s)
    })?;
    let flavor = check_opt(t.flavor.as_ref(), &field("flavor"), |s| fields::flavor(s))?;
    let qtypes = t
        .qtypes
        .as_ref()
        .map(|v| qtypes(v, &field("qtypes")))
        .transpose()?;
    if resolv_conf.is_none() && flavor.is_none() && qtypes.is_none() {
        return Ok(None);
    }
    Ok(Some(StubResolver {
        resolv_conf: resolv_conf.unwrap_or_else(|| defaults.resolv_conf.clone()),
        flavor: flavor.unwrap_or(defaults.flavor),
        qtypes: qtypes.unwrap_or(defaults.qtypes),
    }))
}

/// Resolver settings on a target that never resolves would silently do nothing.
fn resolver_used(
    t: &RawHttpTarget,
    at: &str,
    connect_to: bool,
    ip_url: bool,
) -> Result<(), Problem> {
    let why = match (connect_to, ip_url) {
        (true, _) => "`connect_to` is dialled instead of resolving the host",
        (false, true) => "the URL names an IP address, which is never resolved",
        (false, false) => return Ok(()),
    };
    let (name, written) = [
        ("resolv_conf", t.resolv_conf.as_ref().map(|v| v.referenced)),
        ("flavor", t.flavor.as_ref().map(|v| v.referenced)),
        ("qtypes", t.qtypes.as_ref().map(|v| v.referenced)),
    ]
    .into_iter()
    .find_map(|(name, at)| at.map(|at| (name, at)))
    .unwrap_or(("resolv_conf", t.url.referenced));
    Err(Problem::new(
        Some(written),
        format!("{at}.{name}"),
        format!("has no effect: {why}"),
    ))
}

/// `tcp:`, in order; ids must be unique among them, whatever their hop.
pub(super) fn tcp_targets(
    raw: &[RawTcpTarget],
    defaults: &Defaults,
) -> Result<Vec<ConnectTarget>, Problem> {
    let mut first_with_id: HashMap<String, usize> = HashMap::new();
    let mut targets = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let target = tcp_target(&format!("tcp[{i}]"), t, defaults)?;
        if let Some(first) = first_with_id.insert(target.key.id.clone(), i) {
            let stand_in = ("address", &t.address);
            return Err(duplicate(("tcp", i, first), t.id.as_ref(), stand_in));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// One `tcp` target; `at` is its path, like `tcp[0]`.
fn tcp_target(at: &str, t: &RawTcpTarget, defaults: &Defaults) -> Result<ConnectTarget, Problem> {
    let field = |name: &str| format!("{at}.{name}");
    let address = check(&t.address, &field("address"), |s| {
        net_fields::tcp_address(s)
    })?;
    let id = match &t.id {
        Some(id) => check(id, &field("id"), |s| fields::id(s).map(|()| s.clone()))?,
        None => check(&t.address, &field("address"), |s| {
            fields::id_from("address", s)
        })?,
    };
    let hop = check_opt(t.hop.as_ref(), &field("hop"), |s| net_fields::tcp_hop(s))?;
    let own = timing(
        at,
        t.interval_seconds.as_ref(),
        t.timeout_seconds.as_ref(),
        t.jitter_seconds.as_ref(),
    )?;
    Ok(ConnectTarget {
        key: TargetKey {
            hop: hop.unwrap_or(Hop::Service),
            id,
        },
        addresses: vec![address],
        schedule: schedule(&own, &defaults.timing, &PROBE_DEFAULTS)?,
    })
}

/// `expected_status`: a non-empty list of codes and ranges, in the order written.
pub(super) fn expected_status(
    list: &S<Vec<S<String>>>,
    path: &str,
) -> Result<Vec<RangeInclusive<u16>>, Problem> {
    if list.value.is_empty() {
        let message = format!(
            "must list at least one code or range; leave `expected_status` out for the default ({}-{})",
            DEFAULT_EXPECTED_STATUS.start(),
            DEFAULT_EXPECTED_STATUS.end()
        );
        return Err(Problem::new(Some(list.referenced), path, message));
    }
    list.value
        .iter()
        .enumerate()
        .map(|(i, entry)| check(entry, &format!("{path}[{i}]"), |s| net_fields::status(s)))
        .collect()
}

/// `ca_file`: the PEM bundle is read and checked now, so that a missing or broken file is a
/// config error rather than every probe failing with `tls_unknown_ca`.
pub(super) fn ca_file(v: Option<&S<String>>, path: &str) -> Result<Option<CaBundle>, Problem> {
    check_opt(v, path, |s| {
        let file = fields::file_path(s)?;
        CaBundle::from_file(&file).map_err(|e| fields::one_line(&e.to_string()))
    })
}
