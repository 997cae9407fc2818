//! Decode benchmark (issue 4): openh264 fps at 720p and 1080p, raw vs with the motion analysis, and motion's share.
//!
//! Clips are made from config/media/vtest.mkv with ffmpeg (libx264, High profile without
//! B-frames, 10 s at 10 fps) in a temporary folder; nothing is downloaded. Prints, never fails
//! on timing. `cargo bench --bench decode`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use vela::media::decode::Decoder;
use vela::media::mkv::read_h264_file;
use vela::nodes::processors::motion_core::ANALYSIS;
use vela::nodes::processors::motion_core::{MotionConfig, MotionDetector};
use vela::topology::nodes::motion_detection::Sensitivity;

fn make_clip(src: &Path, out: &Path, width: u32, height: u32) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(src)
        .args([
            "-t",
            "10",
            "-vf",
            &format!("scale={width}:{height}"),
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "0",
            "-g",
            "20",
            "-an",
        ])
        .arg(out)
        .status()
        .expect("ffmpeg (installed by scripts/test)");
    assert!(status.success(), "ffmpeg could not make {}", out.display());
}

/// Frames per second over `rounds` passes; with `motion`, each frame is also reduced to
/// grayscale at the node's analysis size and analysed, as the MotionDetectionProcessor does.
fn run(path: &Path, rounds: usize, motion: bool) -> (f64, usize) {
    let track = read_h264_file(path).expect("demux");
    let mut frames = 0usize;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut d = Decoder::new();
        let mut det = MotionDetector::new(MotionConfig {
            sensitivity: Sensitivity::Medium,
            output_motion_region: true,
            aggregation_window: 1_000_000_000,
        });
        d.set_avcc(&track.avcc, |_| {}).expect("avcC");
        for f in &track.frames {
            let _ = d.decode(&f.data, f.pts_90k, f.keyframe, |pic| {
                frames += 1;
                if motion {
                    let g = pic.gray(ANALYSIS.0, ANALYSIS.1);
                    let _ = det.push(g.width, g.height, &g.data, pic.pts * 100_000 / 9);
                }
            });
        }
        d.flush(|_| frames += 1);
    }
    (frames as f64 / start.elapsed().as_secs_f64(), frames)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("vela-bench-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media/vtest.mkv");
    println!("vela decode benchmark: openh264 single thread (cargo bench --bench decode)");
    println!("{:<10} {:>12} {:>16} {:>14} {:>22}", "size", "decode fps", "+ motion fps", "graph/raw", "motion share of decode");
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let clip = dir.join(format!("vtest-{h}p.mkv"));
        make_clip(&src, &clip, w, h);
        let _ = run(&clip, 1, false); // warm-up
        let (raw, n) = run(&clip, 3, false);
        let (graph, _) = run(&clip, 3, true);
        // Time per frame: decode alone vs decode + reduction + motion.
        let (t_raw, t_graph) = (1.0 / raw, 1.0 / graph);
        let share = (t_graph - t_raw) / t_raw;
        println!(
            "{:<10} {:>12.0} {:>16.0} {:>14.3} {:>21.1} %   ({} frames)",
            format!("{w}x{h}"),
            raw,
            graph,
            graph / raw,
            share * 100.0,
            n
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
