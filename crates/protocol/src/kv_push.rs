//! Direct KV transfer between workers (disaggregated serving): the router asks the prefill
//! worker ([`KV_PREFILL_PUSH_ENDPOINT`]) to prefill a prompt and send its blocks straight to the
//! decode worker's request-plane address, over shared memory ([`KV_IMPORT_SHM_ENDPOINT`], when
//! both run on one host) or TCP (the ordinary [`KV_IMPORT_ENDPOINT`] block batch). The router
//! receives only one [`KvPushEvent`] per batch: the bytes never pass through it.
//!
//! [`KV_IMPORT_ENDPOINT`]: crate::worker::KV_IMPORT_ENDPOINT

use serde::{Deserialize, Serialize};

use crate::worker::{KvImportOutcome, PrefillRequest};

/// The prefill worker's endpoint that prefills and pushes: a JSON [`PrefillPushRequest`] in,
/// one JSON [`KvPushEvent`] per batch out; a prefill failure ends the stream as a `WireError`.
pub const KV_PREFILL_PUSH_ENDPOINT: &str = "kv_prefill_push";
/// The decode worker's endpoint that imports a batch written to a shared-memory file: a JSON
/// [`ShmBlockBatch`] in, one JSON [`KvImportOutcome`] out. The worker reads the file, removes
/// it, and imports the blocks through the same checks as [`KV_IMPORT_ENDPOINT`]'s.
///
/// [`KV_IMPORT_ENDPOINT`]: crate::worker::KV_IMPORT_ENDPOINT
pub const KV_IMPORT_SHM_ENDPOINT: &str = "kv_import_shm";

/// How a batch of KV blocks travels from the prefill worker to the decode worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvTransport {
    /// A file in the workers' shared-memory directory (`/dev/shm`); only a descriptor travels
    /// on the request plane. Both workers must have the same `host_id`.
    Shm,
    /// The block bytes in a request-plane call (TCP).
    Tcp,
}

impl KvTransport {
    pub const ALL: [KvTransport; 2] = [KvTransport::Shm, KvTransport::Tcp];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            KvTransport::Shm => "shm",
            KvTransport::Tcp => "tcp",
        }
    }
}

/// Prefill `prefill.request` and send the blocks of `prefill.sequence_hashes` to the worker at
/// `target_address` in batches of at most `batch_bytes` (a batch is also sent as soon as no
/// further block is ready, so the transfer overlaps the prefill), over `transport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefillPushRequest {
    pub prefill: PrefillRequest,
    /// The decode worker's request-plane address.
    pub target_address: String,
    pub transport: KvTransport,
    pub batch_bytes: u64,
}

/// One batch's fate, as the prefill worker reports it to the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KvPushEvent {
    /// The decode worker answered the batch's import. When `outcome.stopped` is set it refused
    /// a block and the push ends here.
    Imported {
        /// How the batch actually travelled (TCP after a failed shared-memory write).
        transport: KvTransport,
        /// Whether shared memory was asked for but failed for this batch (no directory,
        /// permission, no space), so it went over TCP.
        shm_fallback: bool,
        blocks: u64,
        bytes: u64,
        outcome: KvImportOutcome,
    },
    /// The import call failed (decode worker unreachable, an error answer): the push ends.
    TransferFailed { message: String },
}

/// A batch of encoded blocks in a shared-memory file: `blocks[i]` is the `(offset, length)` of
/// block `i` (chain order) in the file at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShmBlockBatch {
    pub path: String,
    pub blocks: Vec<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_events_round_trip() {
        let event = KvPushEvent::Imported {
            transport: KvTransport::Shm,
            shm_fallback: false,
            blocks: 3,
            bytes: 1_000,
            outcome: KvImportOutcome {
                imported: 2,
                already_cached: 1,
                stopped: None,
            },
        };
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains("\"transport\":\"shm\""), "{text}");
        assert_eq!(serde_json::from_str::<KvPushEvent>(&text).unwrap(), event);
        let failed = KvPushEvent::TransferFailed {
            message: "gone".into(),
        };
        let text = serde_json::to_string(&failed).unwrap();
        assert_eq!(serde_json::from_str::<KvPushEvent>(&text).unwrap(), failed);
    }
}
