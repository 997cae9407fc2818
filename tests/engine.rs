//! The engine end to end without MQTT: a simulated camera, a hub-triggered signal gate and a file sink produce a valid clip.

mod common;
#[path = "common/engine.rs"]
mod engine;

use engine::{probe, until, Rig};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vela::runtime::packet::{Event, Packet};

#[actix_rt::test]
async fn a_hub_message_opens_the_gate_and_a_valid_clip_is_recorded() {
    // A camera at 4× real time: 10 s of gate time pass in 2.5 s.
    let Rig { camera, state, recorder, inputs, runtime, controller } = Rig::start("engine").await;

    // The published AVA hub-message EVR topology, with a gate of 10 s and 2 s pre-roll.
    let mut topo: Value =
        serde_json::from_slice(&std::fs::read(common::fixture("reference/ava-topologies/evr-hubMessage-file-sink/topology.json")).unwrap())
            .unwrap();
    let gate = &mut topo["properties"]["processors"][0];
    gate["activationSignalOffset"] = json!("-PT2S");
    gate["minimumActivationTime"] = json!("PT10S");
    gate["maximumActivationTime"] = json!("PT10S");
    topo["properties"]["sinks"][0]["baseDirectoryPath"] = json!("media");
    let r = controller.invoke("pipelineTopologySet", &serde_json::to_vec(&topo).unwrap()).await;
    assert_eq!(r.status, 201, "{r:?}");
    let inst = json!({ "@apiVersion": "1.1", "name": "door", "properties": { "topologyName": "EVRtoFilesBasedOnHubMessages",
        "parameters": [{ "name": "rtspUrl", "value": camera.url("vtest.mkv") }] } });
    assert_eq!(controller.invoke("livePipelineSet", &serde_json::to_vec(&inst).unwrap()).await.status, 201);
    let r = controller.invoke("livePipelineActivate", br#"{"@apiVersion":"1.1","name":"door"}"#).await;
    assert_eq!(r.status, 200, "{r:?}");

    until("the camera session", Duration::from_secs(20), || !recorder.of_type("MediaSessionEstablished").is_empty()).await;
    let sdp = String::from_utf8_lossy(&recorder.of_type("MediaSessionEstablished")[0].body).to_string();
    assert!(sdp.contains("SDP:\\n") && sdp.contains("H264"), "{sdp}");
    // Let the gate's look-back fill (3 s of media), then trigger through the hub input.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let trigger = Packet::Event(Arc::new(Event { time: None, body: bytes::Bytes::from_static(b"{}"), properties: Default::default() }));
    until("the hub source to listen", Duration::from_secs(5), || inputs.listeners("recordingTrigger") == 1).await;
    assert_eq!(inputs.deliver("recordingTrigger", trigger), 1);

    until("RecordingStopped", Duration::from_secs(30), || !recorder.of_type("RecordingStopped").is_empty()).await;
    let started = recorder.of_type("RecordingStarted");
    let available = recorder.of_type("RecordingAvailable");
    let stopped = recorder.of_type("RecordingStopped");
    assert_eq!((started.len(), available.len(), stopped.len()), (1, 1, 1));
    let props = &stopped[0].properties;
    assert_eq!(props["eventType"], "Microsoft.VideoAnalyzer.Operational.RecordingStopped");
    assert_eq!(props["subject"], "/edgeModules/avaedge/livePipelines/door/sinks/fileSink");
    assert_eq!(props["dataVersion"], "1.0");
    assert_eq!(stopped[0].output, "operational");
    let body: Value = serde_json::from_slice(&stopped[0].body).unwrap();
    assert_eq!(body["outputType"], "filePath");
    let path = PathBuf::from(body["outputLocation"].as_str().unwrap());
    assert!(path.starts_with(state.join("media").join("door-fileSink")), "{}", path.display());

    let (errors, frames, duration, key_first) = probe(&path);
    assert_eq!(errors, "", "ffprobe -v error must be silent");
    assert!(key_first, "the clip starts on a keyframe");
    // 2 s pre-roll (rounded down to a 2 s GOP) + 10 s minimum: 12–14 s at 10 fps.
    assert!((11.8..=14.1).contains(&duration), "duration {duration}");
    assert!((118..=141).contains(&frames), "frames {frames}");

    assert_eq!(controller.invoke("livePipelineDeactivate", br#"{"@apiVersion":"1.1","name":"door"}"#).await.status, 200);
    assert_eq!(runtime.active_count(), 0);
    assert_eq!(inputs.listeners("recordingTrigger"), 0, "the hub source unregistered on deactivation");
    camera.shutdown().await;
    std::fs::remove_dir_all(state).ok();
}

#[actix_rt::test]
async fn motion_in_real_footage_publishes_inferences_and_records_clips() {
    let Rig { camera, state, recorder, inputs: _, runtime, controller } = Rig::start("motion").await;
    let url = camera.url("vtest.mkv");

    // The published AVA motion topologies, unchanged but for the file sink's folder.
    for (file, instance) in [("motion-detection", "md"), ("evr-motion-file-sink", "evr")] {
        let mut topo: Value =
            serde_json::from_slice(&std::fs::read(common::fixture(&format!("reference/ava-topologies/{file}/topology.json"))).unwrap())
                .unwrap();
        if let Some(sink) = topo["properties"]["sinks"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == "fileSink") {
            sink["baseDirectoryPath"] = json!("media");
        }
        let name = topo["name"].clone();
        assert_eq!(controller.invoke("pipelineTopologySet", &serde_json::to_vec(&topo).unwrap()).await.status, 201);
        let inst = json!({ "@apiVersion": "1.1", "name": instance, "properties": { "topologyName": name, "parameters": [{ "name": "rtspUrl", "value": url }] } });
        assert_eq!(controller.invoke("livePipelineSet", &serde_json::to_vec(&inst).unwrap()).await.status, 201);
        let r =
            controller.invoke("livePipelineActivate", &serde_json::to_vec(&json!({"@apiVersion": "1.1", "name": instance})).unwrap()).await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    // People walk through vtest.mkv from the start: motion inferences reach the hub sink.
    until("motion inferences", Duration::from_secs(30), || recorder.of_type("Analytics.Inference").len() >= 3).await;
    let inf = recorder.of_type("Analytics.Inference");
    assert!(inf.iter().all(|m| m.output == "inferenceOutput"));
    assert_eq!(inf[0].properties["subject"], "/edgeModules/avaedge/livePipelines/md/processors/motionDetection");
    let body: Value = serde_json::from_slice(&inf[0].body).unwrap();
    let first = &body["inferences"][0];
    assert_eq!(first["type"], "motion");
    let b = &first["motion"]["box"];
    for k in ["l", "t", "w", "h"] {
        let v = b[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k}={v} in {body}");
    }
    assert!(body["timestamp"].as_u64().is_some());

    // The motion-triggered gate records a clip (10 s minimum at 4× pace).
    until("a motion clip", Duration::from_secs(40), || !recorder.of_type("RecordingStopped").is_empty()).await;
    let stopped = recorder.of_type("RecordingStopped");
    let body: Value = serde_json::from_slice(&stopped[0].body).unwrap();
    let path = PathBuf::from(body["outputLocation"].as_str().unwrap());
    assert!(path.starts_with(state.join("media").join("evr-fileSink")), "{}", path.display());
    let (errors, frames, _, key_first) = probe(&path);
    assert_eq!(errors, "");
    assert!(key_first && frames >= 100, "{frames} frames");

    for instance in ["md", "evr"] {
        let r = controller
            .invoke("livePipelineDeactivate", &serde_json::to_vec(&json!({"@apiVersion": "1.1", "name": instance})).unwrap())
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(runtime.active_count(), 0);
    camera.shutdown().await;
    std::fs::remove_dir_all(state).ok();
}
