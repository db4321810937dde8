//! Fixed probe outcomes recorded into a fresh [`Metrics`], and a small PKI for the TLS test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hopwatch::metrics::Metrics;
use hopwatch::probe::dns::{
    DnsCycle, Flavor, LookupReport, Mode, Qtype, QueryRecord, QueryStatus, Transport,
};
use hopwatch::probe::{Detail, Failure, Hop, Outcome, TargetKey};

/// The DNS target `id`.
pub fn key(id: &str) -> TargetKey {
    TargetKey {
        hop: Hop::Dns,
        id: id.to_string(),
    }
}

fn query(qname: &str, qtype: Qtype, status: QueryStatus) -> QueryRecord {
    QueryRecord {
        qname: qname.to_string(),
        qtype,
        transport: Transport::Udp,
        server: SocketAddr::from(([10, 96, 0, 10], 53)),
        status,
        duration: Duration::from_millis(1),
        answers: u16::from(status == QueryStatus::NoError && qtype == Qtype::A),
        truncated: false,
    }
}

fn report(mode: Mode, queries: Vec<QueryRecord>, millis: u64) -> LookupReport {
    LookupReport {
        name: "web".to_string(),
        mode,
        flavor: Flavor::Glibc,
        result: Ok(()),
        addresses: vec![[192, 0, 2, 10].into()],
        duration: Duration::from_millis(millis),
        queries,
        discarded: hopwatch::probe::dns::Discards::default(),
    }
}

/// `web` through a two-entry search list: two NXDOMAIN steps, then the answer; then the FQDN.
pub fn dns_outcome() -> Outcome {
    let (nx, ok) = (QueryStatus::NxDomain, QueryStatus::NoError);
    let search = vec![
        query("web.default.svc.cluster.local.", Qtype::A, nx),
        query("web.default.svc.cluster.local.", Qtype::Aaaa, nx),
        query("web.svc.cluster.local.", Qtype::A, nx),
        query("web.svc.cluster.local.", Qtype::Aaaa, nx),
        query("web.", Qtype::A, ok),
        query("web.", Qtype::Aaaa, ok),
    ];
    let fqdn = vec![query("web.", Qtype::A, ok), query("web.", Qtype::Aaaa, ok)];
    Outcome {
        result: Ok(()),
        duration: Duration::from_millis(3),
        detail: Detail::Dns(DnsCycle {
            server: "resolv.conf".to_string(),
            search: report(Mode::Search, search, 3),
            fqdn: Some(report(Mode::Fqdn, fqdn, 1)),
        }),
    }
}

pub fn timeout_outcome() -> Outcome {
    Outcome {
        result: Err(Failure::Timeout),
        duration: Duration::from_secs(5),
        detail: Detail::None,
    }
}

/// Metrics with two DNS targets: `web` (three successful cycles) and `slow` (a timeout).
pub fn recorded() -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    for _ in 0..3 {
        metrics.record(&key("web"), &dns_outcome());
    }
    metrics.start(&key("slow"));
    metrics.record(&key("slow"), &timeout_outcome());
    metrics.observe_lag(Duration::from_micros(300));
    metrics.reload_failed();
    metrics
}

/// A CA, and a server certificate for `localhost` it signed: the server's config and the
/// roots a client must trust.
pub fn pki() -> (rustls::ServerConfig, rustls::RootCertStore) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    (config, roots)
}
