//! The appliance as a user runs it: `vela run`, MQTT only, a simulated camera, clips on disk.

mod common;

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{next_event, probe, Appliance, Setup};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_trigger_records_a_valid_clip_with_recording_events() {
    let mut a = Appliance::new(&Setup::hub_trigger());
    a.start();
    let observer = a.client("observer").await;
    let mut events = observer.inputs().await.unwrap();
    let trigger = a.client("trigger").await;
    let caller = a.client("caller").await;
    // The demo instance from config/instances is active (here on the hub-triggered topology).
    let (status, body) = Appliance::call(&caller, "livePipelineGet", json!({"@apiVersion": "1.1", "name": "camera-1"})).await;
    assert_eq!(status, 200);
    assert_eq!(body.unwrap()["properties"]["state"], "active");
    // Let the 5 s pre-roll fill (camera at 4×), then trigger.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    Appliance::trigger(&trigger, "objectCountTrigger").await;
    let started = next_event(&mut events, "Operational.RecordingStarted", Duration::from_secs(20)).await;
    assert_eq!(started.property("subject"), Some("/edgeModules/avaedge/livePipelines/camera-1/sinks/fileSink"));
    assert_eq!(started.property("dataVersion"), Some("1.0"));
    assert!(started.property("eventTime").is_some() && started.property("topic").is_some());
    next_event(&mut events, "Operational.RecordingAvailable", Duration::from_secs(20)).await;
    let stopped = next_event(&mut events, "Operational.RecordingStopped", Duration::from_secs(30)).await;
    let body: serde_json::Value = stopped.body_json().unwrap();
    assert_eq!(body["outputType"], "filePath");
    let path = std::path::PathBuf::from(body["outputLocation"].as_str().unwrap());
    let (errors, packets, key_first) = probe(&path);
    assert_eq!(errors, "");
    assert!(key_first);
    // 5 s pre-roll (to a 2 s GOP: 5–7 s) + 10 s minimum at 10 fps.
    assert!((148..=172).contains(&packets), "{packets} packets");
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_demo_publishes_motion_and_records_people_walking() {
    // config/ as shipped: vtest.mkv → motion detection → gate (5 s pre-roll) → file sink,
    // motion events to the hub. People walk through vtest.mkv from its first seconds.
    let mut a = Appliance::new(&Setup::default());
    a.start();
    let observer = a.client("observer").await;
    let mut events = observer.inputs().await.unwrap();

    // Motion events, aggregated per second, from the motion node, in the SPEC shape.
    let motion = next_event(&mut events, "Analytics.Inference", Duration::from_secs(20)).await;
    assert_eq!(motion.property("subject"), Some("/edgeModules/avaedge/livePipelines/camera-1/processors/motionDetection"));
    assert_eq!(motion.property("eventType"), Some("Microsoft.VideoAnalyzer.Analytics.Inference"));
    let body = motion.body_json().unwrap();
    assert!(body["timestamp"].as_u64().is_some(), "{body}");
    let inferences = body["inferences"].as_array().unwrap();
    assert!(!inferences.is_empty());
    for i in inferences {
        assert_eq!((i["type"].as_str(), i["subtype"].as_str()), (Some("motion"), Some("motionDetection")), "{body}");
        let b = &i["motion"]["box"];
        let (l, t, w, h) = (b["l"].as_f64().unwrap(), b["t"].as_f64().unwrap(), b["w"].as_f64().unwrap(), b["h"].as_f64().unwrap());
        assert!(l >= 0.0 && t >= 0.0 && w > 0.0 && h > 0.0 && l + w <= 1.0001 && t + h <= 1.0001, "{body}");
    }

    // Motion opens the gate: a clip of at least the 10 s minimum, valid, starting on a keyframe.
    let started = next_event(&mut events, "Operational.RecordingStarted", Duration::from_secs(20)).await;
    assert_eq!(started.property("subject"), Some("/edgeModules/avaedge/livePipelines/camera-1/sinks/fileSink"));
    let stopped = next_event(&mut events, "Operational.RecordingStopped", Duration::from_secs(30)).await;
    let body: serde_json::Value = stopped.body_json().unwrap();
    let (errors, packets, key_first) = probe(std::path::Path::new(body["outputLocation"].as_str().unwrap()));
    assert_eq!(errors, "");
    assert!(key_first && packets >= 100, "{packets} packets");
    a.stop();
}
