//! The stores the watchers fill: compact projections keyed by object, plus the readiness
//! transitions seen so far.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::gateway::{GatewayInfo, RouteInfo};
use super::ingress::IngressInfo;
use super::model::{Labels, ObjKey, ServiceInfo, SliceInfo};
use super::netpol::Policy;

/// Everything discovery knows about the cluster.
#[derive(Debug, Default)]
pub struct Stores {
    pub services: BTreeMap<ObjKey, ServiceInfo>,
    pub slices: HashMap<ObjKey, SliceInfo>,
    pub nodes: BTreeSet<String>,
    pub ingresses: BTreeMap<ObjKey, IngressInfo>,
    /// Gateway API Gateways and HTTPRoutes, joined into edge rules when targets are derived.
    pub gateways: BTreeMap<ObjKey, GatewayInfo>,
    pub routes: BTreeMap<ObjKey, RouteInfo>,
    /// NetworkPolicies, sorted by namespace and name: the order the evaluator names them in.
    pub policies: BTreeMap<ObjKey, Policy>,
    /// Every namespace's labels, which `namespaceSelector`s and `namespace_selector` match.
    pub namespaces: BTreeMap<String, Labels>,
    /// Whether `namespaces` has been listed whole at least once.
    pub namespaces_listed: bool,
    /// Readiness flips per Service since the agent started; grows only.
    pub transitions: HashMap<ObjKey, u64>,
    node_names: HashSet<Arc<str>>,
}

impl Stores {
    /// Shares one allocation per node name between all endpoints on that node.
    pub fn intern(&mut self, node: &str) -> Arc<str> {
        if let Some(name) = self.node_names.get(node) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(node);
        self.node_names.insert(name.clone());
        name
    }

    /// Adds or replaces a slice, counting endpoints whose readiness flipped.
    pub fn apply_slice(&mut self, slice: SliceInfo) {
        let flips = match self.slices.get(&slice.key) {
            Some(old) => flips(old, &slice),
            None => 0,
        };
        if flips > 0 {
            *self.transitions.entry(slice.service.clone()).or_default() += flips;
        }
        self.slices.insert(slice.key.clone(), slice);
    }

    pub fn delete_slice(&mut self, key: &ObjKey) {
        self.slices.remove(key);
    }

    /// Replaces all slices after a relist, counting flips against what was there before.
    pub fn replace_slices(&mut self, slices: Vec<SliceInfo>) {
        let old = std::mem::take(&mut self.slices);
        for slice in slices {
            if let Some(before) = old.get(&slice.key) {
                let n = flips(before, &slice);
                if n > 0 {
                    *self.transitions.entry(slice.service.clone()).or_default() += n;
                }
            }
            self.slices.insert(slice.key.clone(), slice);
        }
    }

    /// The labels of namespace `ns`; `None` until the namespaces are listed, and for a
    /// namespace that is not (or no longer) there.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces_listed
            .then(|| self.namespaces.get(ns))
            .flatten()
    }

    /// Drops transition counters of Services that no longer exist.
    pub fn forget_gone_services(&mut self) {
        let services = &self.services;
        self.transitions.retain(|key, _| services.contains_key(key));
    }
}

/// Endpoints present in both versions of a slice whose ready condition changed.
fn flips(old: &SliceInfo, new: &SliceInfo) -> u64 {
    let before: HashMap<IpAddr, bool> =
        old.endpoints.iter().map(|e| (e.address, e.ready)).collect();
    new.endpoints
        .iter()
        .filter(|e| before.get(&e.address).is_some_and(|r| *r != e.ready))
        .count() as u64
}
