//! IotHubMessageSource: messages routed to the module's `hubInputName` input enter the graph as events.

use crate::runtime::inputs::{HubInputs, Registration};
use crate::runtime::node::{Node, NodeCtx};
use crate::runtime::packet::Packet;

pub struct HubMessageSource {
    input: String,
    inputs: HubInputs,
    registration: Option<Registration>,
}

impl HubMessageSource {
    pub fn new(input: String, inputs: HubInputs) -> Self {
        HubMessageSource { input, inputs, registration: None }
    }
}

impl Node for HubMessageSource {
    fn start(&mut self, ctx: &mut NodeCtx<'_>) {
        let feeder = ctx.feeder();
        self.registration = Some(self.inputs.register(&self.input, move |p| feeder.produced(p)));
        tracing::info!(node = ctx.env.name(), input = %self.input, "listening on hub input");
    }

    fn on_packet(&mut self, _p: Packet, _ctx: &mut NodeCtx<'_>) {
        // A source has no inputs; messages arrive through its registration.
    }

    fn stop(&mut self, _ctx: &mut NodeCtx<'_>) {
        self.registration = None;
    }
}
