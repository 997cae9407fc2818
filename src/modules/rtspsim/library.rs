//! The media folder: files loaded on demand into packetized, loop-scheduled clips, cached until the file changes.

use super::clock::{ClockError, FrameTimes, LoopClock, CLOCK_RATE};
use super::packetize::packetize_access_unit;
use crate::media::h264::{self, nal_type};
use crate::media::mkv::{self, H264Track, MkvError};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use thiserror::Error;

/// One frame, already cut into RTP payloads, shared by every client of the file.
#[derive(Debug)]
pub struct ClipFrame {
    pub payloads: Arc<[Bytes]>,
    pub keyframe: bool,
}

/// A file ready to be played as a camera.
#[derive(Debug)]
pub struct Clip {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub clock: LoopClock,
    pub frames: Vec<ClipFrame>,
    /// Average bit rate, for `b=AS:`.
    pub kbps: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClipError {
    #[error("frame {index}: {source}")]
    Nal {
        index: usize,
        #[source]
        source: h264::H264Error,
    },
    #[error(transparent)]
    Clock(#[from] ClockError),
}

impl Clip {
    /// Cuts every frame into RTP payloads once, so that serving N clients costs N header
    /// writes per packet, not N packetizations.
    pub fn from_track(name: &str, track: &H264Track, max_payload: usize) -> Result<Clip, ClipError> {
        let times: Vec<FrameTimes> = track.frames.iter().map(|f| FrameTimes { dts: f.dts_90k, pts: f.pts_90k }).collect();
        let clock = LoopClock::new(&times, track.frame_duration_90k)?;
        let mut frames = Vec::with_capacity(track.frames.len());
        let mut total_bytes = 0u64;
        for (index, f) in track.frames.iter().enumerate() {
            let nals: Vec<&[u8]> = h264::avcc_nals(&f.data, track.nal_length_size)
                .collect::<Result<_, _>>()
                .map_err(|source| ClipError::Nal { index, source })?;
            let keyframe = f.keyframe || nals.iter().any(|n| h264::is_idr(n));
            let has_sps = nals.iter().any(|n| h264::nal_unit_type(n) == Some(nal_type::SPS));
            // Matroska keeps SPS/PPS in CodecPrivate only. Repeating them in-band before every
            // keyframe, as cameras do, lets a client that joins mid-stream (or lost the SDP's
            // sprop-parameter-sets, or records raw RTP) decode from any keyframe.
            let params: Vec<&[u8]> =
                if keyframe && !has_sps { track.sps.iter().chain(&track.pps).map(|v| v.as_slice()).collect() } else { Vec::new() };
            let payloads = packetize_access_unit(params.into_iter().chain(nals), max_payload);
            total_bytes += payloads.iter().map(|p| p.len() as u64).sum::<u64>();
            frames.push(ClipFrame { payloads: payloads.into(), keyframe });
        }
        let seconds = clock.loop_duration() as f64 / CLOCK_RATE as f64;
        let kbps = if seconds > 0.0 { (total_bytes as f64 * 8.0 / seconds / 1000.0).ceil() as u64 } else { 0 };
        Ok(Clip {
            name: name.to_owned(),
            width: track.width,
            height: track.height,
            sps: track.sps.clone(),
            pps: track.pps.clone(),
            clock,
            frames,
            kbps,
        })
    }
}

/// Why a file cannot be described; each maps to an RTSP status.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("no file {0:?} in the media folder")]
    NotFound(String),
    #[error("cannot serve {file:?}: {reason}")]
    Unsupported { file: String, reason: String },
    #[error("cannot read {file:?}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loading {0:?} was interrupted")]
    Interrupted(String),
}

impl LoadError {
    pub fn status(&self) -> u16 {
        match self {
            LoadError::NotFound(_) => 404,
            LoadError::Unsupported { .. } => 415,
            LoadError::Io { .. } | LoadError::Interrupted(_) => 500,
        }
    }
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    clip: Arc<Clip>,
}

/// Files of the media folder by name.
pub struct Library {
    dir: PathBuf,
    max_payload: usize,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Library {
    pub fn new(dir: PathBuf, max_payload: usize) -> Self {
        Library { dir, max_payload, cache: Mutex::new(HashMap::new()) }
    }

    /// Loads `file` (a single, already validated path segment), reusing the cached clip while
    /// the file's size and modification time are unchanged: replacing a file in the folder
    /// changes the camera on the next DESCRIBE without restarting the server.
    pub async fn load(&self, file: &str) -> Result<Arc<Clip>, LoadError> {
        let path = self.dir.join(file);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(LoadError::NotFound(file.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::NotFound(file.to_owned())),
            Err(source) => return Err(LoadError::Io { file: file.to_owned(), source }),
        };
        let (modified, len) = (meta.modified().ok(), meta.len());
        if let Some(c) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(file) {
            if c.modified == modified && c.len == len {
                return Ok(c.clip.clone());
            }
        }
        let name = file.to_owned();
        let max_payload = self.max_payload;
        let clip = tokio::task::spawn_blocking(move || -> Result<Clip, LoadError> {
            let track = mkv::read_h264_file(&path).map_err(|e| match e {
                MkvError::Io { source, .. } => LoadError::Io { file: name.clone(), source },
                // Everything else is the file's content: not Matroska, no H.264, damaged.
                other => LoadError::Unsupported { file: name.clone(), reason: other.to_string() },
            })?;
            Clip::from_track(&name, &track, max_payload).map_err(|e| LoadError::Unsupported { file: name.clone(), reason: e.to_string() })
        })
        .await
        .map_err(|_| LoadError::Interrupted(file.to_owned()))??;
        let clip = Arc::new(clip);
        tracing::info!(
            file,
            width = clip.width,
            height = clip.height,
            frames = clip.frames.len(),
            fps = clip.clock.fps(),
            "loaded media file"
        );
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(file.to_owned(), Cached { modified, len, clip: clip.clone() });
        Ok(clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mkv::EncodedFrame;

    const SPS: &[u8] = &[0x67, 0x4d, 0x40, 0x1f, 0xd9];
    const PPS: &[u8] = &[0x68, 0xeb, 0xc2];

    fn avcc(nals: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    fn track(frames: Vec<EncodedFrame>) -> H264Track {
        H264Track {
            width: 64,
            height: 48,
            avcc: Vec::new(),
            sps: vec![SPS.to_vec()],
            pps: vec![PPS.to_vec()],
            nal_length_size: 4,
            frames,
            frame_duration_90k: 9000,
        }
    }

    fn frame(i: i64, keyframe: bool, nals: &[&[u8]]) -> EncodedFrame {
        EncodedFrame { pts_90k: i * 9000, dts_90k: i * 9000, keyframe, data: avcc(nals) }
    }

    #[test]
    fn parameter_sets_go_in_band_before_keyframes_only() {
        let idr = [0x65u8, 1, 2, 3];
        let p = [0x41u8, 4, 5];
        let clip = Clip::from_track("t.mkv", &track(vec![frame(0, true, &[&idr]), frame(1, false, &[&p])]), 1400).unwrap();
        let first: Vec<&[u8]> = clip.frames[0].payloads.iter().map(|b| &b[..]).collect();
        assert_eq!(first, vec![SPS, PPS, &idr[..]]);
        assert!(clip.frames[0].keyframe);
        assert_eq!(clip.frames[1].payloads.len(), 1);
        assert!(!clip.frames[1].keyframe);
        assert_eq!(clip.clock.loop_duration(), 18000);
    }

    #[test]
    fn keyframes_with_their_own_sps_are_left_alone_and_idr_marks_keyframes() {
        let idr = [0x65u8, 9];
        let clip = Clip::from_track("t.mkv", &track(vec![frame(0, false, &[SPS, PPS, &idr])]), 1400).unwrap();
        assert_eq!(clip.frames[0].payloads.len(), 3);
        assert!(clip.frames[0].keyframe, "IDR NAL marks a keyframe even if the container did not");
    }

    #[test]
    fn damaged_frames_are_reported() {
        let mut t = track(vec![frame(0, true, &[&[0x65, 1]])]);
        t.frames[0].data = Bytes::from_static(&[0, 0, 0, 9, 0x65]);
        assert!(matches!(Clip::from_track("t.mkv", &t, 1400), Err(ClipError::Nal { index: 0, .. })));
        assert!(matches!(Clip::from_track("t.mkv", &track(vec![]), 1400), Err(ClipError::Clock(ClockError::NoFrames))));
    }

    #[tokio::test]
    async fn library_errors_map_to_statuses() {
        let dir = std::env::temp_dir().join(format!("vela-rtspsim-lib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a video").unwrap();
        let lib = Library::new(dir.clone(), 1400);
        assert_eq!(lib.load("missing.mkv").await.unwrap_err().status(), 404);
        let e = lib.load("notes.txt").await.unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.to_string().contains("not a Matroska"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
