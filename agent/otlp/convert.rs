//! From the registry's gathered families to OTLP metrics: pure, the clock passed in.
//!
//! Names stay the Prometheus names (`hopwatch_probes_total`), so one query works on the
//! series scraped from `/metrics` and on those pushed here. Labels become attributes.
//!
//! | Prometheus | OTLP |
//! |---|---|
//! | counter | Sum, monotonic, cumulative |
//! | gauge, untyped | Gauge |
//! | histogram | Histogram, cumulative; buckets per bucket instead of cumulative |
//! | summary | Summary |

use std::collections::HashMap;

use prometheus::proto::{self as prom, MetricFamily, MetricType};

use super::proto::{
    CUMULATIVE, Data, Gauge, Histogram, HistogramDataPoint, KeyValue, Metric, Number,
    NumberDataPoint, Sum, Summary, SummaryDataPoint, ValueAtQuantile, key_value,
};

/// A series: family name and label pairs (sorted by name, as the registry gives them).
type SeriesId = (String, Vec<(String, String)>);

/// Turns gathers into OTLP metrics, remembering when each cumulative series began.
///
/// A cumulative series' start time is the process start for the series of the first push,
/// and the time of the previous push for a series seen for the first time: it began counting
/// after that gather. A series missing from a gather is forgotten, so a target that is
/// removed and comes back (its counters restarting from 0) is sent as a new stream instead of
/// one that went backwards.
#[derive(Debug)]
pub struct Converter {
    /// Start time of the series no push has seen yet, in Unix nanoseconds.
    next_start: u64,
    starts: HashMap<SeriesId, u64>,
}

impl Converter {
    /// `process_start` in Unix nanoseconds: when the registry began counting.
    pub fn new(process_start: u64) -> Converter {
        Converter {
            next_start: process_start,
            starts: HashMap::new(),
        }
    }

    /// The OTLP metrics of `families`, gathered at `now` (Unix nanoseconds).
    pub fn convert(&mut self, families: &[MetricFamily], now: u64) -> Vec<Metric> {
        let mut seen = HashMap::with_capacity(self.starts.len());
        let metrics = families
            .iter()
            .filter(|f| !f.get_metric().is_empty())
            .map(|family| {
                let mut points = Points {
                    family,
                    now,
                    converter: self,
                    seen: &mut seen,
                };
                Metric {
                    name: family.name().to_string(),
                    description: family.help().to_string(),
                    unit: unit(family.name()).to_string(),
                    data: Some(points.data()),
                }
            })
            .collect();
        self.starts = seen;
        self.next_start = now;
        metrics
    }
}

/// The data points of one family, being converted.
struct Points<'a> {
    family: &'a MetricFamily,
    now: u64,
    converter: &'a Converter,
    seen: &'a mut HashMap<SeriesId, u64>,
}

impl Points<'_> {
    fn data(&mut self) -> Data {
        let metrics = self.family.get_metric();
        match self.family.get_field_type() {
            MetricType::COUNTER => Data::Sum(Sum {
                data_points: metrics
                    .iter()
                    .map(|m| self.number(m, m.get_counter().get_value(), true))
                    .collect(),
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
            }),
            MetricType::GAUGE => Data::Gauge(Gauge {
                data_points: metrics
                    .iter()
                    .map(|m| self.number(m, m.get_gauge().get_value(), false))
                    .collect(),
            }),
            MetricType::UNTYPED => Data::Gauge(Gauge {
                data_points: metrics
                    .iter()
                    .map(|m| self.number(m, untyped_value(m), false))
                    .collect(),
            }),
            MetricType::HISTOGRAM => Data::Histogram(Histogram {
                data_points: metrics.iter().map(|m| self.histogram(m)).collect(),
                aggregation_temporality: CUMULATIVE,
            }),
            MetricType::SUMMARY => Data::Summary(Summary {
                data_points: metrics.iter().map(|m| self.summary(m)).collect(),
            }),
        }
    }

    /// A counter (`cumulative`) or gauge point; a gauge has no start time.
    fn number(&mut self, metric: &prom::Metric, value: f64, cumulative: bool) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attributes(metric),
            start_time_unix_nano: if cumulative { self.start(metric) } else { 0 },
            time_unix_nano: self.now,
            value: Some(Number::AsDouble(value)),
        }
    }

    fn histogram(&mut self, metric: &prom::Metric) -> HistogramDataPoint {
        let histogram = metric.get_histogram();
        let (explicit_bounds, bucket_counts) = buckets(histogram);
        HistogramDataPoint {
            attributes: attributes(metric),
            start_time_unix_nano: self.start(metric),
            time_unix_nano: self.now,
            count: histogram.get_sample_count(),
            sum: Some(histogram.get_sample_sum()),
            bucket_counts,
            explicit_bounds,
        }
    }

    fn summary(&mut self, metric: &prom::Metric) -> SummaryDataPoint {
        let summary = metric.get_summary();
        let quantile = |q: &prom::Quantile| ValueAtQuantile {
            quantile: q.quantile(),
            value: q.value(),
        };
        SummaryDataPoint {
            attributes: attributes(metric),
            start_time_unix_nano: self.start(metric),
            time_unix_nano: self.now,
            count: summary.sample_count(),
            sum: summary.sample_sum(),
            quantile_values: summary.get_quantile().iter().map(quantile).collect(),
        }
    }

    /// The start time of a cumulative series, remembered for the next push.
    fn start(&mut self, metric: &prom::Metric) -> u64 {
        let labels = metric.get_label();
        let id = (
            self.family.name().to_string(),
            labels
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect(),
        );
        let start = self
            .converter
            .starts
            .get(&id)
            .copied()
            .unwrap_or(self.converter.next_start);
        self.seen.insert(id, start);
        start
    }
}

/// tikv's client deprecates untyped metrics (its text encoder cannot even write them), so
/// nothing in hopwatch makes one; a collector still could, and it is sent as a gauge.
#[allow(deprecated, reason = "the only way to read an untyped value")]
fn untyped_value(metric: &prom::Metric) -> f64 {
    metric.get_untyped().get_value()
}

fn attributes(metric: &prom::Metric) -> Vec<KeyValue> {
    let label = |l: &prom::LabelPair| key_value(l.name(), l.value());
    metric.get_label().iter().map(label).collect()
}

/// Explicit bounds and per-bucket counts. Prometheus buckets are cumulative and end with an
/// implicit `+Inf` bucket holding every sample; OTLP counts each bucket on its own, the last
/// one (above the highest bound) included, so there is one count more than bounds.
fn buckets(histogram: &prom::Histogram) -> (Vec<f64>, Vec<u64>) {
    let finite = histogram
        .get_bucket()
        .iter()
        .filter(|b| b.upper_bound().is_finite());
    let (mut bounds, mut counts) = (Vec::new(), Vec::new());
    let mut below = 0;
    for bucket in finite {
        bounds.push(bucket.upper_bound());
        counts.push(bucket.cumulative_count().saturating_sub(below));
        below = bucket.cumulative_count();
    }
    counts.push(histogram.get_sample_count().saturating_sub(below));
    (bounds, counts)
}

/// The UCUM unit a Prometheus name's suffix states, or "" when it states none. Consumers that
/// append the unit to the name (Prometheus' OTLP receiver) see the suffix already there.
fn unit(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "By"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{CounterVec, Gauge as PromGauge, HistogramOpts, HistogramVec, Opts, Registry};

    use super::*;
    use crate::otlp::proto::{AnyValue, Value};

    fn registry() -> (Registry, CounterVec, HistogramVec) {
        let registry = Registry::new();
        let counter = CounterVec::new(Opts::new("x_total", "Xs."), &["target"]).unwrap();
        let opts = HistogramOpts::new("x_seconds", "X time.").buckets(vec![0.1, 1.0]);
        let histogram = HistogramVec::new(opts, &["target"]).unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        (registry, counter, histogram)
    }

    fn attribute(point: &[KeyValue]) -> Vec<(String, String)> {
        let text = |kv: &KeyValue| match &kv.value {
            Some(AnyValue {
                value: Some(Value::StringValue(s)),
            }) => (kv.key.clone(), s.clone()),
            other => panic!("{other:?}"),
        };
        point.iter().map(text).collect()
    }

    fn sum_points(metric: &Metric) -> &Sum {
        match &metric.data {
            Some(Data::Sum(sum)) => sum,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_counter_is_a_cumulative_monotonic_sum_with_labels_as_attributes() {
        let (registry, counter, _) = registry();
        counter.with_label_values(&["web"]).inc_by(3.0);
        let metrics = Converter::new(7).convert(&registry.gather(), 100);
        assert_eq!(metrics.len(), 1, "the histogram without series is left out");
        assert_eq!(
            (metrics[0].name.as_str(), metrics[0].description.as_str()),
            ("x_total", "Xs.")
        );
        let sum = sum_points(&metrics[0]);
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, CUMULATIVE);
        let point = &sum.data_points[0];
        assert_eq!(point.value, Some(Number::AsDouble(3.0)));
        assert_eq!((point.start_time_unix_nano, point.time_unix_nano), (7, 100));
        let expected = vec![("target".to_string(), "web".to_string())];
        assert_eq!(attribute(&point.attributes), expected);
    }

    #[test]
    fn histogram_buckets_are_counted_per_bucket_with_the_inf_bucket_last() {
        let (registry, _, histogram) = registry();
        for seconds in [0.05, 0.5, 0.7, 3.0, 4.0, 5.0] {
            histogram.with_label_values(&["web"]).observe(seconds);
        }
        let metrics = Converter::new(0).convert(&registry.gather(), 1);
        let Some(Data::Histogram(h)) = &metrics[0].data else {
            panic!("{:?}", metrics[0]);
        };
        assert_eq!(h.aggregation_temporality, CUMULATIVE);
        let point = &h.data_points[0];
        assert_eq!(point.explicit_bounds, [0.1, 1.0]);
        assert_eq!(point.bucket_counts, [1, 2, 3]);
        assert_eq!(point.count, 6);
        assert_eq!(point.sum, Some(13.25));
        assert_eq!(metrics[0].unit, "s");
    }

    #[test]
    #[allow(
        deprecated,
        reason = "untyped metrics are deprecated, and still must convert"
    )]
    fn gauges_and_untyped_are_gauges_without_start_time() {
        let registry = Registry::new();
        let gauge = PromGauge::with_opts(Opts::new("g_ratio", "G.")).unwrap();
        gauge.set(0.5);
        registry.register(Box::new(gauge)).unwrap();
        let mut families = registry.gather();
        let mut untyped = families[0].clone();
        untyped.set_name("u".to_string());
        untyped.set_field_type(MetricType::UNTYPED);
        let mut metric = untyped.take_metric().remove(0);
        metric.set_untyped({
            let mut u = prom::Untyped::default();
            u.set_value(2.0);
            u
        });
        untyped.set_metric(vec![metric]);
        families.push(untyped);
        let metrics = Converter::new(5).convert(&families, 9);
        let values: Vec<_> = metrics
            .iter()
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => (
                    g.data_points[0].value.clone(),
                    g.data_points[0].start_time_unix_nano,
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            values,
            [
                (Some(Number::AsDouble(0.5)), 0),
                (Some(Number::AsDouble(2.0)), 0)
            ]
        );
    }

    #[test]
    fn a_new_series_starts_at_the_previous_push_and_a_returning_one_starts_again() {
        let (registry, counter, _) = registry();
        counter.with_label_values(&["a"]).inc();
        let mut converter = Converter::new(10);
        let starts = |metrics: Vec<Metric>| -> Vec<(String, u64)> {
            let points = &sum_points(&metrics[0]).data_points;
            let start = |p: &NumberDataPoint| {
                (
                    attribute(&p.attributes)[0].1.clone(),
                    p.start_time_unix_nano,
                )
            };
            points.iter().map(start).collect()
        };
        assert_eq!(
            starts(converter.convert(&registry.gather(), 100)),
            [("a".into(), 10)]
        );
        counter.with_label_values(&["b"]).inc();
        let second = starts(converter.convert(&registry.gather(), 200));
        assert_eq!(second, [("a".into(), 10), ("b".into(), 100)]);
        counter.remove_label_values(&["a"]).unwrap();
        assert_eq!(
            starts(converter.convert(&registry.gather(), 300)),
            [("b".into(), 100)]
        );
        counter.with_label_values(&["a"]).inc();
        let fourth = starts(converter.convert(&registry.gather(), 400));
        assert_eq!(fourth, [("a".into(), 300), ("b".into(), 100)]);
    }

    #[test]
    fn units_come_from_name_suffixes() {
        let units = [
            "hopwatch_probe_duration_seconds",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "hopwatch_probes_total",
            "hopwatch_dns_amplification_ratio",
        ]
        .map(unit);
        assert_eq!(units, ["s", "s", "By", "", ""]);
    }
}
