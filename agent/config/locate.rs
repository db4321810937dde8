//! Turns a serde-saphyr error into a [`Problem`] that names the field path.
//!
//! serde-saphyr reports where an error is (line, column, offset) but not in which field. On
//! error only, the text is read a second time into an untyped tree of [`Spanned`] nodes, and
//! the path is found by walking that tree to the error's offset. If that second read fails
//! too, the text is not valid YAML and its own error is the one worth showing.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::options::{DuplicateKeyPolicy, NonFiniteFloatPolicy};
use serde_saphyr::{Error, MessageFormatter, Spanned, UserMessageFormatter};

use super::fields::{one_line, show};
use super::raw::Problem;

/// Describes a failed read of `text` (already without a byte order mark).
pub(super) fn problem(text: &str, err: &Error) -> Problem {
    let err = original(err);
    let options = serde_saphyr::options! {
        with_snippet: false,
        emit_comments: false,
        // Accept what the typed read may have rejected, so that only YAML errors remain.
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        non_finite_float_policy: NonFiniteFloatPolicy::PassThrough,
    };
    let tree = match serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options) {
        Ok(tree) => tree,
        Err(syntax) => {
            return Problem::new(original(&syntax).location(), "", library_message(&syntax));
        }
    };
    let Some(at) = err.location().filter(|at| at.line() > 0) else {
        return Problem::new(None, "", library_message(err));
    };
    let mut path = Vec::new();
    let (node, key) = find(&tree, at.span().offset(), &mut path);
    let path = render(&path);
    // serde-saphyr reports a missing field at the mapping's last key; its first line reads better.
    let at = match (err, &node.value) {
        (Error::SerdeMissingField { .. }, Node::Map(_)) => node.referenced,
        _ => at,
    };
    let message = match key.filter(|k| !matches!(k.value, Node::Scalar(_))) {
        // Every field name is a string: a list or mapping as a key is the problem itself.
        Some(key) if is_type_error(err) => {
            format!("expected a field name, found {}", found(text, key))
        }
        _ => message(err, &path, found(text, node)),
    };
    Problem::new(Some(at), path, message)
}

/// The error itself, without the snippet and alias wrappers.
fn original(mut err: &Error) -> &Error {
    loop {
        match err {
            Error::WithSnippet { error, .. } | Error::AliasError { error, .. } => err = error,
            _ => return err,
        }
    }
}

/// serde-saphyr's own wording, without its location suffix.
fn library_message(err: &Error) -> String {
    // The formatter leaves escaping to its caller; the message must stay one line.
    one_line(&UserMessageFormatter.format_message(original(err)))
}

/// Our wording for the errors a config file commonly has; the library's for the rest.
fn message(err: &Error, path: &str, found: String) -> String {
    match err {
        Error::SerdeUnknownField {
            field, expected, ..
        } => {
            let expected: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
            format!(
                "unknown field {}, expected one of {}",
                show(field),
                expected.join(", ")
            )
        }
        Error::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        Error::DuplicateMappingKey { key: Some(key), .. } => format!("duplicate key {}", show(key)),
        _ => match expected(path).filter(|_| is_type_error(err)) {
            Some(expected) => format!("expected {expected}, found {found}"),
            None => library_message(err),
        },
    }
}

/// The value is of the wrong kind: a list for a string, text for a number, and so on.
fn is_type_error(err: &Error) -> bool {
    matches!(
        err,
        Error::InvalidScalar { .. }
            | Error::Unexpected { .. }
            | Error::NullIntoString { .. }
            | Error::SerdeInvalidType { .. }
            | Error::SerdeInvalidValue { .. }
    )
}

/// What the field at `path` takes, for "expected …, found …".
fn expected(path: &str) -> Option<&'static str> {
    // Under these the keys are the user's, so the last step names nothing of ours.
    if path.starts_with("otlp.headers.") || path.contains(".headers.") {
        return Some("a header value");
    }
    if path.starts_with("otlp.resource.") {
        return Some("an attribute value");
    }
    let field = path.rsplit(['.', '[']).next().unwrap_or(path);
    let in_list = path.ends_with(']');
    Some(match field {
        "" => "a mapping of settings",
        "listen" => "an address and port such as `0.0.0.0:9808`",
        "max_concurrency" => "a whole number from 1 to 10000",
        "interval_seconds" | "timeout_seconds" | "jitter_seconds" => "a number of seconds",
        "defaults" => "a mapping of default settings",
        "dns" if path == "dns" => "a list of DNS targets",
        "dns" => "a mapping of DNS settings",
        "flavor" => "a resolver flavor (`glibc`, `musl`, `musl-legacy` or `go`)",
        "qtypes" => "a list of record types such as `[A, AAAA]`",
        "resolv_conf" => "a file path",
        "name" => "a DNS name",
        "id" => "a target id",
        "server" | "node_local_dns" => "an IP address, optionally with a port",
        "kubernetes" => "a mapping of Kubernetes settings",
        "kubeconfig" => "a file path",
        "cluster_domain" => "a DNS name such as `cluster.local`",
        "pod_probe_nodes" | "service_probe_nodes" | "probe_nodes" => {
            "a whole number from 1 to 1000"
        }
        "sweep_seconds" => "a number of seconds",
        "services" => "a mapping of Service selection settings",
        "namespaces" | "exclude_namespaces" => "a list of namespace names",
        "label_selector" => "a label selector such as `app=web,tier!=cache`",
        "namespace_selector" => "a label selector such as `team=shop,env in (prod,staging)`",
        "classes" => "a list of IngressClass names",
        "annotation" => "an annotation key such as `hopwatch.io/probe`",
        "annotation_mode" => "`opt-out` or `opt-in`",
        "always" => "a list of Services as `namespace/name`",
        "connect" => "a mapping of schedule settings",
        "service" => "a Service as `namespace/name`",
        "names" => "a list of DNS names",
        "http" if path == "http" => "a list of HTTP targets",
        "tcp" if path == "tcp" => "a list of TCP targets",
        "url" => "an http:// or https:// URL",
        "connect_to" => "an IP address, optionally with a port",
        "expected_status" => "a list of status codes and ranges such as `[200, \"300-399\"]`",
        "insecure" | "service_histogram" | "follow_redirects" | "enabled" => "`true` or `false`",
        "method" => "an HTTP method such as `GET` or `POST`",
        "body" => "the request body, as text",
        "expected_body" => "a list of regular expressions",
        "cert_file" | "key_file" => "a file path",
        "ca_file" => "a file path",
        "address" => "an IP address and port such as `10.96.0.10:53`",
        "hop" => "`service` or `pod`",
        "ingress" => "a mapping of Ingress probe settings",
        "gateway_api" => "a mapping of Gateway API settings",
        "otlp" => "a mapping of OTLP settings",
        "endpoint" => "an http:// or https:// URL",
        "headers" => "a mapping of header names to values",
        "resource" => "a mapping of attribute keys to values",
        _ if in_list && path.starts_with("dns[") && !path.contains('.') => {
            "a mapping with at least `name`"
        }
        _ if in_list && path.starts_with("http[") && !path.contains('.') => {
            "a mapping with at least `url`"
        }
        _ if in_list && path.starts_with("tcp[") && !path.contains('.') => {
            "a mapping with at least `address`"
        }
        _ if in_list && path.contains(".expected_status[") => {
            "a status code or a range such as `200-299`"
        }
        _ if in_list && path.contains(".qtypes[") => "a record type, `A` or `AAAA`",
        _ if in_list && path.contains(".expected_body[") => "a regular expression",
        _ if in_list && path.contains("namespaces[") => "a namespace name",
        _ if in_list && path.contains(".always[") => "a Service as `namespace/name`",
        _ if in_list && path.contains(".classes[") => "an IngressClass name",
        _ if in_list && path.contains(".names[") => "a DNS name",
        _ => return None,
    })
}

/// How the offending node looks, for "expected …, found …".
fn found(text: &str, node: &Spanned<Node>) -> String {
    match &node.value {
        Node::Null => "null".to_string(),
        Node::Seq(_) => "a list".to_string(),
        Node::Map(_) => "a mapping".to_string(),
        Node::Scalar(parsed) => {
            let span = node.referenced.span();
            let written = span
                .byte_offset()
                .zip(span.byte_len())
                .and_then(|(offset, len)| {
                    let start = usize::try_from(offset).ok()?;
                    text.get(start..start.checked_add(usize::try_from(len).ok()?)?)
                });
            show(written.filter(|w| !w.is_empty()).unwrap_or(parsed))
        }
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Walks down to the node an error at character `offset` is about, recording the path.
/// Also gives the mapping key the error is at, if it is at one.
///
/// Nodes only know where they start, so the child taken is the last one starting at or
/// before `offset`. An error at a mapping key (unknown field, duplicate key, and a missing
/// field, reported at the mapping's first key) is about the mapping: the walk stops there.
fn find<'a>(
    node: &'a Spanned<Node>,
    offset: u64,
    path: &mut Vec<Step>,
) -> (&'a Spanned<Node>, Option<&'a Spanned<Node>>) {
    let start = |n: &Spanned<Node>| n.referenced.span().offset();
    match &node.value {
        Node::Map(entries) => {
            let entry = entries
                .iter()
                .filter(|(k, _)| start(k) <= offset)
                .max_by_key(|(k, _)| start(k));
            match entry {
                Some((key, value)) if start(key) < offset && start(value) <= offset => {
                    path.push(Step::Key(key.value.to_string()));
                    find(value, offset, path)
                }
                Some((key, _)) if start(key) == offset => (node, Some(key)),
                _ => (node, None),
            }
        }
        Node::Seq(items) => {
            let item = items
                .iter()
                .enumerate()
                .filter(|(_, n)| start(n) <= offset)
                .max_by_key(|(_, n)| start(n));
            match item {
                Some((i, value)) => {
                    path.push(Step::Index(i));
                    find(value, offset, path)
                }
                None => (node, None),
            }
        }
        Node::Null | Node::Scalar(_) => (node, None),
    }
}

/// Any YAML value, as much as finding a path needs.
#[derive(Debug)]
enum Node {
    Null,
    Scalar(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Scalar(s) => f.write_str(s),
            Node::Null => f.write_str("~"),
            Node::Seq(_) | Node::Map(_) => f.write_str("?"),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Spanned<Node> {
        serde_saphyr::from_str(text).unwrap()
    }

    /// The path and node kind `find` gives for the character offset of `needle` in `text`.
    fn at(text: &str, needle: &str) -> (String, String) {
        let offset = text.find(needle).unwrap() as u64;
        let mut path = Vec::new();
        let root = tree(text);
        let (node, key) = find(&root, offset, &mut path);
        let kind = match (&node.value, key) {
            (_, Some(_)) => "key".to_string(),
            (Node::Scalar(s), None) => s.clone(),
            (other, None) => format!("{other:?}").chars().take(3).collect(),
        };
        (render(&path), kind)
    }

    #[test]
    fn finds_the_field_at_an_offset() {
        let text = "defaults:\n  dns:\n    qtypes: [A, MX]\ndns:\n  - name: a\n    bogus: 1\n";
        assert_eq!(
            at(text, "MX"),
            ("defaults.dns.qtypes[1]".into(), "MX".into())
        );
        assert_eq!(at(text, "[A"), ("defaults.dns.qtypes".into(), "Seq".into()));
        // At a key, the error is about the mapping that holds it.
        assert_eq!(at(text, "bogus"), ("dns[0]".into(), "key".into()));
        assert_eq!(at(text, "qtypes"), ("defaults.dns".into(), "key".into()));
        assert_eq!(at(text, "defaults"), ("".into(), "key".into()));
    }

    #[test]
    fn renders_paths() {
        let path = [
            Step::Key("dns".into()),
            Step::Index(2),
            Step::Key("qtypes".into()),
            Step::Index(0),
        ];
        assert_eq!(render(&path), "dns[2].qtypes[0]");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn names_what_a_field_expects() {
        assert_eq!(expected("dns"), Some("a list of DNS targets"));
        assert_eq!(expected("defaults.dns"), Some("a mapping of DNS settings"));
        assert_eq!(expected("dns[4]"), Some("a mapping with at least `name`"));
        assert_eq!(
            expected("dns[4].qtypes[1]"),
            Some("a record type, `A` or `AAAA`")
        );
        assert_eq!(
            expected("dns[4].timeout_seconds"),
            Some("a number of seconds")
        );
        assert_eq!(expected("http[0]"), Some("a mapping with at least `url`"));
        assert_eq!(
            expected("kubernetes.ingress.expected_status[1]"),
            Some("a status code or a range such as `200-299`")
        );
        // A header called `id` is still a header.
        assert_eq!(expected("otlp.headers.id"), Some("a header value"));
        assert_eq!(expected("otlp.resource.name"), Some("an attribute value"));
        assert_eq!(expected("nowhere"), None);
    }
}
