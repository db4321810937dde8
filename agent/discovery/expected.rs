//! What an Ingress's public names must resolve to, for the load-balancer hop: the load
//! balancer of its status (IPs, and the hostnames cloud load balancers publish instead), or,
//! when a CDN or WAF stands in front of it, what the Ingress's
//! [`EXPECTED_ANNOTATION`] lists. Pure: strings in, plain data or an error message out.

use std::net::IpAddr;

/// The Ingress annotation naming the addresses and DNS names the public names resolve to when
/// something other than the load balancer answers for them: a comma-separated list such as
/// `198.51.100.7, d111.cloudfront.example`. It replaces the status as what is expected.
pub const EXPECTED_ANNOTATION: &str = "hopwatch.io/expected-addresses";

/// Addresses, and absolute DNS names (trailing dot) whose addresses count too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub addresses: Vec<IpAddr>,
    pub names: Vec<String>,
}

impl Expected {
    /// Adds `entry` if it is not there yet.
    fn push(&mut self, entry: Entry) {
        match entry {
            Entry::Address(ip) if !self.addresses.contains(&ip) => self.addresses.push(ip),
            Entry::Name(name) if !self.names.contains(&name) => self.names.push(name),
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.names.is_empty()
    }
}

enum Entry {
    Address(IpAddr),
    Name(String),
}

/// A status hostname as the resolver is to ask for it: lowercase and absolute, so no search
/// domain is tried first. `None` for one that is not a DNS name.
pub fn absolute_name(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    dns_name(&name).then(|| format!("{name}."))
}

/// A host name of at least two labels whose last is not all digits (so `10.0.1` is a typo,
/// not a name): labels of 1 to 63 letters, digits and `-`, not starting or ending with `-`.
fn dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let label = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(label)
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses the annotation's value. The error says what is wrong with which entry; the caller
/// names the Ingress and the annotation.
pub fn parse(value: &str) -> Result<Expected, String> {
    let mut expected = Expected::default();
    for raw in value.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            return Err(format!(
                "`{value}` has an empty entry: list addresses and names separated by commas"
            ));
        }
        match (entry.parse::<IpAddr>(), absolute_name(entry)) {
            (Ok(ip), _) => expected.push(Entry::Address(ip)),
            (Err(_), Some(name)) => expected.push(Entry::Name(name)),
            (Err(_), None) => {
                return Err(format!(
                    "`{entry}` is neither an IP address nor a DNS name such as cdn.example.com"
                ));
            }
        }
    }
    Ok(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_names_are_parsed_trimmed_and_deduplicated() {
        let parsed = parse(" 198.51.100.7,2001:db8::7 , D111.CloudFront.example., 198.51.100.7");
        assert_eq!(
            parsed,
            Ok(Expected {
                addresses: vec![ip("198.51.100.7"), ip("2001:db8::7")],
                names: vec!["d111.cloudfront.example.".into()],
            })
        );
    }

    #[test]
    fn bad_values_say_which_entry_is_wrong() {
        let cases = [
            (
                "",
                "`` has an empty entry: list addresses and names separated by commas",
            ),
            (
                "198.51.100.7,,cdn.example",
                "`198.51.100.7,,cdn.example` has an empty entry: list addresses and names separated by commas",
            ),
            (
                "198.51.100.7 cdn.example",
                "`198.51.100.7 cdn.example` is neither an IP address nor a DNS name such as cdn.example.com",
            ),
            (
                "10.0.1",
                "`10.0.1` is neither an IP address nor a DNS name such as cdn.example.com",
            ),
            (
                "cdn",
                "`cdn` is neither an IP address nor a DNS name such as cdn.example.com",
            ),
            (
                "-cdn.example",
                "`-cdn.example` is neither an IP address nor a DNS name such as cdn.example.com",
            ),
            (
                "cdn_1.example",
                "`cdn_1.example` is neither an IP address nor a DNS name such as cdn.example.com",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value), Err(want.to_string()), "{value:?}");
        }
    }

    #[test]
    fn status_hostnames_become_absolute_names() {
        assert_eq!(
            absolute_name("A1b2-123.eu-west-1.ELB.amazonaws.com"),
            Some("a1b2-123.eu-west-1.elb.amazonaws.com.".into())
        );
        assert_eq!(absolute_name("lb.example."), Some("lb.example.".into()));
        assert_eq!(absolute_name("not a name"), None);
        assert_eq!(absolute_name(""), None);
    }
}
