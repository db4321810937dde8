//! Criterion benchmarks of the pure hot paths: resolv.conf parsing and the search-list planner
//! (every DNS probe), target derivation from the stores (every discovery change) and metrics
//! recording and encoding (every probe, every scrape).
//!
//! `cargo bench --bench hot_paths`; compare with a saved baseline as docs/PERFORMANCE.md says.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hopwatch::discovery::targets::{Settings, derive};
use hopwatch::metrics::Metrics;
use hopwatch::probe::dns::{Flavor, ResolvConf, plan};

use common::Shape;

/// A pod's resolv.conf as kubelet writes it.
const POD_RESOLV_CONF: &str = "nameserver 10.96.0.10\n\
    search shop.svc.cluster.local svc.cluster.local cluster.local node.internal\n\
    options ndots:5\n";

fn dns_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("dns_plan");
    group.bench_function("resolv_conf_parse", |b| {
        b.iter(|| ResolvConf::parse(black_box(POD_RESOLV_CONF), Flavor::Glibc));
    });
    let conf = ResolvConf::parse(POD_RESOLV_CONF, Flavor::Glibc);
    for flavor in [Flavor::Glibc, Flavor::Musl, Flavor::Go] {
        group.bench_function(BenchmarkId::new("candidates", flavor.as_str()), |b| {
            b.iter(|| plan::candidates(black_box("api.example.com"), &conf, flavor));
        });
    }
    group.finish();
}

fn targets(c: &mut Criterion) {
    let mut group = c.benchmark_group("derive");
    group.sample_size(20);
    for nodes in [10, 100, 1000] {
        let shape = Shape {
            services: 500,
            ports: 2,
            endpoints: 10,
            nodes,
        };
        let stores = common::stores(shape);
        let settings = Settings::default();
        group.throughput(Throughput::Elements((500 * 2 * 10) as u64));
        group.bench_function(BenchmarkId::new("500svc_2ports_10eps", nodes), |b| {
            b.iter(|| derive(&stores, &settings, "node-0"));
        });
    }
    group.finish();
}

fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    let metrics = common::metrics_with_series(20_000);
    let text = metrics.encode();
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("encode_20k_series", |b| b.iter(|| metrics.encode()));
    group.throughput(Throughput::Elements(8));
    let fresh = Metrics::new();
    let key = common::pod_key(1);
    let round = common::connect_round(8);
    fresh.record(&key, &round);
    group.bench_function("record_connect_round_8", |b| {
        b.iter(|| fresh.record(black_box(&key), black_box(&round)));
    });
    group.finish();
}

/// What the TLS phase does per probe besides the handshake: build a client config around a
/// fresh verifier (as `probe::http::tls` does, so each handshake has its own record), and
/// read the presented chain's facts.
fn tls(c: &mut Criterion) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::client::WebPkiServerVerifier;
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["ok.example.test".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let chain = vec![leaf.der().clone(), ca_cert.der().clone()];
    let ca_der = ca_cert.der().clone();
    let mut group = c.benchmark_group("tls");
    group.bench_function("client_config_per_probe", |b| {
        b.iter(|| {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates([ca_der.clone()]);
            let verifier = WebPkiServerVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider.clone(),
            )
            .build()
            .expect("a verifier");
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        });
    });
    group.bench_function("chain_facts", |b| {
        b.iter(|| hopwatch::probe::http::tls::chain_facts(black_box(&chain)));
    });
    group.finish();
}

criterion_group!(benches, dns_plan, targets, metrics, tls);
criterion_main!(benches);
