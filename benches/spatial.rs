//! Person counting benchmark (issue 7): frames per second the built-in detector, tracker and the published person-count operation handle on vtest.mkv, with 1 and 2 model threads.
//!
//! The path per frame is what the CognitiveServicesVisionProcessor does for an analysed
//! frame, minus RTSP and actors: openh264 decode (768×576), the picture stretched to the
//! model's input as RGB (Vela's image preparation), NanoDet-m (people only), the tracker,
//! then the person count operation of
//! tests/fixtures/reference/ava-topologies/spatial-analysis/person-count-operation-topology.json.
//! With 2 threads, two workers each run decode-less detection on alternate frames (the
//! decoder and the tracker stay on the main thread, in order); the model itself runs
//! single-threaded per call. Every frame is analysed: the fps is the ceiling of a graph
//! that samples every frame.
//!
//! Prints, never fails on timing. `cargo bench --bench spatial [-- --frames N]`

mod common;

use anyhow::Context;
use common::repo;
use serde_json::json;
use std::sync::mpsc;
use std::time::Instant;
use vela::analytics::spatial::SpatialAnalysis;
use vela::analytics::{BBox, Detection, FrameSize, IdGen, Tracker, TrackerSettings};
use vela::media::decode::Decoder;
use vela::media::image::{prepare, Yuv420};
use vela::media::mkv::read_h264_file;
use vela::modules::detector::{Detector, DetectorConfig, Packed, Picture};
use vela::topology::nodes::common::{ImageFormat, ImageScale, ImageSpec, PixelFormat, ScaleMode};
use vela::topology::nodes::object_tracking::Accuracy;
use vela::topology::NodeSettings;

/// The published person-count operation, compiled as the engine compiles it.
fn operation() -> anyhow::Result<vela::topology::nodes::cognitive_services_vision::SpatialOperation> {
    let path = repo().join("tests/fixtures/reference/ava-topologies/spatial-analysis/person-count-operation-topology.json");
    let topology: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let instance = json!({"@apiVersion": "1.1", "name": "bench", "properties": {"topologyName": topology["name"],
        "parameters": [{"name": "rtspUrl", "value": "rtsp://127.0.0.1/x"}]}});
    let plan = vela::topology::compile_instance(&topology, &instance, None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    plan.nodes
        .into_iter()
        .find_map(|n| match n.settings {
            NodeSettings::CognitiveServicesVision(s) => s.operation,
            _ => None,
        })
        .context("no operation in the topology")
}

/// Decoded frames as RGB at the model's input size, with the mean decode and preparation
/// seconds per frame and the source picture size.
struct Prepared {
    frames: Vec<(i64, Vec<u8>)>,
    decode_s: f64,
    prep_s: f64,
    size: (u32, u32),
}

/// Prepared here once: the bench times preparation separately from detection.
fn frames(n: usize, spec: &ImageSpec) -> anyhow::Result<Prepared> {
    let track = read_h264_file(&repo().join("config/media/vtest.mkv")).context("demux vtest.mkv")?;
    let mut d = Decoder::new();
    d.set_avcc(&track.avcc, |_| {})?;
    let (mut out, mut decode, mut prep, mut size) = (Vec::new(), 0.0, 0.0, (0, 0));
    for f in &track.frames {
        if out.len() >= n {
            break;
        }
        let t = Instant::now();
        let mut pending = Vec::new();
        d.decode(&f.data, f.pts_90k, f.keyframe, |pic| {
            decode += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let src = Yuv420::from(pic);
            let p = prepare(&src, spec).expect("prepare");
            prep += t.elapsed().as_secs_f64();
            size = (pic.width as u32, pic.height as u32);
            pending.push((pic.pts, p.bytes.to_vec()));
        })?;
        out.extend(pending);
    }
    let n = out.len().max(1) as f64;
    Ok(Prepared { frames: out, decode_s: decode / n, prep_s: prep / n, size })
}

fn detections(detector: &Detector, rgb: &[u8], w: u32, h: u32) -> Vec<Detection> {
    let pic = Picture::new(rgb, w, h, w as usize * 3, Packed::Rgb24).expect("picture");
    detector
        .run(pic)
        .expect("detector")
        .detections
        .iter()
        .map(|d| Detection::new(d.label, d.confidence.into(), BBox::new(d.left.into(), d.top.into(), d.width.into(), d.height.into())))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut n = 150usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--frames" {
            n = args.next().and_then(|v| v.parse().ok()).context("--frames N")?;
        }
    }
    let model = repo().join("config/models/nanodet-m/nanodet-m.onnx");
    let detector = Detector::load(&model, DetectorConfig { classes: vec!["person".into()], ..DetectorConfig::default() })?;
    let (w, h) = detector.input_size();
    let spec = ImageSpec {
        scale: Some(ImageScale { mode: ScaleMode::Stretch, width: Some(w as u32), height: Some(h as u32) }),
        format: ImageFormat::Raw(PixelFormat::Rgb24),
    };
    let Prepared { frames, decode_s, prep_s, size } = frames(n, &spec)?;
    let op = operation()?;
    println!(
        "== Person counting on vtest.mkv ({}x{}, {} frames; cargo bench --bench spatial -- --frames {n})",
        size.0,
        size.1,
        frames.len()
    );
    println!(
        "   per frame: decode {:.2} ms, preparation to {w}x{h} RGB {:.2} ms (once per frame, both thread counts)",
        decode_s * 1e3,
        prep_s * 1e3
    );
    for threads in [1usize, 2] {
        let mut tracker = Tracker::new(TrackerSettings::for_accuracy(Accuracy::Medium), IdGen::seeded(1));
        let mut count = SpatialAnalysis::new(&op, FrameSize::new(size.0, size.1), IdGen::seeded(2))?;
        let (mut events, mut track_s) = (0usize, 0.0);
        let t0 = Instant::now();
        // Workers take frame indices round-robin and send detections back; the main thread
        // tracks in frame order.
        let (tx, rx) = mpsc::channel::<(usize, Vec<Detection>)>();
        std::thread::scope(|s| {
            for k in 0..threads {
                let (tx, detector, frames) = (tx.clone(), detector.clone(), &frames);
                s.spawn(move || {
                    for i in (k..frames.len()).step_by(threads) {
                        let d = detections(&detector, &frames[i].1, w as u32, h as u32);
                        if tx.send((i, d)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut ready = std::collections::BTreeMap::new();
            let mut next = 0;
            for (i, d) in rx {
                ready.insert(i, d);
                while let Some(d) = ready.remove(&next) {
                    let t = Instant::now();
                    let tracked = tracker.update(frames[next].0, Some(&d));
                    events += count.update(&tracked).len();
                    track_s += t.elapsed().as_secs_f64();
                    next += 1;
                }
            }
        });
        let secs = t0.elapsed().as_secs_f64();
        let fps = frames.len() as f64 / secs;
        println!(
            "   {threads} thread{}: {fps:.1} fps detect+track+count ({:.1} ms/frame wall; tracker and count {:.3} ms/frame); with decode and preparation on top: {:.1} fps; {events} personCount events",
            if threads == 1 { " " } else { "s" },
            secs * 1e3 / frames.len() as f64,
            track_s * 1e3 / frames.len() as f64,
            1.0 / (secs / frames.len() as f64 + decode_s + prep_s),
        );
    }
    Ok(())
}
