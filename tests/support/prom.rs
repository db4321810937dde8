//! The Prometheus text exposition format (0.0.4), parsed just enough to assert on series.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// Whether every `(label, value)` pair given is on this sample (other labels may be too).
    pub fn matches(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|have| have == v))
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# TYPE` per metric family: `counter`, `gauge`, `histogram`, …
    pub types: BTreeMap<String, String>,
    /// `# HELP` per metric family.
    pub helps: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses exposition text; an error names the line.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        for (number, line) in text.lines().enumerate() {
            out.parse_line(line)
                .map_err(|e| format!("line {}: {e}: {line:?}", number + 1))?;
        }
        Ok(out)
    }

    fn parse_line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            self.parse_comment(comment.trim_start());
            return Ok(());
        }
        self.samples.push(parse_sample(line)?);
        Ok(())
    }

    fn parse_comment(&mut self, comment: &str) {
        let mut words = comment.splitn(3, ' ');
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            return;
        };
        let rest = words.next().unwrap_or("").to_owned();
        match kind {
            "TYPE" => {
                self.types.insert(name.to_owned(), rest);
            }
            "HELP" => {
                self.helps.insert(name.to_owned(), rest);
            }
            _ => {}
        }
    }

    /// Every sample named `name` carrying all of `labels`.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && s.matches(labels))
            .collect()
    }

    /// The value of the one sample named `name` carrying `labels`; fails the test, listing
    /// what exists, when there is none or more than one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.series(name, labels).as_slice() {
            [one] => one.value,
            [] => panic!(
                "no series {name} with {labels:?}; series of that name:\n{}",
                self.describe(name)
            ),
            many => panic!("{} series {name} match {labels:?}: {many:#?}", many.len()),
        }
    }

    /// The sum over every sample named `name` carrying `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).iter().map(|s| s.value).sum()
    }

    /// The `# TYPE` of a metric family.
    pub fn type_of(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// Every sample of a name, one per line, for failure messages.
    pub fn describe(&self, name: &str) -> String {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| format!("  {:?} {}", s.labels, s.value))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let value = rest.split_whitespace().next().ok_or("no value")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value)?,
    })
}

/// Parses `a="x",b="y"}` (after the opening brace); returns the labels and the text after `}`.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (name, rest) = text.split_once("=\"").ok_or("a label without =\"")?;
        let (value, rest) = unescape_until_quote(rest)?;
        labels.insert(name.trim().to_owned(), value);
        text = rest;
    }
}

fn unescape_until_quote(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => value.push('\n'),
                Some(other) => value.push(other),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("an unterminated label value".into())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}
