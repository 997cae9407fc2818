//! The published object-tracking and line-crossing topologies, unchanged, on the simulated camera with the built-in detector: tracked people with stable ids, and people crossing the line.

mod common;

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{repo, Appliance, Setup};
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
