//! Tracker benchmark (issue 7): microseconds per frame of `vela::analytics::Tracker::update`,
//! and of the update plus line crossing on 2 lines, for 10, 50 and 200 tracked objects.
//!
//! Objects walk at random (a velocity that drifts, bouncing off the frame's edges), with
//! people's proportions and sizes that shrink as there are more of them (the boxes cover
//! about a quarter of the frame in every case, as a crowd seen from further away), so
//! they keep meeting and occluding each other. Detections are noisy: position and size jitter, 5 % missed, 2 % of the
//! objects' count in false positives, confidences spread over 0.2–1 (so ByteTrack's
//! second stage has work). Two cadences: the detector on every frame, and on every 15th
//! (2 per second at 30 fps, the published topologies' rate: predicted boxes in between).
//! `accuracy` medium (the default), 30 fps of media time, 3000 frames per case after 100
//! frames of warm-up. Prints median and p99; never fails on timing. For a sense of the
//! result, also the crossings counted next to those of the walkers' true boxes (same
//! lines and rules, untimed): these erratic walkers swap identities in crowds, more so
//! between sparse samples.
//! `cargo bench --bench tracker`

use rand::{Rng, SeedableRng};
use std::time::Instant;
use vela::analytics::line_crossing::LineCrossings;
use vela::analytics::{BBox, Detection, FrameSize, IdGen, Pt, TrackedEntity, TrackedFrame, Tracker, TrackerSettings, TICKS_PER_SECOND};
use vela::topology::nodes::common::NamedLine;

struct Walker {
    c: Pt,
    v: Pt,
    w: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Outcome {
    tracker: (f64, f64),
    with_lines: (f64, f64),
    shown: usize,
    crossings: usize,
    true_crossings: usize,
}

fn run(objects: usize, every: i64) -> Outcome {
    let mut rng = rand::rngs::StdRng::seed_from_u64(objects as u64 * 31 + every as u64);
    // Box height is 3 widths in pixels, 3 × 16/9 widths in normalised units.
    let w0 = (0.25 / (objects as f64 * 3.0 * 16.0 / 9.0)).sqrt();
    // Up to about 4 widths a second: a brisk walk.
    let vmax = 4.0 * w0;
    let mut walkers: Vec<Walker> = (0..objects)
        .map(|_| Walker {
            c: Pt::new(rng.gen_range(0.05..0.95), rng.gen_range(0.1..0.9)),
            v: Pt::new(rng.gen_range(-vmax..vmax), rng.gen_range(-vmax..vmax)),
            w: w0 * rng.gen_range(0.7..1.3),
        })
        .collect();
    let mut tracker = Tracker::new(TrackerSettings::default(), IdGen::seeded(1));
    let lines = [
        NamedLine { name: "vertical".into(), from: [0.5, 0.1], to: [0.5, 0.9] },
        NamedLine { name: "diagonal".into(), from: [0.1, 0.2], to: [0.9, 0.8] },
    ];
    let mut crossings = LineCrossings::for_processor(&lines, FrameSize::new(1920, 1080), IdGen::seeded(2));
    let mut truth = LineCrossings::for_processor(&lines, FrameSize::new(1920, 1080), IdGen::seeded(3));
    let mut true_crossings = 0;
    let frame = TICKS_PER_SECOND / 30;
    let dt = 1.0 / 30.0;
    let (warmup, measured) = (100, 3000);
    let (mut t_track, mut t_total) = (Vec::with_capacity(measured), Vec::with_capacity(measured));
    let mut shown = 0;
    let mut counted = 0;
    for k in 0..(warmup + measured) as i64 {
        for w in &mut walkers {
            w.v.x = (w.v.x + rng.gen_range(-0.1..0.1) * vmax).clamp(-vmax, vmax);
            w.v.y = (w.v.y + rng.gen_range(-0.1..0.1) * vmax).clamp(-vmax, vmax);
            w.c = w.c + w.v * dt;
            if !(0.02..=0.98).contains(&w.c.x) {
                w.v.x = -w.v.x;
            }
            if !(0.05..=0.95).contains(&w.c.y) {
                w.v.y = -w.v.y;
            }
        }
        let sampled = k % every == 0;
        let mut dets = Vec::new();
        if sampled {
            for w in &walkers {
                if rng.gen_bool(0.95) {
                    let (bw, bh) = (w.w * rng.gen_range(0.95..1.05), 3.0 * w.w * 16.0 / 9.0 * rng.gen_range(0.95..1.05));
                    let c = Pt::new(w.c.x + rng.gen_range(-0.05..0.05) * bw, w.c.y + rng.gen_range(-0.05..0.05) * bh);
                    dets.push(Detection::new("person", rng.gen_range(0.2..1.0), BBox::from_center(c, bw, bh)));
                }
            }
            for _ in 0..(objects / 50).max(1) {
                if rng.gen_bool(0.5) {
                    let c = Pt::new(rng.gen_range(0.0..1.0), rng.gen_range(0.0..1.0));
                    dets.push(Detection::new("person", rng.gen_range(0.3..0.9), BBox::from_center(c, w0, 3.0 * w0 * 16.0 / 9.0)));
                }
            }
        }
        let start = Instant::now();
        let tracked = tracker.update(k * frame, sampled.then_some(&dets[..]));
        let mid = Instant::now();
        let c = crossings.update(&tracked);
        let end = Instant::now();
        let real: Vec<TrackedEntity> = walkers
            .iter()
            .enumerate()
            .map(|(i, w)| TrackedEntity {
                sequence_id: format!("walker{i}").into(),
                inference_id: String::new(),
                tag: "person".into(),
                confidence: 1.0,
                bbox: BBox::from_center(w.c, w.w, 3.0 * w.w * 16.0 / 9.0),
                predicted: false,
            })
            .collect();
        let real_crossings = truth.update(&TrackedFrame::from_entities(k * frame, real)).len();
        if k >= warmup as i64 {
            true_crossings += real_crossings;
            t_track.push((mid - start).as_secs_f64() * 1e6);
            t_total.push((end - start).as_secs_f64() * 1e6);
            shown += tracked.entities.len();
            counted += c.len();
        }
        std::hint::black_box(&tracked);
    }
    t_track.sort_by(f64::total_cmp);
    t_total.sort_by(f64::total_cmp);
    Outcome {
        tracker: (percentile(&t_track, 0.5), percentile(&t_track, 0.99)),
        with_lines: (percentile(&t_total, 0.5), percentile(&t_total, 0.99)),
        shown: shown / measured,
        crossings: counted,
        true_crossings,
    }
}

fn main() {
    println!("tracker cost per frame (accuracy medium, 3000 frames at 30 fps, µs)");
    println!(
        "{:>8} {:>17} {:>6} {:>15} {:>12} {:>22} {:>18}",
        "objects", "detections", "shown", "tracker median", "tracker p99", "+2 lines median / p99", "crossings (true)"
    );
    for objects in [10usize, 50, 200] {
        for (every, label) in [(1i64, "every frame"), (15, "every 15th frame")] {
            let o = run(objects, every);
            println!(
                "{objects:>8} {label:>17} {:>6} {:>15.1} {:>12.1} {:>22} {:>18}",
                o.shown,
                o.tracker.0,
                o.tracker.1,
                format!("{:.1} / {:.1}", o.with_lines.0, o.with_lines.1),
                format!("{} ({})", o.crossings, o.true_crossings),
            );
        }
    }
    println!("shown: tracked entities per frame on average (tentative and lost tracks are not shown)");
    println!("crossings: counted over the 3000 frames, and (in brackets) those of the walkers' true boxes");
}
