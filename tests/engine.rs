//! The engine end to end without MQTT: hub- and motion-triggered recording from a simulated camera, and one decoder per camera shared by its pixel consumers.

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

/// Per-node counters of a running instance.
async fn stats(rig: &Rig, instance: &str) -> std::collections::HashMap<String, (u64, u64, u64)> {
    let key = (vela::topology::Generation::Ava, instance.to_string());
    let sup = rig.runtime.supervisor(&key).expect("running");
    let s = sup.send(vela::runtime::instance::GetStats).await.unwrap();
    use std::sync::atomic::Ordering::Relaxed;
    s.into_iter().map(|(n, st)| (n, (st.decoded.load(Relaxed), st.packets_in.load(Relaxed), st.dropped.load(Relaxed)))).collect()
}

#[actix_rt::test]
async fn one_decoder_per_camera_feeds_every_pixel_consumer_and_recording_only_graphs_decode_nothing() {
    let rig = Rig::start("shared-decode").await;
    let url = rig.camera.url("vtest.mkv");
    let t = |k: &str| format!("#Microsoft.VideoAnalyzer.{k}");
    // Two motion detectors on one camera (say, two sensitivities), each to its own hub output.
    let two = json!({"@apiVersion": "1.1", "name": "TwoDetectors", "properties": {
        "parameters": [{"name": "rtspUrl", "type": "string"}],
        "sources": [{"@type": t("RtspSource"), "name": "cam", "endpoint": {"@type": t("UnsecuredEndpoint"), "url": "${rtspUrl}"}}],
        "processors": [
            {"@type": t("MotionDetectionProcessor"), "name": "low", "sensitivity": "low", "eventAggregationWindow": "PT0S", "inputs": [{"nodeName": "cam"}]},
            {"@type": t("MotionDetectionProcessor"), "name": "high", "sensitivity": "high", "eventAggregationWindow": "PT0S", "inputs": [{"nodeName": "cam"}]}],
        "sinks": [
            {"@type": t("IotHubMessageSink"), "name": "lowOut", "inputs": [{"nodeName": "low"}], "hubOutputName": "low"},
            {"@type": t("IotHubMessageSink"), "name": "highOut", "inputs": [{"nodeName": "high"}], "hubOutputName": "high"}]}});
    let hub: Value =
        serde_json::from_slice(&std::fs::read(common::fixture("reference/ava-topologies/evr-hubMessage-file-sink/topology.json")).unwrap())
            .unwrap();
    for (topology, instance) in [(two, "two"), (hub, "rec")] {
        let name = topology["name"].clone();
        assert_eq!(rig.controller.invoke("pipelineTopologySet", &serde_json::to_vec(&topology).unwrap()).await.status, 201);
        let inst = json!({"@apiVersion": "1.1", "name": instance, "properties": {"topologyName": name, "parameters": [{"name": "rtspUrl", "value": url}]}});
        assert_eq!(rig.controller.invoke("livePipelineSet", &serde_json::to_vec(&inst).unwrap()).await.status, 201);
        let r = rig
            .controller
            .invoke("livePipelineActivate", &serde_json::to_vec(&json!({"@apiVersion": "1.1", "name": instance})).unwrap())
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    until("both detectors to publish", Duration::from_secs(30), || {
        let out = |o: &str| rig.recorder.0.lock().unwrap().iter().filter(|m| m.output == o).count();
        out("low") >= 3 && out("high") >= 3
    })
    .await;

    // Forty pictures decoded (a loaded machine sheds some at the decoder's queue, counted).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let two = loop {
        let two = stats(&rig, "two").await;
        if two["cam"].0 >= 40 {
            break two;
        }
        assert!(std::time::Instant::now() < deadline, "forty pictures were not decoded in time: {two:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (decoded, ..) = two["cam"];
    // Both consumers got the same pictures: each received every decoded frame (less what
    // a full mailbox dropped, counted at the source), and neither decodes on its own.
    let (_, low_in, _) = two["low"];
    let (_, high_in, _) = two["high"];
    let (_, _, dropped) = two["cam"];
    for n in [low_in, high_in] {
        assert!(n + dropped >= decoded.saturating_sub(2) && n <= decoded + 2, "{two:?}");
    }
    assert_eq!((two["low"].0, two["high"].0), (0, 0), "consumers do not decode: {two:?}");
    // The high-sensitivity detector sees at least what the low one sees.
    let out = |o: &str| rig.recorder.0.lock().unwrap().iter().filter(|m| m.output == o).count();
    assert!(out("high") >= out("low"), "high {} < low {}", out("high"), out("low"));

    // Recording on hub messages needs no pixels: its camera is never decoded.
    let rec = stats(&rig, "rec").await;
    assert!(rec.values().all(|s| s.0 == 0), "{rec:?}");
    let gate = rec.iter().find(|(k, _)| k.starts_with("signalGate")).map(|(_, s)| s.1).unwrap_or(0);
    assert!(gate > 40, "the gate got the media: {rec:?}");

    for instance in ["two", "rec"] {
        let r = rig
            .controller
            .invoke("livePipelineDeactivate", &serde_json::to_vec(&json!({"@apiVersion": "1.1", "name": instance})).unwrap())
            .await;
        assert_eq!(r.status, 200);
    }
    rig.camera.shutdown().await;
    std::fs::remove_dir_all(&rig.state).ok();
}
