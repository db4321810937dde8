//! The OTLP tests' harness: a receiver, the pushed protobuf read back as samples, fixed
//! probe outcomes, and the agent as a child process.
//!
//! - [`receiver`]: an OTLP/HTTP server on 127.0.0.1 (plain or TLS) recording every request.
//! - [`samples`]: a request as `(name, labels, value)` samples, comparable with `/metrics`.
//! - [`fixtures`]: DNS outcomes recorded into a fresh `Metrics`; a CA and a server certificate.
//! - [`agent`]: `hopwatch run` with an `otlp:` section, stopped by PID on drop.
//!
//! Requests are decoded with `opentelemetry-proto`'s generated types, not hopwatch's own, so a
//! wrong tag or wire type in hopwatch's messages shows up here.

#![allow(
    dead_code,
    reason = "each test binary uses a part; helpers stay for the next test"
)]

pub mod agent;
pub mod fixtures;
pub mod receiver;
pub mod samples;
