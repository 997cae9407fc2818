//! IotHubMessageSink: publishes the events it receives on one of the module's hub outputs.

use super::common::hub_name;
use crate::topology::reader::{Ctx, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IotHubMessageSink {
    /// The edge hub output (`/messages/modules/<module>/outputs/<hubOutputName>`).
    pub hub_output_name: String,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<IotHubMessageSink> {
    let name = hub_name(o, cx, "hubOutputName", true)??;
    Some(IotHubMessageSink { hub_output_name: name })
}
