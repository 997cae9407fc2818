//! Decode and motion benchmark (issue 4): openh264 fps raw vs the full motion graph, motion's share of decode, motion latency.
//!
//! 1. `decode`: 720p and 1080p clips made from config/media/vtest.mkv with ffmpeg (libx264,
//!    High profile without B-frames, 10 s at 10 fps, GOP 2 s) in a scratch folder — nothing
//!    is downloaded. openh264 in a loop (raw), then the same loop with the grayscale reduction
//!    and the motion detector, as the graph does per frame: fps, and motion's cost per frame
//!    as a fraction of decode — from the two passes' fps, and (the number to trust on a VM
//!    whose speed drifts between passes) from motion's time inside the second pass against
//!    the rest of that pass.
//! 2. `graph`: the same clips through the full motion graph of the shipped demo
//!    (config/topologies/evr-motion.json: RTSP source → motion → signal gate → file sink,
//!    motion events → hub sink) in a `vela run` process, the camera a separate `vela rtspsim`
//!    process paced at half the raw decode rate. The appliance's CPU (utime+stime from /proc)
//!    per frame, against raw decode's CPU per frame measured in the same run: the ratio is
//!    what the graph adds (RTSP, actors, motion, gate, recording, MQTT). Per-thread split too.
//!    A decoder paced at the same frame rate runs beside the graph in the bench process: a
//!    paced decoder works on cold caches after every sleep and this VM's speed drifts by
//!    tens of percent over a minute, so graph vs paced-raw measured side by side is the
//!    fair ratio; graph vs the tight loop is printed too.
//! 3. `latency`: a synthetic 720p 25 fps clip looping every 3.2 s — a white box moving for
//!    1.6 s, then a still scene; the first frame of each loop (its only keyframe) is the
//!    first moving frame. A `vela run` process runs two LVA 2.0 instances on it: `immediate`
//!    (eventAggregationWindow 0, gate evaluation window 0) and `aggregated` (the defaults:
//!    1 s aggregation, 1 s evaluation window — both delays are by contract). The bench
//!    receives the camera's frames itself (a second RTSP session on the same broadcast) and
//!    the engine's events as a routed module on the hub: latency = event received − moving
//!    frame received, p50/p99, to the MotionDetection event and to RecordingStarted.
//!
//! Prints, never fails on timing. `cargo bench --bench decode [-- decode|graph|latency ...]
//! [--window SECS] [--seconds SECS]`

mod common;

use anyhow::{bail, Context};
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vela::hub::HubMessage;
use vela::media::decode::Decoder;
use vela::media::mkv::read_h264_file;
use vela::nodes::processors::motion_core::ANALYSIS;
use vela::nodes::processors::motion_core::{MotionConfig, MotionDetector};
use vela::topology::nodes::motion_detection::Sensitivity;

const REPRO: &str = "cargo bench --bench decode --";

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
/// Decodes the clip `rounds` times (with the grayscale reduction and the motion detector
/// per picture when `motion`): fps, frames, and the seconds spent in reduction + motion,
/// timed inside the same pass so that the share does not depend on the VM's speed drift.
fn run(path: &Path, rounds: usize, motion: bool) -> (f64, usize, f64) {
    let track = read_h264_file(path).expect("demux");
    let mut frames = 0usize;
    let mut in_motion = Duration::ZERO;
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
                    let t = Instant::now();
                    let g = pic.gray(ANALYSIS.0, ANALYSIS.1);
                    let _ = det.push(g.width, g.height, &g.data, pic.pts * 100_000 / 9);
                    in_motion += t.elapsed();
                }
            });
        }
        d.flush(|_| frames += 1);
    }
    (frames as f64 / start.elapsed().as_secs_f64(), frames, in_motion.as_secs_f64())
}

struct Opts {
    sections: Vec<String>,
    window: Duration,
    seconds: Duration,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts { sections: Vec::new(), window: Duration::from_secs(20), seconds: Duration::from_secs(160) };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut secs = |name: &str| -> anyhow::Result<Duration> {
                let v: u64 = args.next().and_then(|v| v.parse().ok()).with_context(|| format!("{name} needs a number of seconds"))?;
                Ok(Duration::from_secs(v.max(1)))
            };
            match a.as_str() {
                "--bench" => {}
                "--window" => o.window = secs("--window")?,
                "--seconds" => o.seconds = secs("--seconds")?,
                "decode" | "graph" | "latency" => o.sections.push(a),
                other => bail!("unknown argument {other:?}; usage: {REPRO} [decode|graph|latency ...] [--window SECS] [--seconds SECS]"),
            }
        }
        Ok(o)
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }
}

fn own_ticks() -> u64 {
    proc_ticks(std::process::id()).unwrap_or(0)
}

/// Raw decode of a clip: (fps, CPU seconds per frame) over `rounds` passes.
fn raw_decode(clip: &Path, rounds: usize, hz: f64) -> (f64, f64, usize) {
    let t0 = own_ticks();
    let (fps, frames, _) = run(clip, rounds, false);
    let cpu = (own_ticks() - t0) as f64 / hz;
    (fps, cpu / frames as f64, frames)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Raw decode paced like a camera (`fps` frames a second, sleeping between frames) on its
/// own thread until `stop`: (frames, CPU time). Run beside the graph, it shares the
/// machine's state of the moment (other VMs, frequency, cold caches after each sleep), so
/// the ratio of the two is what the graph adds.
fn paced_raw_decode(clip: PathBuf, fps: f64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Duration)> {
    std::thread::spawn(move || {
        let track = read_h264_file(&clip).expect("demux");
        let period = Duration::from_secs_f64(1.0 / fps);
        let (mut frames, mut cpu) = (0u64, Duration::ZERO);
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut d = Decoder::new();
            d.set_avcc(&track.avcc, |_| {}).expect("avcC");
            for f in &track.frames {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let c0 = thread_cpu();
                let _ = d.decode(&f.data, f.pts_90k, f.keyframe, |_| frames += 1);
                cpu += thread_cpu() - c0;
            }
        }
        (frames, cpu)
    })
}

fn main() -> anyhow::Result<()> {
    let o = Opts::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench(o))
}

async fn bench(o: Opts) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vela-bench-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let src = repo().join("config/media/vtest.mkv");
    let hz = clock_ticks();
    let sizes = [(1280u32, 720u32), (1920, 1080)];
    let mut clips = Vec::new();
    for (w, h) in sizes {
        let clip = dir.join(format!("vtest-{h}p.mkv"));
        make_clip(&src, &clip, w, h);
        clips.push((w, h, clip));
    }
    if o.wants("decode") {
        println!("== 1. openh264, single thread, in a loop ({REPRO} decode)");
        println!(
            "{:<10} {:>12} {:>16} {:>14} {:>22} {:>26}",
            "size", "decode fps", "+ motion fps", "with/raw", "motion share (fps)", "motion share (same pass)"
        );
        for (w, h, clip) in &clips {
            let _ = run(clip, 1, false); // warm-up
            let (raw, n, _) = run(clip, 3, false);
            let (graph, _, motion_s) = run(clip, 3, true);
            // Time per frame: decode alone vs decode + reduction + motion; and, immune to
            // the VM's drift between the two passes, motion's time against the rest of the
            // same pass.
            let (t_raw, t_graph) = (1.0 / raw, 1.0 / graph);
            let share = (t_graph - t_raw) / t_raw;
            let pass = n as f64 / graph;
            let same_pass = motion_s / (pass - motion_s);
            println!(
                "{:<10} {:>12.0} {:>16.0} {:>14.3} {:>20.1} % {:>24.1} %   ({} frames)",
                format!("{w}x{h}"),
                raw,
                graph,
                graph / raw,
                share * 100.0,
                same_pass * 100.0,
                n
            );
        }
    }
    let bin = if o.wants("graph") || o.wants("latency") { Some(vela_binary()?) } else { None };
    if let (true, Some(bin)) = (o.wants("graph"), &bin) {
        println!(
            "\n== 2. Through the full motion graph in `vela run` vs raw decode, same run ({REPRO} graph --window {})",
            o.window.as_secs()
        );
        for (w, h, clip) in &clips {
            graph(bin, *w, *h, clip, &o, hz).await?;
        }
    }
    if let (true, Some(bin)) = (o.wants("latency"), &bin) {
        println!("\n== 3. Latency, first moving frame → event on the hub ({REPRO} latency --seconds {})", o.seconds.as_secs());
        latency(bin, &dir, &o).await?;
    }
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

/// The shipped motion demo on one camera of `clip`, paced at half the raw decode rate.
async fn graph(bin: &Path, w: u32, h: u32, clip: &Path, o: &Opts, hz: f64) -> anyhow::Result<()> {
    let _ = run(clip, 1, false);
    let (raw_fps, raw_cpu, _) = raw_decode(clip, 3, hz);
    let fps_in = raw_fps / 2.0;
    let speed = fps_in / 10.0; // the clips are 10 fps
    let media = mqtt::scratch_dir("bench-graph-media");
    std::fs::copy(clip, media.join("cam.mkv"))?;
    let sim = RtspSim::start(bin, media, speed)?;
    let mut v = Vela::new(bin, None)?;
    v.start()?;
    let caller = v.client("caller").await?;
    let observer = v.client("observer").await?;
    let mut events = observer.inputs().await?;
    let topology: Value = serde_json::from_slice(&std::fs::read(repo().join("config/topologies/evr-motion.json"))?)?;
    call_ok(&caller, "pipelineTopologySet", topology).await?;
    let instance = json!({"@apiVersion": "1.1", "name": "cam", "properties": {"topologyName": "EVRtoFilesOnMotion",
        "parameters": [{"name": "rtspUrl", "value": sim.url("cam.mkv")}]}});
    call_ok(&caller, "livePipelineSet", instance).await?;
    call_ok(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": "cam"})).await?;
    if !sim.wait_sessions(1, Duration::from_secs(10)) {
        bail!("the pipeline did not connect to the camera");
    }
    tokio::time::sleep(Duration::from_secs(4)).await; // past the decoder's start and motion's warm-up
    while events.try_recv().is_ok() {}
    let pid = v.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let paced = paced_raw_decode(clip.to_path_buf(), fps_in, stop.clone());
    let (c0, th0, t0) = (proc_ticks(pid).unwrap_or(0), thread_ticks(pid), Instant::now());
    tokio::time::sleep(o.window).await;
    let (c1, th1, secs) = (proc_ticks(pid).unwrap_or(0), thread_ticks(pid), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let (paced_frames, paced_cpu) = paced.join().expect("paced decoder");
    let paced_cpu = paced_cpu.as_secs_f64() / paced_frames.max(1) as f64;
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut dropped = 0u64;
    while let Ok((_, m)) = events.try_recv() {
        let ty = m.property("eventType").unwrap_or("").rsplit('.').next().unwrap_or("").to_string();
        if ty == "DataDropped" {
            dropped = dropped.max(m.body_json().ok().and_then(|b| b["dropped"].as_u64()).unwrap_or(0));
        }
        *counts.entry(ty).or_default() += 1;
    }
    let cpu = c1.saturating_sub(c0) as f64 / hz;
    let frames = fps_in * secs;
    let per_frame = cpu / frames;
    println!(
        "  {w}x{h}: raw decode {raw_fps:.0} fps = {:.2} ms CPU/frame; graph at {fps_in:.0} fps in: {cpu:.2} CPU-s over {secs:.1} s = {:.2} ms CPU/frame → {:.3}× raw (+{:.1} %), i.e. {:.0} fps per core through the graph",
        raw_cpu * 1e3,
        per_frame * 1e3,
        per_frame / raw_cpu,
        (per_frame / raw_cpu - 1.0) * 100.0,
        1.0 / per_frame,
    );
    println!(
        "    beside it, raw decode paced at the same {fps_in:.0} fps in this process: {:.2} ms CPU/frame → the graph costs {:.3}× that (+{:.1} %)",
        paced_cpu * 1e3,
        per_frame / paced_cpu,
        (per_frame / paced_cpu - 1.0) * 100.0,
    );
    let mut kinds: Vec<_> = counts.into_iter().collect();
    kinds.sort();
    println!("    events in the window: {kinds:?}; frames dropped before analysis: {dropped}");
    let groups = thread_groups(&th0, &th1, hz);
    let split: Vec<String> = groups.iter().take(6).map(|(n, k, s)| format!("{n}×{k} {:.1} %", 100.0 * s / cpu.max(1e-9))).collect();
    println!("    CPU by thread: {}", split.join(", "));
    caller.disconnect().await;
    observer.disconnect().await;
    v.stop();
    Ok(())
}

/// 720p, 25 fps, 3.2 s: a box moving right for 1.6 s, then the still scene; one keyframe, at 0.
fn make_motion_loop(out: &Path) -> anyhow::Result<()> {
    let graph = "smptehdbars=s=1280x720:r=25:d=3.2[bg];color=c=white:s=96x192:r=25:d=3.2[box];\
                 [bg][box]overlay=x='if(lt(t,1.6),200+400*t,-400)':y=260:eval=frame,format=yuv420p";
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-filter_complex", graph, "-c:v", "libx264", "-profile:v", "high", "-bf", "0", "-g", "1000"])
        .args(["-x264-params", "scenecut=0", "-an"])
        .arg(out)
        .status()
        .context("ffmpeg (installed by scripts/test)")?;
    if !status.success() {
        bail!("ffmpeg could not make {}", out.display());
    }
    Ok(())
}

/// An LVA 2.0 motion → gate → file sink graph with motion events to the hub.
fn latency_topology(name: &str, aggregation: &str, evaluation: &str, offset: &str) -> Value {
    let t = |k: &str| format!("#Microsoft.Media.MediaGraph{k}");
    json!({"@apiVersion": "2.0", "name": name, "properties": {
        "parameters": [{"name": "rtspUrl", "type": "String"}],
        "sources": [{"@type": t("RtspSource"), "name": "rtspSource", "transport": "tcp",
            "endpoint": {"@type": t("UnsecuredEndpoint"), "url": "${rtspUrl}"}}],
        "processors": [
            {"@type": t("MotionDetectionProcessor"), "name": "motionDetection", "sensitivity": "medium",
             "eventAggregationWindow": aggregation, "inputs": [{"nodeName": "rtspSource"}]},
            {"@type": t("SignalGateProcessor"), "name": "signalGate",
             "inputs": [{"nodeName": "motionDetection"}, {"nodeName": "rtspSource", "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}],
             "activationEvaluationWindow": evaluation, "activationSignalOffset": offset,
             "minimumActivationTime": "PT1S", "maximumActivationTime": "PT2S"}],
        "sinks": [
            {"@type": t("IoTHubMessageSink"), "name": "hubSink", "inputs": [{"nodeName": "motionDetection"}], "hubOutputName": "inferenceOutput"},
            {"@type": t("FileSink"), "name": "fileSink", "inputs": [{"nodeName": "signalGate"}], "baseDirectoryPath": "media",
             "fileNamePattern": "clip-${System.DateTime}", "maximumSizeMiB": "512"}]}})
}

/// Keyframe arrival times of one RTSP session (a second viewer of the same broadcast).
async fn keyframe_arrivals(url: String, until: Instant) -> anyhow::Result<Vec<SystemTime>> {
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport};
    use retina::codec::CodecItem;
    let mut s = Session::describe(url::Url::parse(&url)?, SessionOptions::default()).await?;
    let video = s.streams().iter().position(|s| s.media() == "video").context("no video stream")?;
    s.setup(video, SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default()))).await?;
    let mut demuxed = s.play(PlayOptions::default()).await?.demuxed()?;
    let mut out = Vec::new();
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(5), demuxed.next()).await {
            Ok(Some(Ok(CodecItem::VideoFrame(f)))) if f.is_random_access_point() => out.push(SystemTime::now()),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    Ok(out)
}

struct Sample {
    event: Vec<Duration>,
    recording: Vec<Duration>,
}

async fn latency(bin: &Path, dir: &Path, o: &Opts) -> anyhow::Result<()> {
    let media = mqtt::scratch_dir("bench-latency-media");
    make_motion_loop(&media.join("loop.mkv"))?;
    let _ = dir;
    let sim = RtspSim::start(bin, media, 1.0)?;
    let mut v = Vela::new(bin, None)?;
    v.start()?;
    let caller = v.client("caller").await?;
    let observer = v.client("observer").await?;
    let mut events = observer.inputs().await?;
    let setups = [("immediate", "PT0S", "PT0S", "PT0S"), ("aggregated", "PT1S", "PT1S", "-PT5S")];
    for (name, aggregation, evaluation, offset) in setups {
        call_ok(&caller, "GraphTopologySet", latency_topology(name, aggregation, evaluation, offset)).await?;
        let instance = json!({"@apiVersion": "2.0", "name": name, "properties": {"topologyName": name,
            "parameters": [{"name": "rtspUrl", "value": sim.url("loop.mkv")}]}});
        call_ok(&caller, "GraphInstanceSet", instance).await?;
        call_ok(&caller, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": name})).await?;
    }
    if !sim.wait_sessions(2, Duration::from_secs(10)) {
        bail!("the instances did not connect to the camera");
    }
    // Past the decoders' first keyframe, motion's warm-up (20 frames) and the absorption of
    // the box it may have learned into the background during the warm-up (10 s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    while events.try_recv().is_ok() {}
    let until = Instant::now() + o.seconds;
    let arrivals = tokio::spawn(keyframe_arrivals(sim.url("loop.mkv"), until));
    let mut received: Vec<(SystemTime, HubMessage)> = Vec::new();
    while Instant::now() < until + Duration::from_secs(3) {
        match tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
            Ok(Some((_, m))) => received.push((SystemTime::now(), m)),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let arrivals = arrivals.await??;
    let mut rows = Vec::new();
    for (name, ..) in setups {
        // (received, eventTime) of this instance's events of one type.
        let of = |suffix: &str| -> Vec<(SystemTime, Option<SystemTime>)> {
            received
                .iter()
                .filter(|(_, m)| {
                    m.property("eventType").is_some_and(|t| t.ends_with(suffix))
                        && m.property("subject").is_some_and(|s| s.contains(&format!("/graphInstances/{name}/")))
                })
                .map(|(t, m)| (*t, m.property("eventTime").and_then(vela::clock::parse_rfc3339)))
                .collect()
        };
        let (inference, started) = (of("Analytics.Inference"), of("Operational.RecordingStarted"));
        let mut s = Sample { event: Vec::new(), recording: Vec::new() };
        for (k, a) in arrivals.iter().enumerate() {
            let next = arrivals.get(k + 1).copied().unwrap_or(SystemTime::now());
            // The motion event of this onset: the one stamped with the moving frame's media
            // time (the engine pins media time to arrival, so within a frame or two of `a`).
            let stamped = |e: &&(SystemTime, Option<SystemTime>)| {
                e.1.is_some_and(|t| t + Duration::from_millis(100) >= *a && t <= *a + Duration::from_millis(500))
            };
            if let Some((r, _)) = inference.iter().find(stamped) {
                s.event.push(r.duration_since(*a).unwrap_or_default());
            }
            // The clip this onset opened: the first RecordingStarted after it, before the next.
            if let Some((r, _)) = started.iter().find(|(r, _)| *r >= *a && *r < next) {
                s.recording.push(r.duration_since(*a).unwrap_or_default());
            }
        }
        if std::env::var_os("VELA_BENCH_DEBUG").is_some() {
            let rel = |t: &SystemTime| t.duration_since(arrivals[0]).map(|d| ms(d) as i64).unwrap_or(-1);
            println!("  {name}: onsets {:?}", arrivals.iter().map(rel).collect::<Vec<_>>());
            println!("  {name}: events {:?}", inference.iter().map(|e| (rel(&e.0), e.1.as_ref().map(rel))).collect::<Vec<_>>());
            println!("  {name}: started {:?}", started.iter().map(|e| rel(&e.0)).collect::<Vec<_>>());
        }
        rows.push((name, s));
    }
    println!("  {} moving-frame onsets received by the bench (one per 3.2 s loop)", arrivals.len());
    for (name, mut s) in rows {
        let show = |v: &mut Vec<Duration>| {
            v.sort();
            if v.is_empty() {
                "none".to_string()
            } else {
                format!(
                    "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (n={})",
                    ms(quantile(v, 0.5)),
                    ms(quantile(v, 0.99)),
                    ms(*v.last().unwrap()),
                    v.len()
                )
            }
        };
        println!("  {name:<10} → MotionDetection event: {}", show(&mut s.event));
        println!("  {name:<10} → RecordingStarted:      {}", show(&mut s.recording));
    }
    caller.disconnect().await;
    observer.disconnect().await;
    v.stop();
    drop(sim);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
