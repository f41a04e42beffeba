//! [`ModelEndpoint`]: one routed model served as an instance of the router's component: a
//! request-plane server whose generate handler runs requests through the model's
//! `RoutedBackend` (dropping a response stream, when the caller goes away, cancels the request on
//! its worker), registered in discovery with the workers' model card.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rotor_frontend::ServedModel;
use rotor_protocol::worker::GENERATE_ENDPOINT;
use rotor_runtime::request_plane::GenerateHandler;
use rotor_runtime::{
    Discovery, EndpointPath, Instance, Registration, RequestPlaneConfig, RequestPlaneServer,
};

use rotor_frontend::FrontendError;

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
    ) -> Result<Self, FrontendError> {
        let runtime = |op| move |source| FrontendError::Runtime { op, source };
        let path = EndpointPath::new(&config.namespace, &config.component, GENERATE_ENDPOINT)
            .map_err(runtime("endpoint name"))?;
        let (server, addr) = RequestPlaneServer::bind(config.bind, config.request_plane)
            .await
            .map_err(runtime("binding the request plane"))?;
        let backend = Arc::clone(&model.backend);
        server.register(
            GENERATE_ENDPOINT,
            Arc::new(GenerateHandler::new(move |req| backend.generate(req))),
        );
        let mut instance = Instance::new(path, addr.to_string());
        instance.metadata = serde_json::json!({ "model": model.card.name, "role": "router" });
        let registration = discovery
            .register(instance.clone())
            .await
            .map_err(runtime("registering in discovery"))?;
        if let Err(source) = registration.put_model_card(&model.card).await {
            let _ = registration.deregister().await;
            return Err(FrontendError::Runtime {
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
