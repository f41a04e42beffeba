//! The frontend's store of responses created with `store: true`, for GET, DELETE and
//! `previous_response_id`.
//!
//! In memory and per frontend process: a response stored by one frontend is unknown to another
//! (behind a load balancer, chain a conversation on one frontend, or send the whole history).
//! Bounded: at most `capacity` responses; storing one more evicts the oldest stored.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rotor_protocol::openai::ChatMessage;
use rotor_protocol::responses_api::ResponseObject;

/// One stored response and the conversation that led to it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub response: ResponseObject,
    /// The conversation before this response's output, without its `instructions`: the
    /// previous responses' turns, then this request's input.
    pub input: Vec<ChatMessage>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Arc<StoredResponse>>,
    /// Ids oldest first; may hold ids already deleted (skipped when evicting).
    order: VecDeque<String>,
}

/// Stored responses by id, oldest evicted first.
pub struct ResponseStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ResponseStore {
    /// A store of at most `capacity` responses (0: nothing is kept).
    pub fn new(capacity: usize) -> ResponseStore {
        ResponseStore {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, even if a panic cut it short.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `stored`, evicting the oldest responses beyond the capacity; returns how many
    /// responses are stored now.
    pub fn insert(&self, stored: StoredResponse) -> usize {
        let mut inner = self.lock();
        if self.capacity == 0 {
            return 0;
        }
        let id = stored.response.id.clone();
        if inner.by_id.insert(id.clone(), Arc::new(stored)).is_none() {
            inner.order.push_back(id);
        }
        while inner.by_id.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.by_id.remove(&oldest);
        }
        inner.by_id.len()
    }

    pub fn get(&self, id: &str) -> Option<Arc<StoredResponse>> {
        self.lock().by_id.get(id).cloned()
    }

    /// Removes `id`; `None` when it was not stored. Also returns how many remain.
    pub fn remove(&self, id: &str) -> (Option<Arc<StoredResponse>>, usize) {
        let mut inner = self.lock();
        let removed = inner.by_id.remove(id);
        if removed.is_some() {
            inner.order.retain(|kept| kept != id);
        }
        (removed, inner.by_id.len())
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::responses_api::ResponseObject;
    use serde_json::json;

    fn stored(id: &str) -> StoredResponse {
        let response: ResponseObject = serde_json::from_value(json!({
            "id": id, "object": "response", "created_at": 1, "completed_at": 1,
            "status": "completed", "incomplete_details": null, "error": null, "model": "m",
            "previous_response_id": null, "instructions": null, "output": [], "tools": [],
            "tool_choice": "auto", "parallel_tool_calls": true, "text": {}, "temperature": 1.0,
            "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "top_logprobs": 0,
            "truncation": "disabled", "reasoning": null, "usage": null,
            "max_output_tokens": null, "max_tool_calls": null, "store": true,
            "background": false, "service_tier": "default", "metadata": {}, "user": null,
            "safety_identifier": null, "prompt_cache_key": null
        }))
        .expect("a response object");
        StoredResponse {
            response,
            input: Vec::new(),
        }
    }

    #[test]
    fn oldest_is_evicted_beyond_capacity_and_deleted_ids_do_not_count() {
        let store = ResponseStore::new(2);
        assert_eq!(store.insert(stored("a")), 1);
        assert_eq!(store.insert(stored("b")), 2);
        assert_eq!(store.insert(stored("c")), 2);
        assert!(store.get("a").is_none(), "a was the oldest");
        assert!(store.get("b").is_some() && store.get("c").is_some());
        let (removed, left) = store.remove("b");
        assert!(removed.is_some());
        assert_eq!(left, 1);
        assert!(store.remove("b").0.is_none(), "already deleted");
        assert_eq!(store.insert(stored("d")), 2);
        assert_eq!(store.insert(stored("e")), 2);
        assert!(store.get("c").is_none(), "c is now the oldest");
        assert!(store.get("d").is_some() && store.get("e").is_some());
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let store = ResponseStore::new(0);
        assert_eq!(store.insert(stored("a")), 0);
        assert!(store.get("a").is_none());
        assert!(store.is_empty());
    }
}
