//! The published spatial-analysis topologies (all but the invalid custom-operation one), unchanged, on the simulated camera: Vela runs each operation on its own detector and tracker, publishes its event type in the SPEC envelope, and the gate records clips on those events.

mod common;

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{repo, Appliance, Setup};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// (topology file, instance name, the event name its operation publishes)
const OPERATIONS: [(&str, &str, &str); 4] = [
    ("person-count-operation-topology.json", "count", "personCountEvent"),
    ("person-zone-crossing-operation-topology.json", "zone", "personZoneEnterExitEvent"),
    ("person-line-crossing-operation-topology.json", "line", "personLineEvent"),
    ("person-distance-operation-topology.json", "distance", "personDistanceEvent"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_published_operation_runs_and_records_on_its_events() {
    let mut a = Appliance::new(&Setup { demo_graph: false, camera_speed: 2.0, ..Setup::default() });
    a.start();
    let caller = a.client("caller").await;
    let observer = a.client("observer").await;
    let mut inbox = observer.inputs().await.unwrap();
    let camera = format!("rtsp://127.0.0.1:{}/media/vtest.mkv", a.camera_port);
    for (file, instance, _) in OPERATIONS {
        let path = repo().join("tests/fixtures/reference/ava-topologies/spatial-analysis").join(file);
        let topology: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let name = topology["name"].as_str().unwrap().to_string();
        let (s, p) = Appliance::call(&caller, "pipelineTopologySet", topology).await;
        assert!(s < 300, "{file}: {s} {p:?}");
        let body = json!({"@apiVersion": "1.1", "name": instance, "properties": {"topologyName": name,
            "parameters": [{"name": "rtspUrl", "value": camera}]}});
        let (s, p) = Appliance::call(&caller, "livePipelineSet", body).await;
        assert!(s < 300, "{instance}: {s} {p:?}");
        let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": instance})).await;
        assert_eq!(s, 200, "{instance}: {p:?}");
    }

    // Every operation's event, and a recording started by each gate.
    let mut events: BTreeMap<&str, Value> = BTreeMap::new();
    let mut recording: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while events.len() < OPERATIONS.len() || recording.len() < OPERATIONS.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((_, m))) = tokio::time::timeout(left, inbox.recv()).await else {
            panic!("within 120 s: events {:?}, recordings {recording:?}", events.keys().collect::<Vec<_>>());
        };
        let ty = m.property("eventType").unwrap_or("").to_string();
        let subject = m.property("subject").unwrap_or("").to_string();
        // /edgeModules/avaedge/livePipelines/<instance>/...
        let instance = subject.split('/').nth(4).unwrap_or_default().to_string();
        if ty.ends_with("Operational.RecordingStarted") {
            *recording.entry(instance).or_default() += 1;
            continue;
        }
        if !ty.ends_with("Analytics.Inference") {
            continue;
        }
        assert!(subject.ends_with("/processors/computerVisionExtension"), "{subject}");
        let (_, _, expected) = OPERATIONS.iter().find(|(_, i, _)| *i == instance).unwrap();
        let body: Value = m.body_json().unwrap();
        assert!(body["timestamp"].as_u64().is_some());
        for i in body["inferences"].as_array().unwrap() {
            if i["type"] == "event" {
                assert_eq!(i["event"]["name"], *expected, "{instance}: {i}");
                assert!(i["event"]["properties"].as_object().unwrap().values().all(Value::is_string), "{i}");
                events.entry(expected).or_insert_with(|| i.clone());
            } else {
                // The people the events are about, with their tracking ids.
                assert_eq!(i["type"], "entity");
                assert_eq!(i["entity"]["tag"]["value"], "person");
            }
        }
    }
    let zone = &events["personZoneEnterExitEvent"]["event"]["properties"];
    assert!(["Enter", "Exit"].contains(&zone["status"].as_str().unwrap()), "{zone}");
    assert_eq!(zone["zone"], "retailstore");
    let line = &events["personLineEvent"]["event"]["properties"];
    assert!(["CrossLeft", "CrossRight"].contains(&line["status"].as_str().unwrap()), "{line}");
    assert!(!line["trackingId"].as_str().unwrap().is_empty());
    assert!(events["personCountEvent"]["event"]["properties"]["personCount"].as_str().unwrap().parse::<f64>().is_ok());
    a.stop();
}
