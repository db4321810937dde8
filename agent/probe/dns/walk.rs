//! The walk.
use super::{LookupOptions, LookupReport};

/// The network a walk talks to.
pub trait Wire {}

pub async fn lookup<W: Wire>(wire: &mut W, name: &str, opts: &LookupOptions, deadline: tokio::time::Instant) -> LookupReport {
    let _ = (wire, opts, deadline);
    todo!("{name}")
}
