//! `detector`: the built-in AI module — an object detector (NanoDet-m, COCO-80, in pure Rust
//! with tract-onnx) behind the extension contracts LVA/AVA graphs call (SPEC §5.1, the
//! yolov3 sample of §8) and the Custom Vision container's `/image` route.
//!
//! Layout: pure cores — [`input`] (pictures → the model's input tensor), [`decode`] (the
//! head's outputs → boxes), [`nms`], [`multipart`], [`body`] (HTTP bodies → pictures) — the
//! [`model`] that owns the tract plan ([`Detector`]), the actix-web [`server`] that
//! queues requests for dedicated model threads and batches them, and the [`grpc`] extension
//! server (SPEC §5.2) on the same queue. Operator documentation: `docs/detector.md`.

pub mod body;
pub mod decode;
pub mod grpc;
pub mod input;
pub mod labels;
pub mod model;
pub mod multipart;
pub mod nms;
pub mod server;

use std::path::PathBuf;
use std::time::Duration;

pub use grpc::{Credentials, GrpcServing};
pub use input::{Packed, Picture};
pub use model::Detector;
pub use server::{serve, ServerConfig, Serving};

/// The model shipped in `config/` and used when none is named.
pub const DEFAULT_MODEL: &str = "config/models/nanodet-m/nanodet-m.onnx";
/// Score threshold: what the model's README measured as free of false positives on the
/// sample footage.
pub const DEFAULT_THRESHOLD: f32 = 0.45;
/// NMS IoU threshold, NanoDet's usual value.
pub const DEFAULT_NMS_IOU: f32 = 0.6;
/// At most this many boxes per picture.
pub const DEFAULT_MAX_DETECTIONS: usize = 100;

/// What the detector reports: thresholds and classes. Post-processing only, so detectors
/// with different configurations share one loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Minimum class score (0 < t ≤ 1).
    pub threshold: f32,
    /// Boxes of one class overlapping by more than this IoU are suppressed (0 < iou ≤ 1).
    pub nms_iou: f32,
    /// COCO names to report (`person`, `car`; see [`labels::class_id`]); empty = all 80.
    pub classes: Vec<String>,
    /// At most this many detections per picture, most confident first.
    pub max_detections: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            threshold: DEFAULT_THRESHOLD,
            nms_iou: DEFAULT_NMS_IOU,
            classes: Vec::new(),
            max_detections: DEFAULT_MAX_DETECTIONS,
        }
    }
}

/// One object found. The box is normalised to [0, 1] of the picture given (left/top from
/// its top-left corner), clamped to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// COCO name, e.g. `person`.
    pub label: &'static str,
    /// Its index in COCO-80 (Custom Vision's `tagId`).
    pub class_id: usize,
    pub confidence: f32,
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

/// Where the time of one call went. For a batch, the totals of the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Resizing and normalising into the input tensor.
    pub preprocess: Duration,
    /// tract running the network.
    pub model: Duration,
    /// DFL decode, thresholds, NMS.
    pub postprocess: Duration,
}

impl Timings {
    pub fn total(&self) -> Duration {
        self.preprocess + self.model + self.postprocess
    }
}

/// Why a model could not be loaded or run, or a configuration or picture was refused.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("cannot read the model {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a model tract can run: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("{}: the input must be one float32 tensor [1, 3, height, width] (NCHW, BGR; NanoDet-m: [1, 3, 416, 416]), found {found}", path.display())]
    Input { path: PathBuf, found: String },
    #[error("{}: the outputs must be, for each stride 8, 16 and 32, class scores [1, cells, classes] and box distributions [1, cells, 4×bins] ({expected}), found {found}", path.display())]
    Outputs { path: PathBuf, expected: String, found: String },
    #[error("unknown class {name:?}: classes are COCO names such as person, bicycle, car, truck")]
    UnknownClass { name: String },
    #[error("invalid detector setting: {0}")]
    Config(String),
    #[error("invalid picture: {0}")]
    Picture(String),
    #[error("the model failed to run: {0}")]
    Run(String),
}
