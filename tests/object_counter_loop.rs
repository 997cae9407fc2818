//! The EVR tutorial's loop with `vela run`: inference events → hub → objectCounter → hub → signal gate → clip, on both brokers.

mod common;

#[path = "common/appliance.rs"]
mod appliance;
#[path = "common/mqtt.rs"]
mod mqtt;

use appliance::{next_event, probe, Appliance, Setup};
use serde_json::{json, Value};
use std::time::Duration;
use vela::hub::HubMessage;

/// Adds the tutorial's objectCounter module and routes to the appliance's deployment.
fn add_object_counter(a: &Appliance) {
    let path = a.config.join("deployment.json");
    let mut d: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mc = &mut d["modulesContent"];
    mc["$edgeAgent"]["properties.desired"]["modules"]["objectCounter"] =
        json!({ "type": "docker", "status": "running", "settings": { "image": "vela:objectCounter" } });
    mc["objectCounter"] = json!({ "properties.desired": { "objectTag": "person", "objectConfidence": 0.5 } });
    let routes = &mut mc["$edgeHub"]["properties.desired"]["routes"];
    routes["InferenceToCounter"] = json!(
        "FROM /messages/modules/producer/outputs/detectedObjects INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")"
    );
    routes["CounterToEngine"] = json!("FROM /messages/modules/objectCounter/outputs/objectCountTrigger INTO BrokeredEndpoint(\"/modules/avaedge/inputs/recordingTrigger\")");
    std::fs::write(path, serde_json::to_vec_pretty(&d).unwrap()).unwrap();
}

/// An inference event as an extension's hub sink publishes it (LVA/AVA envelope).
fn inference(tag: &str, confidence: f64) -> HubMessage {
    let now = vela::clock::rfc3339_millis(std::time::SystemTime::now());
    HubMessage::json(&json!({ "timestamp": 0, "inferences": [{ "type": "entity", "entity": { "tag": { "value": tag, "confidence": confidence }, "box": { "l": 0.1, "t": 0.1, "w": 0.2, "h": 0.5 } } }] }))
        .with_property("subject", "/edgeModules/avaedge/livePipelines/camera-1/processors/inferenceClient")
        .with_property("eventType", "Microsoft.VideoAnalyzer.Analytics.Inference")
        .with_property("eventTime", now)
}

async fn run_loop(setup: Setup) {
    let mut a = Appliance::new(&setup);
    add_object_counter(&a);
    a.start();
    let observer = a.client("observer").await;
    let mut events = observer.inputs().await.unwrap();
    let producer = a.client("producer").await;
    // Let the gate's pre-roll fill; an object of no interest records nothing.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    producer.send_output("detectedObjects", inference("car", 0.99)).await.unwrap();
    producer.send_output("detectedObjects", inference("person", 0.3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.clips().is_empty(), "no clip for a car or an unsure person");
    producer.send_output("detectedObjects", inference("person", 0.9)).await.unwrap();
    next_event(&mut events, "Operational.RecordingStarted", Duration::from_secs(20)).await;
    let stopped = next_event(&mut events, "Operational.RecordingStopped", Duration::from_secs(30)).await;
    let body: Value = stopped.body_json().unwrap();
    let (errors, packets, key_first) = probe(std::path::Path::new(body["outputLocation"].as_str().unwrap()));
    assert_eq!(errors, "");
    // At least the 10 s minimum. The camera runs at 4x, so the trigger's real-time
    // eventTime lands seconds behind the media timeline and part of its 5 s pre-roll
    // may have aged out of the look-back; at real-time pace the two clocks agree.
    assert!(key_first && packets >= 100, "{packets} packets");
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_loop_records_on_a_person_with_the_embedded_broker() {
    run_loop(Setup::hub_trigger()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_loop_records_on_a_person_with_mosquitto() {
    let broker = mqtt::Mosquitto::start();
    run_loop(Setup { external_hub: Some(broker.url()), ..Setup::hub_trigger() }).await;
}
