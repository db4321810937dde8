//! Scoping Ingresses by IngressClass, and the tests of scoping by namespace labels through
//! [`derive`](super::targets::derive): which objects are probed at all.
//!
//! An Ingress's class is `spec.ingressClassName`, else the annotation
//! `kubernetes.io/ingress.class` that predates it. An Ingress with neither is served by the
//! cluster's default IngressClass, if there is one; the agent does not watch IngressClasses
//! (no watch, no RBAC for them), so it cannot tell which that is, and a class filter drops
//! such an Ingress.

use k8s_openapi::api::networking::v1::Ingress;

/// The annotation that named an Ingress's class before `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The class an Ingress asks for: `spec.ingressClassName`, else the legacy annotation.
pub fn ingress_class(ing: &Ingress) -> Option<String> {
    let spec = ing.spec.as_ref().and_then(|s| s.ingress_class_name.clone());
    spec.or_else(|| {
        ing.metadata
            .annotations
            .as_ref()?
            .get(LEGACY_CLASS_ANNOTATION)
            .cloned()
    })
    .filter(|c| !c.is_empty())
}

/// Whether an Ingress of `class` is probed under the filter `classes`: every Ingress when
/// `classes` is empty, else those whose class is listed. An Ingress without a class passes
/// only an empty filter, since which class is the default is not known.
pub fn class_selected(classes: &[String], class: Option<&str>) -> bool {
    classes.is_empty() || class.is_some_and(|c| classes.iter().any(|x| x == c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::ingress;
    use crate::discovery::model::{self, Labels, ObjKey};
    use crate::discovery::select::LabelSelector;
    use crate::discovery::store::Stores;
    use crate::discovery::targets::{Derived, Settings, derive};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::{Value, json};

    fn ingress_json(ns: &str, name: &str, spec_class: Option<&str>, legacy: Option<&str>) -> Value {
        let mut ing = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}
        });
        if let Some(class) = spec_class {
            ing["spec"]["ingressClassName"] = json!(class);
        }
        if let Some(class) = legacy {
            ing["metadata"]["annotations"] = json!({ LEGACY_CLASS_ANNOTATION: class });
        }
        ing
    }

    /// As the Ingress watcher stores it.
    fn add_ingress(stores: &mut Stores, value: Value) {
        let ing: Ingress = serde_json::from_value(value).unwrap();
        let info = ingress::project(&ing, "hopwatch.io/probe").unwrap();
        let info = ingress::IngressInfo {
            class: ingress_class(&ing),
            ..info
        };
        stores.ingresses.insert(info.key.clone(), info);
    }

    /// A ClusterIP Service `ns/web` on port 80 with one ready endpoint.
    fn add_service(stores: &mut Stores, ns: &str, ip: &str, pod: &str) {
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": "web"},
            "spec": {"clusterIP": ip, "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .unwrap();
        let info = model::project_service(&svc, "hopwatch.io/probe").unwrap();
        stores.services.insert(info.key.clone(), info);
        let slice: EndpointSlice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": "web-abcde",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [pod], "conditions": {"ready": true}, "nodeName": "node-a"}]
        }))
        .unwrap();
        let mut names = Stores::default();
        let info = model::project_slice(&slice, |n| names.intern(n)).unwrap();
        stores.apply_slice(info);
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    fn ingress_ids(d: &Derived) -> Vec<&str> {
        d.ingresses.iter().map(|i| i.id.as_str()).collect()
    }

    /// The namespaces of the Services and Pod targets derived.
    fn namespaces(d: &Derived) -> Vec<String> {
        let mut all: Vec<String> = d.readiness.keys().map(|k| k.namespace.clone()).collect();
        all.extend(d.services.iter().map(|s| s.service.namespace.clone()));
        all.extend(d.pods.iter().map(|p| p.service.namespace.clone()));
        all.extend(d.ingresses.iter().map(|i| i.id.clone()));
        all.extend(d.load_balancers.iter().map(|l| l.id.clone()));
        all.sort();
        all.dedup();
        all
    }

    #[test]
    fn the_class_is_the_spec_field_else_the_legacy_annotation() {
        let class = |spec, legacy| {
            let ing: Ingress =
                serde_json::from_value(ingress_json("a", "b", spec, legacy)).unwrap();
            ingress_class(&ing)
        };
        assert_eq!(class(Some("nginx"), None).as_deref(), Some("nginx"));
        assert_eq!(class(None, Some("traefik")).as_deref(), Some("traefik"));
        assert_eq!(
            class(Some("nginx"), Some("traefik")).as_deref(),
            Some("nginx"),
            "the spec field wins, as in the controllers"
        );
        assert_eq!(class(None, None), None);
        assert_eq!(
            class(None, Some("")),
            None,
            "an empty annotation names no class"
        );
    }

    #[test]
    fn a_class_filter_keeps_the_ingresses_of_its_classes() {
        let mut stores = Stores::default();
        add_ingress(
            &mut stores,
            ingress_json("shop", "spec", Some("nginx"), None),
        );
        add_ingress(
            &mut stores,
            ingress_json("shop", "legacy", None, Some("nginx")),
        );
        add_ingress(
            &mut stores,
            ingress_json("shop", "other", Some("traefik"), None),
        );
        add_ingress(&mut stores, ingress_json("shop", "none", None, None));
        let with = |classes: &[&str]| {
            let settings = Settings {
                ingress_classes: classes.iter().map(ToString::to_string).collect(),
                ..Settings::default()
            };
            derive(&stores, &settings, "node-a")
        };
        let d = with(&[]);
        assert_eq!(ingress_ids(&d).len(), 4, "no filter: every Ingress");
        let d = with(&["nginx"]);
        assert_eq!(
            ingress_ids(&d),
            [
                "shop/legacy/legacy.example.com/",
                "shop/spec/spec.example.com/"
            ]
        );
        assert_eq!(d.load_balancers.len(), 2);
        let d = with(&["traefik", "nginx"]);
        assert_eq!(
            ingress_ids(&d).len(),
            3,
            "the class-less Ingress is not kept"
        );
    }

    #[test]
    fn a_namespace_selector_probes_only_the_matching_namespaces() {
        let mut stores = Stores::default();
        add_service(&mut stores, "shop", "10.96.0.11", "10.244.1.11");
        add_service(&mut stores, "lab", "10.96.0.12", "10.244.1.12");
        add_ingress(&mut stores, ingress_json("shop", "front", None, None));
        add_ingress(&mut stores, ingress_json("lab", "front", None, None));
        let mut settings = Settings::default();
        settings.selection.namespace_selector =
            LabelSelector::parse("team=shop,env in (prod,staging)").unwrap();

        assert!(
            namespaces(&derive(&stores, &settings, "node-a")).is_empty(),
            "nothing namespaced before the namespaces are listed"
        );
        stores.namespaces = [
            (
                "shop".to_string(),
                labels(&[("team", "shop"), ("env", "prod")]),
            ),
            (
                "lab".to_string(),
                labels(&[("team", "shop"), ("env", "dev")]),
            ),
        ]
        .into_iter()
        .collect();
        stores.namespaces_listed = true;
        let d = derive(&stores, &settings, "node-a");
        assert_eq!(
            namespaces(&d),
            [
                "shop",
                "shop/front/front.example.com",
                "shop/front/front.example.com/"
            ]
        );
        assert_eq!(d.pods[0].endpoints.len(), 1);

        // Relabelled out of the selector: its targets and readiness go, so do their series.
        stores
            .namespaces
            .insert("shop".to_string(), labels(&[("team", "shop")]));
        let d = derive(&stores, &settings, "node-a");
        assert!(namespaces(&d).is_empty(), "{d:?}");
        // A namespace the watch deleted has no labels to match.
        stores.namespaces.remove("lab");
        settings.selection.namespace_selector = LabelSelector::parse("team").unwrap();
        assert_eq!(namespaces(&derive(&stores, &settings, "node-a"))[0], "shop");
        assert_eq!(
            derive(&stores, &settings, "node-a")
                .readiness
                .keys()
                .collect::<Vec<_>>(),
            [&ObjKey::new("shop", "web")]
        );
    }
}
