//! [`EventsConfig`]: the validated `--events` choice.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{EventPlane, InProcessEventPlane, NatsEventPlane};
use crate::error::{Error, Result};

/// Which event plane to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsConfig {
    /// `mem`: an in-process bus; everything must live in one process.
    InProcess,
    /// `nats://HOST[:PORT]`: a NATS server (port 4222 when omitted).
    Nats { url: String },
}

impl EventsConfig {
    /// Parses `mem` or `nats://HOST[:PORT]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidEventsSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec == "mem" {
            return Ok(Self::InProcess);
        }
        let Some(rest) = spec.strip_prefix("nats://") else {
            return Err(invalid("expected `mem` or `nats://HOST[:PORT]`"));
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(invalid("missing or malformed host"));
        }
        if let Some(port) = port {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(invalid("port must be a number in 1-65535"));
            }
        }
        Ok(Self::Nats {
            url: spec.to_string(),
        })
    }

    /// Opens the plane. For `mem` this is a new bus: share the returned handle within the
    /// process rather than calling `connect` per component.
    pub async fn connect(&self) -> Result<Arc<dyn EventPlane>> {
        Ok(match self {
            Self::InProcess => Arc::new(InProcessEventPlane::default()),
            Self::Nats { url } => Arc::new(NatsEventPlane::connect(url).await?),
        })
    }
}

impl FromStr for EventsConfig {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        Self::parse(spec)
    }
}

impl fmt::Display for EventsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InProcess => f.write_str("mem"),
            Self::Nats { url } => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_specs() {
        assert_eq!(
            EventsConfig::parse("mem").expect("mem"),
            EventsConfig::InProcess
        );
        let nats = EventsConfig::parse("nats://127.0.0.1:4222").expect("nats");
        assert_eq!(
            nats,
            EventsConfig::Nats {
                url: "nats://127.0.0.1:4222".into()
            }
        );
        assert_eq!(nats.to_string(), "nats://127.0.0.1:4222");
        assert!(matches!(
            EventsConfig::parse("nats://nats.svc").expect("default port"),
            EventsConfig::Nats { .. }
        ));
    }

    #[test]
    fn rejects_invalid_specs() {
        for spec in [
            "",
            "memory",
            "nats://",
            "nats://host:0",
            "nats://host:x",
            "http://h:1",
        ] {
            assert!(
                matches!(
                    EventsConfig::parse(spec),
                    Err(Error::InvalidEventsSpec { .. })
                ),
                "{spec:?} should be rejected"
            );
        }
    }
}
