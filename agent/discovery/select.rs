//! Which Services hopwatch probes: namespaces, a label selector on the Service and one on
//! its namespace, an opt-in or opt-out annotation, and Services that are always probed.

use std::fmt;

use super::model::{Labels, ObjKey, ServiceInfo};

/// A Kubernetes label selector, equality- and set-based.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Why a selector string could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl LabelSelector {
    /// Parses `app=web,tier!=cache,env in (prod,staging),!legacy`.
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(SelectorError(format!("empty requirement in {text:?}")));
            }
            requirements.push(requirement(part)?);
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether the selector has no requirement, and so matches every set of labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let among = |vs: &[String], v: &str| vs.iter().any(|x| x == v);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| among(vs, v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !among(vs, v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text.trim().is_empty() {
        parts.push(&text[start..]);
    }
    parts
}

fn requirement(part: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError(format!("cannot read label requirement {part:?}"));
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key_of(key.trim()).ok_or_else(bad)?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotEquals(
            key_of(key).ok_or_else(bad)?,
            value.trim().to_string(),
        ));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Equals(
            key_of(key).ok_or_else(bad)?,
            value.trim().to_string(),
        ));
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Requirement::Exists(key_of(key).ok_or_else(bad)?)),
        [key, rest] => {
            let rest = rest.trim();
            let (op, list) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let list = list
                .trim()
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values: Vec<String> = list.split(',').map(|v| v.trim().to_string()).collect();
            match op {
                "in" => Ok(Requirement::In(key_of(key).ok_or_else(bad)?, values)),
                "notin" => Ok(Requirement::NotIn(key_of(key).ok_or_else(bad)?, values)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

fn key_of(key: &str) -> Option<String> {
    let key = key.trim();
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    ok.then(|| key.to_string())
}

/// Whether Services are probed unless they opt out, or only when they opt in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationMode {
    OptOut,
    OptIn,
}

/// The validated `kubernetes.services` section of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Only these namespaces; empty means all.
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub label_selector: LabelSelector,
    /// Matched against the labels of the object's namespace; empty matches every namespace.
    pub namespace_selector: LabelSelector,
    pub annotation: String,
    pub mode: AnnotationMode,
    /// Probed whatever the filters say, unless annotated `"false"`.
    pub always: Vec<ObjKey>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            label_selector: LabelSelector::default(),
            namespace_selector: LabelSelector::default(),
            annotation: "hopwatch.io/probe".to_string(),
            mode: AnnotationMode::OptOut,
            always: vec![
                ObjKey::new("kube-system", "kube-dns"),
                ObjKey::new("default", "kubernetes"),
            ],
        }
    }
}

impl Selection {
    /// `namespace` is the labels of the Service's namespace, `None` when they are not known
    /// (Namespaces not listed yet, or the namespace is gone): then a `namespace_selector`
    /// selects nothing, so that no Service is probed on a partial view.
    pub fn selects(&self, svc: &ServiceInfo, namespace: Option<&Labels>) -> bool {
        let annotation = svc.probe_annotation.as_deref();
        self.admits(&svc.key, annotation, namespace)
            && (self.always.contains(&svc.key) || self.label_selector.matches(&svc.labels))
    }

    /// Ingresses are selected by namespace and annotation; the label selector is for Services.
    pub fn selects_ingress(
        &self,
        key: &ObjKey,
        annotation: Option<&str>,
        namespace: Option<&Labels>,
    ) -> bool {
        self.admits(key, annotation, namespace)
    }

    fn admits(&self, key: &ObjKey, annotation: Option<&str>, namespace: Option<&Labels>) -> bool {
        if annotation == Some("false") {
            return false;
        }
        if self.always.contains(key) {
            return true;
        }
        if self.mode == AnnotationMode::OptIn && annotation != Some("true") {
            return false;
        }
        let ns = &key.namespace;
        (self.namespaces.is_empty() || self.namespaces.contains(ns))
            && !self.exclude_namespaces.contains(ns)
            && (self.namespace_selector.is_empty()
                || namespace.is_some_and(|labels| self.namespace_selector.matches(labels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::model::Address;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn labels_are_found_by_key_whatever_the_order_given() {
        let l = labels(&[
            ("tier", "web"),
            ("app", "shop"),
            ("env", "prod"),
            ("app", "cart"),
        ]);
        assert_eq!(
            l.get("app"),
            Some("cart"),
            "the last value of a repeated key wins"
        );
        assert_eq!(l.get("env"), Some("prod"));
        assert_eq!(l.get("tier"), Some("web"));
        assert_eq!(l.get("zone"), None);
        assert!(l.contains_key("env") && !l.contains_key("en"));
        assert_eq!(Labels::default().get("app"), None);
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("env", "prod")]);
        let table = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,env=prod", true),
            ("env in (prod, staging)", true),
            ("env notin (prod)", false),
            ("tier notin (cache)", true),
            ("app", true),
            ("!app", false),
            ("!tier", true),
        ];
        for (text, expected) in table {
            assert_eq!(
                LabelSelector::parse(text).unwrap().matches(&l),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for text in ["app=web,", "env in prod", "env within (a)", "a b c", "=x"] {
            assert!(LabelSelector::parse(text).is_err(), "{text}");
        }
    }

    fn svc(ns: &str, name: &str, annotation: Option<&str>) -> ServiceInfo {
        ServiceInfo {
            key: ObjKey::new(ns, name),
            address: Address::Headless,
            ports: vec![],
            selector: labels(&[("app", name)]),
            labels: labels(&[("app", name)]),
            probe_annotation: annotation.map(String::from),
            critical: false,
        }
    }

    #[test]
    fn selection_rules() {
        let mut sel = Selection {
            exclude_namespaces: vec!["kube-system".into()],
            ..Selection::default()
        };
        assert!(sel.selects(&svc("shop", "web", None), None));
        assert!(!sel.selects(&svc("shop", "web", Some("false")), None));
        assert!(!sel.selects(&svc("kube-system", "metrics", None), None));
        assert!(
            sel.selects(&svc("kube-system", "kube-dns", None), None),
            "always on"
        );
        sel.mode = AnnotationMode::OptIn;
        assert!(!sel.selects(&svc("shop", "web", None), None));
        assert!(sel.selects(&svc("shop", "web", Some("true")), None));
        sel.namespaces = vec!["other".into()];
        assert!(!sel.selects(&svc("shop", "web", Some("true")), None));
        sel.label_selector = LabelSelector::parse("app=web").unwrap();
        sel.namespaces.clear();
        assert!(sel.selects(&svc("shop", "web", Some("true")), None));
        assert!(!sel.selects(&svc("shop", "api", Some("true")), None));
    }

    #[test]
    fn a_namespace_selector_matches_the_labels_of_the_namespace() {
        let sel = |text: &str| Selection {
            namespace_selector: LabelSelector::parse(text).unwrap(),
            ..Selection::default()
        };
        let prod = labels(&[("team", "shop"), ("env", "prod")]);
        let dev = labels(&[("team", "shop"), ("env", "dev")]);
        let web = svc("shop", "web", None);
        let by_labels = sel("team=shop");
        assert!(by_labels.selects(&web, Some(&prod)));
        assert!(by_labels.selects(&web, Some(&dev)));
        assert!(!by_labels.selects(&web, Some(&Labels::default())));
        let by_expression = sel("env in (prod,staging),!legacy");
        assert!(by_expression.selects(&web, Some(&prod)));
        assert!(!by_expression.selects(&web, Some(&dev)));
        assert!(
            !by_expression.selects(&web, None),
            "labels not known: not probed on a partial view"
        );
        assert!(
            by_expression.selects(&svc("kube-system", "kube-dns", None), None),
            "always on, whatever the namespace"
        );
        assert!(
            Selection::default().selects(&web, None),
            "no namespace selector: the namespace's labels are not needed"
        );
        let key = ObjKey::new("shop", "front");
        assert!(by_expression.selects_ingress(&key, None, Some(&prod)));
        assert!(!by_expression.selects_ingress(&key, None, Some(&dev)));
    }
}
