//! `tls_server_config`: the certificate, its key, the TLS versions and the client certificate
//! policy, built into a rustls `ServerConfig` with the ring provider the agent's clients use.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde_json::{Map, Value};

use super::{Loader, TLS_KEYS, WebConfigError, join};

impl Loader {
    pub(super) fn tls(&mut self, raw: &Value) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
        let map = self.object("tls_server_config", raw)?;
        if map.is_empty() {
            return Ok(None);
        }
        self.check_keys("tls_server_config", map, TLS_KEYS)?;
        let missing = |name: &str| format!("tls_server_config.{name}");
        let Some((cert_field, cert_pem)) = self.pem(map, "cert", "cert_file")? else {
            return Err(self.error(&missing("cert_file"), "missing: TLS needs a certificate"));
        };
        let Some((key_field, key_pem)) = self.pem(map, "key", "key_file")? else {
            return Err(self.error(
                &missing("key_file"),
                "missing: TLS needs the certificate's key",
            ));
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|err| self.error(&cert_field, &format!("not PEM certificates: {err}")))?;
        if certs.is_empty() {
            return Err(self.error(&cert_field, "no PEM certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|err| self.error(&key_field, &format!("no PEM private key in it: {err}")))?;
        let versions = self.versions(map)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|err| self.error("tls_server_config.min_version", &err.to_string()))?;
        let builder = match self.client_verifier(map, provider)? {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|err| {
            self.error(&key_field, &format!("does not go with {cert_field}: {err}"))
        })?;
        config.ignore_client_order = match map.get("prefer_server_cipher_suites") {
            None => false,
            Some(Value::Bool(prefer)) => *prefer,
            Some(_) => {
                return Err(self.error(
                    "tls_server_config.prefer_server_cipher_suites",
                    "expected true or false",
                ));
            }
        };
        Ok(Some(Arc::new(config)))
    }

    /// `min_version` (default TLS12) to `max_version` (default TLS13).
    fn versions(
        &self,
        map: &Map<String, Value>,
    ) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
        let version = |key: &str, default: u8| -> Result<u8, WebConfigError> {
            let field = join("tls_server_config", key);
            let Some(raw) = map.get(key) else {
                return Ok(default);
            };
            match self.string(&field, raw)? {
                "TLS12" => Ok(12),
                "TLS13" => Ok(13),
                "TLS10" | "TLS11" => Err(self.error(
                    &field,
                    "TLS 1.0 and 1.1 are not supported: use TLS12 or TLS13",
                )),
                other => Err(self.error(
                    &field,
                    &format!("unknown version {other:?}: expected TLS12 or TLS13"),
                )),
            }
        };
        let (min, max) = (version("min_version", 12)?, version("max_version", 13)?);
        if min > max {
            return Err(self.error("tls_server_config.max_version", "is below min_version"));
        }
        let all = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)];
        Ok(all
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect())
    }

    /// The client certificate policy: `client_auth_type` with `client_ca_file`.
    fn client_verifier(
        &mut self,
        map: &Map<String, Value>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
        let field = "tls_server_config.client_auth_type";
        let kind = match map.get("client_auth_type") {
            None => "NoClientCert",
            Some(raw) => self.string(field, raw)?,
        };
        let ca = self.pem(map, "client_ca", "client_ca_file")?;
        let optional = match kind {
            "NoClientCert" => {
                if ca.is_some() {
                    let message = "a client CA is given but client_auth_type is NoClientCert: set RequireAndVerifyClientCert or VerifyClientCertIfGiven";
                    return Err(self.error(field, message));
                }
                return Ok(None);
            }
            "RequireAndVerifyClientCert" => false,
            "VerifyClientCertIfGiven" => true,
            "RequestClientCert" | "RequireAnyClientCert" => {
                let message = format!(
                    "{kind} accepts certificates nobody verifies, and is not supported: use RequireAndVerifyClientCert"
                );
                return Err(self.error(field, &message));
            }
            other => {
                let message = format!(
                    "unknown {other:?}: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                );
                return Err(self.error(field, &message));
            }
        };
        let Some((ca_field, ca_pem)) = ca else {
            let message =
                format!("{kind} needs client_ca_file, the CAs that sign client certificates");
            return Err(self.error(field, &message));
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca_pem) {
            let cert =
                cert.map_err(|err| self.error(&ca_field, &format!("not PEM certificates: {err}")))?;
            roots.add(cert).map_err(|err| {
                self.error(&ca_field, &format!("not a usable CA certificate: {err}"))
            })?;
        }
        if roots.is_empty() {
            return Err(self.error(&ca_field, "no PEM certificate in it"));
        }
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        let verifier = builder
            .build()
            .map_err(|err| self.error(&ca_field, &err.to_string()))?;
        Ok(Some(verifier))
    }
}
