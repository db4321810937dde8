//! Checks of single Kubernetes values in the config: namespace, Service and IngressClass
//! names, `namespace/name` references, annotation keys, label selectors. Pure functions from what
//! was written to a typed value or a one-line reason, like `fields`.
//!
//! The rules are the API server's own, so that a name it would never accept is caught when
//! the file is read rather than by a Service that silently never matches.

use super::fields::{self, show};
use crate::discovery::model::ObjKey;
use crate::discovery::select::{AnnotationMode, LabelSelector};

/// Namespace and Service names are DNS labels.
const MAX_LABEL_LEN: usize = 63;
/// An annotation key's prefix is a DNS subdomain.
const MAX_SUBDOMAIN_LEN: usize = 253;
pub const MAX_POD_PROBE_NODES: i64 = 1000;

/// A namespace name: an RFC 1123 label (lowercase letters, digits, `-`; may start with a digit).
pub fn namespace(s: &str) -> Result<(), String> {
    label(s, "namespace", false)
}

/// A Service name: an RFC 1035 label (as a namespace, but it must start with a letter).
pub fn service_name(s: &str) -> Result<(), String> {
    label(s, "Service name", true)
}

/// An IngressClass name: an RFC 1123 subdomain (lowercase DNS labels joined by `.`).
pub fn ingress_class(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("IngressClass name must not be empty".to_string());
    }
    if !is_subdomain(s) {
        return Err(format!(
            "{} is not an IngressClass name: lowercase letters, digits, `-` and `.`, starting and \
             ending with a letter or digit, at most {MAX_SUBDOMAIN_LEN} characters",
            show(s)
        ));
    }
    Ok(s.to_string())
}

/// One DNS label as Kubernetes names use it; `what` names it in the message.
fn label(s: &str, what: &str, letter_first: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    let len = s.chars().count();
    if len > MAX_LABEL_LEN {
        return Err(format!(
            "{what} {} is {len} characters long, at most {MAX_LABEL_LEN} are allowed",
            show(s)
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if let Some(c) = s.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "{what} {} contains {}; only lowercase letters, digits and `-` are allowed",
            show(s),
            show(&c.to_string())
        ));
    }
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || (!letter_first && c.is_ascii_digit()));
    if !first_ok || s.ends_with('-') {
        let start = if letter_first {
            "a lowercase letter"
        } else {
            "a lowercase letter or digit"
        };
        return Err(format!(
            "{what} {} must start with {start} and end with a lowercase letter or digit",
            show(s)
        ));
    }
    Ok(())
}

/// A Service written as `namespace/name`.
pub fn service(s: &str) -> Result<ObjKey, String> {
    let Some((ns, name)) = s.split_once('/') else {
        return Err(format!(
            "{} is not `namespace/name`, such as `kube-system/kube-dns`",
            show(s)
        ));
    };
    for (part, what) in [(ns, "namespace"), (name, "Service name")] {
        if part.is_empty() {
            return Err(format!(
                "{} has an empty {what}; write `namespace/name`",
                show(s)
            ));
        }
    }
    namespace(ns)?;
    service_name(name)?;
    Ok(ObjKey::new(ns, name))
}

/// An annotation key: an optional DNS subdomain prefix and `/`, then a name of up to 63
/// letters, digits, `-`, `_` and `.` that starts and ends with a letter or digit.
pub fn annotation_key(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix.filter(|p| !is_subdomain(p)) {
        return Err(format!(
            "{}: prefix {} is not a lowercase DNS name such as `hopwatch.io`",
            show(s),
            show(prefix)
        ));
    }
    if !is_key_name(name) {
        return Err(format!(
            "{}: name {} must be 1 to {MAX_LABEL_LEN} letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
            show(s),
            show(name)
        ));
    }
    Ok(s.to_string())
}

fn is_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SUBDOMAIN_LEN
        && s.split('.').all(|l| label(l, "", false).is_ok())
}

fn is_key_name(s: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= MAX_LABEL_LEN
        && s.chars().all(inner)
        && edge(s.chars().next())
        && edge(s.chars().last())
}

pub fn annotation_mode(s: &str) -> Result<AnnotationMode, String> {
    match s {
        "opt-out" => Ok(AnnotationMode::OptOut),
        "opt-in" => Ok(AnnotationMode::OptIn),
        _ => Err(format!(
            "unknown annotation mode {}, expected `opt-out` or `opt-in`",
            show(s)
        )),
    }
}

/// A label selector as `kubectl get -l` takes it; the parser's own reason on failure.
pub fn label_selector(s: &str) -> Result<LabelSelector, String> {
    LabelSelector::parse(s).map_err(|e| fields::one_line(&e.to_string()))
}

/// `pod_probe_nodes`, `service_probe_nodes`, `probe_nodes`: from 1 to 1000 nodes probe each item.
pub fn probe_nodes(v: i64) -> Result<usize, String> {
    match usize::try_from(v) {
        Ok(n) if (1..=MAX_POD_PROBE_NODES).contains(&v) => Ok(n),
        _ => Err(format!("{v} must be between 1 and {MAX_POD_PROBE_NODES}")),
    }
}

/// `cluster_domain`: a DNS name, kept without its trailing dot.
pub fn cluster_domain(s: &str) -> Result<String, String> {
    fields::dns_name(s)?;
    Ok(s.strip_suffix('.').unwrap_or(s).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_rfc_1123_labels() {
        for good in ["default", "kube-system", "a", "0-team", &"a".repeat(63)] {
            assert_eq!(namespace(good), Ok(()), "{good}");
        }
        assert_eq!(namespace(""), Err("namespace must not be empty".into()));
        assert_eq!(
            namespace("Shop"),
            Err(
                "namespace `Shop` contains `S`; only lowercase letters, digits and `-` are allowed"
                    .into()
            )
        );
        assert_eq!(
            namespace("shop.eu"),
            Err("namespace `shop.eu` contains `.`; only lowercase letters, digits and `-` are allowed".into())
        );
        assert_eq!(
            namespace("shop-"),
            Err("namespace `shop-` must start with a lowercase letter or digit and end with a lowercase letter or digit".into())
        );
        assert_eq!(
            namespace(&"a".repeat(64)),
            Err(format!(
                "namespace `{}` is 64 characters long, at most 63 are allowed",
                "a".repeat(64)
            ))
        );
    }

    #[test]
    fn service_names_start_with_a_letter() {
        assert_eq!(service_name("kube-dns"), Ok(()));
        assert_eq!(
            service_name("1st"),
            Err("Service name `1st` must start with a lowercase letter and end with a lowercase letter or digit".into())
        );
    }

    #[test]
    fn services_are_namespace_slash_name() {
        assert_eq!(
            service("kube-system/kube-dns"),
            Ok(ObjKey::new("kube-system", "kube-dns"))
        );
        assert_eq!(
            service("kube-dns"),
            Err("`kube-dns` is not `namespace/name`, such as `kube-system/kube-dns`".into())
        );
        assert_eq!(
            service("/kube-dns"),
            Err("`/kube-dns` has an empty namespace; write `namespace/name`".into())
        );
        assert_eq!(
            service("kube-system/"),
            Err("`kube-system/` has an empty Service name; write `namespace/name`".into())
        );
        assert_eq!(
            service("a/b/c"),
            Err("Service name `b/c` contains `/`; only lowercase letters, digits and `-` are allowed".into())
        );
    }

    #[test]
    fn ingress_classes_are_subdomains() {
        for good in ["nginx", "alb", "traefik.example.com", "nginx-internal"] {
            assert_eq!(ingress_class(good), Ok(good.to_string()), "{good}");
        }
        assert_eq!(
            ingress_class(""),
            Err("IngressClass name must not be empty".into())
        );
        assert_eq!(
            ingress_class("Nginx"),
            Err("`Nginx` is not an IngressClass name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters".into())
        );
        for bad in ["nginx.", "-nginx", "a..b", "ngi nx", &"a".repeat(254)] {
            assert!(ingress_class(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn annotation_keys() {
        for good in ["hopwatch.io/probe", "probe", "a.b-c/X_y.z", "x/9"] {
            assert_eq!(annotation_key(good), Ok(good.to_string()), "{good}");
        }
        assert_eq!(annotation_key(""), Err("must not be empty".into()));
        assert_eq!(
            annotation_key("Hopwatch.io/probe"),
            Err("`Hopwatch.io/probe`: prefix `Hopwatch.io` is not a lowercase DNS name such as `hopwatch.io`".into())
        );
        assert!(annotation_key("/probe").is_err());
        assert!(annotation_key("a..b/probe").is_err());
        assert_eq!(
            annotation_key("hopwatch.io/-probe"),
            Err("`hopwatch.io/-probe`: name `-probe` must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit".into())
        );
        assert!(annotation_key("hopwatch.io/").is_err());
        assert!(annotation_key("a/b/c").is_err());
        assert!(annotation_key(&"p".repeat(64)).is_err());
    }

    #[test]
    fn modes_selectors_counts_and_domains() {
        assert_eq!(annotation_mode("opt-in"), Ok(AnnotationMode::OptIn));
        assert_eq!(
            annotation_mode("optin"),
            Err("unknown annotation mode `optin`, expected `opt-out` or `opt-in`".into())
        );
        assert!(label_selector("app in (web,api),tier!=cache").is_ok());
        assert_eq!(
            label_selector("env in prod"),
            Err("cannot read label requirement \"env in prod\"".into())
        );
        assert_eq!(probe_nodes(1), Ok(1));
        assert_eq!(probe_nodes(1000), Ok(1000));
        assert_eq!(probe_nodes(0), Err("0 must be between 1 and 1000".into()));
        assert!(probe_nodes(-1).is_err());
        assert_eq!(cluster_domain("cluster.local."), Ok("cluster.local".into()));
        assert_eq!(
            cluster_domain("cluster..local"),
            Err("`cluster..local` has an empty label".into())
        );
    }
}
