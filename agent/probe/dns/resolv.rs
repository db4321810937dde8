//! resolv.conf, read the way each stub resolver reads it.
use std::net::SocketAddr;

/// A parsed resolv.conf.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
}
