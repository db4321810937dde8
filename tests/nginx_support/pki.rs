//! A throwaway PKI made at run time with rcgen: a test CA, an unknown CA, an intermediate, and
//! one leaf per certificate fault the HTTP probe must name. Validity dates are whole seconds
//! relative to "now", so a test can compare the probe's expiry with what was generated.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

pub const DAY: i64 = 86_400;

/// A server certificate as nginx serves it.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The leaf then any intermediate, PEM.
    pub chain_pem: String,
    pub key_pem: String,
    pub sans: Vec<String>,
    /// The leaf's validity, in Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The earliest notAfter of the served chain.
    pub chain_not_after: i64,
}

/// Every certificate the nginx lab serves, named by the fault it carries.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The trusted test CA, PEM: the probe's CA bundle.
    pub ca_pem: String,
    /// ok, bad-gateway, no-endpoints, app and mtls hosts, and `localhost`; valid for 90 days.
    pub valid: Leaf,
    /// Expires five days from now.
    pub soon: Leaf,
    /// Expired ten days ago.
    pub expired: Leaf,
    /// Valid, but for `other.example.test`: served for the wrong host.
    pub wrong: Leaf,
    /// Valid dates and names, signed by a CA the probe does not trust.
    pub unknown_ca: Leaf,
    /// Valid from ten days from now.
    pub future: Leaf,
    /// Signed by an intermediate that expires before the leaf.
    pub chained: Leaf,
    /// `*.example.test`, for nginx's default server.
    pub wildcard: Leaf,
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: Vec<u8>,
}

impl Pki {
    /// Generates everything, with validity relative to `now` (Unix seconds).
    pub fn generate(now: i64) -> Pki {
        let root = ca("hopwatch test root CA", now - DAY, now + 3650 * DAY, None);
        let stranger = ca("hopwatch unknown CA", now - DAY, now + 3650 * DAY, None);
        let intermediate_until = now + 30 * DAY;
        let intermediate = ca(
            "hopwatch test intermediate",
            now - DAY,
            intermediate_until,
            Some(&root),
        );
        let valid_names = [
            "ok.example.test",
            "bad-gateway.example.test",
            "no-endpoints.example.test",
            "localhost",
            "app.example.test",
            "mtls.example.test",
        ];
        let mut chained = leaf(
            &["chain.example.test"],
            now - DAY,
            now + 300 * DAY,
            &intermediate,
        );
        chained.chain_pem.push_str(&intermediate.pem);
        chained.chain_not_after = intermediate_until;
        Pki {
            ca_pem: root.pem.clone(),
            valid: leaf(&valid_names, now - DAY, now + 90 * DAY, &root),
            soon: leaf(&["soon.example.test"], now - 30 * DAY, now + 5 * DAY, &root),
            expired: leaf(
                &["expired.example.test"],
                now - 60 * DAY,
                now - 10 * DAY,
                &root,
            ),
            wrong: leaf(&["other.example.test"], now - DAY, now + 90 * DAY, &root),
            unknown_ca: leaf(
                &["unknown-ca.example.test"],
                now - DAY,
                now + 90 * DAY,
                &stranger,
            ),
            future: leaf(
                &["future.example.test"],
                now + 10 * DAY,
                now + 100 * DAY,
                &root,
            ),
            chained,
            wildcard: leaf(&["*.example.test"], now - DAY, now + 90 * DAY, &root),
        }
    }
}

fn params(names: &[&str], not_before: i64, not_after: i64) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    // rcgen takes `time::OffsetDateTime`; adding to its epoch avoids naming the crate.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(not_before as u64);
    params.not_after = epoch + std::time::Duration::from_secs(not_after as u64);
    params
}

fn ca(name: &str, not_before: i64, not_after: i64, parent: Option<&Ca>) -> Ca {
    let mut params = params(&[], not_before, not_after);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = match parent {
        Some(parent) => params.signed_by(&key, &parent.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
        der: cert.der().to_vec(),
    }
}

fn leaf(names: &[&str], not_before: i64, not_after: i64, issuer: &Ca) -> Leaf {
    let mut params = params(names, not_before, not_after);
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer.issuer).unwrap();
    Leaf {
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        sans: names.iter().map(|n| n.to_string()).collect(),
        not_before,
        not_after,
        chain_not_after: not_after,
    }
}

/// A chain of `length` certificates: a leaf for `names`, then `length - 1` intermediates, each
/// signed by the next, the last by a root whose PEM is returned: what a hostile (or broken)
/// server sends to make a client's path building work hard.
pub struct LongChain {
    pub root_pem: String,
    /// The leaf first, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// The leaf's key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

pub fn long_chain(names: &[&str], length: usize, now: i64) -> LongChain {
    let root = ca(
        "hopwatch long-chain root",
        now - DAY,
        now + 3650 * DAY,
        None,
    );
    let mut issuers = vec![root];
    let mut ders = Vec::new();
    for n in 1..length {
        let name = format!("hopwatch intermediate {n}");
        let parent = issuers.last().expect("the root at least");
        let next = ca(&name, now - DAY, now + 3650 * DAY, Some(parent));
        ders.push(next.der.clone());
        issuers.push(next);
    }
    let mut params = params(names, now - DAY, now + 90 * DAY);
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let key = KeyPair::generate().unwrap();
    let issuer = issuers.last().expect("an issuer");
    let leaf = params.signed_by(&key, &issuer.issuer).unwrap();
    ders.reverse();
    let mut chain_der = vec![leaf.der().to_vec()];
    chain_der.extend(ders);
    LongChain {
        root_pem: issuers[0].pem.clone(),
        chain_der,
        key_der: key.serialize_der(),
    }
}
