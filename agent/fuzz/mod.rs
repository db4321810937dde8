//! Entry points for coverage-guided fuzzing, one per parser or decoder that reads outside
//! input. Each takes arbitrary bytes and drives the agent's own code path for them; none may
//! panic, hang or grow without bound, whatever the bytes. An error from a parser is a normal
//! outcome.
//!
//! `tools/fuzz` runs them under libFuzzer; `tests/fuzz_corpus.rs` replays the committed
//! corpora and every input that once failed through them in plain `cargo test`. Not part of
//! the agent's API.

mod dns;
mod kube;

use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

use crate::config::Config;
use crate::probe::dns::{Flavor, ResolvConf, plan};
use crate::probe::http::{self, CaBundle, HttpUrl};

/// resolv.conf text as each flavor reads it, then the search-list candidates each plans for
/// a short, a dotted, a fully qualified and a too-long name.
pub fn resolv_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let too_long = format!("{}.svc", "a".repeat(64));
    for flavor in Flavor::ALL {
        let conf = ResolvConf::parse(&text, flavor);
        for name in ["svc", "svc.default", "kubernetes.default.svc.", &too_long] {
            plan::candidates(name, &conf, flavor);
        }
    }
}

/// A config file through parsing and validation, as `hopwatch check` and the agent load it.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, "fuzz.yaml");
    }
}

/// DNS replies as one flavor's walker receives them: the first two bytes choose the flavor,
/// the query types and a resolv.conf, the rest are the replies the wire hands back, query for
/// query (see `dns.rs` for the layout). Run it on a current-thread tokio runtime with paused
/// time (`test-util`), as the walk's unit tests are, so timeouts cost no real time.
pub async fn dns_reply(data: &[u8]) {
    dns::lookup(data).await;
}

/// Kubernetes objects as the watchers receive them (JSON values: objects, lists, or watch
/// events), projected into the compact stores; then this node's targets and the
/// NetworkPolicy denials derived from them.
pub fn kube_objects(data: &[u8]) {
    kube::apply_and_derive(data);
}

/// A presented certificate chain (each DER certificate preceded by its length, two bytes
/// big-endian) into the facts the probe reports, and the same bytes as a PEM CA bundle.
pub fn x509_chain(data: &[u8]) {
    let mut chain = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (der, after) = tail.split_at(len);
        chain.push(CertificateDer::from(der));
        rest = after;
    }
    if let Some(facts) = http::tls::chain_facts(&chain) {
        http::format_utc(facts.not_after_earliest);
        http::format_utc(facts.not_before);
    }
    let _ = CaBundle::from_pem(data, "fuzz.pem");
}

/// An HTTP response (head and whatever follows) read by the probe's own client code over an
/// in-memory connection, with the probe's limits. The peer reads the request head, sends the
/// bytes and closes, as a server that answers once does.
pub fn http_head(data: &[u8]) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    let Ok(url) = HttpUrl::parse("http://svc.test/") else {
        return;
    };
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let deadline = Instant::now() + Duration::from_secs(5);
        let ((), _status) = tokio::join!(
            serve_once(server, data),
            http::first_response(client, &url, deadline)
        );
    });
}

/// Waits for the end of the request head, answers with `response` and closes.
async fn serve_once(mut io: tokio::io::DuplexStream, response: &[u8]) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut request = Vec::new();
    let mut buf = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = io.write_all(response).await;
    let _ = io.shutdown().await;
    let _ = io.read_to_end(&mut request).await;
}
