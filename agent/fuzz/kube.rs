//! Kubernetes JSON into the stores the way the watchers put it there, then everything derived
//! from the stores.
//!
//! The input is a stream of JSON values. A watch event (`{"type": …, "object": …}`) or a bare
//! object is applied, or deleted for `"type": "DELETED"`; a list (`{"items": […]}`) is a
//! relist of every kind it holds, swapped in whole as after `InitDone`. Objects are told
//! apart by `kind`: Service, EndpointSlice, Ingress, NetworkPolicy, and the metadata of Node
//! and Namespace.

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::PartialObjectMeta;
use serde_json::Value;

use crate::discovery::store::Stores;
use crate::discovery::targets::{self, Settings};
use crate::discovery::watch::Watched;
use crate::policy::{self, SelfPod};

/// The default opt-in/opt-out annotation.
const ANNOTATION: &str = "hopwatch.io/probe";

pub(super) fn apply_and_derive(data: &[u8]) {
    let mut stores = Stores::default();
    for value in serde_json::Deserializer::from_slice(data).into_iter::<Value>() {
        let Ok(value) = value else { break };
        apply(&mut stores, value);
    }
    let node = stores.nodes.first().cloned().unwrap_or_default();
    let derived = targets::derive(&stores, &Settings::default(), &node);
    let me = SelfPod {
        namespace: "hopwatch".to_string(),
        ip: IpAddr::V4(Ipv4Addr::new(10, 244, 0, 9)),
        labels: [("app", "hopwatch")].into_iter().collect(),
        labels_complete: true,
    };
    policy::denials(&stores, &me, &derived);
}

fn apply(stores: &mut Stores, value: Value) {
    if let Some(Value::Array(items)) = value.get("items") {
        relist(stores, items);
        return;
    }
    match (
        value.get("type").and_then(Value::as_str),
        value.get("object"),
    ) {
        (Some(kind), Some(object)) => event(stores, object, kind == "DELETED"),
        _ => event(stores, &value, false),
    }
}

fn kind(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn event(stores: &mut Stores, object: &Value, deleted: bool) {
    match kind(object) {
        "Service" => one::<Service>(stores, object, deleted),
        "EndpointSlice" => one::<EndpointSlice>(stores, object, deleted),
        "Ingress" => one::<Ingress>(stores, object, deleted),
        "NetworkPolicy" => one::<NetworkPolicy>(stores, object, deleted),
        "Node" => one::<PartialObjectMeta<Node>>(stores, object, deleted),
        "Namespace" => one::<PartialObjectMeta<Namespace>>(stores, object, deleted),
        _ => {}
    }
}

/// An `Apply` or a `Delete` event of one object.
fn one<K: Watched>(stores: &mut Stores, object: &Value, deleted: bool) {
    let Ok(obj) = K::deserialize(object) else {
        return;
    };
    if deleted {
        obj.delete(stores);
    } else if let Some(item) = obj.project(stores, ANNOTATION) {
        K::upsert(stores, item);
    }
}

fn relist(stores: &mut Stores, items: &[Value]) {
    relist_kind::<Service>(stores, items, "Service");
    relist_kind::<EndpointSlice>(stores, items, "EndpointSlice");
    relist_kind::<Ingress>(stores, items, "Ingress");
    relist_kind::<NetworkPolicy>(stores, items, "NetworkPolicy");
    relist_kind::<PartialObjectMeta<Node>>(stores, items, "Node");
    relist_kind::<PartialObjectMeta<Namespace>>(stores, items, "Namespace");
}

/// The objects of one kind in a list, projected and swapped in whole, when there are any.
fn relist_kind<K: Watched>(stores: &mut Stores, items: &[Value], name: &str) {
    let mut listed = items.iter().filter(|i| kind(i) == name).peekable();
    if listed.peek().is_none() {
        return;
    }
    let mut projected = Vec::new();
    for item in listed {
        if let Ok(obj) = K::deserialize(item) {
            projected.extend(obj.project(stores, ANNOTATION));
        }
    }
    K::replace(stores, projected);
}
