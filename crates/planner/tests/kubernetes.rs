//! The `kubernetes` connector against a scripted stand-in of the Kubernetes API (there is no
//! cluster on the test machine): an HTTP server serving `GET` of a Deployment and `GET`/`PATCH`
//! of its scale subresource, which records every request and can be told to answer a 409, a
//! 403 or a 500, to lag readiness behind the desired count, or to cap it (pods that never fit).
//! Run with `cargo test -p rotor-planner --features kubernetes` (scripts/test does).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rotor_planner::{
    Connector, DecodePoint, Error, KubernetesApi, KubernetesConfig, KubernetesConnector,
    Observation, PerfProfile, Planner, PlannerConfig, PredictorKind, PrefillPoint, Replicas, Role,
    RoleMap, Sla,
};
use serde_json::{json, Value};

const NS: &str = "rotor";

/// One Deployment as the stand-in keeps it.
#[derive(Debug, Clone)]
struct Deployment {
    desired: i32,
    ready: i32,
    /// Most pods that can become ready (the rest stay Pending).
    capacity: i32,
    /// Pods that become ready per GET of the Deployment (readiness lag); 0 = at once.
    ready_per_read: i32,
    resource_version: u64,
}

/// A request as the stand-in received it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: &'static str,
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Option<Value>,
}

#[derive(Default)]
struct Api {
    deployments: HashMap<String, Deployment>,
    /// Statuses to answer to the next PATCHes / GETs instead of serving them.
    patch_faults: VecDeque<u16>,
    get_faults: VecDeque<u16>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Api>>;

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

fn fault(code: u16) -> Response {
    match code {
        409 => status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on deployments.apps: the object has been modified",
        ),
        403 => status(
            403,
            "Forbidden",
            "deployments.apps is forbidden: User cannot get resource",
        ),
        _ => status(code, "InternalError", "etcdserver: request timed out"),
    }
}

fn not_found(name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("deployments.apps \"{name}\" not found"),
    )
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(String::from)
}

fn scale_body(name: &str, d: &Deployment) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": d.resource_version.to_string()},
        "spec": {"replicas": d.desired},
        "status": {"replicas": d.desired, "selector": format!("app={name}")},
    })
}

async fn get_deployment(
    State(api): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut api = api.lock().unwrap();
    api.seen.push(Seen {
        method: "GET",
        path: format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
        content_type: None,
        authorization: header(&headers, "authorization"),
        body: None,
    });
    if let Some(code) = api.get_faults.pop_front() {
        return fault(code);
    }
    let Some(d) = api.deployments.get_mut(&name).filter(|_| ns == NS) else {
        return not_found(&name);
    };
    // Readiness moves toward min(desired, capacity), `ready_per_read` pods per read.
    let reachable = d.desired.min(d.capacity);
    d.ready = if d.ready_per_read == 0 || d.ready > reachable {
        reachable
    } else {
        (d.ready + d.ready_per_read).min(reachable)
    };
    let mut status = json!({"replicas": d.desired, "observedGeneration": 1});
    if d.ready > 0 {
        // Like the API server, the field is absent at 0.
        status["readyReplicas"] = json!(d.ready);
    }
    Json(json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": d.resource_version.to_string()},
        "spec": {
            "replicas": d.desired,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "worker", "image": "rotor:test"}]},
            },
        },
        "status": status,
    }))
    .into_response()
}

async fn get_scale(
    State(api): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut api = api.lock().unwrap();
    api.seen.push(Seen {
        method: "GET",
        path: format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"),
        content_type: None,
        authorization: header(&headers, "authorization"),
        body: None,
    });
    if let Some(code) = api.get_faults.pop_front() {
        return fault(code);
    }
    match api.deployments.get(&name).filter(|_| ns == NS) {
        Some(d) => Json(scale_body(&name, d)).into_response(),
        None => not_found(&name),
    }
}

async fn patch_scale(
    State(api): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut api = api.lock().unwrap();
    let parsed: Option<Value> = serde_json::from_str(&body).ok();
    let content_type = header(&headers, "content-type");
    api.seen.push(Seen {
        method: "PATCH",
        path: format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"),
        content_type: content_type.clone(),
        authorization: header(&headers, "authorization"),
        body: parsed.clone(),
    });
    if let Some(code) = api.patch_faults.pop_front() {
        return fault(code);
    }
    if content_type.as_deref() != Some("application/merge-patch+json") {
        return status(415, "UnsupportedMediaType", "expected a merge patch");
    }
    let Some(d) = api.deployments.get_mut(&name).filter(|_| ns == NS) else {
        return not_found(&name);
    };
    let Some(replicas) = parsed
        .as_ref()
        .and_then(|b| b["spec"]["replicas"].as_i64())
        .and_then(|r| i32::try_from(r).ok())
    else {
        return status(422, "Invalid", "spec.replicas missing");
    };
    if let Some(rv) = parsed
        .as_ref()
        .and_then(|b| b["metadata"]["resourceVersion"].as_str())
    {
        if rv != d.resource_version.to_string() {
            return fault(409);
        }
    }
    d.desired = replicas;
    d.resource_version += 1;
    let body = scale_body(&name, d);
    Json(body).into_response()
}

/// The stand-in, served on `127.0.0.1:0` by its own runtime for the test's life.
struct StandIn {
    api: Shared,
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl StandIn {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let api: Shared = Arc::default();
        let app = Router::new()
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                get(get_deployment),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
                get(get_scale).patch(patch_scale),
            )
            .with_state(api.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            api,
            addr,
            _runtime: runtime,
        }
    }

    fn with(self, name: &str, desired: i32, capacity: i32) -> Self {
        self.api.lock().unwrap().deployments.insert(
            name.into(),
            Deployment {
                desired,
                ready: desired.min(capacity),
                capacity,
                ready_per_read: 0,
                resource_version: 100,
            },
        );
        self
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn config(&self) -> KubernetesConfig {
        KubernetesConfig {
            api: KubernetesApi::Url {
                url: self.url(),
                token_file: None,
            },
            namespace: Some(NS.into()),
            deployments: RoleMap {
                aggregated: Some("rotor-aggregated".into()),
                prefill: Some("rotor-prefill".into()),
                decode: Some("rotor-decode".into()),
            },
            request_timeout: Duration::from_secs(5),
        }
    }

    fn connector(&self) -> KubernetesConnector {
        KubernetesConnector::new(self.config()).unwrap()
    }

    fn deployment(&self, name: &str) -> Deployment {
        self.api.lock().unwrap().deployments[name].clone()
    }

    fn edit(&self, name: &str, f: impl FnOnce(&mut Deployment)) {
        f(self.api.lock().unwrap().deployments.get_mut(name).unwrap());
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.api.lock().unwrap().seen)
    }
}

fn scale_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}/scale")
}

fn patch(name: &str, body: Value) -> Seen {
    Seen {
        method: "PATCH",
        path: scale_path(name),
        content_type: Some("application/merge-patch+json".into()),
        authorization: None,
        body: Some(body),
    }
}

fn get_of(path: String) -> Seen {
    Seen {
        method: "GET",
        path,
        content_type: None,
        authorization: None,
        body: None,
    }
}

#[test]
fn set_target_sends_a_merge_patch_of_spec_replicas_to_the_scale_subresource() {
    let k8s = StandIn::start()
        .with("rotor-decode", 1, 8)
        .with("rotor-prefill", 1, 8);
    let mut c = k8s.connector();
    c.set_target(Role::Decode, 3).unwrap();
    assert_eq!(
        k8s.seen(),
        vec![patch("rotor-decode", json!({"spec": {"replicas": 3}}))],
        "one PATCH of the decode Deployment's scale, nothing else"
    );
    assert_eq!(k8s.deployment("rotor-decode").desired, 3);
    assert_eq!(
        k8s.deployment("rotor-prefill").desired,
        1,
        "other roles untouched"
    );
}

#[test]
fn replicas_are_read_from_the_deployment_spec_and_status() {
    let k8s = StandIn::start().with("rotor-aggregated", 3, 8);
    k8s.edit("rotor-aggregated", |d| d.ready = 0);
    k8s.edit("rotor-aggregated", |d| d.ready_per_read = 1);
    let mut c = k8s.connector();
    // Readiness lags: one pod more per read, up to the desired 3.
    let seen: Vec<Replicas> = (0..4)
        .map(|_| c.replicas(Role::Aggregated).unwrap())
        .collect();
    let ready: Vec<usize> = seen.iter().map(|r| r.ready).collect();
    assert_eq!(ready, vec![1, 2, 3, 3]);
    assert!(seen.iter().all(|r| r.desired == 3));
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/rotor-aggregated");
    assert_eq!(k8s.seen(), vec![get_of(path); 4]);
}

#[test]
fn a_replica_count_changed_by_hand_is_seen() {
    let k8s = StandIn::start().with("rotor-aggregated", 1, 8);
    let mut c = k8s.connector();
    c.set_target(Role::Aggregated, 2).unwrap();
    assert_eq!(c.replicas(Role::Aggregated).unwrap().desired, 2);
    // `kubectl scale deployment rotor-aggregated --replicas=5`
    k8s.edit("rotor-aggregated", |d| d.desired = 5);
    assert_eq!(
        c.replicas(Role::Aggregated).unwrap(),
        Replicas {
            desired: 5,
            ready: 5
        }
    );
}

#[test]
fn a_conflict_is_retried_once_after_a_fresh_read() {
    let k8s = StandIn::start().with("rotor-decode", 1, 8);
    k8s.api.lock().unwrap().patch_faults.push_back(409);
    let mut c = k8s.connector();
    c.set_target(Role::Decode, 4).unwrap();
    assert_eq!(
        k8s.seen(),
        vec![
            patch("rotor-decode", json!({"spec": {"replicas": 4}})),
            get_of(scale_path("rotor-decode")),
            patch(
                "rotor-decode",
                json!({"metadata": {"resourceVersion": "100"}, "spec": {"replicas": 4}})
            ),
        ]
    );
    assert_eq!(k8s.deployment("rotor-decode").desired, 4);

    // The fresh read already shows the target: nothing more is sent.
    k8s.api.lock().unwrap().patch_faults.push_back(409);
    k8s.edit("rotor-decode", |d| d.desired = 6);
    c.set_target(Role::Decode, 6).unwrap();
    assert_eq!(
        k8s.seen(),
        vec![
            patch("rotor-decode", json!({"spec": {"replicas": 6}})),
            get_of(scale_path("rotor-decode")),
        ]
    );

    // Two conflicts: a named error after exactly one retry.
    k8s.api.lock().unwrap().patch_faults.extend([409, 409, 409]);
    let err = c.set_target(Role::Decode, 2).unwrap_err();
    assert!(
        matches!(&err, Error::KubernetesConflict { deployment } if deployment == "rotor-decode"),
        "{err}"
    );
    assert_eq!(k8s.seen().len(), 3, "PATCH, GET, PATCH: one retry only");
    assert_eq!(k8s.deployment("rotor-decode").desired, 6);
}

#[test]
fn api_errors_are_named_errors() {
    let k8s = StandIn::start().with("rotor-aggregated", 1, 8);
    let mut c = k8s.connector();

    k8s.api.lock().unwrap().get_faults.push_back(403);
    let err = c.replicas(Role::Aggregated).unwrap_err();
    assert!(matches!(err, Error::KubernetesForbidden { .. }), "{err}");
    assert!(err.to_string().contains("deployments/scale"), "{err}");

    k8s.api.lock().unwrap().patch_faults.push_back(500);
    let err = c.set_target(Role::Aggregated, 2).unwrap_err();
    assert!(
        matches!(&err, Error::KubernetesApi { status: 500, deployment, .. } if deployment == "rotor-aggregated"),
        "{err}"
    );
    assert_eq!(
        k8s.deployment("rotor-aggregated").desired,
        1,
        "500: not retried"
    );
    assert_eq!(k8s.seen().len(), 2);

    let err = c.replicas(Role::Decode).unwrap_err();
    assert!(
        matches!(&err, Error::KubernetesNotFound { deployment, .. } if deployment == "rotor-decode"),
        "{err}"
    );

    let mut cfg = k8s.config();
    cfg.deployments.prefill = None;
    let mut no_prefill = KubernetesConnector::new(cfg).unwrap();
    let err = no_prefill.set_target(Role::Prefill, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoDeploymentForRole {
                role: Role::Prefill
            }
        ),
        "{err}"
    );

    // Nothing listens: a named error within the request timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = k8s.config();
    cfg.api = KubernetesApi::Url {
        url: format!("http://127.0.0.1:{port}"),
        token_file: None,
    };
    cfg.request_timeout = Duration::from_secs(2);
    let mut gone = KubernetesConnector::new(cfg).unwrap();
    let err = gone.replicas(Role::Aggregated).unwrap_err();
    assert!(matches!(err, Error::KubernetesUnreachable { .. }), "{err}");

    let mut cfg = k8s.config();
    cfg.api = KubernetesApi::Url {
        url: "http://exa mple".into(),
        token_file: None,
    };
    let err = KubernetesConnector::new(cfg).unwrap_err();
    assert!(matches!(err, Error::KubernetesConfig { .. }), "{err}");

    let mut cfg = KubernetesConfig::in_cluster();
    let err = cfg.set_deployment("decoder=rotor-decode").unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    cfg.set_deployment("decode=my-decode").unwrap();
    assert_eq!(cfg.deployments.decode.as_deref(), Some("my-decode"));
}

#[test]
fn the_bearer_token_file_is_sent() {
    let k8s = StandIn::start().with("rotor-aggregated", 1, 8);
    let dir = std::env::temp_dir().join(format!("rotor-k8s-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "s3cr3t\n").unwrap();
    let mut cfg = k8s.config();
    cfg.api = KubernetesApi::Url {
        url: k8s.url(),
        token_file: Some(token.clone()),
    };
    let mut c = KubernetesConnector::new(cfg).unwrap();
    c.replicas(Role::Aggregated).unwrap();
    let seen = k8s.seen();
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cr3t"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// TTFT = 1 ms per prompt token; ITL 10..50 ms for batch 1..9 (as in tests/plan.rs).
fn profile() -> PerfProfile {
    PerfProfile {
        engine: "test".into(),
        max_batch: 16,
        prefill: vec![
            PrefillPoint {
                isl: 100,
                ttft_ms: 100.0,
            },
            PrefillPoint {
                isl: 1000,
                ttft_ms: 1000.0,
            },
        ],
        decode: vec![
            DecodePoint {
                batch: 1,
                context: 1000,
                itl_ms: 10.0,
            },
            DecodePoint {
                batch: 9,
                context: 1000,
                itl_ms: 50.0,
            },
        ],
    }
}

fn traffic(requests: u64) -> Observation {
    Observation {
        interval_s: 10.0,
        requests,
        input_tokens: requests * 500,
        output_tokens: requests * 100,
        ..Observation::default()
    }
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[test]
fn an_unfulfillable_scale_up_does_not_block_a_later_scale_down() {
    // At most 2 pods of the Deployment can ever become ready.
    let k8s = StandIn::start().with("rotor-aggregated", 1, 2);
    let mut cfg = PlannerConfig::new(
        Sla {
            ttft_ms: 2000.0,
            itl_ms: 50.0,
        },
        1,
        8,
    );
    cfg.predictor = PredictorKind::Constant;
    cfg.correction = false;
    let mut planner = Planner::new(cfg, profile(), k8s.connector()).unwrap();
    let sets = r#"rotor_planner_connector_requests_total{connector="kubernetes",op="set_target",outcome="ok"}"#;
    let reads =
        r#"rotor_planner_connector_requests_total{connector="kubernetes",op="read",outcome="ok"}"#;
    assert_eq!(metric(&planner.metrics().render(), sets), 0);

    for _ in 0..4 {
        let started = Instant::now();
        let d = planner.step(traffic(30));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a plan never waits for readiness"
        );
        assert_eq!(d.roles[0].target, 4);
    }
    let d = k8s.deployment("rotor-aggregated");
    assert_eq!(
        (d.desired, d.ready),
        (4, 2),
        "the scale-up is stuck at 2 ready"
    );
    let patches: Vec<Seen> = k8s
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .collect();
    assert_eq!(
        patches,
        vec![patch("rotor-aggregated", json!({"spec": {"replicas": 4}}))],
        "asked once"
    );
    assert!(planner.metrics().unfulfilled_scale_ups >= 1);

    for _ in 0..4 {
        planner.step(traffic(0));
    }
    assert_eq!(
        k8s.deployment("rotor-aggregated").desired,
        1,
        "the scale-down went through"
    );
    let text = planner.metrics().render();
    assert_eq!(
        metric(&text, sets),
        2,
        "one scale-up, one scale-down applied"
    );
    assert_eq!(metric(&text, reads), 8, "one read per interval");
    assert_eq!(
        metric(
            &text,
            r#"rotor_planner_connector_requests_total{connector="kubernetes",op="set_target",outcome="error"}"#
        ),
        0
    );

    // A failing API is counted as such, and the planner carries on.
    k8s.api.lock().unwrap().get_faults.push_back(500);
    planner.step(traffic(0));
    let text = planner.metrics().render();
    assert_eq!(
        metric(
            &text,
            r#"rotor_planner_connector_requests_total{connector="kubernetes",op="read",outcome="error"}"#
        ),
        1
    );
    assert_eq!(planner.metrics().connector_errors, 1);
}
