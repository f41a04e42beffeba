//! The planner's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid planner config: {field} = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid profile: {reason}")]
    InvalidProfile { reason: String },
    #[error("cannot read profile {path}: {source}")]
    ReadProfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse profile {path}: {source}")]
    ParseProfile {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unknown predictor {name:?} (expected constant, moving-average, holt or kalman)")]
    UnknownPredictor { name: String },
    #[error(
        "no Kubernetes Deployment is configured for role {role} (--k8s-deployment {role}=NAME)"
    )]
    NoDeploymentForRole { role: crate::role::Role },
    #[error("Kubernetes connector configuration: {message}")]
    KubernetesConfig { message: String },
    #[error("Kubernetes API refused access to deployment {deployment} (403; the planner's Role needs get/patch on deployments/scale and get on deployments): {message}")]
    KubernetesForbidden { deployment: String, message: String },
    #[error("Kubernetes deployment {deployment} not found (404): {message}")]
    KubernetesNotFound { deployment: String, message: String },
    #[error("Kubernetes deployment {deployment}: scale conflict (409) again after a fresh read")]
    KubernetesConflict { deployment: String },
    #[error("Kubernetes API answered {status} {reason} for deployment {deployment}: {message}")]
    KubernetesApi {
        deployment: String,
        status: u16,
        reason: String,
        message: String,
    },
    #[error("Kubernetes API unreachable (deployment {deployment}): {message}")]
    KubernetesUnreachable { deployment: String, message: String },
    #[error("connector {connector}: {message}")]
    Connector {
        connector: &'static str,
        message: String,
    },
}
