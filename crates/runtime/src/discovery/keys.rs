//! Where discovery data lives in a store's key space. Every key starts with `rotor/`.
//!
//! - `rotor/instances/<namespace>/<component>/<endpoint>/<instance id hex>` → [`Instance`] JSON
//! - `rotor/cards/<model, escaped>/<instance id hex>` → card record (inline card or chunk manifest)
//! - `rotor/card-chunks/<model, escaped>/<instance id hex>/<generation hex>/<index>` → raw bytes

use crate::names::{Instance, InstanceId, PathPrefix};

const INSTANCES: &str = "rotor/instances/";
const CARDS: &str = "rotor/cards/";
const CARD_CHUNKS: &str = "rotor/card-chunks/";

/// The key of one registered instance.
pub fn instance_key(instance: &Instance) -> String {
    format!("{INSTANCES}{}/{}", instance.path, instance.instance_id)
}

/// The key prefix of every instance under `prefix`.
pub fn instances_prefix(prefix: &PathPrefix) -> String {
    format!("{INSTANCES}{}", prefix.key_suffix())
}

/// The key of the card record `instance` publishes for `model`.
pub fn card_key(model: &str, instance: InstanceId) -> String {
    format!("{CARDS}{}/{instance}", escape(model))
}

/// The key prefix of the card records of `model`, or of all models.
pub fn cards_prefix(model: Option<&str>) -> String {
    match model {
        Some(model) => format!("{CARDS}{}/", escape(model)),
        None => CARDS.to_string(),
    }
}

/// The key prefix of every chunk of every generation of one instance's card for `model`.
pub fn card_chunks_prefix(model: &str, instance: InstanceId) -> String {
    format!("{CARD_CHUNKS}{}/{instance}/", escape(model))
}

/// The key of chunk `index` of card generation `generation`.
pub fn card_chunk_key(model: &str, instance: InstanceId, generation: u64, index: u32) -> String {
    format!(
        "{}{generation:016x}/{index:06}",
        card_chunks_prefix(model, instance)
    )
}

/// Model names are free text ("HuggingFaceTB/SmolLM2-135M"); in keys every byte outside
/// `[A-Za-z0-9_.-]` becomes `%XX`, so a name is one key segment and safe as a file name.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::EndpointPath;

    #[test]
    fn layout_is_stable() {
        let mut inst = Instance::new(EndpointPath::parse("ns/worker/generate").unwrap(), "h:1");
        inst.instance_id = InstanceId(0x1f);
        assert_eq!(
            instance_key(&inst),
            "rotor/instances/ns/worker/generate/000000000000001f"
        );
        assert_eq!(
            instances_prefix(&PathPrefix::parse("ns/worker").unwrap()),
            "rotor/instances/ns/worker/"
        );
        assert_eq!(
            card_key("Org/Model v1", InstanceId(2)),
            "rotor/cards/Org%2FModel%20v1/0000000000000002"
        );
        assert_eq!(
            card_chunk_key("m", InstanceId(2), 0xa, 3),
            "rotor/card-chunks/m/0000000000000002/000000000000000a/000003"
        );
        assert!(card_key("m", InstanceId(2)).starts_with(&cards_prefix(Some("m"))));
        assert!(!card_key("m2", InstanceId(2)).starts_with(&cards_prefix(Some("m"))));
    }
}
