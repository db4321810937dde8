//! The Prometheus text format as the lab scenarios need it: samples with their labels, looked
//! up by name and a subset of labels, and the identity of every series.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// Whether every `(label, value)` pair is on this sample.
    pub fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|have| have == v))
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// `name{a="1",b="2"}`, labels sorted: what makes a series itself.
    pub fn identity(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// One scrape, parsed.
#[derive(Debug, Clone, Default)]
pub struct Expo {
    pub samples: Vec<Sample>,
}

impl Expo {
    /// Parses exposition text; an error names the line.
    pub fn parse(text: &str) -> Result<Expo, String> {
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(sample(line).map_err(|e| format!("line {}: {e}: {line}", n + 1))?);
        }
        Ok(Expo { samples })
    }

    /// Every sample of `name` carrying `labels`.
    pub fn all<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && s.has(labels))
    }

    /// The value of the one sample of `name` with `labels`; `None` when there is none.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.all(name, labels).next().map(|s| s.value)
    }

    /// The sum over every sample of `name` with `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.all(name, labels).map(|s| s.value).sum()
    }

    /// The identities of every series.
    pub fn series(&self) -> BTreeSet<String> {
        self.samples.iter().map(Sample::identity).collect()
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let (head, value) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}').ok_or("no closing brace")?;
            (&line[..close + 1], line[close + 1..].trim())
        }
        None => line.split_once(' ').ok_or("no value")?,
    };
    let (name, labels) = match head.find('{') {
        Some(open) => (&head[..open], labels(&head[open + 1..head.len() - 1])?),
        None => (head, BTreeMap::new()),
    };
    let value = value.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .ok_or("label without a quoted value")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        out.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(out)
}

#[test]
fn parses_labels_with_escapes_and_special_values() {
    let text = "# HELP x y\nm{a=\"1\",b=\"q\\\"x\"} 2\nh_bucket{le=\"+Inf\"} 3\nplain 4.5\n";
    let e = Expo::parse(text).unwrap();
    assert_eq!(e.get("m", &[("b", "q\"x")]), Some(2.0));
    assert_eq!(e.get("h_bucket", &[("le", "+Inf")]), Some(3.0));
    assert_eq!(e.get("plain", &[]), Some(4.5));
    assert_eq!(e.series().len(), 3);
}
