//! The DNS phase of the edge hops: how the public host name becomes the addresses to dial.
//!
//! A closed set of resolvers rather than a callback, so a target stays plain comparable data
//! (the scheduler reconciles targets by equality). [`Resolver::System`] is what an application on
//! the node sees; [`Resolver::Emulated`] names DNS failures exactly, query for query;
//! [`Resolver::Static`] is the hook for answers known in advance, and for tests.

use std::io;
use std::net::IpAddr;

use tokio::time::Instant;

use crate::probe::Failure;
use crate::probe::dns::{self, LookupOptions};

/// Where the DNS phase gets its answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolver {
    /// `getaddrinfo(3)` through [`tokio::net::lookup_host`]: `/etc/hosts`, nsswitch and the node's
    /// resolv.conf, as most clients resolve. It reports failures only as text, so the reason is
    /// read from glibc's and musl's messages (see [`classify_gai`]).
    System,
    /// The stub-resolver emulation of [`crate::probe::dns`], with its exact failure reasons.
    Emulated(Box<LookupOptions>),
    /// These answers, without asking anyone.
    Static(Vec<IpAddr>),
}

impl Resolver {
    /// The addresses `host` resolves to, in the order a client would try them; never empty on
    /// success. Gives up with [`Failure::Timeout`] at `deadline`.
    pub async fn resolve(&self, host: &str, deadline: Instant) -> Result<Vec<IpAddr>, Failure> {
        if Instant::now() >= deadline {
            return Err(Failure::Timeout);
        }
        let answers = match self {
            Resolver::System => system(host, deadline).await?,
            Resolver::Emulated(opts) => emulated(host, opts, deadline).await?,
            Resolver::Static(answers) => answers.clone(),
        };
        if answers.is_empty() {
            return Err(Failure::NoAddress);
        }
        Ok(answers)
    }
}

async fn system(host: &str, deadline: Instant) -> Result<Vec<IpAddr>, Failure> {
    let lookup = tokio::net::lookup_host((host, 0));
    match tokio::time::timeout_at(deadline, lookup).await {
        Err(_elapsed) => Err(Failure::Timeout),
        Ok(Err(err)) => Err(classify_gai(&err)),
        Ok(Ok(addresses)) => {
            let mut answers: Vec<IpAddr> = Vec::new();
            for ip in addresses.map(|a| a.ip()) {
                if !answers.contains(&ip) {
                    answers.push(ip);
                }
            }
            Ok(answers)
        }
    }
}

async fn emulated(
    host: &str,
    opts: &LookupOptions,
    deadline: Instant,
) -> Result<Vec<IpAddr>, Failure> {
    let report = dns::resolve(host, opts, deadline).await;
    report.result.map(|()| report.addresses)
}

/// Names a `getaddrinfo` failure. std turns the `EAI_*` code into `gai_strerror` text (in the C
/// locale, as Rust never calls `setlocale`), so the text is all there is: glibc's and musl's
/// messages for "no such name" and "no address of that family" are recognised, anything else
/// (EAI_AGAIN for a timeout or SERVFAIL, EAI_FAIL, …) is a `dns_error`.
pub fn classify_gai(err: &io::Error) -> Failure {
    let text = err.to_string();
    let has = |needle: &str| text.contains(needle);
    if has("Name or service not known") || has("Name does not resolve") {
        Failure::Nxdomain
    } else if has("No address associated with hostname") {
        Failure::Nodata
    } else {
        Failure::DnsError
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gai(detail: &str) -> io::Error {
        // What std builds from gai_strerror.
        io::Error::other(format!("failed to lookup address information: {detail}"))
    }

    #[test]
    fn getaddrinfo_messages_map_to_reasons() {
        let cases = [
            ("Name or service not known", Failure::Nxdomain),
            ("Name does not resolve", Failure::Nxdomain),
            ("No address associated with hostname", Failure::Nodata),
            ("Temporary failure in name resolution", Failure::DnsError),
            ("Try again", Failure::DnsError),
        ];
        for (detail, want) in cases {
            assert_eq!(classify_gai(&gai(detail)), want, "{detail}");
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn the_system_resolver_reads_etc_hosts() {
        // `localhost` is in every /etc/hosts; no packet leaves the machine for it.
        let answers = Resolver::System.resolve("localhost", soon()).await.unwrap();
        assert!(answers.iter().all(|ip| ip.is_loopback()), "{answers:?}");
        assert!(
            answers.contains(&"127.0.0.1".parse().unwrap()),
            "{answers:?}"
        );
    }

    #[tokio::test]
    async fn static_answers_are_returned_as_given_and_none_is_no_address() {
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        let answers = Resolver::Static(ips.clone()).resolve("x", soon()).await;
        assert_eq!(answers, Ok(ips));
        let none = Resolver::Static(Vec::new()).resolve("x", soon()).await;
        assert_eq!(none, Err(Failure::NoAddress));
    }
}
