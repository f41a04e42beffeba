//! `KubernetesConnector` (cargo feature `kubernetes`): one Deployment per role, scaled through
//! its scale subresource. The Deployment is the source of truth: every read is a GET of it
//! (`spec.replicas` = desired, `status.readyReplicas` = ready), so a count changed by hand
//! (`kubectl scale`) is seen at the next plan.
//!
//! - Scale: `PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale` with the merge patch
//!   `{"spec":{"replicas":N}}` (`application/merge-patch+json`). A `409 Conflict` is retried once
//!   after a fresh `GET …/scale`: if the fresh count already is the target nothing more is sent,
//!   else the patch is sent again pinned to the fresh `resourceVersion`; a second conflict is
//!   [`Error::KubernetesConflict`].
//! - `set_target` returns as soon as the API server has accepted the count: readiness is seen
//!   on later reads, so a scale-up that never becomes ready (no node fits the pods) never
//!   blocks the planner, and a later scale-down goes through.
//! - Every request is bounded by `request_timeout`; 403 is [`Error::KubernetesForbidden`] (the
//!   planner's Role lacks a verb), 404 [`Error::KubernetesNotFound`], other statuses
//!   [`Error::KubernetesApi`], no answer [`Error::KubernetesUnreachable`]. Nothing panics.
//!
//! The kube client is async and the [`Connector`] trait is not: the client lives on its own
//! thread with a current-thread runtime (an actor fed by a bounded channel), and each call
//! waits for its answer. Call the connector outside the async runtime's worker threads
//! (`spawn_blocking`, `block_in_place`).
//!
//! In-cluster configuration is kube's `Config::incluster` (the service account's token and CA,
//! and `KUBERNETES_SERVICE_HOST`/`_PORT`, which kube reads itself, as every official client
//! does). An explicit API URL (http or https) with an optional bearer-token file serves tests
//! and out-of-cluster runs.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};

use crate::connector::Connector;
use crate::error::Error;
use crate::observation::Replicas;
use crate::role::{Role, RoleMap};

/// Where the API server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubernetesApi {
    /// The pod's service account (the default inside a cluster).
    InCluster,
    /// An explicit API server, e.g. `http://127.0.0.1:8001` (`kubectl proxy`) or a test stand-in.
    Url {
        url: String,
        /// A file holding a bearer token (read once at start).
        token_file: Option<PathBuf>,
    },
}

/// The validated settings of the connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    pub api: KubernetesApi,
    /// `None`: the service account's namespace in-cluster, else `default`.
    pub namespace: Option<String>,
    /// The Deployment of each role; a role without one cannot be scaled.
    pub deployments: RoleMap<Option<String>>,
    /// Bound of every API request (connect + answer).
    pub request_timeout: Duration,
}

impl KubernetesConfig {
    /// Defaults: in-cluster, Deployments `rotor-aggregated`, `rotor-prefill`, `rotor-decode`.
    pub fn in_cluster() -> Self {
        Self {
            api: KubernetesApi::InCluster,
            namespace: None,
            deployments: RoleMap {
                aggregated: Some("rotor-aggregated".into()),
                prefill: Some("rotor-prefill".into()),
                decode: Some("rotor-decode".into()),
            },
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Sets the Deployment of a role from `ROLE=NAME` (the CLI's `--k8s-deployment`).
    pub fn set_deployment(&mut self, spec: &str) -> Result<(), Error> {
        let invalid = |reason| Error::InvalidConfig {
            field: "k8s-deployment",
            value: spec.to_string(),
            reason,
        };
        let (role, name) = spec
            .split_once('=')
            .ok_or_else(|| invalid("expected ROLE=DEPLOYMENT"))?;
        let role = Role::ALL
            .into_iter()
            .find(|r| r.name() == role)
            .ok_or_else(|| invalid("the role is aggregated, prefill or decode"))?;
        if !is_dns_subdomain(name) {
            return Err(invalid(
                "a Deployment name is lowercase letters, digits, '-' and '.' (at most 253)",
            ));
        }
        *self.deployments.get_mut(role) = Some(name.to_string());
        Ok(())
    }
}

/// A DNS-1123 subdomain, as the API server requires of a Deployment's name.
fn is_dns_subdomain(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| alnum(b) || b == b'-' || b == b'.')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

enum Call {
    Read(String),
    Scale(String, usize),
}

struct Request {
    call: Call,
    reply: mpsc::SyncSender<Result<Replicas, Error>>,
}

/// See the module docs.
pub struct KubernetesConnector {
    deployments: RoleMap<Option<String>>,
    requests: Option<mpsc::SyncSender<Request>>,
    actor: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for KubernetesConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesConnector")
            .field("deployments", &self.deployments)
            .finish_non_exhaustive()
    }
}

impl KubernetesConnector {
    /// Builds the client (on the connector's own thread). Fails on a bad URL, an unreadable
    /// token or missing in-cluster credentials; the API server is first contacted by the first
    /// call.
    pub fn new(cfg: KubernetesConfig) -> Result<Self, Error> {
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), Error>>(1);
        let (tx, rx) = mpsc::sync_channel::<Request>(4);
        let deployments = cfg.deployments.clone();
        let actor = std::thread::Builder::new()
            .name("rotor-k8s-connector".into())
            .spawn(move || actor(cfg, rx, ready_tx))
            .map_err(|e| config_error(format!("cannot start the connector thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                deployments,
                requests: Some(tx),
                actor: Some(actor),
            }),
            Ok(Err(e)) => {
                let _ = actor.join();
                Err(e)
            }
            Err(_) => {
                let _ = actor.join();
                Err(config_error("the connector thread ended at start".into()))
            }
        }
    }

    fn deployment(&self, role: Role) -> Result<String, Error> {
        self.deployments
            .get(role)
            .clone()
            .ok_or(Error::NoDeploymentForRole { role })
    }

    fn call(&self, call: Call) -> Result<Replicas, Error> {
        let gone = || Error::Connector {
            connector: "kubernetes",
            message: "the connector thread has ended".into(),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send(Request { call, reply })
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Connector for KubernetesConnector {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn replicas(&mut self, role: Role) -> Result<Replicas, Error> {
        let name = self.deployment(role)?;
        self.call(Call::Read(name))
    }

    fn set_target(&mut self, role: Role, target: usize) -> Result<(), Error> {
        let name = self.deployment(role)?;
        self.call(Call::Scale(name, target)).map(|_| ())
    }
}

impl Drop for KubernetesConnector {
    fn drop(&mut self) {
        self.requests = None; // ends the actor's loop
        if let Some(actor) = self.actor.take() {
            let _ = actor.join();
        }
    }
}

fn config_error(message: String) -> Error {
    Error::KubernetesConfig { message }
}

/// The connector's thread: builds the runtime and the client, then serves calls in order.
fn actor(
    cfg: KubernetesConfig,
    requests: mpsc::Receiver<Request>,
    ready: mpsc::SyncSender<Result<(), Error>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(config_error(format!("cannot start a runtime: {e}"))));
            return;
        }
    };
    let timeout = cfg.request_timeout;
    let api = match runtime.block_on(async { client(&cfg) }) {
        Ok(api) => api,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    for req in requests {
        let answer = runtime.block_on(async {
            let work = async {
                match &req.call {
                    Call::Read(name) => read(&api, name).await,
                    Call::Scale(name, target) => scale(&api, name, *target).await,
                }
            };
            let name = match &req.call {
                Call::Read(n) | Call::Scale(n, _) => n.clone(),
            };
            // kube's own timeouts bound connect and read; this bounds the whole exchange.
            tokio::time::timeout(timeout * 3, work)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::KubernetesUnreachable {
                        deployment: name,
                        message: format!("no answer within {:?}", timeout * 3),
                    })
                })
        });
        let _ = req.reply.send(answer);
    }
}

fn client(cfg: &KubernetesConfig) -> Result<Api<Deployment>, Error> {
    let mut config = match &cfg.api {
        KubernetesApi::InCluster => kube::Config::incluster()
            .map_err(|e| config_error(format!("in-cluster configuration: {e}")))?,
        KubernetesApi::Url { url, token_file } => {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| config_error(format!("API URL {url:?}: {e}")))?;
            let mut c = kube::Config::new(uri);
            if let Some(path) = token_file {
                // Read once, trimmed (a token file written by `echo` ends with a newline, which
                // kube would send verbatim); an unreadable file is a start-up error.
                let token = std::fs::read_to_string(path)
                    .map_err(|e| config_error(format!("token file {}: {e}", path.display())))?;
                c.auth_info.token = Some(secrecy::SecretString::from(token.trim().to_string()));
            }
            c
        }
    };
    config.connect_timeout = Some(cfg.request_timeout);
    config.read_timeout = Some(cfg.request_timeout);
    config.write_timeout = Some(cfg.request_timeout);
    let namespace = cfg
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)
        .map_err(|e| config_error(format!("cannot build the client: {e}")))?;
    Ok(Api::namespaced(client, &namespace))
}

async fn read(api: &Api<Deployment>, name: &str) -> Result<Replicas, Error> {
    let d = api.get(name).await.map_err(|e| api_error(name, e))?;
    let desired = d.spec.replicas.unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Ok(Replicas {
        desired: count(desired),
        ready: count(ready),
    })
}

async fn scale(api: &Api<Deployment>, name: &str, target: usize) -> Result<Replicas, Error> {
    let replicas = i32::try_from(target).map_err(|_| Error::InvalidConfig {
        field: "target replicas",
        value: target.to_string(),
        reason: "more than a Deployment can hold",
    })?;
    let pp = PatchParams::default();
    let body = serde_json::json!({ "spec": { "replicas": replicas } });
    match api.patch_scale(name, &pp, &Patch::Merge(&body)).await {
        Ok(s) => return Ok(scale_replicas(&s, target)),
        Err(e) if status_code(&e) == Some(409) => {
            tracing::info!(deployment = name, target, "scale conflict; reading again");
        }
        Err(e) => return Err(api_error(name, e)),
    }
    let fresh = api.get_scale(name).await.map_err(|e| api_error(name, e))?;
    if fresh.spec.as_ref().and_then(|s| s.replicas) == Some(replicas) {
        return Ok(scale_replicas(&fresh, target));
    }
    let body = serde_json::json!({
        "metadata": { "resourceVersion": fresh.metadata.resource_version },
        "spec": { "replicas": replicas },
    });
    match api.patch_scale(name, &pp, &Patch::Merge(&body)).await {
        Ok(s) => Ok(scale_replicas(&s, target)),
        Err(e) if status_code(&e) == Some(409) => Err(Error::KubernetesConflict {
            deployment: name.to_string(),
        }),
        Err(e) => Err(api_error(name, e)),
    }
}

/// The Scale's counts: `status.replicas` is pods created, not ready; ready is read from the
/// Deployment, so it is left at 0 here (callers of `set_target` ignore it).
fn scale_replicas(s: &k8s_openapi::api::autoscaling::v1::Scale, target: usize) -> Replicas {
    Replicas {
        desired: s
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .map_or(target, count),
        ready: 0,
    }
}

fn count(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api_error(deployment: &str, e: kube::Error) -> Error {
    let deployment = deployment.to_string();
    match e {
        kube::Error::Api(s) => match s.code {
            403 => Error::KubernetesForbidden {
                deployment,
                message: s.message,
            },
            404 => Error::KubernetesNotFound {
                deployment,
                message: s.message,
            },
            409 => Error::KubernetesConflict { deployment },
            status => Error::KubernetesApi {
                deployment,
                status,
                reason: s.reason,
                message: s.message,
            },
        },
        other => Error::KubernetesUnreachable {
            deployment,
            message: other.to_string(),
        },
    }
}
