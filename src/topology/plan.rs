//! The compiler's output: nodes with typed settings, edges with what they carry.

use super::error::Diagnostic;
use super::graph::{Edge, Flow};
use super::model::{ApiVersion, Role, TypeName};
use super::nodes::NodeSettings;
use super::params::ParameterDeclaration;
use serde::Serialize;

/// A compiled topology. `S` is `NodeSettings` for an instance (every value known)
/// and `Option<NodeSettings>` for a topology checked alone (a node whose settings
/// use a parameter without a default has none yet).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan<S> {
    pub api_version: ApiVersion,
    pub topology_name: String,
    pub instance_name: Option<String>,
    pub description: Option<String>,
    pub parameters: Vec<ParameterDeclaration>,
    pub nodes: Vec<PlanNode<S>>,
    pub edges: Vec<Edge>,
    /// Problems that do not stop the graph (unused parameters and the like).
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanNode<S> {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: TypeName,
    pub role: Role,
    pub settings: S,
}

/// A topology on its own.
pub type TopologyPlan = Plan<Option<NodeSettings>>;
/// A topology with an instance's parameter values: what the runtime executes.
pub type GraphPlan = Plan<NodeSettings>;

impl<S> Plan<S> {
    pub fn node(&self, name: &str) -> Option<&PlanNode<S>> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn inputs_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.to == name)
    }

    pub fn outputs_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.from == name)
    }

    /// Parameters that have no default and so must come from an instance.
    pub fn required_parameters(&self) -> impl Iterator<Item = &ParameterDeclaration> {
        self.parameters.iter().filter(|p| p.default.is_none())
    }

    /// One line: name, version, nodes by role, edges by flow, parameters.
    pub fn summary(&self) -> String {
        let roles = |r: Role| self.nodes.iter().filter(|n| n.role == r).count();
        let flows = |f: Flow| self.edges.iter().filter(|e| e.flow == f).count();
        let required: Vec<&str> = self.required_parameters().map(|p| p.name.as_str()).collect();
        let mut s = format!("{} ({})", self.topology_name, self.api_version);
        if let Some(i) = &self.instance_name {
            s.push_str(&format!(" instance {i}"));
        }
        s.push_str(&format!(
            ": {} nodes ({} sources, {} processors, {} sinks), {} edges ({} media, {} frames, {} events), {} parameters",
            self.nodes.len(),
            roles(Role::Source),
            roles(Role::Processor),
            roles(Role::Sink),
            self.edges.len(),
            flows(Flow::EncodedMedia),
            flows(Flow::Frames),
            flows(Flow::Events),
            self.parameters.len()
        ));
        if !required.is_empty() && self.instance_name.is_none() {
            s.push_str(&format!(" ({} without default: {})", required.len(), required.join(", ")));
        }
        s
    }

    /// Whether two plans run the same graph: same nodes with the same settings, same
    /// edges. Descriptions, parameter declarations and warnings do not count.
    pub fn same_graph(&self, other: &Plan<S>) -> bool
    where
        S: PartialEq,
    {
        self.nodes == other.nodes && self.edges == other.edges
    }

    /// Whether any edge carries decoded frames: only such instances decode video.
    pub fn needs_decode(&self) -> bool {
        self.edges.iter().any(|e| e.flow == Flow::Frames)
    }
}
