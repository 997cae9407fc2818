//! The signal gate's clip semantics end to end: for a table of gate settings and trigger patterns, every recorded clip spans what SPEC §1.3 says to the frame, starts on a keyframe and holds the camera's own earlier frames as pre-roll.
//!
//! One live pipeline per row, all at once, on one simulated camera looping
//! config/media/vtest.mkv (10 fps, a keyframe every 20 frames: 2 s GOPs, 1.5 s at the
//! loop's wrap) at 4× real time. The topology is the published LVA 2.0
//! `evr-hubMessage-files` with the gate's timings made parameters (LVA allows activation
//! times from 1 s; AVA's 10 s minimum would make the table slow).
//!
//! **One timeline for triggers and media.** The gate works on the media's wall clock: the
//! RTSP source pins the first frame it receives to the system clock and then follows the
//! camera's 90 kHz timestamps, so at 4× the media clock runs four times faster than the
//! system clock. The test cannot read the gate's "now", so it *estimates* it (from when the
//! session was established) only to decide when to send; every trigger carries an explicit
//! `eventTime` (sent as the hub does: an RFC 3339 application property, parsed with the
//! same functions as the appliance's hub input), which is exact. After the fact, each clip
//! tells where it lies on that same clock: the file sink names it with
//! `${System.PreciseDateTime}` of its first frame (the gate's start, to the millisecond),
//! and decoded-frame checksums tell which source frame that is. Source frames are 100 ms
//! apart on the media clock, so that anchor places every frame of the clip (and the
//! keyframes around it) on the timeline, and expectations are checked to the frame: the
//! first frame is the last keyframe at or before `earliest event + offset`, the last frame
//! is the last one before `min(latest event + minimum, first event + maximum)`.
//! Only the row without `eventTime` depends on the estimate: the gate places that trigger
//! at its arrival, which the test reads back from the clip's end (arrival + minimum).

mod common;
#[path = "common/engine.rs"]
mod engine;

use engine::{probe, until, Rig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vela::clock::{parse_rfc3339, rfc3339_millis, unix_nanos};
use vela::runtime::packet::{Event, Packet};

const SECOND: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// vtest.mkv's frame spacing on the media clock.
const FRAME: i64 = 100 * MS;
/// The file name carries the clip's start to the millisecond (truncated).
const SLACK: i64 = MS;

/// A trigger: when to send it (media seconds after the row's reference instant) and its
/// `eventTime` (likewise), or none.
type Trigger = (f64, Option<f64>);

struct Case {
    name: &'static str,
    window: f64,
    offset: f64,
    min: f64,
    max: f64,
    triggers: &'static [Trigger],
    /// Clips as (start, end) by the SPEC formula, before rounding the start down to a
    /// keyframe: start = earliest event + offset, end = min(latest event + minimum,
    /// first event + maximum). Seconds after the reference instant (for a trigger
    /// without eventTime: after its arrival).
    clips: &'static [(f64, f64)],
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // SPEC's single event: [E + offset, E + minimum].
    Case { name: "single trigger with pre-roll", window: 1.0, offset: -4.0, min: 6.0, max: 10.0,
        triggers: &[(0.0, Some(0.0))], clips: &[(-4.0, 6.0)] },
    Case { name: "zero pre-roll starts at the trigger", window: 0.0, offset: 0.0, min: 5.0, max: 5.0,
        triggers: &[(0.0, Some(0.0))], clips: &[(0.0, 5.0)] },
    Case { name: "positive offset starts after the trigger", window: 1.0, offset: 3.0, min: 8.0, max: 8.0,
        triggers: &[(0.0, Some(0.0))], clips: &[(3.0, 8.0)] },
    // objectCounter's triggers carry the inference's time, seconds before they arrive.
    Case { name: "eventTime before arrival reaches into the buffer", window: 1.0, offset: -2.0, min: 6.0, max: 6.0,
        triggers: &[(0.0, Some(-3.0))], clips: &[(-5.0, 3.0)] },
    // Each event restarts the minimum timer: [E1 + offset, E3 + minimum].
    Case { name: "repeated triggers extend the clip", window: 1.0, offset: -2.0, min: 4.0, max: 12.0,
        triggers: &[(0.0, Some(0.0)), (2.0, Some(2.0)), (4.0, Some(4.0))], clips: &[(-2.0, 8.0)] },
    // Events keep coming, but the clip closes at E1 + maximum; the event at 11 lies beyond
    // that cap and opens a second clip.
    Case { name: "repeated triggers stop at the maximum; a later one opens a new clip", window: 1.0, offset: -2.0, min: 4.0, max: 8.0,
        triggers: &[(0.0, Some(0.0)), (2.0, Some(2.0)), (4.0, Some(4.0)), (6.0, Some(6.0)), (11.0, Some(11.0))],
        clips: &[(-2.0, 8.0), (9.0, 15.0)] },
    // SPEC's "events at 100 and then 130": the second comes after the minimum expired.
    Case { name: "a trigger after the minimum expired opens a new clip", window: 1.0, offset: -2.0, min: 4.0, max: 10.0,
        triggers: &[(0.0, Some(0.0)), (8.0, Some(8.0))], clips: &[(-2.0, 4.0), (6.0, 12.0)] },
    // E2 (time 0) arrives first; E1 (time −3) arrives 1 s later, inside the 4 s window:
    // the clip starts at E1 + offset and still ends at the latest event + minimum.
    Case { name: "a late event inside the evaluation window moves the start earlier", window: 4.0, offset: -2.0, min: 6.0, max: 12.0,
        triggers: &[(0.0, Some(0.0)), (1.0, Some(-3.0))], clips: &[(-5.0, 6.0)] },
    // The same late event, arriving 4 s after E2 with a 1 s window (the clip still open):
    // disregarded, neither moving the start nor opening a clip of its own.
    Case { name: "a late event after the evaluation window is ignored", window: 1.0, offset: -2.0, min: 10.0, max: 12.0,
        triggers: &[(0.0, Some(0.0)), (4.0, Some(-3.0))], clips: &[(-2.0, 10.0)] },
    // Late is late even after the activation it is late for has closed: it must not
    // record that stretch again (SPEC §1.3 5: a late arrival "is disregarded").
    Case { name: "a late event after the activation closed is ignored", window: 1.0, offset: -2.0, min: 4.0, max: 4.0,
        triggers: &[(0.0, Some(0.0)), (6.0, Some(-3.0))], clips: &[(-2.0, 4.0)] },
    // An eventTime a minute old reaches beyond the look-back (|offset| + window + 10 s):
    // its media is gone, so nothing is recorded for it, and a later trigger still works.
    Case { name: "an event older than the look-back records nothing", window: 1.0, offset: -2.0, min: 4.0, max: 4.0,
        triggers: &[(0.0, Some(-60.0)), (6.0, Some(6.0))], clips: &[(4.0, 10.0)] },
    // No eventTime: the gate places the trigger at the media time it arrived.
    Case { name: "a trigger without eventTime is placed at its arrival", window: 1.0, offset: -4.0, min: 6.0, max: 6.0,
        triggers: &[(0.0, None)], clips: &[(-4.0, 6.0)] },
];

/// Media seconds of camera footage each pipeline buffers before its row starts: more than
/// any row's pre-roll (5 s, rounded down to a keyframe) plus the timeline's uncertainty.
const WARMUP: f64 = 12.0;
/// How far the row without eventTime may land from when it was sent (the estimate's error:
/// when the first frame arrived within the first GOP, plus camera pacing under load).
const ARRIVAL_TOLERANCE: f64 = 3.0;

fn nanos(s: f64) -> i64 {
    (s * SECOND as f64).round() as i64
}

fn secs(n: i64) -> f64 {
    n as f64 / SECOND as f64
}

fn iso(s: f64) -> String {
    if s < 0.0 {
        format!("-PT{}S", -s)
    } else {
        format!("PT{s}S")
    }
}

fn instance_name(i: usize) -> String {
    format!("row{i}")
}

fn now_nanos() -> i64 {
    unix_nanos(SystemTime::now())
}

/// The estimated media clock of one pipeline: its first frame's wall time is the system
/// time it arrived (`first`), and media then runs at the camera's pace.
#[derive(Clone, Copy)]
struct MediaClock {
    first: i64,
}

impl MediaClock {
    fn at(&self, system: i64) -> i64 {
        self.first + ((system - self.first) as f64 * Rig::SPEED) as i64
    }

    async fn sleep_until(&self, media: i64) {
        let system = self.first + ((media - self.first) as f64 / Rig::SPEED) as i64;
        let wait = system - now_nanos();
        if wait > 0 {
            tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
        }
    }
}

/// A hub message as the appliance's hub input makes it: the `eventTime` application
/// property, parsed into the event's time.
fn hub_trigger(event_time: Option<i64>) -> Packet {
    let mut properties = BTreeMap::new();
    let mut time = None;
    if let Some(t) = event_time {
        let text = rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(t as u64));
        time = parse_rfc3339(&text).map(unix_nanos);
        properties.insert("eventTime".to_string(), text);
    }
    Packet::Event(Arc::new(Event { time, body: bytes::Bytes::from_static(b"{}"), properties }))
}

/// Per-frame MD5s of the decoded video, in decode order.
fn frame_md5s(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-an", "-vsync", "passthrough", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg is installed by scripts/test");
    assert!(out.status.success(), "ffmpeg cannot decode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|s| s.trim().to_string()))
        .collect()
}

/// Keyframe flags of a file's video packets.
fn keyframes(path: &Path) -> Vec<bool> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed by scripts/test");
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.contains('K')).collect()
}

/// The source as the camera loops it: frame checksums and keyframe flags by index.
struct Source {
    md5: Vec<String>,
    key: Vec<bool>,
}

impl Source {
    fn load() -> Source {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media/vtest.mkv");
        let (md5, key) = (frame_md5s(&path), keyframes(&path));
        assert_eq!(md5.len(), key.len(), "decoded frames and packets of vtest.mkv");
        let mut sorted = md5.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), md5.len(), "every source frame is distinct, so a checksum names one frame");
        Source { md5, key }
    }

    fn index(&self, i: i64) -> usize {
        i.rem_euclid(self.md5.len() as i64) as usize
    }
}

/// `clip-20240101T120000.123Z.mp4` (or `…Z-1.mp4`): the media time of the clip's first frame.
fn start_from_name(path: &Path) -> i64 {
    let name = path.file_name().unwrap().to_string_lossy();
    let b = name.strip_prefix("clip-").unwrap_or_else(|| panic!("unexpected clip name {name}"));
    let text = format!("{}-{}-{}T{}:{}:{}", &b[0..4], &b[4..6], &b[6..8], &b[9..11], &b[11..13], &b[13..20]);
    unix_nanos(parse_rfc3339(&text).unwrap_or_else(|| panic!("no time in clip name {name}")))
}

/// A recorded clip placed on the media timeline.
struct Clip {
    path: PathBuf,
    /// Media time of the first frame (from the file name; true value up to 1 ms later).
    start: i64,
    /// Index in vtest.mkv of the first frame.
    first: usize,
    frames: usize,
}

impl Clip {
    /// Media time of the frame `j` frames after the clip's first (negative: before it).
    fn time(&self, j: i64) -> i64 {
        self.start + j * FRAME
    }

    /// Media time just after the last frame.
    fn end(&self) -> i64 {
        self.time(self.frames as i64)
    }
}

/// Checks one clip file on its own and finds it in the source. Problems go to `failures`.
fn examine(path: &Path, src: &Source, failures: &mut Vec<String>) -> Option<Clip> {
    let (errors, packets, _, key_first) = probe(path);
    if !errors.is_empty() {
        failures.push(format!("{}: ffprobe -v error is not silent: {errors}", path.display()));
    }
    if !key_first {
        failures.push(format!("{}: the first frame is not a keyframe", path.display()));
    }
    let md5 = frame_md5s(path);
    if md5.len() as u64 != packets || md5.is_empty() {
        failures.push(format!("{}: {} packets but {} decoded frames", path.display(), packets, md5.len()));
        return None;
    }
    let Some(first) = src.md5.iter().position(|m| *m == md5[0]) else {
        failures.push(format!("{}: the first frame is no frame of vtest.mkv", path.display()));
        return None;
    };
    // Pre-roll and all: the clip is the camera's own run of frames from `first` on, across
    // the loop's wrap, without gaps, repeats or foreign frames.
    if let Some(j) = (0..md5.len()).find(|&j| md5[j] != src.md5[src.index((first + j) as i64)]) {
        failures.push(format!(
            "{}: frame {j} is not source frame {} (clip starts at source frame {first}): media is missing, repeated or out of order",
            path.display(),
            src.index((first + j) as i64)
        ));
    }
    if !src.key[first] {
        failures.push(format!("{}: starts at source frame {first}, which is no keyframe", path.display()));
    }
    Some(Clip { path: path.to_path_buf(), start: start_from_name(path), first, frames: md5.len() })
}

/// Compares a clip with its expected formula span `[start, end)` (absolute media times):
/// the first frame must be the last keyframe at or before `start`, the last frame the last
/// one before `end` (up to the file name's millisecond). Times in messages are relative to
/// `reference`.
fn check_span(case: &str, clip: &Clip, src: &Source, start: i64, end: i64, reference: i64, failures: &mut Vec<String>) {
    let name = clip.path.file_name().unwrap().to_string_lossy();
    let key_at = |j: i64| src.key[src.index(clip.first as i64 + j)];
    // No keyframe between the clip's first frame and the formula's start.
    let next_key = (1..100).find(|&j| key_at(j)).expect("keyframes recur");
    if clip.start > start + SLACK || clip.time(next_key) <= start - SLACK {
        let expected = (-100..100).filter(|&j| key_at(j) && clip.time(j) <= start).max().map(|j| clip.time(j));
        failures.push(format!(
            "{case}: {name} starts at {:.3} s; the last keyframe at or before {:.3} s is at {}",
            secs(clip.start - reference),
            secs(start - reference),
            expected.map_or("?".into(), |t| format!("{:.3} s", secs(t - reference))),
        ));
    }
    if clip.time(clip.frames as i64 - 1) >= end + SLACK || clip.end() < end - SLACK {
        failures.push(format!(
            "{case}: {name} ends after its frame at {:.3} s (end {:.3} s), expected the last frame before {:.3} s",
            secs(clip.time(clip.frames as i64 - 1) - reference),
            secs(clip.end() - reference),
            secs(end - reference)
        ));
    }
}

#[actix_rt::test]
async fn clips_match_the_spec_formula_to_the_frame() {
    let began = Instant::now();
    // Decoding the source (the checksums to compare with) overlaps with recording.
    let source = std::thread::spawn(Source::load);
    let rig = Rig::start("clip-semantics").await;
    let url = rig.camera.url("vtest.mkv");

    // The published LVA 2.0 hub-message EVR topology; the camera, the gate's timings and
    // the trigger input are parameters, and files are named after their first frame's
    // media time to the millisecond.
    let mut topo: Value =
        serde_json::from_slice(&std::fs::read(common::fixture("reference/lva-topologies/evr-hubMessage-files/2.0/topology.json")).unwrap())
            .unwrap();
    let p = &mut topo["properties"];
    for name in ["window", "offset", "minimum", "maximum"] {
        p["parameters"].as_array_mut().unwrap().push(json!({ "name": name, "type": "String" }));
    }
    p["sources"][0]["endpoint"]["url"] = json!("${rtspUrl}");
    let gate = &mut p["processors"][0];
    gate["activationEvaluationWindow"] = json!("${window}");
    gate["activationSignalOffset"] = json!("${offset}");
    gate["minimumActivationTime"] = json!("${minimum}");
    gate["maximumActivationTime"] = json!("${maximum}");
    p["sinks"][0]["baseDirectoryPath"] = json!("media");
    p["sinks"][0]["fileNamePattern"] = json!("clip-${System.PreciseDateTime}");
    let r = rig.controller.invoke("GraphTopologySet", &serde_json::to_vec(&topo).unwrap()).await;
    assert!(r.status == 200 || r.status == 201, "{r:?}");

    // One live pipeline per row, each listening on its own hub input.
    for (i, c) in CASES.iter().enumerate() {
        let params = json!([
            { "name": "rtspUrl", "value": url },
            { "name": "hubSourceInput", "value": instance_name(i) },
            { "name": "window", "value": iso(c.window) },
            { "name": "offset", "value": iso(c.offset) },
            { "name": "minimum", "value": iso(c.min) },
            { "name": "maximum", "value": iso(c.max) },
        ]);
        let inst = json!({ "@apiVersion": "2.0", "name": instance_name(i),
            "properties": { "topologyName": topo["name"], "parameters": params } });
        let r = rig.controller.invoke("GraphInstanceSet", &serde_json::to_vec(&inst).unwrap()).await;
        assert!(r.status == 200 || r.status == 201, "{}: {r:?}", c.name);
        let r = rig
            .controller
            .invoke("GraphInstanceActivate", &serde_json::to_vec(&json!({"@apiVersion": "2.0", "name": instance_name(i)})).unwrap())
            .await;
        assert_eq!(r.status, 200, "{}: {r:?}", c.name);
    }

    // Each pipeline's media clock: the session is established, then its first frame comes
    // with the camera's next keyframe, within one GOP (0.5 s at 4×): take the middle.
    let subject = |i: usize, node: &str| format!("/graphInstances/{}/{node}", instance_name(i));
    let sessions = || rig.recorder.of_type("MediaSessionEstablished");
    until("every camera session", Duration::from_secs(20), || sessions().len() >= CASES.len()).await;
    let clocks: Vec<MediaClock> = (0..CASES.len())
        .map(|i| {
            let m = sessions().into_iter().find(|m| m.properties["subject"] == subject(i, "sources/rtspSource")).expect("session event");
            let established = unix_nanos(parse_rfc3339(&m.properties["eventTime"]).unwrap());
            MediaClock { first: established + nanos(0.25) }
        })
        .collect();
    until("every hub source to listen", Duration::from_secs(5), || (0..CASES.len()).all(|i| rig.inputs.listeners(&instance_name(i)) == 1))
        .await;

    // Every row starts when the last pipeline has buffered WARMUP seconds; its reference
    // instant is that moment on its own media clock, to the millisecond (eventTime's grain).
    let latest_first = clocks.iter().map(|c| c.first).max().unwrap();
    let start_at = latest_first + nanos(WARMUP / Rig::SPEED);
    let references: Vec<i64> = clocks.iter().map(|c| c.at(start_at) / MS * MS).collect();

    let runs = CASES.iter().enumerate().map(|(i, c)| {
        let (rig, clock, reference) = (&rig, clocks[i], references[i]);
        async move {
            for &(send, event_time) in c.triggers {
                clock.sleep_until(reference + nanos(send)).await;
                let delivered = rig.inputs.deliver(&instance_name(i), hub_trigger(event_time.map(|t| reference + nanos(t))));
                assert_eq!(delivered, 1, "{}: the trigger reached the pipeline", c.name);
            }
            // Wait for the expected clips, then a little longer for any that should not be
            // there, and deactivate (which would also end a clip still open).
            let last = c.clips.iter().map(|s| s.1).fold(c.triggers.last().unwrap().0, f64::max);
            let stopped = || {
                rig.recorder.of_type("RecordingStopped").iter().filter(|m| m.properties["subject"] == subject(i, "sinks/fileSink")).count()
            };
            clock.sleep_until(reference + nanos(last)).await;
            let deadline = Instant::now() + Duration::from_secs(15);
            while stopped() < c.clips.len() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_secs_f64(4.0 / Rig::SPEED)).await;
            let r = rig
                .controller
                .invoke("GraphInstanceDeactivate", &serde_json::to_vec(&json!({"@apiVersion": "2.0", "name": instance_name(i)})).unwrap())
                .await;
            assert_eq!(r.status, 200, "{}: {r:?}", c.name);
        }
    });
    futures::future::join_all(runs).await;
    assert_eq!(rig.runtime.active_count(), 0);
    let recorded = Instant::now();

    let src = source.join().expect("source decoded");
    let mut failures = Vec::new();
    let mut table = vec![format!("{:<72} {:<28} {}", "row", "expected (start, end) s", "measured (start, end) s")];
    for (i, c) in CASES.iter().enumerate() {
        let files = |ty: &str| -> Vec<PathBuf> {
            rig.recorder
                .of_type(ty)
                .iter()
                .filter(|m| m.properties["subject"] == subject(i, "sinks/fileSink"))
                .map(|m| PathBuf::from(serde_json::from_slice::<Value>(&m.body).unwrap()["outputLocation"].as_str().unwrap()))
                .collect()
        };
        let (started, stopped) = (files("RecordingStarted"), files("RecordingStopped"));
        if started != stopped {
            failures.push(format!("{}: recordings started {started:?} but stopped {stopped:?}", c.name));
        }
        let clips: Vec<Clip> = stopped.iter().filter_map(|p| examine(p, &src, &mut failures)).collect();
        if clips.len() != c.clips.len() {
            failures.push(format!("{}: {} clips, expected {}", c.name, clips.len(), c.clips.len()));
        }
        // Clips of one pipeline lie on one media timeline: their distance in time is their
        // distance in source frames (modulo the loop).
        for w in clips.windows(2) {
            let frames = (w[1].start - w[0].start + FRAME / 2).div_euclid(FRAME);
            if src.index(w[0].first as i64 + frames) != w[1].first {
                failures.push(format!("{}: {} and {} disagree on the media timeline", c.name, w[0].path.display(), w[1].path.display()));
            }
        }

        // The reference: the row's chosen instant, or for a trigger without eventTime its
        // arrival, read back as the clip's end minus the minimum.
        let mut reference = references[i];
        let mut notes = String::new();
        if c.triggers[0].1.is_none() {
            assert_eq!(c.triggers.len(), 1, "{}: reading the arrival back needs a single trigger", c.name);
            if let Some(clip) = clips.first() {
                let arrival = clip.end() - nanos(c.min);
                let off = secs(arrival - reference);
                if off.abs() > ARRIVAL_TOLERANCE {
                    failures.push(format!("{}: placed at {off:.3} s from when it was sent", c.name));
                }
                reference = arrival;
                notes = format!("  (arrived {off:+.2} s from when it was sent)");
            }
        }
        for (clip, &(start, end)) in clips.iter().zip(c.clips) {
            check_span(c.name, clip, &src, reference + nanos(start), reference + nanos(end), reference, &mut failures);
            // The pre-roll (frames before the earliest event) is the source's run of frames
            // right before the event; the frame check above placed every frame, so here
            // only its length is left: at least the offset's worth for a negative offset.
            let event = reference + nanos(start - c.offset);
            let pre_roll = (0..clip.frames as i64).filter(|&j| clip.time(j) < event - SLACK).count() as f64 * secs(FRAME);
            if c.offset < 0.0 && pre_roll + 1e-9 < -c.offset {
                failures.push(format!("{}: {:.1} s of pre-roll, expected at least {} s", c.name, pre_roll, -c.offset));
            }
        }
        let fmt = |v: Vec<(f64, f64)>| v.iter().map(|(s, e)| format!("({s:.1}, {e:.1})")).collect::<Vec<_>>().join(" ");
        let measured = clips.iter().map(|k| (secs(k.start - reference), secs(k.end() - reference))).collect();
        table.push(format!("{:<72} {:<28} {}{notes}", c.name, fmt(c.clips.to_vec()), fmt(measured)));
    }
    let table = table.join("\n");
    eprintln!("{table}\nrecorded in {:.1} s, checked in {:.1} s", (recorded - began).as_secs_f64(), recorded.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}\n\n{table}", failures.join("\n"));

    rig.camera.shutdown().await;
    std::fs::remove_dir_all(&rig.state).ok();
}
