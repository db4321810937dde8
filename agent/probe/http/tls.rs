//! The TLS phase: a full handshake with SNI, the certificate verdict recorded rather than
//! enforced blindly, and the facts of the presented chain.
//!
//! A certificate that fails verification is exactly what the probe must measure, yet rustls
//! aborts the handshake before the chain is visible to the caller. So the verifier is
//! `RecordingVerifier`: it asks rustls's own WebPKI verifier, keeps the verdict and the chain,
//! and accepts anyway when the target is `insecure`. Either way the chain is parsed with
//! x509-parser for its expiry, and the verdict names one closed reason:
//!
//! | rustls certificate error                | reason                  |
//! |-----------------------------------------|-------------------------|
//! | `Expired`                               | `tls_expired`           |
//! | `NotValidYet`                           | `tls_not_yet_valid`     |
//! | `UnknownIssuer` (no path to a root)     | `tls_unknown_ca`        |
//! | `NotValidForName`                       | `tls_hostname_mismatch` |
//! | anything else, or no certificate at all | `tls_handshake`         |
//!
//! WebPKI checks validity dates before the issuer, and the issuer before the name, so a
//! certificate with several faults reports the first in that order.
//!
//! The ALPN offer is `h2`, `http/1.1`: the server's choice decides the protocol of the
//! request. A client certificate ([`ClientCert`]) is presented when the target has one and the
//! server asks.
//!
//! Every probe builds its own config: the verifier's record belongs to one handshake, and a
//! config without a session cache cannot resume, which would skip both the certificate and half
//! the handshake time.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::identity::ClientCert;
use crate::probe::Failure;

/// What the TLS phase learnt about the server's certificate and the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The earliest `notAfter` of every certificate the server presented, in Unix seconds:
    /// when the first link of the chain expires.
    pub not_after_earliest: i64,
    /// The leaf's `notBefore`, in Unix seconds.
    pub not_before: i64,
    /// Whether the chain verified against the CA bundle for the URL's host.
    pub verified: bool,
    /// Why it did not verify; `None` when it did.
    pub verify_error: Option<Failure>,
    /// The leaf's subjectAltName DNS names.
    pub sans: Vec<String>,
    /// `TLSv1.3` or `TLSv1.2`; `None` when the handshake did not complete.
    pub protocol: Option<String>,
}

/// The roots a server certificate is verified against.
#[derive(Clone, PartialEq)]
pub enum CaBundle {
    /// Mozilla's roots as shipped by `webpki-roots`, for public hosts.
    WebPki,
    /// These CA certificates instead, for a private CA (like curl's `--cacert`).
    Pem(Vec<CertificateDer<'static>>),
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaBundle::WebPki => f.write_str("WebPki"),
            CaBundle::Pem(certs) => write!(f, "Pem({} certificates)", certs.len()),
        }
    }
}

/// Why a CA bundle cannot be used. Each message names its source.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot read CA file {source_name}: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("CA file {source_name}: larger than {limit} bytes; a CA bundle is a few hundred KiB")]
    TooLarge { source_name: String, limit: u64 },
    #[error("CA file {source_name}: not valid PEM: {detail}")]
    Pem { source_name: String, detail: String },
    #[error("CA file {source_name}: no CERTIFICATE block")]
    Empty { source_name: String },
    #[error("CA file {source_name}: certificate #{number} cannot be a trust anchor: {detail}")]
    Anchor {
        source_name: String,
        number: usize,
        detail: String,
    },
}

impl CaBundle {
    /// The most a CA file may hold: Debian's whole bundle of public roots is about 220 KiB. A
    /// path pointed at a device or a huge file is refused before it is read into memory.
    pub const MAX_FILE_BYTES: u64 = 8 << 20;

    /// Reads a PEM bundle from a file of at most [`CaBundle::MAX_FILE_BYTES`].
    pub fn from_file(path: &std::path::Path) -> Result<CaBundle, CaError> {
        use std::io::Read;
        let source_name = path.display().to_string();
        let mut bytes = Vec::new();
        let read = std::fs::File::open(path)
            .and_then(|file| file.take(Self::MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
        match read {
            Ok(n) if n as u64 > Self::MAX_FILE_BYTES => Err(CaError::TooLarge {
                source_name,
                limit: Self::MAX_FILE_BYTES,
            }),
            Ok(_) => CaBundle::from_pem(&bytes, &source_name),
            Err(error) => Err(CaError::Read { source_name, error }),
        }
    }

    /// Parses PEM bytes; `source_name` names them in errors. Every certificate must be usable
    /// as a trust anchor, so a bad bundle is refused here rather than failing every probe.
    pub fn from_pem(bytes: &[u8], source_name: &str) -> Result<CaBundle, CaError> {
        let source_name = source_name.to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|err| CaError::Pem {
                source_name: source_name.clone(),
                detail: err.to_string(),
            })?;
        if certs.is_empty() {
            return Err(CaError::Empty { source_name });
        }
        let mut store = RootCertStore::empty();
        for (index, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|err| CaError::Anchor {
                source_name: source_name.clone(),
                number: index + 1,
                detail: err.to_string(),
            })?;
        }
        Ok(CaBundle::Pem(certs))
    }

    fn roots(&self) -> RootCertStore {
        match self {
            CaBundle::WebPki => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            CaBundle::Pem(certs) => {
                let mut store = RootCertStore::empty();
                // Checked by `from_pem`; a certificate refused here only shrinks the store.
                let _ = store.add_parsable_certificates(certs.iter().cloned());
                store
            }
        }
    }
}

/// Asks rustls's WebPKI verifier and records its verdict and the presented chain.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    record: Mutex<Option<Record>>,
    accept_invalid: bool,
}

#[derive(Debug, Clone)]
struct Record {
    verdict: Result<(), Failure>,
    chain: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        let record = Record {
            verdict: verdict.as_ref().map(|_| ()).map_err(verify_failure),
            chain,
        };
        *self.record.lock().unwrap_or_else(PoisonError::into_inner) = Some(record);
        match verdict {
            Err(_) if self.accept_invalid => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Names why a certificate failed verification; the table in the module docs.
pub fn verify_failure(err: &rustls::Error) -> Failure {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::Expired | C::ExpiredContext { .. } => Failure::TlsExpired,
            C::NotValidYet | C::NotValidYetContext { .. } => Failure::TlsNotYetValid,
            C::UnknownIssuer => Failure::TlsUnknownCa,
            C::NotValidForName | C::NotValidForNameContext { .. } => Failure::TlsHostnameMismatch,
            _ => Failure::TlsHandshake,
        },
        _ => Failure::TlsHandshake,
    }
}

/// How a TLS phase ended: the stream when the handshake completed, what was seen of the
/// certificate, and the failure that ends the probe.
pub(super) struct Handshake {
    pub stream: Option<TlsStream<TcpStream>>,
    /// The server chose `h2` from the ALPN offer (`h2`, `http/1.1`).
    pub h2: bool,
    pub info: Option<TlsInfo>,
    pub failure: Option<Failure>,
}

/// Runs the handshake on `tcp` with SNI `host` (none for an IP address), verifying against
/// `bundle` for `host`. With `insecure`, a certificate verdict is recorded but ends nothing.
/// `client` is presented when the server asks for a certificate.
pub(super) async fn handshake(
    tcp: TcpStream,
    host: &str,
    (bundle, insecure): (&CaBundle, bool),
    client: Option<&ClientCert>,
    deadline: Instant,
) -> Handshake {
    let failed = |failure| Handshake {
        stream: None,
        h2: false,
        info: None,
        failure: Some(failure),
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        return failed(Failure::Config);
    };
    let Some((config, verifier)) = client_config(bundle, insecure, client) else {
        return failed(Failure::Config);
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let attempt = tokio::time::timeout_at(deadline, connector.connect(name, tcp)).await;
    let record = verifier
        .record
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (stream, failure) = match attempt {
        Err(_elapsed) => (None, Some(Failure::Timeout)),
        Ok(Ok(stream)) => (Some(stream), None),
        // The verdict says why the handshake was aborted; without one the failure came earlier.
        Ok(Err(_)) => match record.as_ref().map(|r| r.verdict) {
            Some(Err(reason)) => (None, Some(reason)),
            _ => (None, Some(Failure::TlsHandshake)),
        },
    };
    let protocol = stream
        .as_ref()
        .and_then(|s| s.get_ref().1.protocol_version());
    let info = record.and_then(|r| tls_info(&r, protocol.map(protocol_name)));
    let h2 = stream
        .as_ref()
        .and_then(|s| s.get_ref().1.alpn_protocol())
        .is_some_and(|alpn| alpn == b"h2");
    Handshake {
        stream,
        h2,
        info,
        failure,
    }
}

fn client_config(
    bundle: &CaBundle,
    insecure: bool,
    client: Option<&ClientCert>,
) -> Option<(Arc<ClientConfig>, Arc<RecordingVerifier>)> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(bundle.roots());
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .ok()?;
    let verifier = Arc::new(RecordingVerifier {
        inner,
        record: Mutex::new(None),
        accept_invalid: insecure,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let mut config = match client {
        Some(cert) => {
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(cert.certified())))
        }
        None => builder.with_no_client_auth(),
    };
    // HTTP/2 when the server offers it, as browsers and ingress-nginx's clients get it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Some((Arc::new(config), verifier))
}

fn protocol_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    }
}

fn tls_info(record: &Record, protocol: Option<String>) -> Option<TlsInfo> {
    let facts = chain_facts(&record.chain)?;
    Some(TlsInfo {
        not_after_earliest: facts.not_after_earliest,
        not_before: facts.not_before,
        verified: record.verdict.is_ok(),
        verify_error: record.verdict.err(),
        sans: facts.sans,
        protocol,
    })
}

/// What the probe reads from a presented chain (leaf first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFacts {
    pub not_after_earliest: i64,
    pub not_before: i64,
    pub sans: Vec<String>,
}

/// Parses the chain; `None` when the leaf does not parse. Certificates after the leaf that do
/// not parse are left out of the earliest expiry (WebPKI refuses such a chain anyway).
pub fn chain_facts(chain: &[CertificateDer<'_>]) -> Option<ChainFacts> {
    let leaf = parse(chain.first()?)?;
    let not_after_earliest = chain
        .iter()
        .skip(1)
        .filter_map(|der| parse(der).map(|c| c.validity().not_after.timestamp()))
        .fold(leaf.validity().not_after.timestamp(), i64::min);
    let sans = match leaf.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(ChainFacts {
        not_after_earliest,
        not_before: leaf.validity().not_before.timestamp(),
        sans,
    })
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    /// 2024-01-01 00:00:00 UTC.
    const JAN_2024: i64 = 1_704_067_200;

    fn params(sans: &[&str], from: i64, until: i64) -> CertificateParams {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + std::time::Duration::from_secs(from as u64);
        params.not_after = epoch + std::time::Duration::from_secs(until as u64);
        params
    }

    /// A CA valid until `ca_until` and a leaf it signed, valid until `leaf_until`: DER, leaf first.
    fn chain(ca_until: i64, leaf_until: i64) -> Vec<CertificateDer<'static>> {
        let mut ca = params(&[], JAN_2024 - 1000, ca_until);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params(&["a.test", "10.0.0.1", "b.test"], JAN_2024, leaf_until)
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        vec![leaf.der().clone(), ca_cert.der().clone()]
    }

    #[test]
    fn chain_facts_take_the_earliest_expiry_and_the_leaf_names() {
        let leaf_first = chain(JAN_2024 + 900_000, JAN_2024 + 86_400);
        let facts = chain_facts(&leaf_first).unwrap();
        assert_eq!(facts.not_after_earliest, JAN_2024 + 86_400);
        assert_eq!(facts.not_before, JAN_2024);
        assert_eq!(facts.sans, ["a.test", "b.test"]);
        // An intermediate that expires first is the chain's expiry.
        let ca_first = chain(JAN_2024 + 3_600, JAN_2024 + 86_400);
        assert_eq!(
            chain_facts(&ca_first).unwrap().not_after_earliest,
            JAN_2024 + 3_600
        );
        assert_eq!(chain_facts(&[]), None);
        assert_eq!(chain_facts(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }

    #[test]
    fn certificate_errors_map_to_closed_reasons() {
        use rustls::CertificateError as C;
        let cases = [
            (C::Expired, Failure::TlsExpired),
            (C::NotValidYet, Failure::TlsNotYetValid),
            (C::UnknownIssuer, Failure::TlsUnknownCa),
            (C::NotValidForName, Failure::TlsHostnameMismatch),
            (C::BadSignature, Failure::TlsHandshake),
            (C::Revoked, Failure::TlsHandshake),
        ];
        for (cert, want) in cases {
            let err = rustls::Error::InvalidCertificate(cert.clone());
            assert_eq!(verify_failure(&err), want, "{cert:?}");
        }
        let other = rustls::Error::NoCertificatesPresented;
        assert_eq!(verify_failure(&other), Failure::TlsHandshake);
    }

    #[test]
    fn a_pem_bundle_must_hold_usable_certificates() {
        let mut ca = params(&[], JAN_2024, JAN_2024 + 86_400);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let bundle = CaBundle::from_pem(ca.pem().as_bytes(), "ca.pem").unwrap();
        assert_eq!(bundle, CaBundle::Pem(vec![ca.der().clone()]));
        assert_eq!(format!("{bundle:?}"), "Pem(1 certificates)");
        let empty = CaBundle::from_pem(b"# nothing here\n", "empty.pem").unwrap_err();
        assert_eq!(empty.to_string(), "CA file empty.pem: no CERTIFICATE block");
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let junk = CaBundle::from_pem(junk.as_bytes(), "junk.pem").unwrap_err();
        assert!(
            junk.to_string()
                .starts_with("CA file junk.pem: certificate #1 cannot be a trust anchor"),
            "{junk}"
        );
    }
}
