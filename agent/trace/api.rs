//! The trace's Kubernetes reads: GET and LIST only, each with its own time limit. An error is
//! data ([`ApiError`]) for the hop that needed the read to report, never a reason to stop.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::verdict::{Cause, Finding, kubectl};
use crate::discovery::model::SERVICE_NAME_LABEL;

/// How a read failed. A closed set; `as_str` is the JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFailure {
    /// 401 or 403: the credentials may not read this.
    Forbidden,
    /// 404 on a GET: the object does not exist.
    NotFound,
    /// No answer in time, a connection error, or no usable Kubernetes config.
    Unreachable,
    /// Any other error status or an unreadable response.
    Error,
}

impl ApiFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFailure::Forbidden => "forbidden",
            ApiFailure::NotFound => "not_found",
            ApiFailure::Unreachable => "unreachable",
            ApiFailure::Error => "error",
        }
    }
}

/// A failed read: which one, how, and what the server or client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub failure: ApiFailure,
    /// `list endpointslices in shop`, `get services shop/web`.
    pub what: String,
    /// The HTTP status, when the server answered.
    pub code: Option<u16>,
    pub message: String,
    /// The resource, for `kubectl auth can-i`.
    resource: String,
    namespace: Option<String>,
    verb: &'static str,
}

impl ApiError {
    /// `cannot list endpointslices in shop: 403 endpointslices.discovery.k8s.io is forbidden: …`.
    pub fn text(&self) -> String {
        match self.code {
            Some(code) => format!("cannot {}: {code} {}", self.what, self.message),
            None => format!("cannot {}: {}", self.what, self.message),
        }
    }

    /// The finding of a hop this read left unchecked.
    pub fn finding(&self) -> Finding {
        let (cause, confirm) = match self.failure {
            ApiFailure::Forbidden => (
                Cause::ApiForbidden,
                vec![kubectl::can_i(
                    self.verb,
                    &self.resource,
                    self.namespace.as_deref(),
                )],
            ),
            _ => (
                Cause::ApiUnavailable,
                vec!["kubectl cluster-info".to_string()],
            ),
        };
        Finding::new(cause, self.text(), confirm)
    }
}

/// A client, or why there is none: every read then fails with [`ApiFailure::Unreachable`].
pub struct Cluster {
    client: Result<Client, String>,
    timeout: Duration,
}

impl Cluster {
    pub fn new(client: Result<Client, String>, timeout: Duration) -> Cluster {
        Cluster { client, timeout }
    }

    /// Every Ingress in every namespace.
    pub async fn ingresses(&self) -> Result<Vec<Ingress>, ApiError> {
        self.list::<Ingress>(None, ListParams::default()).await
    }

    pub async fn service(&self, ns: &str, name: &str) -> Result<Service, ApiError> {
        self.get::<Service>(ns, name).await
    }

    pub async fn pod(&self, ns: &str, name: &str) -> Result<Pod, ApiError> {
        self.get::<Pod>(ns, name).await
    }

    /// The NetworkPolicies of one namespace.
    pub async fn network_policies(&self, ns: &str) -> Result<Vec<NetworkPolicy>, ApiError> {
        self.list::<NetworkPolicy>(Some(ns), ListParams::default())
            .await
    }

    /// A namespace, for its labels (cluster-scoped, unlike everything else trace reads).
    pub async fn namespace(&self, name: &str) -> Result<Namespace, ApiError> {
        self.fetch(None, name, Api::all).await
    }

    /// The EndpointSlices of one Service, or of every Service (`service` = `None`, all
    /// namespaces), by their `kubernetes.io/service-name` label.
    pub async fn slices(
        &self,
        ns: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<EndpointSlice>, ApiError> {
        let selector = match service {
            Some(name) => format!("{SERVICE_NAME_LABEL}={name}"),
            None => SERVICE_NAME_LABEL.to_string(),
        };
        self.list::<EndpointSlice>(ns, ListParams::default().labels(&selector))
            .await
    }

    /// The pods of a namespace, all or those `selector` picks.
    pub async fn pods(&self, ns: &str, selector: Option<&str>) -> Result<Vec<Pod>, ApiError> {
        let params = match selector {
            Some(s) => ListParams::default().labels(s),
            None => ListParams::default(),
        };
        self.list::<Pod>(Some(ns), params).await
    }

    async fn list<K>(&self, ns: Option<&str>, params: ListParams) -> Result<Vec<K>, ApiError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let plural = K::plural(&()).to_string();
        let what = match ns {
            Some(ns) => format!("list {plural} in {ns}"),
            None => format!("list {plural} in all namespaces"),
        };
        let error = |failure, code, message| ApiError {
            failure,
            what: what.clone(),
            code,
            message,
            resource: plural.clone(),
            namespace: ns.map(str::to_string),
            verb: "list",
        };
        let client = self
            .client
            .clone()
            .map_err(|m| error(ApiFailure::Unreachable, None, m))?;
        let api: Api<K> = match ns {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        match tokio::time::timeout(self.timeout, api.list(&params)).await {
            Ok(Ok(list)) => Ok(list.items),
            Ok(Err(err)) => Err(classify(err, error)),
            Err(_) => Err(error(
                ApiFailure::Unreachable,
                None,
                timeout_text(self.timeout),
            )),
        }
    }

    async fn get<K>(&self, ns: &str, name: &str) -> Result<K, ApiError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.fetch(Some(ns), name, |client| Api::namespaced(client, ns))
            .await
    }

    /// One object, from the `Api` that `api` makes of the client: namespaced or not.
    async fn fetch<K>(
        &self,
        ns: Option<&str>,
        name: &str,
        api: impl FnOnce(kube::Client) -> Api<K>,
    ) -> Result<K, ApiError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let plural = K::plural(&()).to_string();
        let what = match ns {
            Some(ns) => format!("get {plural} {ns}/{name}"),
            None => format!("get {plural} {name}"),
        };
        let error = |failure, code, message| ApiError {
            failure,
            what: what.clone(),
            code,
            message,
            resource: plural.clone(),
            namespace: ns.map(str::to_string),
            verb: "get",
        };
        let client = self
            .client
            .clone()
            .map_err(|m| error(ApiFailure::Unreachable, None, m))?;
        match tokio::time::timeout(self.timeout, api(client).get(name)).await {
            Ok(Ok(obj)) => Ok(obj),
            Ok(Err(err)) => Err(classify(err, error)),
            Err(_) => Err(error(
                ApiFailure::Unreachable,
                None,
                timeout_text(self.timeout),
            )),
        }
    }
}

fn timeout_text(timeout: Duration) -> String {
    format!("no answer within {:.1} s", timeout.as_secs_f64())
}

/// Names a client error: the server's status when it answered, else unreachable.
fn classify(
    err: kube::Error,
    error: impl Fn(ApiFailure, Option<u16>, String) -> ApiError,
) -> ApiError {
    match err {
        kube::Error::Api(status) => {
            let failure = match status.code {
                401 | 403 => ApiFailure::Forbidden,
                404 => ApiFailure::NotFound,
                _ => ApiFailure::Error,
            };
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            error(failure, Some(status.code), message)
        }
        kube::Error::SerdeError(e) => error(ApiFailure::Error, None, e.to_string()),
        other => error(ApiFailure::Unreachable, None, with_root_cause(&other)),
    }
}

/// The error and, when it wraps others, the innermost: hyper's `client error (Connect)`
/// says little until `Connection refused (os error 111)` follows it.
fn with_root_cause(err: &dyn std::error::Error) -> String {
    let mut root = err;
    while let Some(inner) = root.source() {
        root = inner;
    }
    let (outer, inner) = (err.to_string(), root.to_string());
    if outer.contains(&inner) {
        outer
    } else {
        format!("{outer}: {inner}")
    }
}
