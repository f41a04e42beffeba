//! Adapts an in-process engine to the frontend's [`Backend`] seam.

use futures::StreamExt;
use rotor_engine::EngineHandle;
use rotor_frontend::{Backend, OutputStream};
use rotor_protocol::{GenerateRequest, WireError};

/// Serves requests from an engine in this process.
pub struct EngineBackend {
    engine: EngineHandle,
}

impl EngineBackend {
    pub fn new(engine: EngineHandle) -> Self {
        Self { engine }
    }
}

/// Cancels the request in the engine when the output stream is dropped before it finished
/// (the client went away). Dropping the receiver alone would also be noticed by the engine at its
/// next send; the explicit cancel frees the sequence even if it is still waiting for admission.
struct CancelOnDrop {
    engine: EngineHandle,
    id: String,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            self.engine.cancel(&self.id);
        }
    }
}

impl Backend for EngineBackend {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        let guard = CancelOnDrop {
            engine: self.engine.clone(),
            id: req.id.clone(),
            finished: false,
        };
        let rx = self.engine.submit(req)?;
        let stream = futures::stream::unfold((rx, guard), |(mut rx, mut guard)| async move {
            let item = rx.recv().await?;
            match &item {
                Ok(out) if out.finish_reason.is_some() => guard.finished = true,
                Err(_) => guard.finished = true,
                Ok(_) => {}
            }
            Some((item, (rx, guard)))
        });
        Ok(stream.boxed())
    }
}
