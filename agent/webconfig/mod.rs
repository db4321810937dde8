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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde_json::{Map, Value};

use crate::auth::Auth;

mod tls;

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

/// How often, at most, the web config and the files it names are read again to see a change.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The web config in force, read again when it or a file it names (a certificate renewed by
/// cert-manager, say) changes. A change that does not load is logged once and the config in
/// force stays.
pub struct Web {
    path: Option<PathBuf>,
    state: Mutex<WebState>,
}

struct WebState {
    config: Arc<WebConfig>,
    checked: Instant,
    /// The error the file last gave, so that a file that stays broken is logged once.
    error: Option<String>,
}

impl Web {
    /// No web config: plain HTTP, no auth.
    pub fn open() -> Web {
        Web::with(None, WebConfig::default())
    }

    /// Loads the web config at `path`; a file that cannot be used fails the start.
    pub fn load(path: &Path) -> Result<Web, WebConfigError> {
        let config = load(path)?;
        warn_ignored(path, &config);
        Ok(Web::with(Some(path.to_path_buf()), config))
    }

    fn with(path: Option<PathBuf>, config: WebConfig) -> Web {
        let state = WebState {
            config: Arc::new(config),
            checked: Instant::now(),
            error: None,
        };
        Web {
            path,
            state: Mutex::new(state),
        }
    }

    /// Whether connections are served over TLS (as of now).
    pub fn is_tls(&self) -> bool {
        self.current().tls.is_some()
    }

    /// The config for the next connection. Config files are small and local: a blocking read
    /// is shorter than a thread hop.
    pub fn current(&self) -> Arc<WebConfig> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(path) = &self.path else {
            return Arc::clone(&state.config);
        };
        if state.checked.elapsed() < RECHECK || !state.config.changed() {
            return Arc::clone(&state.config);
        }
        state.checked = Instant::now();
        match load(path) {
            Ok(config) => {
                tracing::info!(file = %path.display(), "web config reloaded");
                warn_ignored(path, &config);
                state.config = Arc::new(config);
                state.error = None;
            }
            Err(err) => {
                let err = err.to_string();
                if state.error.as_ref() != Some(&err) {
                    tracing::error!("web config rejected, the previous one stays: {err}");
                    state.error = Some(err);
                }
            }
        }
        Arc::clone(&state.config)
    }
}

fn warn_ignored(path: &Path, config: &WebConfig) {
    for warning in &config.warnings {
        tracing::warn!(file = %path.display(), "{warning}");
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
    let auth = Auth::new(users, token);
    if tls.is_none() && !auth.is_open() {
        let warning = "basic_auth_users or bearer_token_file without tls_server_config: \
                       passwords and tokens cross the network in clear text";
        loader.warnings.push(warning.to_string());
    }
    Ok(WebConfig {
        tls,
        auth,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(name: &str, text: &str) -> Result<WebConfig, String> {
        let dir = std::env::temp_dir().join(format!("hopwatch-web-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yaml");
        std::fs::write(&path, text).unwrap();
        let result = load(&path).map_err(|err| {
            let text = err.to_string();
            text.replacen(&format!("{}: ", path.display()), "", 1)
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn an_empty_file_leaves_the_port_open() {
        let config = load_text("empty", "").unwrap();
        assert!(config.tls.is_none());
        assert!(config.auth.is_open());
    }

    #[test]
    fn every_refusal_names_its_field() {
        let cases = [
            (
                "tls_server_config: [1]",
                "tls_server_config: expected a mapping",
            ),
            (
                "basic_auth_users:\n  a:b: '$2y$05$abc'",
                "basic_auth_users.a:b: a user name must be non-empty and hold no ':'",
            ),
            (
                "bearer_token_file: ''",
                "bearer_token_file: must not be empty",
            ),
            (
                "http_server_config:\n  headers:\n    'bad name': x",
                "http_server_config.headers.bad name: not a valid header name",
            ),
            (
                "http_server_config:\n  http3: true",
                "http_server_config.http3: unknown key; expected one of headers, http2",
            ),
            (
                "tls_server_config:\n  key_file: k.pem",
                "tls_server_config.cert_file: missing: TLS needs a certificate",
            ),
        ];
        for (i, (text, wanted)) in cases.iter().enumerate() {
            let err = load_text(&format!("bad{i}"), text).err();
            assert_eq!(err.as_deref(), Some(*wanted), "{text}");
        }
    }

    #[test]
    fn auth_without_tls_is_warned_about() {
        let dir = std::env::temp_dir().join(format!("hopwatch-web-clear-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "t0ken\n").unwrap();
        let path = dir.join("web.yaml");
        std::fs::write(&path, "bearer_token_file: token\n").unwrap();
        let config = load(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!config.auth.is_open());
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].ends_with("cross the network in clear text"));
    }

    #[test]
    fn http2_is_ignored_with_a_warning_and_headers_are_kept() {
        let text = "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n";
        let config = load_text("http", text).unwrap();
        assert_eq!(
            config.warnings,
            ["http_server_config.http2: ignored: hopwatch serves HTTP/1.1 only"]
        );
        assert_eq!(config.headers.len(), 1);
        assert_eq!(config.headers[0].0, "x-frame-options");
    }
}
