//! The client certificate an HTTPS probe presents when the server asks for one (mTLS), like
//! curl's `--cert` and `--key`, or blackbox_exporter's `tls_config.cert_file` and `key_file`.
//!
//! Read and checked once, where the config is loaded: the chain must hold a certificate, the
//! key must parse and must be the certificate's (rustls compares the public keys), so that a
//! wrong pair is a config error naming the file rather than every probe failing at the server.
//! The key never appears in `Debug` output or an error message.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A certificate chain and its private key, ready for the handshake.
#[derive(Clone)]
pub struct ClientCert {
    key: Arc<CertifiedKey>,
    /// The key's DER, kept only so that two loads of the same files compare equal.
    key_der: Arc<[u8]>,
    /// `cert.pem + key.pem`, for `Debug`.
    files: String,
}

/// Why a certificate and key cannot be used. Each message names its file.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertError {
    #[error("cannot read {file}: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{file}: no CERTIFICATE block")]
    NoCertificate { file: String },
    #[error("{file}: not valid PEM: {detail}")]
    Pem { file: String, detail: String },
    #[error("{file}: no PRIVATE KEY block (PKCS#8, RSA or EC) that can be read")]
    NoKey { file: String },
    #[error("{key} is not the private key of the certificate in {cert}{detail}")]
    Mismatch {
        cert: String,
        key: String,
        detail: String,
    },
}

impl ClientCert {
    /// Reads a PEM certificate chain (leaf first) and the PEM private key of its leaf.
    pub fn from_files(cert: &Path, key: &Path) -> Result<ClientCert, ClientCertError> {
        let (cert_name, key_name) = (cert.display().to_string(), key.display().to_string());
        let read = |path: &Path, file: &String| {
            std::fs::read(path).map_err(|error| ClientCertError::Read {
                file: file.clone(),
                error,
            })
        };
        ClientCert::from_pem(
            (&read(cert, &cert_name)?, &cert_name),
            (&read(key, &key_name)?, &key_name),
        )
    }

    /// [`ClientCert::from_files`] on bytes; the names stand for the files in errors.
    pub fn from_pem(
        (cert, cert_name): (&[u8], &str),
        (key, key_name): (&[u8], &str),
    ) -> Result<ClientCert, ClientCertError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|err| ClientCertError::Pem {
                file: cert_name.to_string(),
                detail: err.to_string(),
            })?;
        if chain.is_empty() {
            return Err(ClientCertError::NoCertificate {
                file: cert_name.to_string(),
            });
        }
        // The PEM error may quote the key's bytes: it is not passed on.
        let private = PrivateKeyDer::from_pem_slice(key).map_err(|_| ClientCertError::NoKey {
            file: key_name.to_string(),
        })?;
        let key_der: Arc<[u8]> = Arc::from(private.secret_der());
        let provider: CryptoProvider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|err| {
            let detail = match err {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    String::new()
                }
                other => format!(": {other}"),
            };
            ClientCertError::Mismatch {
                cert: cert_name.to_string(),
                key: key_name.to_string(),
                detail,
            }
        })?;
        Ok(ClientCert {
            key: Arc::new(certified),
            key_der,
            files: format!("{cert_name} + {key_name}"),
        })
    }

    /// The chain and signing key, for the TLS config.
    pub(super) fn certified(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.key)
    }
}

impl PartialEq for ClientCert {
    fn eq(&self, other: &ClientCert) -> bool {
        self.key.cert == other.key.cert && self.key_der == other.key_der
    }
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientCert({})", self.files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn pair() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["client.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads_and_its_debug_names_only_the_files() {
        let (cert, key) = pair();
        let loaded =
            ClientCert::from_pem((cert.as_bytes(), "c.pem"), (key.as_bytes(), "k.pem")).unwrap();
        assert_eq!(format!("{loaded:?}"), "ClientCert(c.pem + k.pem)");
        let again =
            ClientCert::from_pem((cert.as_bytes(), "c.pem"), (key.as_bytes(), "k.pem")).unwrap();
        assert_eq!(loaded, again);
    }

    #[test]
    fn a_wrong_pair_or_missing_blocks_name_the_file() {
        let (cert, _) = pair();
        let (_, other_key) = pair();
        let err = ClientCert::from_pem((cert.as_bytes(), "c.pem"), (other_key.as_bytes(), "k.pem"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.pem is not the private key of the certificate in c.pem"
        );
        let err = ClientCert::from_pem((b"nothing", "c.pem"), (other_key.as_bytes(), "k.pem"))
            .unwrap_err();
        assert_eq!(err.to_string(), "c.pem: no CERTIFICATE block");
        let err = ClientCert::from_pem((cert.as_bytes(), "c.pem"), (cert.as_bytes(), "k.pem"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.pem: no PRIVATE KEY block (PKCS#8, RSA or EC) that can be read"
        );
    }
}
