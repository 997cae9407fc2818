//! A camera stream made of a demuxed media file, looped: samples with any wall time, for tests that write recordings without RTSP.
#![allow(dead_code)]

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use vela::media::mkv::{self, EncodedFrame};
use vela::recording::Nanos;
use vela::runtime::packet::{VideoParams, VideoSample};

pub struct Source {
    pub params: Arc<VideoParams>,
    pub frames: Vec<EncodedFrame>,
    /// One frame's duration.
    pub frame_ns: Nanos,
}

impl Source {
    pub fn load(path: &Path) -> Source {
        let t = mkv::read_h264_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let codec = format!("avc1.{}", t.profile_level_id().unwrap());
        let params = Arc::new(VideoParams { width: t.width, height: t.height, avcc: Bytes::from(t.avcc.clone()), codec });
        Source { params, frame_ns: i64::from(t.frame_duration_90k) * 100_000 / 9, frames: t.frames }
    }

    /// Frame `i` (looping) stamped at `wall`.
    pub fn sample(&self, i: usize, wall: Nanos) -> VideoSample {
        let f = &self.frames[i % self.frames.len()];
        VideoSample { pts_90k: wall / 100_000 * 9, wall, keyframe: f.keyframe, data: f.data.clone(), params: self.params.clone() }
    }

    pub fn is_key(&self, i: usize) -> bool {
        self.frames[i % self.frames.len()].keyframe
    }
}
