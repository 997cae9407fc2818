//! The published object-tracking and line-crossing topologies, unchanged, on the simulated camera with the built-in detector: tracked people with stable ids, and people crossing the line.

mod common;

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{get, get_json, probe, repo, Appliance, Setup};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn published(name: &str) -> Value {
    let path = repo().join("tests/fixtures/reference/ava-topologies").join(name).join("topology.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_tracked_and_counted_across_the_line() {
    let mut a = Appliance::new(&Setup { ai: true, demo_graph: false, camera_speed: 2.0, ..Setup::default() });
    a.start();
    let caller = a.client("caller").await;
    let observer = a.client("observer").await;
    let mut inbox = observer.inputs().await.unwrap();
    let score = format!("http://127.0.0.1:{}/score", a.detector_port);
    let camera = format!("rtsp://127.0.0.1:{}/media/vtest.mkv", a.camera_port);
    for (topology, instance) in [("object-tracking", "tracked"), ("line-crossing", "crossings")] {
        let t = published(topology);
        let name = t["name"].as_str().unwrap().to_string();
        let (s, p) = Appliance::call(&caller, "pipelineTopologySet", t).await;
        assert!(s < 300, "{topology}: {s} {p:?}");
        let params = json!([{"name": "rtspUrl", "value": camera}, {"name": "rtspUserName", "value": "u"},
            {"name": "rtspPassword", "value": "p"}, {"name": "inferenceUrl", "value": score}]);
        let body = json!({"@apiVersion": "1.1", "name": instance, "properties": {"topologyName": name, "parameters": params}});
        let (s, p) = Appliance::call(&caller, "livePipelineSet", body).await;
        assert!(s < 300, "{instance}: {s} {p:?}");
        let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": instance})).await;
        assert_eq!(s, 200, "{instance}: {p:?}");
    }

    // Tracked people: the same sequenceId on many frames; crossings of the published
    // vertical line x = 0.5 with running counters.
    let mut frames_per_track: BTreeMap<String, usize> = BTreeMap::new();
    let mut crossings: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while crossings.len() < 2 || frames_per_track.values().filter(|n| **n >= 10).count() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((_, m))) = tokio::time::timeout(left, inbox.recv()).await else {
            panic!("within 90 s: tracks {frames_per_track:?}, crossings {crossings:?}");
        };
        if !m.property("eventType").unwrap_or("").ends_with("Analytics.Inference") {
            continue;
        }
        let subject = m.property("subject").unwrap().to_string();
        let body: Value = m.body_json().unwrap();
        for i in body["inferences"].as_array().unwrap() {
            if subject.contains("/livePipelines/tracked/processors/objectTracker") {
                assert_eq!(i["type"], "entity");
                assert_eq!(i["subtype"], "objectDetection");
                let id = i["sequenceId"].as_str().unwrap();
                assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
                assert!(!i["inferenceId"].as_str().unwrap().is_empty());
                *frames_per_track.entry(id.to_string()).or_default() += 1;
            } else if subject.contains("/livePipelines/crossings/processors/lineCrossing") {
                assert_eq!(i["type"], "event");
                assert_eq!(i["subtype"], "lineCrossing");
                assert_eq!(i["event"]["name"], "LineCrossing1");
                crossings.push(i.clone());
            }
        }
    }
    // Counters are cumulative strings and agree with the directions seen.
    let last = &crossings.last().unwrap()["event"]["properties"];
    let total: usize = last["total"].as_str().unwrap().parse().unwrap();
    assert_eq!(total, crossings.len(), "{crossings:?}");
    let directions: BTreeSet<&str> = crossings.iter().map(|c| c["event"]["properties"]["direction"].as_str().unwrap()).collect();
    assert!(directions.iter().all(|d| ["clockwise", "counterclockwise"].contains(d)), "{directions:?}");
    let cw: usize = last["clockwiseTotal"].as_str().unwrap().parse().unwrap();
    let ccw: usize = last["counterclockwiseTotal"].as_str().unwrap().parse().unwrap();
    assert_eq!(cw + ccw, total);
    assert!(crossings.iter().all(|c| c["relatedInferences"].as_array().is_some_and(|r| r.len() == 1)));
    a.stop();
}

/// The published "cvr-with-httpExtension-and-objectTracking" topology, unchanged: the video
/// sink records the camera and, beside it, the tracker's inferences; the playback API gives
/// them back for any window of the video, in time order, on the recorded media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_boxes_are_recorded_with_the_video_and_played_back_with_it() {
    let mut a = Appliance::new(&Setup { ai: true, demo_graph: false, camera_speed: 2.0, ..Setup::default() });
    a.start();
    let caller = a.client("caller").await;
    let t = published("cvr-with-httpExtension-and-objectTracking");
    let name = t["name"].as_str().unwrap().to_string();
    let (s, p) = Appliance::call(&caller, "pipelineTopologySet", t).await;
    assert!(s < 300, "{s} {p:?}");
    let params = json!([
        {"name": "rtspUrl", "value": format!("rtsp://127.0.0.1:{}/media/vtest.mkv", a.camera_port)},
        {"name": "rtspUserName", "value": "u"}, {"name": "rtspPassword", "value": "p"},
        {"name": "inferencingUrl", "value": format!("http://127.0.0.1:{}/score", a.detector_port)},
        {"name": "inferencingUserName", "value": "u"}, {"name": "inferencingPassword", "value": "p"},
        {"name": "hubSinkOutputName", "value": "inferenceOutput"}]);
    let body = json!({"@apiVersion": "1.1", "name": "cvr-boxes", "properties": {"topologyName": name, "parameters": params}});
    let (s, p) = Appliance::call(&caller, "livePipelineSet", body).await;
    assert!(s < 300, "{s} {p:?}");
    let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": "cvr-boxes"})).await;
    assert_eq!(s, 200, "{p:?}");

    // Twenty seconds of video (ten at 2× pace) with the boxes of the people in it.
    let video = "sample-cvr-inference-metadata";
    let port = a.playback_port;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (start, end, entries) = loop {
        let list = tokio::task::spawn_blocking(move || get_json(port, "/api/videos")).await.unwrap();
        let v = list["videos"].as_array().unwrap().iter().find(|v| v["name"] == video).cloned();
        if let Some((Some(s), Some(e))) =
            v.as_ref().map(|v| (v["start"].as_str().map(str::to_string), v["end"].as_str().map(str::to_string)))
        {
            let path = format!("/api/videos/{video}/metadata?start={s}&end={e}");
            let m = tokio::task::spawn_blocking(move || get_json(port, &path)).await.unwrap();
            let entries = m["entries"].as_array().unwrap().clone();
            if secs(&e) - secs(&s) >= 20.0 && entries.len() >= 20 {
                assert_eq!(m["next"], Value::Null);
                break (secs(&s), secs(&e), entries);
            }
        }
        assert!(Instant::now() < deadline, "twenty seconds of video with boxes within 90 s: {v:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Every entry is the tracker's, on recorded media, in time order; the same people keep
    // their track ids from picture to picture, and every box lies on the picture.
    let mut last = f64::MIN;
    let mut per_track: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        let t = secs(e["time"].as_str().unwrap());
        assert!(t >= last && (start - 0.5..=end + 0.5).contains(&t), "{t} outside {start}..{end} or out of order");
        last = t;
        assert_eq!(e["source"], "objectTracker");
        for i in e["inferences"].as_array().unwrap() {
            assert_eq!((i["type"].as_str(), i["subtype"].as_str()), (Some("entity"), Some("objectDetection")), "{i}");
            let b = &i["entity"]["box"];
            let (l, t, w, h) = (b["l"].as_f64().unwrap(), b["t"].as_f64().unwrap(), b["w"].as_f64().unwrap(), b["h"].as_f64().unwrap());
            assert!(l >= -0.01 && t >= -0.01 && w > 0.0 && h > 0.0 && l + w <= 1.01 && t + h <= 1.01, "{b}");
            *per_track.entry(i["sequenceId"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert!(per_track.values().filter(|n| **n >= 10).count() >= 2, "people tracked across pictures: {per_track:?}");

    // The media is untouched by it: the export of the window is valid H.264 from a keyframe.
    let path = format!("/api/videos/{video}/export.mp4?start={}&end={}", rfc(start), rfc(end));
    let (status, mp4) = tokio::task::spawn_blocking(move || get(port, &path)).await.unwrap();
    assert_eq!(status, 200);
    let file = a.root.join("boxes.mp4");
    std::fs::write(&file, mp4).unwrap();
    let (errors, frames, key_first) = probe(&file);
    assert!(errors.is_empty() && frames >= 150 && key_first, "{errors} {frames}");

    // The metadata outlives the pipeline, like the video.
    let (s, _) = Appliance::call(&caller, "livePipelineDeactivate", json!({"@apiVersion": "1.1", "name": "cvr-boxes"})).await;
    assert_eq!(s, 200);
    let path = format!("/api/videos/{video}/metadata?start={}&end={}", rfc(start), rfc(end + 1.0));
    let m = tokio::task::spawn_blocking(move || get_json(port, &path)).await.unwrap();
    assert!(m["entries"].as_array().unwrap().len() >= entries.len());
    a.stop();
}

fn secs(rfc3339: &str) -> f64 {
    vela::playback::time::parse_time("t", rfc3339).unwrap() as f64 / 1e9
}

fn rfc(secs: f64) -> String {
    vela::playback::time::format_time((secs * 1e9) as i64)
}
