//! The topology compiler: LVA/AVA topology and instance JSON in, a validated `GraphPlan` or every error out.
//!
//! Pure: no I/O, no actors. See `docs/topology-compiler.md` for the rules and the
//! choices made where the published contract is silent.

pub mod compile;
pub mod duration;
pub mod error;
pub mod graph;
pub mod model;
pub mod nodes;
pub mod params;
pub mod plan;
pub(crate) mod reader;
pub use reader::kind_of;

pub use compile::{check_instance_document, check_topology, compile_instance, document_generation, parse_json, valid_entity_name};
pub use duration::SignedDuration;
pub use error::{Code, CompileErrors, Diagnostic, Document, JsonPath};
pub use graph::{Edge, Flow, MediaTypes};
pub use model::{ApiVersion, Generation, Role, TypeName};
pub use nodes::NodeSettings;
pub use plan::{GraphPlan, Plan, PlanNode, TopologyPlan};

/// A property of a JSON object by name in any case (SPEC C2).
pub fn field<'a>(m: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> Option<&'a serde_json::Value> {
    m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// Like `field`, on any value (`None` unless it is an object).
pub fn get_ci<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    field(v.as_object()?, key)
}

/// Whether a JSON document looks like an instance (live pipeline) rather than a topology.
pub fn is_instance_document(doc: &serde_json::Value) -> bool {
    let props = doc.as_object().and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case("properties"))).and_then(|(_, v)| v.as_object());
    props.is_some_and(|p| p.keys().any(|k| k.eq_ignore_ascii_case("topologyName")))
}

#[cfg(test)]
mod tests;
