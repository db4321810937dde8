//! Who may read `/metrics`: basic-auth users with bcrypt hashes, and a bearer token.
//!
//! Secrets are compared in constant time. A bcrypt check costs tens of milliseconds on
//! purpose, so a user and password once verified are remembered (in memory only, a few at most)
//! and later scrapes with them cost a comparison, as exporter-toolkit does. An unknown user is
//! checked against a fixed hash all the same, so the time taken does not tell which users exist.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use hyper::header::HeaderValue;
use subtle::ConstantTimeEq;

/// The most user/password pairs remembered as verified.
const REMEMBERED: usize = 16;

/// A bcrypt hash of no password anybody has, checked when the user is unknown.
const UNKNOWN_USER_HASH: &str = "$2y$10$NUtqFeG05BuO/mtSDSkM1enjR7Crim46VKC6wyCQRjZPfEVXwQtEa";

/// The credentials a web config accepts. Open (everything allowed) when it has none.
#[derive(Default)]
pub struct Auth {
    /// User name to bcrypt hash.
    users: BTreeMap<String, String>,
    token: Option<Vec<u8>>,
    /// `user:password` pairs already verified against `users`.
    verified: Mutex<Vec<Vec<u8>>>,
}

impl Auth {
    pub fn new(users: BTreeMap<String, String>, token: Option<Vec<u8>>) -> Auth {
        Auth {
            users,
            token,
            verified: Mutex::new(Vec::new()),
        }
    }

    /// No user and no token configured: every request is allowed.
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.token.is_none()
    }

    /// The `WWW-Authenticate` values of a 401: one per scheme configured.
    pub fn challenges(&self) -> Vec<HeaderValue> {
        let mut out = Vec::new();
        if !self.users.is_empty() {
            out.push(HeaderValue::from_static("Basic realm=\"hopwatch\""));
        }
        if self.token.is_some() {
            out.push(HeaderValue::from_static("Bearer realm=\"hopwatch\""));
        }
        out
    }

    /// Whether a request with this `Authorization` header may go on. Blocks for a bcrypt check
    /// the first time a user and password are seen: call it off the async runtime.
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(value) = authorization.map(HeaderValue::as_bytes) else {
            return false;
        };
        let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
            Some(at) => (&value[..at], value[at + 1..].trim_ascii()),
            None => return false,
        };
        if scheme.eq_ignore_ascii_case(b"bearer") {
            return self
                .token
                .as_ref()
                .is_some_and(|token| bool::from(token.as_slice().ct_eq(rest)));
        }
        if scheme.eq_ignore_ascii_case(b"basic") && !self.users.is_empty() {
            return self.basic(rest);
        }
        false
    }

    /// `base64(user:password)` checked against the users' hashes.
    fn basic(&self, encoded: &[u8]) -> bool {
        let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Some(colon) = pair.iter().position(|b| *b == b':') else {
            return false;
        };
        if self.remembered(&pair) {
            return true;
        }
        let user = String::from_utf8_lossy(&pair[..colon]);
        let password = &pair[colon + 1..];
        let (hash, known) = match self.users.get(user.as_ref()) {
            Some(hash) => (hash.as_str(), true),
            None => (UNKNOWN_USER_HASH, false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok {
            self.remember(pair);
        }
        ok
    }

    fn remembered(&self, pair: &[u8]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        // Every entry is compared, so the time does not tell which one matched.
        verified.iter().fold(false, |hit, seen| {
            hit | bool::from(seen.as_slice().ct_eq(pair))
        })
    }

    fn remember(&self, pair: Vec<u8>) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= REMEMBERED {
            verified.remove(0);
        }
        verified.push(pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        header(&format!("Basic {encoded}"))
    }

    #[test]
    fn open_without_users_or_token() {
        let auth = Auth::default();
        assert!(auth.is_open());
        assert!(auth.allows(None));
        assert!(auth.challenges().is_empty());
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let auth = Auth::new(BTreeMap::new(), Some(b"s3cret-token".to_vec()));
        assert!(auth.allows(Some(&header("Bearer s3cret-token"))));
        assert!(auth.allows(Some(&header("bearer s3cret-token"))));
        assert!(!auth.allows(Some(&header("Bearer s3cret-toke"))));
        assert!(!auth.allows(Some(&header("Bearer s3cret-token2"))));
        assert!(!auth.allows(Some(&header("Bearers3cret-token"))));
        assert!(!auth.allows(Some(&basic("x", "s3cret-token"))));
        assert!(!auth.allows(None));
        assert_eq!(auth.challenges(), vec![header("Bearer realm=\"hopwatch\"")]);
    }

    #[test]
    fn basic_users_are_checked_against_their_bcrypt_hash() {
        let hash = bcrypt::hash("pass word", 4).unwrap();
        let users = BTreeMap::from([("prometheus".to_string(), hash)]);
        let auth = Auth::new(users, None);
        assert!(auth.allows(Some(&basic("prometheus", "pass word"))));
        assert!(
            auth.allows(Some(&basic("prometheus", "pass word"))),
            "remembered"
        );
        assert!(!auth.allows(Some(&basic("prometheus", "pass wor"))));
        assert!(!auth.allows(Some(&basic("grafana", "pass word"))));
        assert!(!auth.allows(Some(&header("Basic !!!"))));
        assert!(!auth.allows(Some(&header("Bearer pass word"))));
    }

    #[test]
    fn the_unknown_user_hash_is_a_valid_hash() {
        assert!(UNKNOWN_USER_HASH.parse::<bcrypt::HashParts>().is_ok());
        assert!(bcrypt::verify("not a password", UNKNOWN_USER_HASH).unwrap());
    }
}
