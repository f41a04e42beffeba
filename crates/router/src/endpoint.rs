//! [`ModelEndpoint`]: one routed model served as an instance of the router's component: a
//! request-plane server whose generate handler runs requests through the model's
//! `RoutedBackend`, registered in discovery with the workers' model card.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rotor_frontend::{Backend, ServedModel};
use rotor_protocol::worker::{decode_request, encode_output, GENERATE_ENDPOINT};
use rotor_protocol::{ErrorKind, WireError};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{
    Discovery, EndpointPath, Instance, Registration, RequestContext, RequestPlaneConfig,
    RequestPlaneServer, StreamHandler,
};

use crate::error::Error;

/// Runs generate calls through a routed backend.
struct RoutedGenerate {
    backend: Arc<dyn Backend>,
}

fn fail(error: WireError) -> ResponseChunks {
    futures::stream::once(async move { Err(error) }).boxed()
}

impl StreamHandler for RoutedGenerate {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        let req = match decode_request(&request) {
            Ok(req) => req,
            Err(error) => {
                return fail(WireError::new(
                    ErrorKind::InvalidRequest,
                    format!("the generate payload is not a GenerateRequest: {error}"),
                ))
            }
        };
        tracing::debug!(request = %req.id, peer = %ctx.peer, "route");
        let outputs = match self.backend.generate(req) {
            Ok(outputs) => outputs,
            Err(error) => return fail(error),
        };
        // Dropping the stream (the caller went away) cancels the request on its worker.
        outputs
            .take_until(ctx.cancel.cancelled_owned())
            .map(|item| item.map(|out| Bytes::from(encode_output(&out))))
            .boxed()
    }
}

/// Where a model endpoint registers and listens.
#[derive(Debug, Clone)]
pub(crate) struct EndpointConfig {
    pub namespace: String,
    pub component: String,
    pub bind: SocketAddr,
    pub request_plane: RequestPlaneConfig,
}

/// One model, served and registered.
pub(crate) struct ModelEndpoint {
    instance: Instance,
    server: RequestPlaneServer,
    registration: Registration,
}

impl ModelEndpoint {
    pub async fn start(
        model: ServedModel,
        discovery: &dyn Discovery,
        config: &EndpointConfig,
    ) -> Result<Self, Error> {
        let path = EndpointPath::new(&config.namespace, &config.component, GENERATE_ENDPOINT)
            .map_err(Error::runtime("endpoint name"))?;
        let (server, addr) = RequestPlaneServer::bind(config.bind, config.request_plane)
            .await
            .map_err(Error::runtime("binding the request plane"))?;
        server.register(
            GENERATE_ENDPOINT,
            Arc::new(RoutedGenerate {
                backend: Arc::clone(&model.backend),
            }),
        );
        let mut instance = Instance::new(path, addr.to_string());
        instance.metadata = serde_json::json!({ "model": model.card.name, "role": "router" });
        let registration = discovery
            .register(instance.clone())
            .await
            .map_err(Error::runtime("registering in discovery"))?;
        if let Err(source) = registration.put_model_card(&model.card).await {
            let _ = registration.deregister().await;
            return Err(Error::Runtime {
                op: "publishing the model card",
                source,
            });
        }
        tracing::info!(model = %model.card.name, instance = %instance.instance_id, %addr,
            "routing endpoint registered");
        Ok(Self {
            instance,
            server,
            registration,
        })
    }

    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Deregisters, then lets running requests finish within `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let id = self.instance.instance_id;
        if let Err(error) = self.registration.deregister().await {
            tracing::warn!(instance = %id, %error,
                "deregistering failed; the entry expires with its lease");
        }
        let drain = self.server.shutdown(grace).await;
        tracing::info!(instance = %id, cancelled = drain.cancelled_requests,
            "routing endpoint stopped");
    }
}
