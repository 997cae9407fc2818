//! objectCounter (SPEC §8) on the embedded broker behind the edge hub: a `producer` module
//! sends inference events, objectCounter turns the matching ones into
//! `objectCountTrigger` messages, and a `consumer` module receives them on
//! `recordingTrigger` with `eventTime` copied. A twin change then switches the tag without
//! restarting the module.

use serde_json::{json, Value};
use std::time::Duration;
use vela::hub::{BrokerConfig, ClientOptions, Deployment, EdgeHub, EmbeddedBroker, HubMessage, ModuleClient};
use vela::modules::object_counter::{self, Config};

const DEVICE: &str = "dev";
const WAIT: Duration = Duration::from_secs(5);

fn deployment(desired: Value) -> Deployment {
    Deployment::from_value(&json!({"modulesContent": {
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.0", "routes": {
            "ProducerToCounter": "FROM /messages/modules/producer/outputs/* INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")",
            "CounterToConsumer": "FROM /messages/modules/objectCounter/outputs/* INTO BrokeredEndpoint(\"/modules/consumer/inputs/recordingTrigger\")"
        }}},
        "objectCounter": {"properties.desired": desired}
    }}))
    .unwrap()
}

async fn module(url: &str, name: &str) -> ModuleClient {
    let mut o = ClientOptions::new(url, DEVICE, name);
    o.connect_timeout = WAIT;
    ModuleClient::connect(o).await.unwrap_or_else(|e| panic!("connect {name}: {e}"))
}

fn event(subject: &str, event_time: &str, body: Value) -> HubMessage {
    HubMessage::json(&body)
        .with_property("subject", subject)
        .with_property("eventType", "Microsoft.Media.Graph.Analytics.Inference")
        .with_property("eventTime", event_time)
        .with_property("dataVersion", "1.0")
}

fn entities(tags: &[(&str, f64)]) -> Value {
    let list: Vec<Value> = tags
        .iter()
        .map(|(t, c)| json!({"type": "entity", "entity": {"tag": {"value": t, "confidence": c}, "box": {"l": 0.1, "t": 0.2, "w": 0.3, "h": 0.4}}}))
        .collect();
    json!({"timestamp": 143039375987156u64, "inferences": list})
}

const LVA: &str = "/graphInstances/g1/processors/yolov3";
const AVA: &str = "/edgeModules/avaedge/livePipelines/p1/processors/yolov3";

/// The triggers received until (and including) the one whose eventTime is `last`, as
/// (eventTime, body).
async fn triggers_until(rx: &mut tokio::sync::mpsc::Receiver<(String, HubMessage)>, last: &str) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    loop {
        let (input, m) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no trigger {last}; so far {got:?}"))
            .expect("consumer inputs closed");
        assert_eq!(input, "recordingTrigger");
        assert_eq!(m.output_name.as_deref(), Some(object_counter::OUTPUT));
        assert_eq!(m.connection_module_id.as_deref(), Some("objectCounter"));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        let t = m.property("eventTime").expect("eventTime copied").to_string();
        got.push((t.clone(), m.body_json().expect("JSON trigger")));
        if t == last {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_matching_inferences_and_follows_twin_changes() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
    let broker = EmbeddedBroker::start(BrokerConfig { port: 0, ..Default::default() }).expect("embedded broker");
    let url = broker.url();
    let mut hub_options = ClientOptions::hub(url.clone(), DEVICE);
    hub_options.connect_timeout = WAIT;
    let hub = EdgeHub::start(hub_options, deployment(json!({"objectTag": "person", "objectConfidence": 0.5}))).await.expect("hub");

    let consumer = module(&url, "consumer").await;
    let mut triggers = consumer.inputs().await.unwrap();
    let producer = module(&url, "producer").await;
    let counter = object_counter::start(module(&url, "objectCounter").await).await.expect("objectCounter");
    let mut config = counter.config_watch();
    let c = tokio::time::timeout(WAIT, config.wait_for(|c| c.is_some())).await.expect("twin read").unwrap().clone();
    assert_eq!(c, Some(Config { object_tag: "person".into(), object_confidence: 0.5 }));

    let send = |m: HubMessage| {
        let producer = producer.clone();
        async move { producer.send_output("detectedObjects", m).await.unwrap() }
    };
    send(event(LVA, "2020-05-12T23:33:10.001Z", entities(&[("person", 0.9)]))).await;
    send(event(LVA, "2020-05-12T23:33:10.002Z", entities(&[("person", 0.4), ("person", 0.5)]))).await; // not above 0.5
    send(event(LVA, "2020-05-12T23:33:10.003Z", entities(&[("car", 0.99)]))).await; // other tag
    send(HubMessage::new("{not json").with_property("subject", LVA).with_property("eventTime", "2020-05-12T23:33:10.004Z")).await;
    send(event("/somewhere/else", "2020-05-12T23:33:10.005Z", entities(&[("person", 0.9)]))).await; // subject
    send(event(AVA, "2020-05-12T23:33:10.006Z", entities(&[("person", 0.8), ("person", 0.7), ("dog", 0.9)]))).await;
    let cv = json!({"predictions": [{"tagName": "person", "probability": 0.93}, {"tagName": "person", "probability": 0.1}]});
    send(event(LVA, "2020-05-12T23:33:10.007Z", cv)).await;

    let got = triggers_until(&mut triggers, "2020-05-12T23:33:10.007Z").await;
    assert_eq!(
        got,
        vec![
            ("2020-05-12T23:33:10.001Z".to_string(), json!({"count": 1})),
            ("2020-05-12T23:33:10.006Z".to_string(), json!({"count": 2})),
            ("2020-05-12T23:33:10.007Z".to_string(), json!({"count": 1})),
        ]
    );
    let s = counter.stats();
    assert_eq!((s.received, s.triggers, s.malformed, s.wrong_subject, s.no_match, s.send_failures), (7, 3, 1, 1, 2, 0), "{s:?}");

    // A twin patch switches the tag (the threshold given as a string) without a restart.
    hub.set_deployment(deployment(json!({"objectTag": "car", "objectConfidence": "0.6"}))).await.unwrap();
    tokio::time::timeout(WAIT, config.wait_for(|c| c.as_ref().is_some_and(|c| c.object_tag == "car"))).await.expect("twin patch").unwrap();
    assert_eq!(counter.config(), Some(Config { object_tag: "car".into(), object_confidence: 0.6 }));
    send(event(LVA, "2020-05-12T23:33:11.001Z", entities(&[("person", 0.9)]))).await;
    send(event(LVA, "2020-05-12T23:33:11.002Z", entities(&[("car", 0.6)]))).await;
    send(event(LVA, "2020-05-12T23:33:11.003Z", entities(&[("car", 0.61), ("car", 0.95)]))).await;
    let got = triggers_until(&mut triggers, "2020-05-12T23:33:11.003Z").await;
    assert_eq!(got, vec![("2020-05-12T23:33:11.003Z".to_string(), json!({"count": 2}))]);
    assert_eq!(counter.stats().triggers, 4);

    counter.shutdown().await;
    hub.shutdown().await;
}
