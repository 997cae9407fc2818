//! The shipped AI demo end to end: vtest.mkv → HTTP extension (2 fps) → built-in detector → hub → objectCounter (person, 0.5) → hub → signal gate → clips.

mod common;

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{get_json, probe, Appliance, Setup};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use vela::hub::HubMessage;

/// Lets the test hear objectCounter's triggers too (the engine's events already reach it).
fn observe_object_counter(a: &Appliance) {
    let path = a.config.join("deployment.json");
    let mut d: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    d["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]["CounterToObserver"] =
        json!("FROM /messages/modules/objectCounter/outputs/* INTO BrokeredEndpoint(\"/modules/observer/inputs/counter\")");
    std::fs::write(path, serde_json::to_vec_pretty(&d).unwrap()).unwrap();
}

fn event_type(m: &HubMessage) -> String {
    m.property("eventType").unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_records_clips_when_the_detector_sees_people() {
    let mut a = Appliance::new(&Setup { ai: true, camera_speed: 2.0, ..Setup::default() });
    observe_object_counter(&a);
    a.start();
    let observer = a.client("observer").await;
    let mut inbox = observer.inputs().await.unwrap();

    let (mut inference, mut trigger, mut started, mut stopped) = (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stopped.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((input, m))) = tokio::time::timeout(left, inbox.recv()).await else {
            panic!("within 120 s: inference {}, trigger {}, started {}", inference.is_some(), trigger.is_some(), started.is_some());
        };
        let t = event_type(&m);
        if input == "counter" {
            trigger.get_or_insert(m);
        } else if t.ends_with("Analytics.Inference") {
            let body: Value = m.body_json().unwrap();
            let person = body["inferences"].as_array().unwrap().iter().any(|i| i["entity"]["tag"]["value"] == "person");
            if person && inference.is_none() {
                inference = Some(m);
            }
        } else if !m.property("subject").unwrap_or_default().ends_with("/sinks/fileSink") {
            // The video sink's events: the same clips into the video store (checked below).
        } else if t.ends_with("Operational.RecordingStarted") {
            started.get_or_insert(m);
        } else if t.ends_with("Operational.RecordingStopped") && started.is_some() {
            stopped = Some(m);
        }
    }

    // The detector's findings are published as Inference events in the SPEC envelope.
    let inference = inference.expect("an Inference event with a person before the first clip ended");
    assert!(inference.property("subject").unwrap().ends_with("/livePipelines/camera-1-people/processors/httpExtension"));
    assert!(inference.property("eventTime").is_some());
    let body: Value = inference.body_json().unwrap();
    assert!(body["timestamp"].as_u64().is_some_and(|t| t > 0), "{body}");
    let person = body["inferences"].as_array().unwrap().iter().find(|i| i["entity"]["tag"]["value"] == "person").unwrap();
    assert_eq!(person["type"], "entity");
    let b = &person["entity"]["box"];
    for k in ["l", "t", "w", "h"] {
        let v = b[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "box {b}");
    }
    // objectCounter counted people and handed on the frame's time.
    let trigger = trigger.expect("objectCounter's trigger");
    let count: Value = trigger.body_json().unwrap();
    assert!(count["count"].as_u64().is_some_and(|n| n >= 1), "{count}");
    assert!(trigger.property("eventTime").is_some(), "the trigger carries the inference's eventTime");
    // The clip: valid, from a keyframe, at least the gate's 10 s minimum (vtest.mkv is 10 fps).
    let stopped: Value = stopped.unwrap().body_json().unwrap();
    let clip = std::path::PathBuf::from(stopped["outputLocation"].as_str().unwrap());
    assert!(clip.file_name().unwrap().to_str().unwrap().starts_with("clip-camera-1-people-"), "{}", clip.display());
    let (errors, packets, key_first) = probe(&clip);
    assert_eq!(errors, "", "ffprobe on {}", clip.display());
    assert!(key_first && packets >= 100, "{packets} packets in {}", clip.display());

    // The same clip in the video store, with the detector's boxes recorded beside it —
    // from its pre-roll on, before the person that opened the gate was counted.
    let port = a.playback_port;
    let triggered = secs(trigger.property("eventTime").unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let (start, entries) = loop {
        let list = tokio::task::spawn_blocking(move || get_json(port, "/api/videos")).await.unwrap();
        let v =
            list["videos"].as_array().unwrap().iter().find(|v| v["name"] == "camera-1-people").cloned().expect("camera-1-people listed");
        assert_eq!(v["title"], "People");
        if let (Some(s), Some(e)) = (v["start"].as_str(), v["end"].as_str()) {
            let path = format!("/api/videos/camera-1-people/metadata?start={s}&end={e}");
            let m = tokio::task::spawn_blocking(move || get_json(port, &path)).await.unwrap();
            let entries = m["entries"].as_array().unwrap().clone();
            // A few samples' worth: a loaded machine's debug detector answers slowly.
            if secs(e) - secs(s) >= 10.0 && entries.len() >= 3 {
                break (secs(s), entries);
            }
        }
        assert!(Instant::now() < deadline, "the clip in the video store with its boxes: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(entries.iter().all(|e| e["source"] == "httpExtension"));
    let people = |e: &Value| e["inferences"].as_array().unwrap().iter().filter(|i| i["entity"]["tag"]["value"] == "person").count();
    assert!(entries.iter().map(people).sum::<usize>() >= 3, "{entries:?}");
    // The boxes start with the clip, not when objectCounter's trigger opened the gate: the
    // inference that made the trigger came before the gate told the sink a clip began.
    let first = secs(entries[0]["time"].as_str().unwrap());
    assert!(first >= start - 0.1 && first <= triggered, "first box at {first}, clip from {start}, trigger at {triggered}");
    a.stop();
}

fn secs(rfc3339: &str) -> f64 {
    vela::playback::time::parse_time("t", rfc3339).unwrap() as f64 / 1e9
}

/// A live pipeline on the demo camera with a gRPC extension pointing at the detector.
fn grpc_pipeline(name: &str, a: &Appliance, grpc_port: u16, transfer: Value, format: Value) -> (Value, Value) {
    let topology = json!({"@apiVersion": "1.1", "name": name, "properties": {
        "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource", "transport": "tcp",
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("rtsp://127.0.0.1:{}/media/vtest.mkv", a.camera_port)}}],
        "processors": [{"@type": "#Microsoft.VideoAnalyzer.GrpcExtension", "name": "grpcExtension",
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("tcp://127.0.0.1:{grpc_port}")},
            "dataTransfer": transfer,
            "image": {"scale": {"mode": "pad", "width": "416", "height": "416"}, "format": format},
            "samplingOptions": {"maximumSamplesPerSecond": "1"},
            "inputs": [{"nodeName": "rtspSource", "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}]}],
        "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hubSink", "hubOutputName": "inferences",
            "inputs": [{"nodeName": "grpcExtension"}]}]}});
    let instance = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": name}});
    (topology, instance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_extension_finds_people_through_the_detectors_grpc_server() {
    let a = {
        // Real time and one sample a second each: the debug build's model keeps up.
        let mut a = Appliance::new(&Setup { ai: true, demo_graph: false, camera_speed: 1.0, ..Setup::default() });
        let grpc_port = appliance::free_port();
        let path = a.config.join("deployment.json");
        let mut d: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        d["modulesContent"]["detector"]["properties.desired"]["grpcListen"] = json!(format!("127.0.0.1:{grpc_port}"));
        std::fs::write(path, serde_json::to_vec_pretty(&d).unwrap()).unwrap();
        a.start();
        (a, grpc_port)
    };
    let (mut a, grpc_port) = a;
    let caller = a.client("caller").await;
    let observer = a.client("observer").await;
    let mut inbox = observer.inputs().await.unwrap();
    let jpeg = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "90"});
    let raw = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatRaw", "pixelFormat": "bgr24"});
    let cases =
        [("embedded", json!({"mode": "embedded"}), jpeg), ("shm", json!({"mode": "sharedMemory", "SharedMemorySizeMiB": "16"}), raw)];
    for (name, transfer, format) in cases {
        let (topology, instance) = grpc_pipeline(name, &a, grpc_port, transfer, format);
        for (method, body) in [("pipelineTopologySet", topology), ("livePipelineSet", instance)] {
            let (s, p) = Appliance::call(&caller, method, body).await;
            assert!(s < 300, "{method}: {s} {p:?}");
        }
        let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": name})).await;
        assert_eq!(s, 200, "{p:?}");
    }
    // Both pipelines publish the detector's people, boxes inside the picture.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((_, m))) = tokio::time::timeout(left, inbox.recv()).await else { panic!("people seen only through {seen:?}") };
        if !event_type(&m).ends_with("Analytics.Inference") {
            continue;
        }
        let subject = m.property("subject").unwrap().to_string();
        let body: Value = m.body_json().unwrap();
        for i in body["inferences"].as_array().unwrap() {
            if i["entity"]["tag"]["value"] == "person" {
                let b = &i["entity"]["box"];
                assert!(["l", "t", "w", "h"].iter().all(|k| (0.0..=1.0).contains(&b[k].as_f64().unwrap())), "{b}");
                // /edgeModules/avaedge/livePipelines/<name>/processors/grpcExtension
                let pipeline = subject.split('/').nth(4).unwrap_or_default().to_string();
                assert!(subject.ends_with("/processors/grpcExtension"), "{subject}");
                seen.insert(pipeline);
            }
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["embedded", "shm"]);
    a.stop();
}
