//! The web config file (`--web.config.file`): TLS, basic auth and bearer tokens for `/metrics`.
//!
//! The format is exporter-toolkit's (node_exporter, blackbox_exporter and the other Prometheus
//! exporters read it), so a file already written for them works here. hopwatch adds one key,
//! `bearer_token_file`. Keys of that format hopwatch does not implement are refused when
//! ignoring them would weaken the endpoint (`cipher_suites`, `client_allowed_sans`,
//! `rate_limit`, ...), and warned about otherwise (`http_server_config.http2`). Any other key is
//! refused, so that a typo does not silently leave the endpoint open.
//!
//! Relative file names are taken from the web config file's directory, as exporter-toolkit does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde_json::{Map, Value};

use crate::auth::Auth;

/// A web config that cannot be used: the file, the field (`tls_server_config.cert_file`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError {
    pub file: PathBuf,
    /// Empty when the problem is the whole file (unreadable, not YAML).
    pub field: String,
    pub message: String,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for WebConfigError {}

/// What the server applies to every connection and request.
#[derive(Default)]
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// Who may read `/metrics`; open when no user and no token is configured.
    pub auth: Auth,
    /// `http_server_config.headers`, added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file the config was built from and its content, to tell when to build it again.
    pub sources: Vec<(PathBuf, Vec<u8>)>,
    /// Keys that were ignored, each with why; logged once per load.
    pub warnings: Vec<String>,
}

impl WebConfig {
    /// Whether any file it was built from now reads differently.
    pub fn changed(&self) -> bool {
        self.sources
            .iter()
            .any(|(path, seen)| std::fs::read(path).ok().as_ref() != Some(seen))
    }
}

/// Reads and checks the web config at `path`, and every file it names.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let mut loader = Loader {
        file: path.to_path_buf(),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        sources: Vec::new(),
        warnings: Vec::new(),
    };
    let text = loader.read("", path)?;
    let text = String::from_utf8(text).map_err(|_| loader.error("", "not UTF-8 text"))?;
    let root: Value = match serde_saphyr::from_str::<Option<Value>>(&text) {
        Ok(value) => value.unwrap_or(Value::Object(Map::new())),
        Err(err) => return Err(loader.error("", &format!("not valid YAML: {err}"))),
    };
    let root = loader.object("", &root)?;
    loader.check_keys("", root, TOP_KEYS)?;
    let tls = match root.get("tls_server_config") {
        Some(raw) => loader.tls(raw)?,
        None => None,
    };
    let users = match root.get("basic_auth_users") {
        Some(raw) => loader.users(raw)?,
        None => BTreeMap::new(),
    };
    let token = match root.get("bearer_token_file") {
        Some(raw) => Some(loader.token(raw)?),
        None => None,
    };
    let headers = match root.get("http_server_config") {
        Some(raw) => loader.http(raw)?,
        None => Vec::new(),
    };
    Ok(WebConfig {
        tls,
        auth: Auth::new(users, token),
        headers,
        sources: loader.sources,
        warnings: loader.warnings,
    })
}

/// How a key of exporter-toolkit's format that hopwatch does not implement is treated.
#[derive(Clone, Copy)]
enum Key {
    Known,
    /// Ignoring it would leave the endpoint weaker than its author meant: refused.
    Refused(&'static str),
    /// Harmless to ignore: a warning.
    Ignored(&'static str),
}

const TOP_KEYS: &[(&str, Key)] = &[
    ("tls_server_config", Key::Known),
    ("basic_auth_users", Key::Known),
    ("bearer_token_file", Key::Known),
    ("http_server_config", Key::Known),
    (
        "rate_limit",
        Key::Refused("not supported by hopwatch: remove it, or rate-limit in front of the agent"),
    ),
];

const TLS_KEYS: &[(&str, Key)] = &[
    ("cert_file", Key::Known),
    ("key_file", Key::Known),
    ("cert", Key::Known),
    ("key", Key::Known),
    ("client_auth_type", Key::Known),
    ("client_ca_file", Key::Known),
    ("client_ca", Key::Known),
    ("min_version", Key::Known),
    ("max_version", Key::Known),
    ("prefer_server_cipher_suites", Key::Known),
    (
        "cipher_suites",
        Key::Refused(
            "not supported by hopwatch: it offers rustls's default TLS 1.2 and 1.3 suites",
        ),
    ),
    (
        "curve_preferences",
        Key::Refused("not supported by hopwatch: it offers rustls's default key exchange groups"),
    ),
    (
        "client_allowed_sans",
        Key::Refused(
            "not supported by hopwatch: every certificate the client CA signed is allowed",
        ),
    ),
];

const HTTP_KEYS: &[(&str, Key)] = &[
    ("headers", Key::Known),
    (
        "http2",
        Key::Ignored("ignored: hopwatch serves HTTP/1.1 only"),
    ),
];

struct Loader {
    file: PathBuf,
    dir: PathBuf,
    sources: Vec<(PathBuf, Vec<u8>)>,
    warnings: Vec<String>,
}

impl Loader {
    fn error(&self, field: &str, message: &str) -> WebConfigError {
        WebConfigError {
            file: self.file.clone(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    /// Reads `path` (relative to the web config's directory) and remembers its content.
    fn read(&mut self, field: &str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
        let path = self.dir.join(path);
        let bytes = std::fs::read(&path)
            .map_err(|err| self.error(field, &format!("cannot read {}: {err}", path.display())))?;
        self.sources.push((path, bytes.clone()));
        Ok(bytes)
    }

    fn object<'v>(
        &self,
        field: &str,
        value: &'v Value,
    ) -> Result<&'v Map<String, Value>, WebConfigError> {
        match value {
            Value::Object(map) => Ok(map),
            Value::Null => Ok(empty()),
            _ => Err(self.error(field, "expected a mapping")),
        }
    }

    fn string<'v>(&self, field: &str, value: &'v Value) -> Result<&'v str, WebConfigError> {
        match value {
            Value::String(s) if !s.is_empty() => Ok(s),
            Value::String(_) => Err(self.error(field, "must not be empty")),
            _ => Err(self.error(field, "expected a string")),
        }
    }

    /// Refuses unknown and refused keys, and notes the ignored ones.
    fn check_keys(
        &mut self,
        prefix: &str,
        map: &Map<String, Value>,
        known: &[(&str, Key)],
    ) -> Result<(), WebConfigError> {
        for key in map.keys() {
            let field = join(prefix, key);
            match known.iter().find(|(name, _)| name == key) {
                Some((_, Key::Known)) => {}
                Some((_, Key::Refused(why))) => return Err(self.error(&field, why)),
                Some((_, Key::Ignored(why))) => self.warnings.push(format!("{field}: {why}")),
                None => {
                    let names: Vec<&str> = known.iter().map(|(name, _)| *name).collect();
                    let message = format!("unknown key; expected one of {}", names.join(", "));
                    return Err(self.error(&field, &message));
                }
            }
        }
        Ok(())
    }

    /// PEM text given inline (`inline`) or in a file (`file_key`); exactly one of them.
    fn pem(
        &mut self,
        map: &Map<String, Value>,
        inline: &str,
        file_key: &str,
    ) -> Result<Option<(String, Vec<u8>)>, WebConfigError> {
        let inline_field = join("tls_server_config", inline);
        let file_field = join("tls_server_config", file_key);
        match (map.get(inline), map.get(file_key)) {
            (Some(_), Some(_)) => Err(self.error(
                &file_field,
                &format!("give {inline} or {file_key}, not both"),
            )),
            (Some(text), None) => Ok(Some((
                inline_field.clone(),
                self.string(&inline_field, text)?.as_bytes().to_vec(),
            ))),
            (None, Some(name)) => {
                let name = self.string(&file_field, name)?.to_string();
                let bytes = self.read(&file_field, Path::new(&name))?;
                Ok(Some((file_field, bytes)))
            }
            (None, None) => Ok(None),
        }
    }

    fn tls(&mut self, raw: &Value) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
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
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, WebConfigError> {
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

    /// `basic_auth_users`: user name to bcrypt hash.
    fn users(&self, raw: &Value) -> Result<BTreeMap<String, String>, WebConfigError> {
        let mut users = BTreeMap::new();
        for (user, hash) in self.object("basic_auth_users", raw)? {
            let field = format!("basic_auth_users.{user}");
            if user.is_empty() || user.contains(':') {
                return Err(self.error(&field, "a user name must be non-empty and hold no ':'"));
            }
            let hash = self.string(&field, hash)?;
            if hash.parse::<bcrypt::HashParts>().is_err() {
                // The value is a secret's hash: say what is wrong, never echo it.
                let message =
                    "not a bcrypt hash ($2a$, $2b$ or $2y$, as `htpasswd -nB USER` prints)";
                return Err(self.error(&field, message));
            }
            users.insert(user.clone(), hash.to_string());
        }
        Ok(users)
    }

    /// `bearer_token_file`: one token, surrounding whitespace trimmed.
    fn token(&mut self, raw: &Value) -> Result<Vec<u8>, WebConfigError> {
        let field = "bearer_token_file";
        let name = self.string(field, raw)?.to_string();
        let bytes = self.read(field, Path::new(&name))?;
        let token = bytes.trim_ascii();
        if token.is_empty() {
            return Err(self.error(field, &format!("{name} holds no token")));
        }
        if token.iter().any(|b| !b.is_ascii_graphic()) {
            return Err(self.error(
                field,
                &format!("{name}: a token is one line of printable ASCII"),
            ));
        }
        Ok(token.to_vec())
    }

    /// `http_server_config.headers`, added to every response.
    fn http(&mut self, raw: &Value) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
        let map = self.object("http_server_config", raw)?;
        self.check_keys("http_server_config", map, HTTP_KEYS)?;
        let Some(headers) = map.get("headers") else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, value) in self.object("http_server_config.headers", headers)? {
            let field = format!("http_server_config.headers.{name}");
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| self.error(&field, "not a valid header name"))?;
            let value = HeaderValue::try_from(self.string(&field, value)?)
                .map_err(|_| self.error(&field, "not a valid header value"))?;
            out.push((header, value));
        }
        Ok(out)
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn empty() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}
