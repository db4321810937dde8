//! `hopwatch probe http URL [--connect-to IP[:PORT]] [--ca-file F] [--insecure] [--json]`:
//! one request, printed. The flags live in `main.rs`; this turns their values into a spec,
//! runs it and renders the report.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::{CaBundle, CaError, HttpSpec, HttpUrl, UrlError, parse_connect_to, request};

/// The request succeeded.
pub const EXIT_SUCCESS: u8 = 0;
/// The request ran and failed (or the certificate did not verify without `--insecure`).
pub const EXIT_FAILURE: u8 = 1;
/// The command line cannot be used: a bad URL or `--connect-to`, an unreadable CA file.
pub const EXIT_USAGE: u8 = 2;

/// The command's arguments, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct CliArgs {
    pub url: String,
    /// `IP` or `IP:PORT`; without a port, the URL's.
    pub connect_to: Option<String>,
    /// PEM CA bundle to verify against instead of the webpki roots.
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    pub json: bool,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Why the command could not run: the message for stderr, with exit code [`EXIT_USAGE`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Ca(#[from] CaError),
}

impl CliError {
    /// Always [`EXIT_USAGE`].
    pub fn exit_code(&self) -> u8 {
        EXIT_USAGE
    }
}

/// Runs one request: `Ok((stdout text, exit code))` with code [`EXIT_SUCCESS`] or
/// [`EXIT_FAILURE`], or the usage error to print on stderr and exit with [`EXIT_USAGE`].
pub async fn cli(args: &CliArgs) -> Result<(String, u8), CliError> {
    let spec = spec(args)?;
    let report = request(&spec, Instant::now() + args.timeout).await;
    let text = if args.json {
        format!("{}\n", report.to_json())
    } else {
        report.render_text()
    };
    let code = if report.result.is_ok() {
        EXIT_SUCCESS
    } else {
        EXIT_FAILURE
    };
    Ok((text, code))
}

/// Builds the spec the arguments describe, reading the CA file.
pub fn spec(args: &CliArgs) -> Result<HttpSpec, CliError> {
    let url = HttpUrl::parse(&args.url)?;
    let connect_to = match &args.connect_to {
        Some(text) => Some(parse_connect_to(text, url.port)?),
        None => None,
    };
    let ca = match &args.ca_file {
        Some(path) => CaBundle::from_file(path)?,
        None => CaBundle::WebPki,
    };
    Ok(HttpSpec {
        connect_to,
        insecure: args.insecure,
        ca,
        ..HttpSpec::new(url)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> CliArgs {
        CliArgs {
            url: url.to_string(),
            connect_to: None,
            ca_file: None,
            insecure: false,
            json: false,
            timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn usage_errors_name_the_value_and_exit_2() {
        let err = cli(&args("ftp://x/")).await.unwrap_err();
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert_eq!(
            err.to_string(),
            "URL \"ftp://x/\": the scheme must be http or https"
        );
        let bad_ca = CliArgs {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..args("https://a.test/")
        };
        let err = cli(&bad_ca).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read CA file /nonexistent/ca.pem: "),
            "{err}"
        );
        let bad_connect = CliArgs {
            connect_to: Some("lb.example.com".into()),
            ..args("https://a.test/")
        };
        assert!(matches!(cli(&bad_connect).await, Err(CliError::Url(_))));
    }

    #[tokio::test]
    async fn connect_to_takes_the_url_port_by_default() {
        let spec = spec(&CliArgs {
            connect_to: Some("127.0.0.1".into()),
            insecure: true,
            ..args("https://a.test:8443/x")
        })
        .unwrap();
        assert_eq!(spec.connect_to, Some("127.0.0.1:8443".parse().unwrap()));
        assert!(spec.insecure);
        assert_eq!(spec.url.host, "a.test");
    }

    #[tokio::test]
    async fn a_refused_request_exits_1_with_the_reason() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let (text, code) = cli(&CliArgs {
            json: true,
            ..args(&format!("http://127.0.0.1:{port}/"))
        })
        .await
        .unwrap();
        assert_eq!(code, EXIT_FAILURE);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["result"], "refused");
        assert_eq!(json["failed_phase"], "connect");
    }
}
