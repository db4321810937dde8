//! The canary: a Service (and optionally an Ingress) in front of the agents themselves.
//!
//! Every agent answers it ([`responder`]) and probes it like any other Service, so its path
//! breaks only when the infrastructure does (DNS, load balancer, Ingress controller,
//! kube-proxy, the pod network), never because of an application. [`cause`] judges each
//! broken Service's verdict against the canary's on the same node: `infrastructure` or
//! `application`.

pub mod cause;
pub mod responder;

pub use cause::Cause;
pub use responder::Fault;
