//! Runnable node kinds, one module each; their pure cores are unit-tested apart from the actors that run them.
//!
//! `factory` is the one place that decides whether this version of Vela can run a
//! node: every node type the compiler models has a runtime node; what a node cannot do
//! (a transport, a missing model or store) is refused at activation, by name.

pub mod processors;
pub mod sinks;
pub mod sources;

use crate::control::{ActivationError, InstanceKey};
use crate::recording::{StoreError, VideoSettings};
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
        NodeSettings::FrameRateFilter(s) => {
            let fps = s.maximum_fps;
            Ok(Box::new(move || Box::new(processors::frame_rate_filter::FrameRateFilter::new(fps))))
        }
        NodeSettings::HttpExtension(s) => {
            let request = processors::http_extension::Request::from_settings(s)
                .map_err(|e| ActivationError::Invalid(format!("node '{}': {e}", node.name)))?;
            let (request, s) = (std::sync::Arc::new(request), s.clone());
            Ok(Box::new(move || Box::new(processors::http_extension::HttpExtension::new(request.clone(), &s))))
        }
        NodeSettings::GrpcExtension(s) => {
            let config = processors::grpc_extension::Config::from_settings(s)
                .map_err(|e| ActivationError::Invalid(format!("node '{}': {e}", node.name)))?;
            let (config, s) = (std::sync::Arc::new(config), s.clone());
            Ok(Box::new(move || Box::new(processors::grpc_extension::GrpcExtension::new(config.clone(), &s))))
        }
        NodeSettings::CognitiveServicesVision(s) => {
            let Some(model) = services.detector_model.as_ref() else {
                return Err(ActivationError::Resource(format!(
                    "node '{}': spatial analysis runs on the built-in detector, and this engine has no model",
                    node.name
                )));
            };
            let config = processors::spatial_analysis::Config::new(s, model)
                .map_err(|e| ActivationError::Invalid(format!("node '{}': {e}", node.name)))?;
            let config = std::sync::Arc::new(config);
            Ok(Box::new(move || Box::new(processors::spatial_analysis::SpatialAnalysis::new(config.clone()))))
        }
        NodeSettings::ObjectTracking(s) => {
            let s = s.clone();
            Ok(Box::new(move || Box::new(processors::object_tracking::ObjectTracking::new(&s))))
        }
        NodeSettings::LineCrossing(s) => {
            let lines = s.lines.clone();
            Ok(Box::new(move || Box::new(processors::line_crossing::LineCrossing::new(lines.clone()))))
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
        NodeSettings::VideoSink(s) => {
            let settings = VideoSettings {
                title: s.title.clone().unwrap_or_default(),
                description: s.description.clone().unwrap_or_default(),
                segment_length: s.segment_length.as_nanos(),
                retention: s.retention_period.map(|d| d.as_nanos()),
                max_bytes: Some(s.local_media_cache_maximum_size_mib.saturating_mul(1 << 20)),
            };
            let cache_dir = services.resolve(&s.local_media_cache_path);
            recording_sink(node, services, sinks::video::Target::Video(s.video_name.clone()), cache_dir, settings)
        }
        NodeSettings::AssetSink(s) => {
            let settings = VideoSettings {
                title: String::new(),
                description: format!("recorded by graph instance '{}', node '{}'", key.1, node.name),
                segment_length: s.segment_length.as_nanos(),
                retention: None,
                max_bytes: s.local_media_cache_maximum_size_mib.map(|m| m.saturating_mul(1 << 20)),
            };
            // LVA 1.0 made the cache optional: Vela keeps those assets under the state folder.
            let cache_dir = services.resolve(s.local_media_cache_path.as_deref().unwrap_or(DEFAULT_ASSET_DIR));
            recording_sink(node, services, sinks::video::Target::Asset(s.asset_name_pattern.clone()), cache_dir, settings)
        }
    }
}

/// Where an AssetSink without `localMediaCachePath` (LVA 1.0) keeps its videos, under the state folder.
pub const DEFAULT_ASSET_DIR: &str = "assets";

/// The factory of a video or asset sink. A VideoSink's video is created here, so a bad
/// name, an unusable folder or a video another instance is recording refuses the activation.
fn recording_sink(
    node: &PlanNode<NodeSettings>,
    services: &Services,
    target: sinks::video::Target,
    cache_dir: std::path::PathBuf,
    settings: VideoSettings,
) -> Result<NodeFactory, ActivationError> {
    let Some(store) = services.recordings.clone() else {
        return Err(ActivationError::Resource(format!("node '{}': this engine has no video store to record into", node.name)));
    };
    let resource = |e: StoreError| ActivationError::Resource(format!("node '{}': {e}", node.name));
    let config = sinks::video::VideoSinkConfig { target, cache_dir, settings };
    let claimed = sinks::video::ClaimedWriter::default();
    if let sinks::video::Target::Video(name) = &config.target {
        config.video_for(&store, 0).map_err(resource)?;
        // A video has one writer (SPEC §1.4): claimed now, so a second instance on the same
        // video is refused at its activation rather than failing to record later.
        *claimed.lock().expect("fresh lock") = Some(store.writer(name).map_err(resource)?);
    }
    Ok(Box::new(move || Box::new(sinks::video::VideoSink::new(store.clone(), config.clone(), &claimed))))
}
