//! The request's tools, as the parsers consult them: which names exist and what type each
//! parameter has.

use super::ToolSpec;

#[derive(Debug, Clone, Default)]
pub(crate) struct ToolSet {
    tools: Vec<ToolSpec>,
}

impl ToolSet {
    pub fn new(tools: Vec<ToolSpec>) -> ToolSet {
        ToolSet { tools }
    }

    /// Whether a call may name `function`: any name when no tools were given.
    pub fn accepts(&self, function: &str) -> bool {
        self.tools.is_empty() || self.tools.iter().any(|t| t.name == function)
    }

    /// The JSON-schema `type` of a parameter (the first non-null one of a type list), if the
    /// tool's schema states one.
    pub fn parameter_type(&self, function: &str, parameter: &str) -> Option<&str> {
        let tool = self.tools.iter().find(|t| t.name == function)?;
        let property = tool
            .parameters
            .as_ref()?
            .get("properties")?
            .get(parameter)?;
        match property.get("type")? {
            serde_json::Value::String(ty) => Some(ty.as_str()),
            serde_json::Value::Array(types) => types
                .iter()
                .filter_map(serde_json::Value::as_str)
                .find(|ty| *ty != "null"),
            _ => None,
        }
    }
}
