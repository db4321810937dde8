//! Watchers that keep the stores current: Services, EndpointSlices, Nodes and Namespaces
//! (metadata only), Ingresses, NetworkPolicies, and the Gateway API's Gateways and HTTPRoutes,
//! each a kube-rs watcher with backoff. A relist (after 410 Gone or a reconnect) is buffered
//! and swapped in whole on `InitDone`, so probes keep running on the cached targets meanwhile.
//!
//! The Gateway API is a set of CRDs many clusters do not install. Its list answering 404 is
//! not a failure: the resource is marked absent (listed, empty, not counted as a restart) and
//! asked for again every [`ABSENT_RETRY`], so a cluster without it neither pages nor waits.

use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gateway::{self, Gateway, GatewayInfo, HttpRoute, RouteInfo};
use super::ingress::{self, IngressInfo};
use super::model::{self, Labels, ObjKey, SERVICE_NAME_LABEL, ServiceInfo, SliceInfo};
use super::netpol::{self, Policy};
use super::scope;
use super::store::Stores;

/// Objects per page of the initial list and of every relist. kube-rs asks for 500; a page of
/// 500 EndpointSlices is deserialized whole, full objects with managedFields, before a single
/// one is projected, and the allocator keeps the peak: at 10,000 slices of 10 endpoints the
/// agent's steady RSS was 9 MiB higher with 500 than with 100 (docs/PERFORMANCE.md). The cost
/// is more list requests when the agent starts: 100 for 10,000 slices.
const LIST_PAGE_SIZE: u32 = 100;

/// How long after a 404 an optional resource (a CRD not installed) is listed again.
pub const ABSENT_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Told about every watch error, after which the watcher retries with backoff.
pub trait WatchEvents: Send + Sync + 'static {
    fn restarted(&self, resource: &'static str);
}

/// Why no Kubernetes client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "cannot find a Kubernetes config (no $KUBECONFIG, ~/.kube/config or service account): {0}"
    )]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot use the Kubernetes config: {0}")]
    Client(#[from] kube::Error),
}

/// A client from `kubeconfig`, or inferred: `$KUBECONFIG`, `~/.kube/config`, then the pod's
/// service account.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => kube::Config::infer().await?,
    };
    // The client would retry 429, 503 and 504 itself, for minutes and out of sight. Errors go
    // to the watcher instead, whose backoff retries them and whose failures are counted.
    let mut config = config;
    config.default_retry = false;
    Ok(Client::try_from(config)?)
}

/// Which stores have been listed completely at least once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    pub services: bool,
    pub slices: bool,
    pub nodes: bool,
    pub ingresses: bool,
    pub policies: bool,
    pub namespaces: bool,
    pub gateways: Presence,
    pub httproutes: Presence,
}

/// Where an optional resource (a CRD) stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Presence {
    /// Not watched: turned off in the config.
    #[default]
    Off,
    /// Watched, not listed yet.
    Waiting,
    /// Listed completely at least once.
    Listed,
    /// The API server does not serve it (404): nothing to list, asked again later.
    Absent,
}

impl Synced {
    /// Services and EndpointSlices are listed. The others are optional: without Nodes
    /// rendezvous hashing uses the nodes named by endpoints, a cluster may serve no Ingress
    /// API, and until policies and namespaces are listed no connect is expected to be denied.
    pub fn ready(&self) -> bool {
        self.services && self.slices
    }
}

/// The running watchers and what they fill.
pub struct Discovery {
    pub stores: Arc<Mutex<Stores>>,
    /// Bumped after every change to the stores.
    pub changes: watch::Receiver<u64>,
    pub synced: watch::Receiver<Synced>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Discovery {
    /// Starts one watcher per resource. `annotation` is the opt-in/opt-out annotation key;
    /// the Gateway API's resources are watched when `gateway_api` is set.
    pub fn start(
        client: Client,
        annotation: String,
        gateway_api: bool,
        events: Arc<dyn WatchEvents>,
    ) -> Discovery {
        let stores = Arc::new(Mutex::new(Stores::default()));
        let (changed, changes) = watch::channel(0);
        let presence = if gateway_api {
            Presence::Waiting
        } else {
            Presence::Off
        };
        let (sync_tx, synced) = watch::channel(Synced {
            gateways: presence,
            httproutes: presence,
            ..Synced::default()
        });
        let shared = Shared {
            stores: Arc::clone(&stores),
            changed: Arc::new(changed),
            synced: Arc::new(sync_tx),
            events,
        };
        let mut tasks = vec![
            tokio::spawn(run::<Service>(
                Api::all(client.clone()),
                list_config(),
                shared.clone(),
                annotation.clone(),
            )),
            tokio::spawn(run::<EndpointSlice>(
                Api::all(client.clone()),
                list_config().labels(SERVICE_NAME_LABEL),
                shared.clone(),
                String::new(),
            )),
            tokio::spawn(run::<PartialObjectMeta<Node>>(
                Api::all(client.clone()),
                list_config(),
                shared.clone(),
                String::new(),
            )),
            tokio::spawn(run::<Ingress>(
                Api::all(client.clone()),
                list_config(),
                shared.clone(),
                annotation.clone(),
            )),
            tokio::spawn(run::<NetworkPolicy>(
                Api::all(client.clone()),
                list_config(),
                shared.clone(),
                String::new(),
            )),
            tokio::spawn(run::<PartialObjectMeta<Namespace>>(
                Api::all(client.clone()),
                list_config(),
                shared.clone(),
                String::new(),
            )),
        ];
        if gateway_api {
            tasks.push(tokio::spawn(run_optional::<Gateway>(
                Api::all(client.clone()),
                shared.clone(),
                String::new(),
            )));
            tasks.push(tokio::spawn(run_optional::<HttpRoute>(
                Api::all(client),
                shared,
                annotation.clone(),
            )));
        }
        Discovery {
            stores,
            changes,
            synced,
            tasks,
        }
    }
}

/// The watcher settings every resource shares.
fn list_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

#[derive(Clone)]
struct Shared {
    stores: Arc<Mutex<Stores>>,
    changed: Arc<watch::Sender<u64>>,
    synced: Arc<watch::Sender<Synced>>,
    events: Arc<dyn WatchEvents>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stores> {
        self.stores.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How one resource is projected into and kept in the stores.
pub(crate) trait Watched:
    kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const NAME: &'static str;
    /// A CRD the cluster may not serve: a 404 ends the watch instead of retrying it.
    const OPTIONAL: bool = false;
    type Item: Send;
    fn project(&self, stores: &mut Stores, annotation: &str) -> Option<Self::Item>;
    fn upsert(stores: &mut Stores, item: Self::Item);
    fn delete(&self, stores: &mut Stores);
    fn replace(stores: &mut Stores, items: Vec<Self::Item>);
    fn mark(synced: &mut Synced);
    /// Where an optional resource stands; required ones have no absent state.
    fn presence(_synced: &mut Synced, _presence: Presence) {}
}

fn key_of<K: kube::Resource>(obj: &K) -> ObjKey {
    ObjKey::new(
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default(),
    )
}

impl Watched for Service {
    const NAME: &'static str = "services";
    type Item = ServiceInfo;
    fn project(&self, _: &mut Stores, annotation: &str) -> Option<ServiceInfo> {
        model::project_service(self, annotation)
    }
    fn upsert(stores: &mut Stores, item: ServiceInfo) {
        stores.services.insert(item.key.clone(), item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.services.remove(&key_of(self));
        stores.forget_gone_services();
    }
    fn replace(stores: &mut Stores, items: Vec<ServiceInfo>) {
        stores.services = items.into_iter().map(|s| (s.key.clone(), s)).collect();
        stores.forget_gone_services();
    }
    fn mark(synced: &mut Synced) {
        synced.services = true;
    }
}

impl Watched for EndpointSlice {
    const NAME: &'static str = "endpointslices";
    type Item = SliceInfo;
    fn project(&self, stores: &mut Stores, _: &str) -> Option<SliceInfo> {
        model::project_slice(self, |node| stores.intern(node))
    }
    fn upsert(stores: &mut Stores, item: SliceInfo) {
        stores.apply_slice(item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.delete_slice(&key_of(self));
    }
    fn replace(stores: &mut Stores, items: Vec<SliceInfo>) {
        stores.replace_slices(items);
    }
    fn mark(synced: &mut Synced) {
        synced.slices = true;
    }
}

impl Watched for PartialObjectMeta<Node> {
    const NAME: &'static str = "nodes";
    type Item = String;
    fn project(&self, _: &mut Stores, _: &str) -> Option<String> {
        Some(self.name_any())
    }
    fn upsert(stores: &mut Stores, item: String) {
        stores.nodes.insert(item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.nodes.remove(&self.name_any());
    }
    fn replace(stores: &mut Stores, items: Vec<String>) {
        stores.nodes = items.into_iter().collect();
    }
    fn mark(synced: &mut Synced) {
        synced.nodes = true;
    }
}

impl Watched for Ingress {
    const NAME: &'static str = "ingresses";
    type Item = IngressInfo;
    fn project(&self, _: &mut Stores, annotation: &str) -> Option<IngressInfo> {
        let info = ingress::project(self, annotation)?;
        Some(IngressInfo {
            class: scope::ingress_class(self),
            ..info
        })
    }
    fn upsert(stores: &mut Stores, item: IngressInfo) {
        stores.ingresses.insert(item.key.clone(), item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.ingresses.remove(&key_of(self));
    }
    fn replace(stores: &mut Stores, items: Vec<IngressInfo>) {
        stores.ingresses = items.into_iter().map(|i| (i.key.clone(), i)).collect();
    }
    fn mark(synced: &mut Synced) {
        synced.ingresses = true;
    }
}

impl Watched for NetworkPolicy {
    const NAME: &'static str = "networkpolicies";
    type Item = Policy;
    fn project(&self, _: &mut Stores, _: &str) -> Option<Policy> {
        netpol::project(self)
    }
    fn upsert(stores: &mut Stores, item: Policy) {
        stores.policies.insert(item.key.clone(), item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.policies.remove(&key_of(self));
    }
    fn replace(stores: &mut Stores, items: Vec<Policy>) {
        stores.policies = items.into_iter().map(|p| (p.key.clone(), p)).collect();
    }
    fn mark(synced: &mut Synced) {
        synced.policies = true;
    }
}

impl Watched for PartialObjectMeta<Namespace> {
    const NAME: &'static str = "namespaces";
    type Item = (String, Labels);
    fn project(&self, _: &mut Stores, _: &str) -> Option<(String, Labels)> {
        Some((self.name_any(), self.labels().iter().collect()))
    }
    fn upsert(stores: &mut Stores, (name, labels): (String, Labels)) {
        stores.namespaces.insert(name, labels);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.namespaces.remove(&self.name_any());
    }
    fn replace(stores: &mut Stores, items: Vec<(String, Labels)>) {
        stores.namespaces = items.into_iter().collect();
        stores.namespaces_listed = true;
    }
    fn mark(synced: &mut Synced) {
        synced.namespaces = true;
    }
}

impl Watched for Gateway {
    const NAME: &'static str = "gateways";
    const OPTIONAL: bool = true;
    type Item = GatewayInfo;
    fn project(&self, _: &mut Stores, _: &str) -> Option<GatewayInfo> {
        gateway::project_gateway(self)
    }
    fn upsert(stores: &mut Stores, item: GatewayInfo) {
        stores.gateways.insert(item.key.clone(), item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.gateways.remove(&key_of(self));
    }
    fn replace(stores: &mut Stores, items: Vec<GatewayInfo>) {
        stores.gateways = items.into_iter().map(|g| (g.key.clone(), g)).collect();
    }
    fn mark(synced: &mut Synced) {
        synced.gateways = Presence::Listed;
    }
    fn presence(synced: &mut Synced, presence: Presence) {
        synced.gateways = presence;
    }
}

impl Watched for HttpRoute {
    const NAME: &'static str = "httproutes";
    const OPTIONAL: bool = true;
    type Item = RouteInfo;
    fn project(&self, _: &mut Stores, annotation: &str) -> Option<RouteInfo> {
        gateway::project_route(self, annotation)
    }
    fn upsert(stores: &mut Stores, item: RouteInfo) {
        stores.routes.insert(item.key.clone(), item);
    }
    fn delete(&self, stores: &mut Stores) {
        stores.routes.remove(&key_of(self));
    }
    fn replace(stores: &mut Stores, items: Vec<RouteInfo>) {
        stores.routes = items.into_iter().map(|r| (r.key.clone(), r)).collect();
    }
    fn mark(synced: &mut Synced) {
        synced.httproutes = Presence::Listed;
    }
    fn presence(synced: &mut Synced, presence: Presence) {
        synced.httproutes = presence;
    }
}

/// Whether a watch error is the API server saying it does not serve the resource at all.
fn not_served(err: &watcher::Error) -> bool {
    let status = match err {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s,
        watcher::Error::WatchError(s) => s,
        _ => return false,
    };
    status.code == 404
}

/// Watches a resource the cluster may not serve (a CRD) for as long as the agent runs: while
/// its list answers 404 the store is empty, the resource marked absent, and the list is tried
/// again every [`ABSENT_RETRY`], without counting a restart.
async fn run_optional<K: Watched>(api: Api<K>, shared: Shared, annotation: String) {
    loop {
        run(
            api.clone(),
            list_config(),
            shared.clone(),
            annotation.clone(),
        )
        .await;
        let was = *shared.synced.borrow();
        K::replace(&mut shared.lock(), Vec::new());
        shared
            .synced
            .send_modify(|s| K::presence(s, Presence::Absent));
        if *shared.synced.borrow() != was {
            tracing::info!(
                resource = K::NAME,
                "not served by the API server (its CRD is not installed): nothing to watch; \
                 asking again every {ABSENT_RETRY:?}"
            );
        }
        shared.bump();
        tokio::time::sleep(ABSENT_RETRY).await;
    }
}

/// Watches one resource for as long as the agent runs; an optional resource's watch returns
/// when the API server answers that it does not serve it.
async fn run<K: Watched>(api: Api<K>, config: watcher::Config, shared: Shared, annotation: String) {
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut buffer: Option<Vec<K::Item>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => buffer = Some(Vec::new()),
            Ok(Event::InitApply(obj)) => {
                let item = obj.project(&mut shared.lock(), &annotation);
                buffer.get_or_insert_with(Vec::new).extend(item);
            }
            Ok(Event::InitDone) => {
                K::replace(&mut shared.lock(), buffer.take().unwrap_or_default());
                shared.synced.send_modify(K::mark);
                shared.bump();
            }
            Ok(Event::Apply(obj)) => {
                let mut stores = shared.lock();
                if let Some(item) = obj.project(&mut stores, &annotation) {
                    K::upsert(&mut stores, item);
                }
                drop(stores);
                shared.bump();
            }
            Ok(Event::Delete(obj)) => {
                obj.delete(&mut shared.lock());
                shared.bump();
            }
            Err(err) if K::OPTIONAL && not_served(&err) => return,
            Err(err) => {
                tracing::warn!(
                    resource = K::NAME,
                    "watch failed, retrying with backoff: {err}"
                );
                shared.events.restarted(K::NAME);
            }
        }
    }
    tracing::error!(resource = K::NAME, "watch stream ended");
}
