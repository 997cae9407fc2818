//! The motion detector on footage: hand-labelled walkers in vtest.mkv are found, static synthetic scenes raise no events.
//!
//! The detector is fed as the MotionDetectionProcessor feeds it: openh264 pictures reduced to
//! grayscale at [`ANALYSIS`] (vtest: 768x576 → 256x192), stamped with their media time.
//!
//! - Real footage: `tests/fixtures/motion/vtest-movers.json` holds people labelled by hand in
//!   ten frames of vtest.mkv (how: the README next to it). A labelled walker is *found* when the
//!   frame's reported regions cover at least [`FOUND`] of its box; measured coverage is bimodal
//!   (0 when missed, ≥ 0.62 when found), so the threshold has margin both ways.
//! - Synthetic footage: still scenes encoded by ffmpeg/libx264 at test time (sensor noise, a
//!   slow lighting ramp, heavy compression artefacts), where any event is a false alarm.
//!
//! Measured numbers quoted in comments come from a debug build; the detector is deterministic,
//! so they only move when motion_core.rs or the decoder changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use vela::media::decode::{Decoder, Frame, GrayFrame};
use vela::media::mkv;
use vela::nodes::processors::motion_core::{Aggregator, MotionConfig, MotionDetector, MotionEvent, Nanos, ANALYSIS, SECOND, WARMUP_FRAMES};
use vela::runtime::packet::{VideoParams, VideoSample};
use vela::topology::nodes::motion_detection::Sensitivity;

/// Share of a labelled box the reported regions must cover for the person to count as found.
const FOUND: f32 = 0.3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every picture of an H.264 Matroska file in presentation order, reduced as the node reduces
/// it: (media time in ns, grayscale picture at most [`ANALYSIS`]).
fn decode_gray(path: &Path) -> Vec<(Nanos, GrayFrame)> {
    let track = mkv::read_h264_file(path).unwrap_or_else(|e| panic!("demux {}: {e}", path.display()));
    let params = Arc::new(VideoParams {
        width: track.width,
        height: track.height,
        avcc: Bytes::from(track.avcc.clone()),
        codec: format!("avc1.{}", track.profile_level_id().unwrap_or_default()),
    });
    let mut dec = Decoder::new();
    let mut out = Vec::with_capacity(track.frames.len());
    let mut take = |f: &Frame<'_>| out.push((f.pts * SECOND / 90_000, f.gray(ANALYSIS.0, ANALYSIS.1)));
    for f in &track.frames {
        let s = VideoSample { pts_90k: f.pts_90k, wall: 0, keyframe: f.keyframe, data: f.data.clone(), params: params.clone() };
        dec.decode_sample(&s, &mut take).unwrap_or_else(|e| panic!("decode {}: {e}", path.display()));
    }
    dec.flush(&mut take);
    assert_eq!(out.len(), track.frames.len(), "{}: every access unit gives a picture", path.display());
    out
}

fn config(sensitivity: Sensitivity, aggregation_window: Nanos) -> MotionConfig {
    MotionConfig { sensitivity, output_motion_region: true, aggregation_window }
}

/// Per-frame regions of a detector with per-frame events (`eventAggregationWindow` 0), checking
/// that each frame's event is exactly its motion.
fn regions_per_frame(frames: &[(Nanos, GrayFrame)], sensitivity: Sensitivity) -> Vec<Vec<[f32; 4]>> {
    let mut d = MotionDetector::new(config(sensitivity, 0));
    frames
        .iter()
        .map(|(t, g)| {
            let r = d.push(g.width, g.height, &g.data, *t);
            assert_eq!(r.event.as_ref().map(|e| (e.timestamp_ns, &e.regions)), r.motion.then_some((*t, &r.regions)));
            r.regions
        })
        .collect()
}

// ---- vtest.mkv, decoded and analysed once per sensitivity for all tests of this binary ------

fn vtest() -> &'static [(Nanos, GrayFrame)] {
    static FRAMES: OnceLock<Vec<(Nanos, GrayFrame)>> = OnceLock::new();
    FRAMES.get_or_init(|| decode_gray(&root().join("config/media/vtest.mkv")))
}

fn vtest_regions(s: Sensitivity) -> &'static [Vec<[f32; 4]>] {
    static RUNS: [OnceLock<Vec<Vec<[f32; 4]>>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match s {
        Sensitivity::Low => 0,
        Sensitivity::Medium => 1,
        Sensitivity::High => 2,
    };
    RUNS[i].get_or_init(|| regions_per_frame(vtest(), s))
}

// ---- Areas on vtest's 768x576 pixel grid -------------------------------------------------------

const VW: usize = 768;
const VH: usize = 576;

/// A normalised [l, t, w, h] box as pixel bounds [x0, y0, x1, y1) of the 768x576 picture.
fn px(b: &[f32; 4]) -> [usize; 4] {
    let at = |v: f32, n: usize| (v * n as f32).round().clamp(0.0, n as f32) as usize;
    let (x0, y0) = (at(b[0], VW), at(b[1], VH));
    [x0, y0, at(b[0] + b[2], VW).max(x0), at(b[1] + b[3], VH).max(y0)]
}

/// A set of pixels: the union of some boxes, each grown by a margin.
struct Mask(Vec<bool>);

impl Mask {
    fn of(boxes: &[[f32; 4]], grow: usize) -> Self {
        let mut m = vec![false; VW * VH];
        for b in boxes {
            let [x0, y0, x1, y1] = px(b);
            let (x0, x1) = (x0.saturating_sub(grow), (x1 + grow).min(VW));
            for y in y0.saturating_sub(grow)..(y1 + grow).min(VH) {
                m[y * VW + x0..y * VW + x1].fill(true);
            }
        }
        Mask(m)
    }

    fn area(&self) -> usize {
        self.0.iter().filter(|&&v| v).count()
    }

    /// Share of this mask's pixels that also lie in `other`.
    fn share_inside(&self, other: &Mask) -> f32 {
        let both = self.0.iter().zip(&other.0).filter(|(a, b)| **a && **b).count();
        both as f32 / self.area().max(1) as f32
    }

    /// Share of box `b` this mask covers.
    fn covers(&self, b: &[f32; 4]) -> f32 {
        let [x0, y0, x1, y1] = px(b);
        let hit: usize = (y0..y1).map(|y| self.0[y * VW + x0..y * VW + x1].iter().filter(|&&v| v).count()).sum();
        hit as f32 / ((x1 - x0) * (y1 - y0)).max(1) as f32
    }
}

// ---- The hand labels ---------------------------------------------------------------------------

struct Mover {
    b: [f32; 4],
    note: String,
}

struct Labelled {
    frame: usize,
    pts_90k: i64,
    /// People walking in this frame: each must be found.
    movers: Vec<Mover>,
    /// People standing: motion there is fine, not required.
    others: Vec<[f32; 4]>,
}

impl Labelled {
    /// Everyone labelled, walking or not.
    fn people(&self) -> Vec<[f32; 4]> {
        self.movers.iter().map(|m| m.b).chain(self.others.iter().copied()).collect()
    }
}

fn labels() -> Vec<Labelled> {
    let path = root().join("tests/fixtures/motion/vtest-movers.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let boxes = |v: &Value| -> Vec<Mover> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let b: Vec<f32> = m["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
                Mover { b: [b[0], b[1], b[2], b[3]], note: m["note"].as_str().unwrap().to_string() }
            })
            .collect()
    };
    let frames: Vec<Labelled> = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Labelled {
            frame: f["frame"].as_u64().unwrap() as usize,
            pts_90k: f["pts_90k"].as_i64().unwrap(),
            movers: boxes(&f["movers"]),
            others: boxes(&f["others"]).into_iter().map(|m| m.b).collect(),
        })
        .collect();
    assert_eq!(frames.len(), 10);
    assert_eq!(frames.iter().map(|f| f.movers.len()).sum::<usize>(), 58);
    frames
}

/// For each labelled walker: (frame, box, note, share of its box covered by the regions).
fn coverage(s: Sensitivity) -> Vec<(usize, [f32; 4], String, f32)> {
    let (frames, regions) = (vtest(), vtest_regions(s));
    let mut out = Vec::new();
    for l in labels() {
        assert!(l.frame >= WARMUP_FRAMES as usize, "labels start after the warm-up");
        assert_eq!(frames[l.frame].0, l.pts_90k * SECOND / 90_000, "frame {} is the labelled picture", l.frame);
        let reported = Mask::of(&regions[l.frame], 0);
        out.extend(l.movers.iter().map(|m| (l.frame, m.b, m.note.clone(), reported.covers(&m.b))));
    }
    out
}

fn report(cov: &[(usize, [f32; 4], String, f32)]) -> String {
    cov.iter().map(|(f, b, note, c)| format!("\n  frame {f}: {c:.2} of {:?} ({note})", px(b))).collect()
}

#[test]
fn labelled_frames_of_vtest_report_motion_on_the_walkers() {
    let regions = vtest_regions(Sensitivity::Medium);
    let mut precision = Vec::new();
    for l in labels() {
        // Per-frame events (window 0): every labelled frame has motion.
        let r = &regions[l.frame];
        assert!(!r.is_empty(), "frame {}: no motion while {} people walk", l.frame, l.movers.len());
        // Most of the reported area lies on or next to labelled people (within 16 px, 2 % of
        // the width). Regions are boxes around groups of moving cells, so they also take in the
        // ground between neighbours, shadows and the fluttering barrier tape; in frame 110 one
        // is the ghost of a walker who crossed the right edge during the warm-up (cleared 10 s
        // after it appears, as documented). Measured per frame 0.60-1.00, mean 0.84.
        let p = Mask::of(r, 0).share_inside(&Mask::of(&l.people(), 16));
        assert!(
            p >= 0.45,
            "frame {}: only {p:.2} of the reported area near labelled people: {:?}",
            l.frame,
            r.iter().map(px).collect::<Vec<_>>()
        );
        precision.push(p);
    }
    let mean = precision.iter().sum::<f32>() / precision.len() as f32;
    println!("medium, share of reported area near labelled people per frame: {precision:.2?}, mean {mean:.2}");
    assert!(mean >= 0.65, "{precision:?}");
}

/// Height of a labelled box in pixels of the 576-line picture.
fn height_px(b: &[f32; 4]) -> usize {
    (b[3] * VH as f32).round() as usize
}

/// Found / all walkers at least `min_px` tall, the smallest coverage among those found, and
/// the same counts for the shorter ones.
fn tally(cov: &[(usize, [f32; 4], String, f32)], min_px: usize) -> String {
    let (tall, short): (Vec<_>, Vec<_>) = cov.iter().partition(|c| height_px(&c.1) >= min_px);
    let found = |v: &[&(usize, [f32; 4], String, f32)]| v.iter().filter(|c| c.3 >= FOUND).count();
    let least = tall.iter().map(|c| c.3).filter(|&c| c >= FOUND).fold(1.0f32, f32::min);
    format!(
        "≥ {min_px} px: {} of {} found (least coverage {least:.2}); shorter: {} of {}",
        found(&tall),
        tall.len(),
        found(&short),
        short.len()
    )
}

#[test]
fn high_sensitivity_finds_every_walker_a_tenth_of_the_frame_tall() {
    // The documented promise of `high`: a person 10 % of the frame height (58 of 576 px).
    // Measured: all 55 walkers that tall are found (least coverage 0.80); of the 3 shorter
    // ones the 54 px one is found too, the far figures of 36 and 46 px are not.
    let cov = coverage(Sensitivity::High);
    println!("high: {}", tally(&cov, 58));
    let missed: Vec<_> = cov.iter().filter(|c| height_px(&c.1) >= 58 && c.3 < FOUND).cloned().collect();
    assert!(missed.is_empty(), "walkers at least 10 % of the frame height not found at high:{}", report(&missed));
}

#[test]
fn medium_sensitivity_finds_walkers_a_sixth_of_the_frame_tall() {
    // Measured at medium: 41 of 58 walkers found, among them all 11 at least a sixth of the
    // frame tall (96 of 576 px; least coverage 0.68). The 17 it misses are 36-94 px tall
    // (6-16 %), each with coverage 0: their cells win the vote (with no minimum region size
    // all 58 are found, at about the same precision) but their silhouettes hold fewer changed
    // pixels than medium's minimum region, 0.5 % of the frame. The module doc's "a person
    // ≈15 % of the frame height" holds for the solid blocks of its unit tests; here walkers
    // of 87 px (15 %) and 94 px (16 %) are missed.
    let cov = coverage(Sensitivity::Medium);
    println!("medium: {}", tally(&cov, 96));
    let missed: Vec<_> = cov.iter().filter(|c| height_px(&c.1) >= 96 && c.3 < FOUND).cloned().collect();
    assert!(missed.is_empty(), "walkers at least 1/6 of the frame height not found at medium:{}", report(&missed));
    let found = cov.iter().filter(|c| c.3 >= FOUND).count();
    assert!(found >= 35, "medium found {found} of {} walkers:{}", cov.len(), report(&cov));
}

#[test]
fn motion_is_reported_while_people_walk_through_vtest() {
    // People walk through the whole clip (checked by eye on every 40th frame). Measured at
    // medium: motion on 743 of the 775 frames after the warm-up (96 %). The 32 quiet ones
    // (frames 404-449) have only two or three walkers in view, each under 16 % of the frame
    // height: the ones medium misses (see the medium test).
    let regions = vtest_regions(Sensitivity::Medium);
    assert!(regions[..WARMUP_FRAMES as usize].iter().all(|r| r.is_empty()), "no motion during the warm-up");
    let after = &regions[WARMUP_FRAMES as usize..];
    let with_motion = after.iter().filter(|r| !r.is_empty()).count();
    println!("medium: motion on {with_motion} of {} frames after the warm-up", after.len());
    assert!(with_motion * 100 >= after.len() * 90, "motion on only {with_motion} of {} frames", after.len());
}

#[test]
fn higher_sensitivity_reports_more_motion_on_vtest() {
    // Measured [low, medium, high]: frames with motion [125, 743, 775], region area summed
    // over frames (768x576 pixels) [2.02 M, 18.0 M, 42.5 M], events with a 1 s window
    // [24, 77, 78]. Low is meant for people ≥ 20-25 % of the frame height; vtest's are mostly
    // 10-18 %.
    let frames = vtest();
    let mut stats = Vec::new();
    for s in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
        let regions = vtest_regions(s);
        let with_motion = regions.iter().filter(|r| !r.is_empty()).count();
        let area: usize = regions.iter().map(|r| Mask::of(r, 0).area()).sum();
        // The same frames through eventAggregationWindow = 1 s.
        let mut agg = Aggregator::new(SECOND);
        let mut events = 0;
        for ((t, _), r) in frames.iter().zip(regions) {
            events += agg.push(*t, !r.is_empty(), r).is_some() as usize;
        }
        events += agg.flush().is_some() as usize;
        stats.push((with_motion, area, events));
    }
    println!("[low, medium, high] (frames with motion, region area, 1 s events): {stats:?}");
    let [low, medium, high] = [stats[0], stats[1], stats[2]];
    assert!(low.0 < medium.0 && medium.0 < high.0, "frames with motion: {stats:?}");
    assert!(low.1 < medium.1 && medium.1 < high.1, "region area: {stats:?}");
    assert!(low.2 <= medium.2 && medium.2 <= high.2, "1 s events: {stats:?}");
    assert!(low.0 > 0, "low still sees the people close to the camera: {stats:?}");
}

// ---- Synthetic static scenes -----------------------------------------------------------------

/// True when ffmpeg runs; the tests that need it say why they skip otherwise (scripts/test
/// installs it).
fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg").arg("-version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: ffmpeg is not on PATH (apt-get install ffmpeg)");
    }
    ok
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Encodes 20 s at 10 fps of a static scene through filter `vf` with libx264 (keyframe every
/// 2 s) and returns the decoded, reduced pictures. The scene is 640x360 of vtest's frame 400
/// (road, kerb, grass, sign, lamp post, tripod, three walkers frozen mid-step), so texture and
/// edges are a real camera's.
fn static_clip(name: &str, vf: &str, x264: &[&str]) -> Vec<(Nanos, GrayFrame)> {
    let dir = std::env::temp_dir().join(format!("vela-motion-footage-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (still, clip) = (dir.join("still.png"), dir.join("clip.mkv"));
    let vtest = root().join("config/media/vtest.mkv");
    ffmpeg(&["-i", vtest.to_str().unwrap(), "-vf", "select=eq(n\\,400),crop=640:360:64:120", "-frames:v", "1", still.to_str().unwrap()]);
    let mut args = vec!["-loop", "1", "-framerate", "10", "-i", still.to_str().unwrap(), "-t", "20", "-vf", vf];
    args.extend(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "20", "-keyint_min", "20"]);
    args.extend(x264);
    args.push(clip.to_str().unwrap());
    ffmpeg(&args);
    let frames = decode_gray(&clip);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(frames.len(), 200, "{name}");
    assert_eq!((frames[0].1.width, frames[0].1.height), (213, 120), "{name}: 640x360 reduced by 3");
    frames
}

/// Events from a detector with a 1 s aggregation window, and the frames it saw motion in.
fn events_and_motion(frames: &[(Nanos, GrayFrame)], s: Sensitivity) -> (Vec<MotionEvent>, Vec<usize>) {
    let mut d = MotionDetector::new(config(s, SECOND));
    let (mut events, mut motion) = (Vec::new(), Vec::new());
    for (i, (t, g)) in frames.iter().enumerate() {
        let r = d.push(g.width, g.height, &g.data, *t);
        events.extend(r.event);
        if r.motion {
            motion.push(i);
        }
    }
    events.extend(d.flush());
    (events, motion)
}

fn assert_quiet(name: &str, frames: &[(Nanos, GrayFrame)], sensitivities: &[Sensitivity]) {
    for &s in sensitivities {
        let (events, motion) = events_and_motion(frames, s);
        assert!(
            events.is_empty(),
            "{name} at {s:?}: {} events on a static scene, motion in frames {:?}…, first regions {:?}",
            events.len(),
            &motion[..motion.len().min(20)],
            events[0].regions
        );
    }
}

fn mean_luma(g: &GrayFrame) -> f64 {
    g.data.iter().map(|&v| v as f64).sum::<f64>() / g.data.len() as f64
}

/// Mean absolute difference between consecutive pictures.
fn flicker(frames: &[(Nanos, GrayFrame)]) -> f64 {
    let d: f64 = frames.windows(2).map(|w| w[0].1.data.iter().zip(&w[1].1.data).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>()).sum();
    d / ((frames.len() - 1) * frames[0].1.data.len()) as f64
}

const ALL: [Sensitivity; 3] = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High];

#[test]
fn static_scene_with_sensor_noise_raises_no_events() {
    if !have_ffmpeg() {
        return;
    }
    // Temporal noise on every pixel of every frame (ffmpeg's noise, strength 12), encoded at
    // CRF 23 (4.4 Mbit/s: noise is expensive): after encoding and the 3x3 reduction,
    // consecutive pictures still differ by 2.2 grey levels on average (measured).
    let frames = static_clip("noise", "noise=alls=12:allf=t", &["-crf", "23", "-bf", "0"]);
    let f = flicker(&frames);
    println!("sensor noise: mean |Δ| between consecutive pictures {f:.2}");
    assert!(f >= 0.5, "the noise survived encoding: mean |Δ| {f:.2}");
    assert_quiet("sensor noise", &frames, &ALL);
}

/// Brightness rising by 0.008 of full scale per second (0.16 over the clip), with the sensor noise.
const RAMP: &str = "eq=brightness='-0.12+0.008*t':eval=frame,noise=alls=12:allf=t";

#[test]
fn static_scene_under_a_slow_lighting_ramp_raises_no_events() {
    if !have_ffmpeg() {
        return;
    }
    // The scene brightening by 0.2 grey levels per frame (a cloud clearing in fast motion),
    // with the same sensor noise and encoding. Highlights clip at white and the noise at
    // black, so the change is not uniform. Measured: mean luma 101 → 140 over the 20 s.
    let frames = static_clip("ramp", RAMP, &["-crf", "23", "-bf", "0"]);
    let (first, last) = (mean_luma(&frames[0].1), mean_luma(&frames[frames.len() - 1].1));
    let rise = last - first;
    println!("lighting ramp: mean luma {first:.1} → {last:.1}, mean |Δ| {:.2}", flicker(&frames));
    assert!(rise >= 25.0, "the ramp brightened the scene: +{rise:.1}");
    assert_quiet("lighting ramp", &frames, &ALL);
}

/// Heavy compression: the noisy scene at constant QP 44 with B-frames. x264 turns the noise
/// into blocks; P- and B-frames copy the picture, and every keyframe (each 2 s) re-quantises
/// fresh noise, so the whole picture jumps at once (measured: by 2.8 grey levels on average at
/// 2 s, by 0.00 between the keyframes) and then holds still for 2 s.
fn keyframe_pumping_clip() -> Vec<(Nanos, GrayFrame)> {
    let frames = static_clip("qp44", "noise=alls=12:allf=t", &["-qp", "44", "-bf", "2"]);
    let jump: f64 =
        frames[19].1.data.iter().zip(&frames[20].1.data).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>() / frames[20].1.data.len() as f64;
    println!("QP 44: mean |Δ| at the keyframe {jump:.2}, elsewhere {:.2}", flicker(&frames[20..40]));
    assert!(jump >= 1.5, "the keyframe at 2 s changed the picture: mean |Δ| {jump:.2}");
    frames
}

#[test]
fn static_scene_with_heavy_compression_artefacts_raises_no_events_at_low_and_medium() {
    if !have_ffmpeg() {
        return;
    }
    assert_quiet("QP 44", &keyframe_pumping_clip(), &[Sensitivity::Low, Sensitivity::Medium]);
}

/// Codec steps in static scenes are not motion, even at `high`. Before the fix (see "Global
/// steps" and "Residues" in motion_core's module doc) `high` raised false alarms on both clips,
/// `low` and `medium` none. The QP 44 clip above was motion on all 180 frames after the warm-up
/// (18 events, regions spanning the frame): the warm-up's 20 frames are one frozen GOP, so the
/// learned noise sat at its floor, and each keyframe's re-quantised noise (blocky, heavy-tailed)
/// put a quarter of the cells just over high's 5 grey levels; a cell with motion learns
/// nothing, so they stayed "moving" until absorbed 10 s later. Now such a keyframe is a global
/// step (the frame's own noise, 2.8-3.1 levels, is six times the learned one) and is
/// re-baselined instead. The lighting ramp encoded at CRF 28 (≈1 Mbit/s) instead of 23 was
/// motion from frame 65 on (8 events) in one 8x8 cell on a frozen walker's dark jacket, which
/// brightens 4.5 levels less than the scene's median over 10 s and which the codec updates at
/// keyframes: held "moving", its background followed the median and the gap widened. Now the
/// cell is a weak, still residue and keeps learning. Measured: no motion on either clip at any
/// level. Margin: with k 2.0 instead of 2.5, or a 15 % cell vote instead of 20 %, both stay
/// quiet too; with 4 grey levels instead of 5 the ramp has motion on 1 frame (was 104).
#[test]
fn static_scenes_under_strong_compression_raise_no_events_at_high() {
    if !have_ffmpeg() {
        return;
    }
    let clips =
        [("lighting ramp at CRF 28", static_clip("ramp-crf28", RAMP, &["-crf", "28", "-bf", "0"])), ("QP 44", keyframe_pumping_clip())];
    let mut alarms = Vec::new();
    for (name, frames) in &clips {
        let (events, motion) = events_and_motion(frames, Sensitivity::High);
        if !events.is_empty() {
            alarms.push(format!("{name}: {} events, motion from frame {} on {} frames", events.len(), motion[0], motion.len()));
        }
    }
    assert!(alarms.is_empty(), "static scenes at high: {alarms:?}");
}
