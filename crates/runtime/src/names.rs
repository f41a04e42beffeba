//! Names of things that serve requests: `namespace/component/endpoint`, and the instances that
//! serve them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Unique id of one registered instance, shown as 16 hex digits. Random, so it survives the
/// discovery store losing and re-granting its lease (an etcd restart) unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceId(pub u64);

impl InstanceId {
    /// A fresh random id (never 0).
    pub fn random() -> Self {
        loop {
            let id: u64 = rand::random();
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// Parses the 16-hex-digit form written by [`Display`](fmt::Display).
    pub fn from_hex(text: &str) -> Option<Self> {
        u64::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Checks one path segment: 1–64 characters of `[A-Za-z0-9_.-]`. Keeping names this plain lets
/// every backend use them verbatim in keys and file names.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

/// `namespace/component/endpoint`, e.g. `rotor/worker/generate`. Fields are validated names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EndpointPath {
    pub namespace: String,
    pub component: String,
    pub endpoint: String,
}

impl EndpointPath {
    /// Builds a path, validating each segment.
    pub fn new(namespace: &str, component: &str, endpoint: &str) -> Result<Self> {
        validate_name("namespace", namespace)?;
        validate_name("component", component)?;
        validate_name("endpoint", endpoint)?;
        Ok(Self {
            namespace: namespace.to_string(),
            component: component.to_string(),
            endpoint: endpoint.to_string(),
        })
    }

    /// Parses `namespace/component/endpoint`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(component), Some(endpoint), None) => Self::new(ns, component, endpoint),
            _ => Err(Error::InvalidName {
                what: "endpoint path (namespace/component/endpoint)",
                name: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for EndpointPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.component, self.endpoint)
    }
}

/// A prefix of endpoint paths to list or watch: everything, one namespace, one component, or one
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPrefix {
    All,
    Namespace(String),
    Component {
        namespace: String,
        component: String,
    },
    Endpoint(EndpointPath),
}

impl PathPrefix {
    /// Parses `""`, `ns`, `ns/component` or `ns/component/endpoint`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim_matches('/');
        if text.is_empty() {
            return Ok(Self::All);
        }
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [ns] => {
                validate_name("namespace", ns)?;
                Ok(Self::Namespace(ns.to_string()))
            }
            [ns, component] => {
                validate_name("namespace", ns)?;
                validate_name("component", component)?;
                Ok(Self::Component {
                    namespace: ns.to_string(),
                    component: component.to_string(),
                })
            }
            [_, _, _] => Ok(Self::Endpoint(EndpointPath::parse(text)?)),
            _ => Err(Error::InvalidName {
                what: "path prefix",
                name: text.to_string(),
            }),
        }
    }

    /// The prefix as `/`-separated segments, each followed by `/` (so `ns` never matches `ns2`).
    pub fn key_suffix(&self) -> String {
        match self {
            Self::All => String::new(),
            Self::Namespace(ns) => format!("{ns}/"),
            Self::Component {
                namespace,
                component,
            } => format!("{namespace}/{component}/"),
            Self::Endpoint(path) => format!("{path}/"),
        }
    }
}

impl From<EndpointPath> for PathPrefix {
    fn from(path: EndpointPath) -> Self {
        Self::Endpoint(path)
    }
}

/// One process serving one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    #[serde(flatten)]
    pub path: EndpointPath,
    pub instance_id: InstanceId,
    /// Where the request plane reaches this instance, `host:port`.
    pub address: String,
    /// Free-form facts about the instance (role, capacities, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl Instance {
    /// A new instance with a random id and empty metadata.
    pub fn new(path: EndpointPath, address: impl Into<String>) -> Self {
        Self {
            path,
            instance_id: InstanceId::random(),
            address: address.into(),
            metadata: serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_round_trips_and_rejects_bad_names() {
        let path = EndpointPath::parse("rotor/worker/generate").unwrap();
        assert_eq!(path.to_string(), "rotor/worker/generate");
        assert!(matches!(
            EndpointPath::parse("rotor/worker"),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            EndpointPath::new("ro tor", "w", "e"),
            Err(Error::InvalidName {
                what: "namespace",
                ..
            })
        ));
        assert!(EndpointPath::new("a", "b/c", "e").is_err());
        assert!(EndpointPath::new("a", "", "e").is_err());
    }

    #[test]
    fn prefixes_end_with_a_separator() {
        assert_eq!(PathPrefix::parse("").unwrap().key_suffix(), "");
        assert_eq!(PathPrefix::parse("ns").unwrap().key_suffix(), "ns/");
        assert_eq!(PathPrefix::parse("ns/c/").unwrap().key_suffix(), "ns/c/");
        assert_eq!(PathPrefix::parse("ns/c/e").unwrap().key_suffix(), "ns/c/e/");
        assert!(PathPrefix::parse("a/b/c/d").is_err());
    }

    #[test]
    fn instance_id_hex_round_trip() {
        let id = InstanceId(0xab);
        assert_eq!(id.to_string(), "00000000000000ab");
        assert_eq!(InstanceId::from_hex("00000000000000ab"), Some(id));
        assert_ne!(InstanceId::random().0, 0);
    }

    #[test]
    fn instance_json_is_flat() {
        let mut inst = Instance::new(EndpointPath::parse("n/c/e").unwrap(), "127.0.0.1:9");
        inst.instance_id = InstanceId(7);
        let json = serde_json::to_value(&inst).unwrap();
        assert_eq!(json["namespace"], "n");
        assert_eq!(json["endpoint"], "e");
        assert_eq!(json["instance_id"], 7);
        let back: Instance = serde_json::from_value(json).unwrap();
        assert_eq!(back, inst);
    }
}
