//! The search-list walk, planned: which names a resolver tries, in which order, and which step
//! results let it go on to the next name. Pure functions, tested on tables.
//!
//! Sources: glibc `resolv/res_query.c` (`__res_context_search`), musl
//! `src/network/lookup_name.c` (`name_from_dns_search`), Go `src/net/dnsconfig_unix.go`
//! (`nameList`) and `dnsclient_unix.go` (`goLookupIPCNAME`).

use super::{Flavor, ResolvConf};

/// Presentation length of the longest name that fits the wire (255 octets), with its trailing dot.
const MAX_NAME: usize = 254;

/// One name the walk may query, fully qualified with a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub qname: String,
    pub origin: Origin,
}

/// Where a candidate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The name as written, tried before the search list (dots ≥ ndots, or a trailing dot).
    AsIsFirst,
    /// The name with the search domain at this index appended.
    Search(usize),
    /// The name as written, tried after the search list.
    AsIsLast,
    /// glibc only: a candidate too long to encode. glibc gives up on the search list there
    /// without sending anything.
    TooLong,
}

/// How one step (one candidate, all its query types) ended, as the resolver classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    /// At least one usable answer. For glibc and musl this ends the walk even without an
    /// address (a CNAME alone); Go goes on unless it found an address.
    Answer {
        addresses: bool,
    },
    NxDomain,
    NoData,
    ServFail,
    /// REFUSED, NOTIMP, FORMERR or another error code, or a name that cannot be encoded.
    Error,
    Timeout,
    /// The nameserver port is closed (ICMP port unreachable on a connected socket).
    ConnRefused,
}

/// What the walk does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The lookup is over with this step's result.
    Stop,
    /// Try the next candidate.
    Continue,
    /// Leave the search list; the as-is name may still be tried after it (glibc).
    LeaveSearch,
}

/// The candidates for `name` under `conf`, in the order the flavor tries them.
pub fn candidates(name: &str, conf: &ResolvConf, flavor: Flavor) -> Vec<Candidate> {
    match flavor {
        Flavor::Glibc => glibc_candidates(name, conf),
        Flavor::Musl | Flavor::MuslLegacy => musl_candidates(name, conf),
        Flavor::Go => go_candidates(name, conf),
    }
}

/// Whether the walk goes on after `result` at a candidate of `origin`.
pub fn next(flavor: Flavor, origin: Origin, result: StepResult) -> Next {
    match flavor {
        Flavor::Glibc => glibc_next(origin, result),
        Flavor::Musl | Flavor::MuslLegacy => musl_next(result),
        Flavor::Go => go_next(result),
    }
}

fn dots(name: &str) -> usize {
    name.bytes().filter(|b| *b == b'.').count()
}

fn rooted(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn join(name: &str, domain: &str) -> String {
    if domain == "." {
        rooted(name)
    } else {
        format!("{name}.{domain}.")
    }
}

fn fits(qname: &str) -> bool {
    qname.len() <= MAX_NAME
        && qname
            .trim_end_matches('.')
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63)
}

fn candidate(qname: String, origin: Origin) -> Candidate {
    Candidate { qname, origin }
}

fn glibc_candidates(name: &str, conf: &ResolvConf) -> Vec<Candidate> {
    let trailing = name.ends_with('.');
    let dots = dots(name.trim_end_matches('.'));
    if trailing {
        return vec![candidate(rooted(name), Origin::AsIsFirst)];
    }
    let mut list = Vec::new();
    let as_is_first = dots >= usize::from(conf.ndots);
    if as_is_first {
        list.push(candidate(rooted(name), Origin::AsIsFirst));
    }
    let root_on_list = conf.search.iter().any(|d| d == ".");
    for (i, domain) in conf.search.iter().enumerate() {
        let qname = join(name, domain);
        let origin = if fits(&qname) {
            Origin::Search(i)
        } else {
            Origin::TooLong
        };
        list.push(candidate(qname, origin));
    }
    let searched = !conf.search.is_empty();
    if !as_is_first && !root_on_list && (dots > 0 || !searched || !conf.no_tld_query) {
        list.push(candidate(rooted(name), Origin::AsIsLast));
    }
    list
}

fn glibc_next(origin: Origin, result: StepResult) -> Next {
    match (origin, result) {
        (_, StepResult::Answer { .. }) => Next::Stop,
        (Origin::AsIsFirst | Origin::AsIsLast, _) => Next::Continue,
        (_, StepResult::ConnRefused) => Next::Stop,
        (_, StepResult::NxDomain | StepResult::NoData | StepResult::ServFail) => Next::Continue,
        (_, StepResult::Error | StepResult::Timeout) => Next::LeaveSearch,
    }
}

fn musl_candidates(name: &str, conf: &ResolvConf) -> Vec<Candidate> {
    let trailing = name.ends_with('.');
    let bare = name.trim_end_matches('.');
    let mut list = Vec::new();
    if !trailing && dots(bare) < usize::from(conf.ndots) {
        for (i, domain) in conf.search.iter().enumerate() {
            let qname = join(bare, domain);
            if domain != "." && fits(&qname) {
                list.push(candidate(qname, Origin::Search(i)));
            }
        }
    }
    list.push(candidate(rooted(bare), Origin::AsIsLast));
    list
}

fn musl_next(result: StepResult) -> Next {
    match result {
        StepResult::NxDomain => Next::Continue,
        _ => Next::Stop,
    }
}

fn go_candidates(name: &str, conf: &ResolvConf) -> Vec<Candidate> {
    if name.ends_with('.') {
        return vec![candidate(name.to_string(), Origin::AsIsFirst)];
    }
    let has_ndots = dots(name) >= usize::from(conf.ndots);
    let mut list = Vec::new();
    if has_ndots {
        list.push(candidate(rooted(name), Origin::AsIsFirst));
    }
    for (i, domain) in conf.search.iter().enumerate() {
        let qname = join(name, domain);
        if fits(&qname) {
            list.push(candidate(qname, Origin::Search(i)));
        }
    }
    if !has_ndots {
        list.push(candidate(rooted(name), Origin::AsIsLast));
    }
    list
}

fn go_next(result: StepResult) -> Next {
    match result {
        StepResult::Answer { addresses: true } => Next::Stop,
        _ => Next::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(search: &[&str], ndots: u8) -> ResolvConf {
        ResolvConf {
            search: search.iter().map(|s| s.to_string()).collect(),
            ndots,
            ..ResolvConf::default()
        }
    }

    fn names(list: &[Candidate]) -> Vec<&str> {
        list.iter().map(|c| c.qname.as_str()).collect()
    }

    const POD: [&str; 4] = [
        "default.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
        "node.internal",
    ];

    #[test]
    fn below_ndots_searches_first_then_as_is() {
        for flavor in Flavor::ALL {
            let list = candidates("api.example.com", &conf(&POD, 5), flavor);
            assert_eq!(
                names(&list),
                [
                    "api.example.com.default.svc.cluster.local.",
                    "api.example.com.svc.cluster.local.",
                    "api.example.com.cluster.local.",
                    "api.example.com.node.internal.",
                    "api.example.com.",
                ],
                "{flavor}"
            );
        }
    }

    #[test]
    fn at_ndots_glibc_and_go_try_as_is_first_musl_only_as_is() {
        let pod = conf(&POD, 1);
        for flavor in [Flavor::Glibc, Flavor::Go] {
            let list = candidates("nosuch.example.com", &pod, flavor);
            assert_eq!(list.len(), 5, "{flavor}");
            assert_eq!(list[0].origin, Origin::AsIsFirst);
        }
        assert_eq!(
            names(&candidates("nosuch.example.com", &pod, Flavor::Musl)),
            ["nosuch.example.com."]
        );
    }

    #[test]
    fn trailing_dot_never_searches() {
        for flavor in Flavor::ALL {
            assert_eq!(
                names(&candidates("api.example.com.", &conf(&POD, 5), flavor)),
                ["api.example.com."],
                "{flavor}"
            );
        }
    }

    #[test]
    fn glibc_root_on_the_list_replaces_the_as_is_try() {
        let list = candidates("host", &conf(&["a", "."], 1), Flavor::Glibc);
        assert_eq!(names(&list), ["host.a.", "host."]);
    }

    #[test]
    fn glibc_no_tld_query_skips_a_single_label_as_is() {
        let mut c = conf(&["a"], 1);
        c.no_tld_query = true;
        assert_eq!(names(&candidates("host", &c, Flavor::Glibc)), ["host.a."]);
        assert_eq!(
            names(&candidates("host.x", &c, Flavor::Glibc)),
            ["host.x.", "host.x.a."]
        );
    }

    #[test]
    fn overlong_candidates_stop_glibc_and_are_skipped_elsewhere() {
        let long = format!("{}.example", "d".repeat(60));
        let domain = [long.as_str(); 4].join(".");
        let c = conf(&[&domain, "short"], 5);
        let glibc = candidates("name", &c, Flavor::Glibc);
        assert_eq!(glibc[0].origin, Origin::TooLong);
        assert_eq!(
            names(&candidates("name", &c, Flavor::Musl)),
            ["name.short.", "name."]
        );
        assert_eq!(
            names(&candidates("name", &c, Flavor::Go)),
            ["name.short.", "name."]
        );
    }

    #[test]
    fn which_results_continue() {
        use StepResult::*;
        let s = Origin::Search(0);
        let table = [
            (NxDomain, Next::Continue, Next::Continue, Next::Continue),
            (NoData, Next::Continue, Next::Stop, Next::Continue),
            (ServFail, Next::Continue, Next::Stop, Next::Continue),
            (Error, Next::LeaveSearch, Next::Stop, Next::Continue),
            (Timeout, Next::LeaveSearch, Next::Stop, Next::Continue),
            (ConnRefused, Next::Stop, Next::Stop, Next::Continue),
            (
                Answer { addresses: false },
                Next::Stop,
                Next::Stop,
                Next::Continue,
            ),
            (
                Answer { addresses: true },
                Next::Stop,
                Next::Stop,
                Next::Stop,
            ),
        ];
        for (result, glibc, musl, go) in table {
            assert_eq!(next(Flavor::Glibc, s, result), glibc, "glibc {result:?}");
            assert_eq!(next(Flavor::Musl, s, result), musl, "musl {result:?}");
            assert_eq!(next(Flavor::Go, s, result), go, "go {result:?}");
        }
        assert_eq!(
            next(Flavor::Glibc, Origin::AsIsFirst, Error),
            Next::Continue
        );
    }
}
