//! IotHubMessageSource: messages routed to one of the module's hub inputs enter the graph as events.

use super::common::hub_name;
use crate::topology::reader::{Ctx, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IotHubMessageSource {
    /// The edge hub input (`/modules/<module>/inputs/<hubInputName>`). When left out,
    /// the node's own name is used.
    pub hub_input_name: String,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx, node_name: &str) -> Option<IotHubMessageSource> {
    let name = hub_name(o, cx, "hubInputName", false)?;
    Some(IotHubMessageSource { hub_input_name: name.unwrap_or_else(|| node_name.to_string()) })
}
