//! What `hopwatch trace` follows: a URL through its Ingress, or a Service by name
//! (`svc/NAMESPACE/NAME[:PORT]`). Parsed once, before anything is sent.

use crate::discovery::ingress::BackendPort;
use crate::discovery::model::ObjKey;
use crate::probe::http::{HttpUrl, UrlError};

/// The start of the traced path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://` or `https://`: DNS, load balancer, TLS, Ingress, then the rule's Service.
    Url(HttpUrl),
    /// A Service: its cluster DNS name, then the Service, its endpoints and pods. Without a
    /// port, the Service's first TCP port.
    Service {
        key: ObjKey,
        port: Option<BackendPort>,
    },
}

/// Why the target cannot be traced. Each message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(
        "{0:?}: expected a URL (https://host/path) or svc/NAMESPACE/NAME[:PORT], e.g. svc/shop/web:80"
    )]
    Syntax(String),
    #[error(
        "{text:?}: {what} {value:?} is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)"
    )]
    Name {
        text: String,
        what: &'static str,
        value: String,
    },
    #[error("{text:?}: port {value:?} is neither a number from 1 to 65535 nor a port name")]
    Port { text: String, value: String },
}

/// Why `--from` is not a pod. The message names the flag and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromError {
    #[error("--from {0:?}: expected pod/NAMESPACE/NAME, e.g. pod/shop/web-1")]
    Syntax(String),
    #[error("--from {text:?}: {what} {value:?} is not a valid Kubernetes name")]
    Name {
        text: String,
        what: &'static str,
        value: String,
    },
}

/// Parses `--from pod/NAMESPACE/NAME`: the pod whose connections the NetworkPolicy step
/// decides.
pub fn parse_from(text: &str) -> Result<ObjKey, FromError> {
    let syntax = || FromError::Syntax(text.to_string());
    let rest = text.strip_prefix("pod/").ok_or_else(syntax)?;
    let (namespace, name) = rest.split_once('/').ok_or_else(syntax)?;
    let bad = |what, value: &str| FromError::Name {
        text: text.to_string(),
        what,
        value: value.to_string(),
    };
    check_name(text, "namespace", namespace).map_err(|_| bad("namespace", namespace))?;
    // A pod name is a DNS-1123 subdomain: labels joined by dots, at most 253 characters.
    let subdomain = name.len() <= 253 && name.split('.').all(|l| check_name(text, "", l).is_ok());
    if !subdomain {
        return Err(bad("pod name", name));
    }
    Ok(ObjKey::new(namespace, name))
}

impl Target {
    /// Parses `https://shop.example.com/api`, `svc/shop/web`, `svc/shop/web:80` or
    /// `svc/shop/web:http`.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        match text.strip_prefix("svc/") {
            Some(rest) => service(text, rest),
            None if text.contains("://") => Ok(Target::Url(HttpUrl::parse(text)?)),
            None => Err(TargetError::Syntax(text.to_string())),
        }
    }
}

fn service(text: &str, rest: &str) -> Result<Target, TargetError> {
    let syntax = || TargetError::Syntax(text.to_string());
    let (namespace, name_port) = rest.split_once('/').ok_or_else(syntax)?;
    let (name, port) = match name_port.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (name_port, None),
    };
    check_name(text, "namespace", namespace)?;
    check_name(text, "name", name)?;
    let port = port.map(|p| parse_port(text, p)).transpose()?;
    Ok(Target::Service {
        key: ObjKey::new(namespace, name),
        port,
    })
}

/// A DNS-1123 label, as Service and namespace names are.
fn check_name(text: &str, what: &'static str, value: &str) -> Result<(), TargetError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(TargetError::Name {
            text: text.to_string(),
            what,
            value: value.to_string(),
        })
    }
}

/// A port number, or a port name (IANA_SVC_NAME: at most 15 lowercase letters, digits and
/// '-', with at least one letter).
fn parse_port(text: &str, value: &str) -> Result<BackendPort, TargetError> {
    if let Ok(number) = value.parse::<u16>()
        && number > 0
    {
        return Ok(BackendPort::Number(number));
    }
    let named = !value.is_empty()
        && value.len() <= 15
        && value.chars().any(|c| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if named {
        Ok(BackendPort::Name(value.to_string()))
    } else {
        Err(TargetError::Port {
            text: text.to_string(),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, port: Option<BackendPort>) -> Target {
        Target::Service {
            key: ObjKey::new(ns, name),
            port,
        }
    }

    #[test]
    fn urls_and_services_parse() {
        let url = Target::parse("https://Shop.example.com/api?x=1").unwrap();
        let Target::Url(url) = url else {
            panic!("not a URL")
        };
        assert_eq!(
            (url.host.as_str(), url.path.as_str()),
            ("shop.example.com", "/api?x=1")
        );
        assert_eq!(Target::parse("svc/shop/web"), Ok(svc("shop", "web", None)));
        assert_eq!(
            Target::parse("svc/shop/web:8080"),
            Ok(svc("shop", "web", Some(BackendPort::Number(8080))))
        );
        assert_eq!(
            Target::parse("svc/shop/web:http-alt"),
            Ok(svc(
                "shop",
                "web",
                Some(BackendPort::Name("http-alt".into()))
            ))
        );
    }

    #[test]
    fn bad_targets_name_the_part() {
        let cases = [
            (
                "shop.example.com",
                "\"shop.example.com\": expected a URL (https://host/path) or svc/NAMESPACE/NAME[:PORT], e.g. svc/shop/web:80",
            ),
            (
                "svc/web",
                "\"svc/web\": expected a URL (https://host/path) or svc/NAMESPACE/NAME[:PORT], e.g. svc/shop/web:80",
            ),
            (
                "svc/Shop/web",
                "\"svc/Shop/web\": namespace \"Shop\" is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)",
            ),
            (
                "svc/shop/:80",
                "\"svc/shop/:80\": name \"\" is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)",
            ),
            (
                "svc/shop/web:0",
                "\"svc/shop/web:0\": port \"0\" is neither a number from 1 to 65535 nor a port name",
            ),
            (
                "svc/shop/web:99999",
                "\"svc/shop/web:99999\": port \"99999\" is neither a number from 1 to 65535 nor a port name",
            ),
            (
                "ftp://a.test/",
                "URL \"ftp://a.test/\": the scheme must be http or https",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).unwrap_err().to_string(), want, "{text}");
        }
    }

    #[test]
    fn from_names_a_pod_or_says_what_is_wrong() {
        assert_eq!(
            parse_from("pod/shop/web-1.x"),
            Ok(ObjKey::new("shop", "web-1.x"))
        );
        let cases = [
            (
                "pod/bad",
                "--from \"pod/bad\": expected pod/NAMESPACE/NAME, e.g. pod/shop/web-1",
            ),
            (
                "svc/shop/web",
                "--from \"svc/shop/web\": expected pod/NAMESPACE/NAME, e.g. pod/shop/web-1",
            ),
            (
                "pod/Shop/web-1",
                "--from \"pod/Shop/web-1\": namespace \"Shop\" is not a valid Kubernetes name",
            ),
            (
                "pod/shop/web_1",
                "--from \"pod/shop/web_1\": pod name \"web_1\" is not a valid Kubernetes name",
            ),
            (
                "pod/shop/",
                "--from \"pod/shop/\": pod name \"\" is not a valid Kubernetes name",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_from(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
