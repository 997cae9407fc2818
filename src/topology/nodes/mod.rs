//! One module per node kind: its typed settings and how they are read from the topology.

pub mod asset_sink;
pub mod cognitive_services_vision;
pub mod common;
pub mod extension;
pub mod file_sink;
pub mod frame_rate_filter;
pub mod grpc_extension;
pub mod http_extension;
pub mod iot_hub_message_sink;
pub mod iot_hub_message_source;
pub mod line_crossing;
pub mod motion_detection;
pub mod object_tracking;
pub mod rtsp_source;
pub mod signal_gate;
pub mod video_sink;

use super::model::TypeName;
use super::reader::{Ctx, Obj};
use serde::Serialize;

/// The closed set of node kinds the edge runs, keyed by `@type`, with typed settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "settings")]
pub enum NodeSettings {
    RtspSource(rtsp_source::RtspSource),
    IotHubMessageSource(iot_hub_message_source::IotHubMessageSource),
    MotionDetection(motion_detection::MotionDetection),
    FrameRateFilter(frame_rate_filter::FrameRateFilter),
    HttpExtension(http_extension::HttpExtension),
    GrpcExtension(grpc_extension::GrpcExtension),
    CognitiveServicesVision(cognitive_services_vision::CognitiveServicesVision),
    SignalGate(signal_gate::SignalGate),
    ObjectTracking(object_tracking::ObjectTracking),
    LineCrossing(line_crossing::LineCrossing),
    IotHubMessageSink(iot_hub_message_sink::IotHubMessageSink),
    FileSink(file_sink::FileSink),
    AssetSink(asset_sink::AssetSink),
    VideoSink(video_sink::VideoSink),
}

/// Reads the kind-specific properties of a node whose `@type` is `ty`. The common
/// properties (`@type`, `name`, `inputs`) are read by the compiler.
pub(crate) fn parse(ty: TypeName, o: &Obj, cx: &mut Ctx, node_name: &str) -> Option<NodeSettings> {
    use NodeSettings as N;
    use TypeName as T;
    Some(match ty {
        T::RtspSource => N::RtspSource(rtsp_source::parse(o, cx)?),
        T::IotHubMessageSource => N::IotHubMessageSource(iot_hub_message_source::parse(o, cx, node_name)?),
        T::MotionDetectionProcessor => N::MotionDetection(motion_detection::parse(o, cx)?),
        T::FrameRateFilterProcessor => N::FrameRateFilter(frame_rate_filter::parse(o, cx)?),
        T::HttpExtension => N::HttpExtension(http_extension::parse(o, cx)?),
        T::GrpcExtension => N::GrpcExtension(grpc_extension::parse(o, cx)?),
        T::CognitiveServicesVisionProcessor => N::CognitiveServicesVision(cognitive_services_vision::parse(o, cx)?),
        T::SignalGateProcessor => N::SignalGate(signal_gate::parse(o, cx)?),
        T::ObjectTrackingProcessor => N::ObjectTracking(object_tracking::parse(o, cx)?),
        T::LineCrossingProcessor => N::LineCrossing(line_crossing::parse(o, cx)?),
        T::IotHubMessageSink => N::IotHubMessageSink(iot_hub_message_sink::parse(o, cx)?),
        T::FileSink => N::FileSink(file_sink::parse(o, cx)?),
        T::AssetSink => N::AssetSink(asset_sink::parse(o, cx)?),
        T::VideoSink => N::VideoSink(video_sink::parse(o, cx)?),
        // Sub-object and cloud-only types never reach here: the compiler only
        // accepts node types in node lists and refuses cloud types.
        _ => return None,
    })
}
