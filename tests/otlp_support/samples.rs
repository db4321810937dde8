//! A pushed request read back as Prometheus samples, to compare with `/metrics` line for line:
//! histograms expanded to cumulative `_bucket{le}`, `_sum` and `_count` as the text format
//! writes them.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, metric::Data,
    number_data_point,
};

use crate::support::prom::Exposition;

/// One sample as the text format writes it.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// Every sample of `request`, sorted; see the module documentation.
pub fn samples(request: &ExportMetricsServiceRequest) -> Vec<Sample> {
    let mut out = Vec::new();
    for resource in &request.resource_metrics {
        for scope in &resource.scope_metrics {
            for metric in &scope.metrics {
                metric_samples(metric, &mut out);
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn metric_samples(metric: &Metric, out: &mut Vec<Sample>) {
    let name = &metric.name;
    match &metric.data {
        Some(Data::Sum(sum)) => {
            assert!(sum.is_monotonic, "{name}: a counter is a monotonic sum");
            assert_eq!(sum.aggregation_temporality, CUMULATIVE, "{name}");
            out.extend(sum.data_points.iter().map(|p| number(name, p)));
        }
        Some(Data::Gauge(gauge)) => out.extend(gauge.data_points.iter().map(|p| number(name, p))),
        Some(Data::Histogram(histogram)) => {
            assert_eq!(histogram.aggregation_temporality, CUMULATIVE, "{name}");
            for point in &histogram.data_points {
                histogram_samples(name, point, out);
            }
        }
        other => panic!("{name}: unexpected data {other:?}"),
    }
}

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

fn number(name: &str, point: &NumberDataPoint) -> Sample {
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => panic!("{name}: a point without a value"),
    };
    (name.to_string(), labels(&point.attributes), value)
}

/// `_bucket` samples with cumulative counts again, `+Inf` last, then `_sum` and `_count`.
fn histogram_samples(name: &str, point: &HistogramDataPoint, out: &mut Vec<Sample>) {
    assert_eq!(
        point.bucket_counts.len(),
        point.explicit_bounds.len() + 1,
        "{name}: one bucket count more than bounds"
    );
    let base = labels(&point.attributes);
    let bounds = point.explicit_bounds.iter().map(|b| format!("{b}"));
    let mut cumulative = 0;
    for (le, count) in bounds.chain(["+Inf".to_string()]).zip(&point.bucket_counts) {
        cumulative += count;
        let mut labels = base.clone();
        labels.insert("le".to_string(), le);
        out.push((format!("{name}_bucket"), labels, cumulative as f64));
    }
    assert_eq!(
        cumulative, point.count,
        "{name}: buckets add up to the count"
    );
    let sum = point.sum.unwrap_or_else(|| panic!("{name}: no sum"));
    out.push((format!("{name}_sum"), base.clone(), sum));
    out.push((format!("{name}_count"), base, point.count as f64));
}

/// String attributes as a label map.
pub fn labels(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), string_value(kv)))
        .collect()
}

/// A string attribute's value; fails the test for any other kind.
pub fn string_value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("attribute {}: not a string: {other:?}", kv.key),
    }
}

/// The resource attributes of the (single) resource of `request`, in order.
pub fn resource(request: &ExportMetricsServiceRequest) -> Vec<(String, String)> {
    assert_eq!(request.resource_metrics.len(), 1, "one resource");
    let resource = request.resource_metrics[0]
        .resource
        .as_ref()
        .expect("a resource");
    resource
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), string_value(kv)))
        .collect()
}

/// Every metric of `request`, by name.
pub fn metrics(request: &ExportMetricsServiceRequest) -> BTreeMap<String, Metric> {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| (m.name.clone(), m.clone()))
        .collect()
}

/// `/metrics` as samples sorted like [`samples`].
pub fn text_samples(text: &str) -> Vec<Sample> {
    let parsed = Exposition::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<Sample> = parsed
        .samples
        .into_iter()
        .map(|s| (s.name, s.labels, s.value))
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// The `process_*` values move between two reads: only their names and labels are compared.
pub fn without_process_values(samples: Vec<Sample>) -> Vec<Sample> {
    let blank = |(name, labels, value): Sample| {
        let value = if name.starts_with("process_") {
            0.0
        } else {
            value
        };
        (name, labels, value)
    };
    samples.into_iter().map(blank).collect()
}

pub fn names(samples: &[Sample]) -> Vec<String> {
    samples.iter().map(|s| s.0.clone()).collect()
}
