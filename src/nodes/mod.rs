//! Runnable node kinds, one module each; their pure cores are unit-tested apart from the actors that run them.
//!
//! `factory` is the one place that decides whether this version of Vela can run a
//! node: everything the compiler models but the runtime does not run yet is refused
//! at activation, by name.

pub mod processors;
pub mod sinks;
pub mod sources;

use crate::control::{ActivationError, InstanceKey};
use crate::runtime::node::NodeFactory;
use crate::runtime::Services;
use crate::topology::nodes::rtsp_source::Transport;
use crate::topology::{ApiVersion, GraphPlan, NodeSettings, PlanNode};

/// Builds the factory of a node, or says why it cannot run.
pub fn factory(
    node: &PlanNode<NodeSettings>,
    plan: &GraphPlan,
    key: &InstanceKey,
    services: &Services,
) -> Result<NodeFactory, ActivationError> {
    let unsupported = || Err(ActivationError::Unsupported { node: node.name.clone(), ty: node.ty });
    match &node.settings {
        NodeSettings::RtspSource(s) => {
            if s.transport == Transport::Http {
                return Err(ActivationError::Invalid(format!(
                    "node '{}': transport 'http' (RTSP tunnelled in HTTP) is not supported; use 'tcp'",
                    node.name
                )));
            }
            let s = s.clone();
            Ok(Box::new(move || Box::new(sources::rtsp::RtspSource::new(s.clone()))))
        }
        NodeSettings::IotHubMessageSource(s) => {
            let (input, inputs) = (s.hub_input_name.clone(), services.inputs.clone());
            Ok(Box::new(move || Box::new(sources::hub_message::HubMessageSource::new(input.clone(), inputs.clone()))))
        }
        NodeSettings::MotionDetection(s) => {
            let s = s.clone();
            Ok(Box::new(move || Box::new(processors::motion_detection::MotionDetection::new(s.clone()))))
        }
        NodeSettings::SignalGate(s) => {
            let s = s.clone();
            Ok(Box::new(move || Box::new(processors::signal_gate::SignalGate::new(&s))))
        }
        NodeSettings::IotHubMessageSink(s) => {
            let output = s.hub_output_name.clone();
            Ok(Box::new(move || Box::new(sinks::hub_message::HubMessageSink::new(output.clone()))))
        }
        NodeSettings::FileSink(s) => {
            // LVA 1.0 named an exact path; later versions a base folder, under which
            // each sink gets `{instance}-{node}/` (the layout AVA documented).
            let base = services.resolve(&s.base_directory_path);
            let dir = if plan.api_version == ApiVersion::Lva10 { base } else { base.join(format!("{}-{}", key.1, node.name)) };
            sinks::file::prepare_dir(&dir).map_err(|e| ActivationError::Resource(format!("node '{}': {e}", node.name)))?;
            let (pattern, quota) = (s.file_name_pattern.clone(), s.maximum_size_mib);
            Ok(Box::new(move || Box::new(sinks::file::FileSink::new(dir.clone(), pattern.clone(), quota))))
        }
        _ => unsupported(),
    }
}
