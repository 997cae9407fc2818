//! Continuous and event-based recording into the local video store, end to end through `vela run`:
//! the shipped CVR demo records the simulated camera, the playback API lists it, exports any
//! window as an MP4 whose frames are the camera's, and serves HLS that ffmpeg decodes; video
//! and asset sinks behind a signal gate append clips to one video or make one video each.

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{get, get_json, next_event, probe, repo, Appliance, Setup, HUB_TRIGGER};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use vela::clock::{parse_rfc3339, unix_nanos};
use vela::playback::time::format_time;

const S: i64 = 1_000_000_000;
/// vtest.mkv: 10 fps.
const FRAME: i64 = S / 10;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A plain HTTP/1.1 GET: (status, body).
fn rfc(ns: i64) -> String {
    format_time(ns)
}

fn parse(s: &str) -> i64 {
    unix_nanos(parse_rfc3339(s).unwrap_or_else(|| panic!("not RFC 3339: {s}")))
}

fn ffmpeg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-nostdin"]).args(args).output().expect("ffmpeg (installed by scripts/test)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// MD5 of every decoded frame of a file or URL, in order.
fn frame_md5s(input: &str) -> Vec<String> {
    let (ok, out, err) = ffmpeg(&["-v", "error", "-i", input, "-map", "0:v", "-f", "framemd5", "-"]);
    assert!(ok, "ffmpeg framemd5 {input}: {err}");
    out.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.rsplit(',').next()).map(|s| s.trim().to_string()).collect()
}

/// The camera's frames: vtest.mkv decoded once.
fn source_md5s() -> &'static Vec<String> {
    static SRC: OnceLock<Vec<String>> = OnceLock::new();
    SRC.get_or_init(|| frame_md5s(repo().join("config/media/vtest.mkv").to_str().unwrap()))
}

/// Where in the looping source a run of decoded frames sits: the offset at which every frame
/// matches, in order (the camera loops the file, so indices wrap).
fn position_in_source(frames: &[String]) -> Option<usize> {
    let src = source_md5s();
    (0..src.len()).find(|&i0| frames.iter().enumerate().all(|(j, f)| *f == src[(i0 + j) % src.len()]))
}

fn duration_of(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vela-cvr-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_demo_records_the_camera_around_the_clock_and_plays_back_any_window() {
    // The shipped CVR graph (config/topologies/cvr-video-sink.json) on the simulated camera at
    // 8× pace: half a minute of test is four minutes of video in 30 s segments.
    let setup = Setup { cvr: true, demo_topology: Some(HUB_TRIGGER), camera_speed: 8.0, ..Setup::default() };
    let mut app = Appliance::new(&setup);
    app.start();
    let port = app.playback_port;
    let rt = rt();
    let mut events = rt.block_on(async {
        let observer = app.client("observer").await;
        let rx = observer.inputs().await.unwrap();
        std::mem::forget(observer); // keeps receiving for the whole test
        rx
    });
    let started = rt.block_on(next_event(&mut events, "RecordingStarted", Duration::from_secs(30)));
    assert_eq!(started.body_json().unwrap(), json!({"outputType": "videoName", "outputLocation": "camera-1"}));
    assert!(started.property("subject").unwrap().ends_with("/livePipelines/cvr-camera-1/sinks/videoSink"));
    rt.block_on(next_event(&mut events, "RecordingAvailable", Duration::from_secs(30)));

    // Four minutes of video.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (start, end) = loop {
        let list = get_json(port, "/api/videos");
        let v = list["videos"].as_array().unwrap().iter().find(|v| v["name"] == "camera-1").cloned().expect("camera-1 listed");
        assert_eq!(v["title"], "Camera 1");
        assert_eq!(v["live"], true);
        if let (Some(s), Some(e)) = (v["start"].as_str(), v["end"].as_str()) {
            let (s, e) = (parse(s), parse(e));
            if e - s >= 240 * S {
                break (s, e);
            }
        }
        assert!(std::time::Instant::now() < deadline, "four minutes were not recorded in time: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };

    // One unbroken range (a camera served without pause has no gaps).
    let ranges = get_json(port, &format!("/api/videos/camera-1/ranges?start={}&end={}", rfc(start - 60 * S), rfc(end)));
    let ranges = ranges["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert_eq!(parse(ranges[0]["start"].as_str().unwrap()), start);

    // Windows across segment boundaries export as MP4s of the right length whose frames are
    // the camera's, in order, starting at the keyframe at or before the window.
    let dir = scratch("exports");
    for (i, (a, b)) in [(17 * S + 300_000_000, 61 * S + 900_000_000), (95 * S, 155 * S), (3 * S, 8 * S)].into_iter().enumerate() {
        let (ws, we) = (start + a, start + b);
        let (status, body) = get(port, &format!("/api/videos/camera-1/export.mp4?start={}&end={}", rfc(ws), rfc(we)));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let path = dir.join(format!("window-{i}.mp4"));
        std::fs::write(&path, &body).unwrap();
        let (errors, packets, keyframe_first) = probe(&path);
        assert!(errors.is_empty(), "{}: {errors}", path.display());
        assert!(keyframe_first, "{} must start on a keyframe", path.display());
        let want = (we - ws) as f64 / S as f64;
        let got = duration_of(&path);
        // Within one GOP (vtest: at most 2 s) before the window, and the last frame's duration after.
        assert!(got >= want - 0.15 && got <= want + 2.1, "window {i}: {got:.2} s exported for {want:.2} s");
        let frames = frame_md5s(path.to_str().unwrap());
        assert_eq!(frames.len(), packets);
        assert!(position_in_source(&frames).is_some(), "window {i}: the exported frames are not a run of the camera's frames");
        assert!((frames.len() as f64 - got * 10.0).abs() <= 1.0, "window {i}: {} frames for {got:.2} s at 10 fps", frames.len());
    }

    // HLS of a window: ffmpeg decodes it without an error, every frame the camera's.
    let (ws, we) = (start + 40 * S, start + 100 * S);
    let path = format!("/api/videos/camera-1/playlist.m3u8?start={}&end={}", rfc(ws), rfc(we));
    let (status, body) = get(port, &path);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let url = format!("http://127.0.0.1:{port}{path}");
    let frames = frame_md5s(&url);
    let expected = ((we - ws) / FRAME) as usize;
    assert!(frames.len() >= expected && frames.len() <= expected + 21, "{} frames over HLS for a 60 s window", frames.len());
    assert!(position_in_source(&frames).is_some(), "the HLS frames are not a run of the camera's frames");

    // A graceful stop ends the recording: RecordingStopped, and the video is no longer live.
    app.stop();
    rt.block_on(next_event(&mut events, "RecordingStopped", Duration::from_secs(10)));
    std::fs::remove_dir_all(dir).ok();
}

/// The hub-triggered recorder of config/topologies with its file sink replaced by `sink`.
fn gated_topology(api: &str, sink: Value) -> Value {
    let text = std::fs::read_to_string(repo().join("config/topologies/evr-hub-trigger.json")).unwrap();
    let mut t: Value = serde_json::from_str(&text).unwrap();
    t["@apiVersion"] = json!(api);
    t["name"] = json!(if api == "2.0" { "gated-asset" } else { "gated-video" });
    let props = &mut t["properties"];
    let gate = &mut props["processors"][0];
    gate["activationSignalOffset"] = json!("-PT2S");
    gate["minimumActivationTime"] = json!("PT10S");
    gate["maximumActivationTime"] = json!("PT10S");
    props["sinks"] = json!([sink]);
    if api == "2.0" {
        // The same graph in LVA 2.0 spelling.
        let s = serde_json::to_string(&t).unwrap().replace("#Microsoft.VideoAnalyzer.", "#Microsoft.Media.MediaGraph");
        let s = s.replace("MediaGraphIotHubMessageSource", "MediaGraphIoTHubMessageSource");
        t = serde_json::from_str(&s).unwrap();
    }
    t
}

fn instance(api: &str, name: &str, topology: &str, camera_port: u16) -> Value {
    json!({"@apiVersion": api, "name": name, "properties": {"topologyName": topology,
        "parameters": [{"name": "rtspUrl", "value": format!("rtsp://127.0.0.1:{camera_port}/media/vtest.mkv")}]}})
}

#[test]
fn gated_video_and_asset_sinks_record_each_activation() {
    let mut app = Appliance::new(&Setup { camera_speed: 4.0, ..Setup::empty() });
    app.start();
    let port = app.playback_port;
    let rt = rt();
    let caller = rt.block_on(app.client("caller"));
    let trigger = rt.block_on(app.client("trigger"));
    let mut events = rt.block_on(async {
        let observer = app.client("observer").await;
        let rx = observer.inputs().await.unwrap();
        std::mem::forget(observer);
        rx
    });
    let video_sink = json!({
        "@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink",
        "inputs": [{"nodeName": "signalGate"}],
        "videoName": "lobby-events",
        "videoCreationProperties": {"title": "Lobby events", "segmentLength": "PT30S"},
        "localMediaCachePath": "videos", "localMediaCacheMaximumSizeMiB": "64"
    });
    let asset_sink = json!({
        "@type": "#Microsoft.Media.MediaGraphAssetSink", "name": "assetSink",
        "inputs": [{"nodeName": "signalGate"}],
        "assetNamePattern": "lobby-${System.DateTime}", "segmentLength": "PT30S",
        "localMediaCachePath": "assets", "localMediaCacheMaximumSizeMiB": "64"
    });
    rt.block_on(async {
        for (api, sink, method_set, method_act, inst) in [
            ("1.1", video_sink, ("pipelineTopologySet", "livePipelineSet"), "livePipelineActivate", "video"),
            ("2.0", asset_sink, ("GraphTopologySet", "GraphInstanceSet"), "GraphInstanceActivate", "asset"),
        ] {
            let t = gated_topology(api, sink);
            let name = t["name"].as_str().unwrap().to_string();
            let (s, p) = Appliance::call(&caller, method_set.0, t).await;
            assert!(s < 300, "{s} {p:?}");
            let (s, p) = Appliance::call(&caller, method_set.1, instance(api, inst, &name, app.camera_port)).await;
            assert!(s < 300, "{s} {p:?}");
            let (s, p) = Appliance::call(&caller, method_act, json!({"@apiVersion": api, "name": inst})).await;
            assert!(s < 300, "{s} {p:?}");
        }
        // Past the pre-roll buffer's first GOPs, then two activations 20 s of media apart
        // (each lasts 2 s + 10 s).
        tokio::time::sleep(Duration::from_secs(2)).await;
        for _ in 0..2 {
            Appliance::trigger(&trigger, "recordingTrigger").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    // Each activation: Started → Available → Stopped, from each sink.
    let mut seen: HashMap<(String, String), Vec<String>> = HashMap::new();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.values().map(|v| v.iter().filter(|t| *t == "RecordingStopped").count()).sum::<usize>() < 4 {
            let Ok(Some((_, m))) = tokio::time::timeout_at(deadline, events.recv()).await else { break };
            let ty = m.property("eventType").unwrap_or("").rsplit('.').next().unwrap().to_string();
            if ty.starts_with("Recording") {
                let b = m.body_json().unwrap();
                seen.entry((b["outputType"].as_str().unwrap().into(), b["outputLocation"].as_str().unwrap().into())).or_default().push(ty);
            }
        }
    });
    let cycle = ["RecordingStarted", "RecordingAvailable", "RecordingStopped"];
    let video: Vec<&String> = seen.iter().filter(|((t, _), _)| t == "videoName").flat_map(|(_, v)| v).collect();
    assert_eq!(video, cycle.iter().chain(&cycle).collect::<Vec<_>>(), "{seen:?}");
    let assets: Vec<_> = seen.iter().filter(|((t, _), _)| t == "assetName").collect();
    assert_eq!(assets.len(), 2, "one asset per activation: {seen:?}");
    for ((_, name), kinds) in &assets {
        assert!(name.starts_with("lobby-20") && name.ends_with('Z'), "{name}");
        assert_eq!(kinds.iter().collect::<Vec<_>>(), cycle.iter().collect::<Vec<_>>());
    }

    // The video holds both clips with a gap between them; each asset is one clip.
    let list = get_json(port, "/api/videos");
    let v = list["videos"].as_array().unwrap().iter().find(|v| v["name"] == "lobby-events").cloned().unwrap();
    let (start, end) = (parse(v["start"].as_str().unwrap()), parse(v["end"].as_str().unwrap()));
    let ranges = get_json(port, &format!("/api/videos/lobby-events/ranges?start={}&end={}", rfc(start), rfc(end)));
    let ranges = ranges["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "two activations, two ranges: {ranges:?}");
    for r in ranges {
        let len = parse(r["end"].as_str().unwrap()) - parse(r["start"].as_str().unwrap());
        // 2 s of pre-roll (from a GOP-aligned buffer: up to one GOP more) + 10 s.
        assert!((11 * S..=15 * S).contains(&len), "clip of {:.1} s", len as f64 / S as f64);
    }
    for ((_, name), _) in &assets {
        let a = list["videos"].as_array().unwrap().iter().find(|v| v["name"] == name.as_str()).cloned().expect("asset listed as a video");
        let (s, e) = (parse(a["start"].as_str().unwrap()), parse(a["end"].as_str().unwrap()));
        let dir = scratch("asset");
        let (status, body) = get(port, &format!("/api/videos/{name}/export.mp4?start={}&end={}", rfc(s), rfc(e)));
        assert_eq!(status, 200);
        let path = dir.join("asset.mp4");
        std::fs::write(&path, body).unwrap();
        let (errors, _, keyframe_first) = probe(&path);
        assert!(errors.is_empty() && keyframe_first, "{errors}");
        assert!(position_in_source(&frame_md5s(path.to_str().unwrap())).is_some());
        std::fs::remove_dir_all(dir).ok();
    }
    // Media lives where the topology said, under the state folder.
    assert!(app.state.join("videos/lobby-events").is_dir());
    assert!(app.state.join("assets").read_dir().unwrap().count() == 2);
}

#[test]
fn a_video_another_instance_records_is_refused_at_activation() {
    let mut app = Appliance::new(&Setup { camera_speed: 1.0, ..Setup::empty() });
    app.start();
    let rt = rt();
    let caller = rt.block_on(app.client("caller"));
    let text = std::fs::read_to_string(repo().join("config/topologies/cvr-video-sink.json")).unwrap();
    let topology: Value = serde_json::from_str(&text).unwrap();
    rt.block_on(async {
        let (s, p) = Appliance::call(&caller, "pipelineTopologySet", topology).await;
        assert!(s < 300, "{s} {p:?}");
        for name in ["first", "second"] {
            let (s, p) = Appliance::call(&caller, "livePipelineSet", instance("1.1", name, "CVRToVideoSink", app.camera_port)).await;
            assert!(s < 300, "{s} {p:?}");
        }
        let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": "first"})).await;
        assert_eq!(s, 200, "{p:?}");
        let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": "second"})).await;
        assert_eq!(s, 409, "{p:?}");
        let text = p.unwrap().to_string();
        assert!(text.contains("videoSink") && text.contains("camera-1") && text.contains("another sink"), "{text}");
        // The first keeps recording.
        let (s, p) = Appliance::call(&caller, "livePipelineGet", json!({"@apiVersion": "1.1", "name": "first"})).await;
        assert_eq!(s, 200);
        assert_eq!(p.unwrap()["properties"]["state"], "active");
    });
}

#[test]
fn below_the_free_space_floor_the_oldest_segments_go_and_the_engine_says_so() {
    // A floor no disk can meet: every finished segment is deleted as soon as retention runs
    // (every second in tests), the open one never, and the engine raises the alert.
    let setup = Setup { cvr: true, demo_topology: Some(HUB_TRIGGER), camera_speed: 8.0, ..Setup::default() };
    let mut app = Appliance::new(&setup);
    let toml = std::fs::read_to_string(app.config.join("appliance.toml")).unwrap().replace("min_free_mib = 0", "min_free_mib = 1000000000");
    std::fs::write(app.config.join("appliance.toml"), toml).unwrap();
    app.start();
    let rt = rt();
    let mut events = rt.block_on(async {
        let observer = app.client("observer").await;
        let rx = observer.inputs().await.unwrap();
        std::mem::forget(observer);
        rx
    });
    // 30 s segments at 8× pace: the first closes after about 4 s.
    let alert = rt.block_on(next_event(&mut events, "Diagnostics.StorageError", Duration::from_secs(40)));
    assert_eq!(alert.property("subject"), Some("/edgeModules/avaedge"));
    let body = alert.body_json().unwrap();
    assert_eq!(body["code"], "LowDiskSpace", "{body}");
    assert_eq!(body["minimumFreeBytes"], json!(1_000_000_000u64 << 20));
    assert!(body["freeBytes"].as_u64().is_some() && body["segmentsDeleted"].as_u64().is_some(), "{body}");
    // Segments are deleted as soon as they are finished: the video's start moves on, and
    // what is left is the segment being written, still playable.
    let first_start = |app: &Appliance| {
        let list = get_json(app.playback_port, "/api/videos");
        list["videos"].as_array().unwrap().iter().find(|v| v["name"] == "camera-1").cloned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut starts = Vec::new();
    loop {
        if let Some(v) = first_start(&app).filter(|v| v["start"].is_string()) {
            if starts.last() != Some(&v["start"]) {
                starts.push(v["start"].clone());
            }
            if starts.len() >= 3 {
                assert_eq!(v["segments"], 1, "{v}");
                assert_eq!(v["live"], true);
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "finished segments were not deleted: starts seen {starts:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let files = std::fs::read_dir(app.state.join("videos/camera-1")).unwrap().count();
    assert!(files <= 2, "the deleted segments' files are gone too ({files} left)");
}
