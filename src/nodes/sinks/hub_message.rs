//! IotHubMessageSink: publishes the events it receives on the module's `hubOutputName` output.

use crate::runtime::events::OutMessage;
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::Packet;

pub struct HubMessageSink {
    output: String,
}

impl HubMessageSink {
    pub fn new(output: String) -> Self {
        HubMessageSink { output }
    }
}

impl Node for HubMessageSink {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        if let Packet::Event(e) = p {
            // The producing node set the envelope (subject, eventType, eventTime).
            ctx.env.events.send(OutMessage { output: self.output.clone(), body: e.body.clone(), properties: e.properties.clone() });
        }
    }
}
