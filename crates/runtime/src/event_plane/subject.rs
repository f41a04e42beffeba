//! Event subjects: `rotor.{namespace}.{component}.{topic}`.

use std::fmt;

use crate::error::{Error, Result};
use crate::names::validate_name;

/// Topic of KV-cache events (`rotor_protocol::RouterEvent` payloads).
pub const TOPIC_KV_EVENTS: &str = "kv_events";
/// Topic of worker load metrics.
pub const TOPIC_LOAD: &str = "load";

/// Where an event is published: `rotor.{namespace}.{component}.{topic}`. Each segment is a
/// runtime name without `.` (NATS splits subjects on dots, so `a.b` would collide with a
/// different namespace/component pair). Subscriptions match subjects exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventSubject {
    subject: String,
}

impl EventSubject {
    /// Builds a subject, validating each segment.
    pub fn new(namespace: &str, component: &str, topic: &str) -> Result<Self> {
        for (what, segment) in [
            ("namespace", namespace),
            ("component", component),
            ("topic", topic),
        ] {
            validate_name(what, segment)?;
            if segment.contains('.') {
                return Err(Error::InvalidSubject {
                    segment: segment.to_string(),
                    reason: "event subject segments cannot contain '.'",
                });
            }
        }
        Ok(Self {
            subject: format!("rotor.{namespace}.{component}.{topic}"),
        })
    }

    /// The subject string, e.g. `rotor.prod.backend.kv_events`.
    pub fn as_str(&self) -> &str {
        &self.subject
    }
}

impl fmt::Display for EventSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_layout() {
        let subject = EventSubject::new("prod", "backend", TOPIC_KV_EVENTS).expect("valid");
        assert_eq!(subject.as_str(), "rotor.prod.backend.kv_events");
        assert_eq!(subject.to_string(), "rotor.prod.backend.kv_events");
    }

    #[test]
    fn dots_and_wildcards_are_refused() {
        assert!(matches!(
            EventSubject::new("a.b", "c", "load"),
            Err(Error::InvalidSubject { segment, .. }) if segment == "a.b"
        ));
        assert!(matches!(
            EventSubject::new("a", "*", "load"),
            Err(Error::InvalidName {
                what: "component",
                ..
            })
        ));
        assert!(matches!(
            EventSubject::new("a", "b", ""),
            Err(Error::InvalidName { what: "topic", .. })
        ));
    }
}
