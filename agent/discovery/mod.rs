//! Kubernetes discovery: watchers keep compact stores of Services, EndpointSlices, Nodes,
//! Ingresses, Gateways and HTTPRoutes (among others);
//! a pure function turns the stores into this node's targets and readiness.

pub mod expected;
pub mod gateway;
pub mod ingress;
pub mod model;
pub mod netpol;
pub mod overrides;
pub mod rendezvous;
pub mod scope;
pub mod select;
pub mod store;
pub mod targets;
pub mod watch;
