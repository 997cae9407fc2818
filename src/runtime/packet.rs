//! What flows between nodes: encoded video, decoded frames, analytics and hub events, and the gate's clip boundaries.

use crate::media::image::{prepare, ImageError, Prepared, Yuv420};
use crate::topology::nodes::common::ImageSpec;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Nanoseconds since the Unix epoch on the media's wall clock.
pub type Nanos = i64;

/// Stream parameters that every sample carries a reference to, so a sink sees at
/// once when the camera changed resolution or codec settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    pub width: u32,
    pub height: u32,
    /// AVCDecoderConfigurationRecord (what MP4's avcC holds).
    pub avcc: Bytes,
    /// RFC 6381 codec string, e.g. `avc1.4d401f`.
    pub codec: String,
}

/// One encoded access unit.
#[derive(Clone, Debug)]
pub struct VideoSample {
    /// RTP presentation time, 90 kHz, extended to 64 bits (never wraps).
    pub pts_90k: i64,
    /// The same instant on the wall clock.
    pub wall: Nanos,
    pub keyframe: bool,
    /// Length-prefixed (4-byte) NAL units.
    pub data: Bytes,
    pub params: Arc<VideoParams>,
}

/// A decoded picture, reduced once for every consumer (see `runtime::frames`).
#[derive(Debug)]
pub struct Picture {
    /// The sample's presentation time (90 kHz) and wall time.
    pub pts_90k: i64,
    pub wall: Nanos,
    /// The decoded size.
    pub width: usize,
    pub height: usize,
    /// Luma, box-downscaled to fit the motion analysis size.
    pub gray: crate::media::decode::GrayFrame,
    /// The whole picture, when a node downstream sends images (extensions); copied once
    /// out of the decoder and shared.
    pub color: Option<crate::media::decode::I420>,
    /// Images prepared from it, one per distinct spec, shared by every node that asks.
    pub prepared: std::sync::Mutex<Vec<(ImageSpec, Arc<Prepared>)>>,
}

impl Picture {
    /// The picture as `spec` asks, prepared once per spec: nodes asking for the same spec
    /// at the same time wait for the one conversion. Blocking (milliseconds): call it off
    /// actor threads.
    pub fn image(&self, spec: &ImageSpec) -> Result<Arc<Prepared>, ImageError> {
        let mut cache = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = cache.iter().find(|(s, _)| s == spec) {
            return Ok(p.clone());
        }
        let c = self.color.as_ref().ok_or_else(|| ImageError::Source("the picture was decoded without its colour planes".into()))?;
        let src = Yuv420 {
            width: c.width as u32,
            height: c.height as u32,
            y: c.y(),
            y_stride: c.width,
            u: c.u(),
            v: c.v(),
            uv_stride: c.uv_stride(),
        };
        let p = Arc::new(prepare(&src, spec)?);
        cache.push((spec.clone(), p.clone()));
        Ok(p)
    }
}

/// A picture on an analytics branch, with what upstream nodes found in it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub picture: Arc<Picture>,
    /// Inferences attached upstream (a motion detector's regions), in the shape of the
    /// `inferences` array of SPEC's analytics events.
    pub inferences: Vec<serde_json::Value>,
    /// An extension analysed this frame and its answer (possibly "nothing found") is in
    /// `inferences`: an object tracker tells "no one there" from "not looked at".
    pub analysed: bool,
}

/// An analytics event, or a message that came in from the hub.
#[derive(Clone, Debug)]
pub struct Event {
    /// The event's own time (`eventTime` property), when it had one.
    pub time: Option<Nanos>,
    pub body: Bytes,
    /// Application properties (for hub messages: what the sender set).
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub enum Packet {
    Video(Arc<VideoSample>),
    /// Only on `frames` edges.
    Frame(Arc<Frame>),
    Event(Arc<Event>),
    /// A signal-gate activation begins: following video belongs to a new clip.
    ClipStart {
        activation: u64,
        start: Nanos,
    },
    /// The activation ended.
    ClipEnd {
        activation: u64,
        end: Nanos,
    },
}

impl crate::nodes::processors::gate_core::Timed for Arc<VideoSample> {
    fn time(&self) -> Nanos {
        self.wall
    }
    fn is_keyframe(&self) -> bool {
        self.keyframe
    }
}
