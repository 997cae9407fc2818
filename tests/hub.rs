//! The edge hub against real brokers: the embedded rumqttd and a mosquitto of the test's own.
//!
//! Every scenario runs on both brokers: routing with the property bag intact, `$upstream`
//! read by an independent `mosquitto_sub`, a routed input triggered by `mosquitto_pub`,
//! direct methods (statuses, payloads, isolation between modules), twin desired
//! properties (initial value and patches), reconnection after a broker restart, and
//! oversized payloads. `method_round_trip_latency` prints p50/p99 (not asserted).
//! `RUST_LOG=vela=debug` shows the hub's logs.

mod common;
#[path = "common/mqtt.rs"]
mod mqtt;

use bytes::Bytes;
use mqtt::{mosquitto_pub, Mosquitto, MosquittoSub};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vela::hub::{
    BrokerConfig, ClientOptions, Deployment, EdgeHub, EmbeddedBroker, HubError, HubMessage, ModuleClient, MAX_MESSAGE_BYTES,
    MAX_METHOD_PAYLOAD_BYTES,
};

const DEVICE: &str = "dev";
const WAIT: Duration = Duration::from_secs(5);

enum Broker {
    Embedded(Option<EmbeddedBroker>),
    Mosquitto(Mosquitto),
}

impl Broker {
    fn embedded() -> Broker {
        Broker::Embedded(Some(EmbeddedBroker::start(BrokerConfig::default()).expect("embedded broker")))
    }

    fn name(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "rumqttd",
            Broker::Mosquitto(_) => "mosquitto",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Broker::Embedded(b) => b.as_ref().unwrap().port(),
            Broker::Mosquitto(m) => m.port,
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port())
    }

    /// Kills the broker and starts a fresh one (no sessions kept) on the same port.
    fn restart(&mut self) {
        match self {
            Broker::Embedded(b) => {
                let port = b.take().unwrap().port();
                *b = Some(EmbeddedBroker::start(BrokerConfig { port, ..Default::default() }).expect("embedded broker restart"));
            }
            Broker::Mosquitto(m) => m.restart(),
        }
    }
}

fn brokers() -> Vec<Broker> {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
    vec![Broker::embedded(), Broker::Mosquitto(Mosquitto::start())]
}

fn opts(broker: &Broker, module: &str) -> ClientOptions {
    let mut o = ClientOptions::new(broker.url(), DEVICE, module);
    o.connect_timeout = WAIT;
    o
}

async fn module(broker: &Broker, module: &str) -> ModuleClient {
    ModuleClient::connect(opts(broker, module)).await.unwrap_or_else(|e| panic!("{}: connect {module}: {e}", broker.name()))
}

async fn hub(broker: &Broker, deployment: Value) -> EdgeHub {
    let mut o = ClientOptions::hub(broker.url(), DEVICE);
    o.connect_timeout = WAIT;
    EdgeHub::start(o, Deployment::from_value(&deployment).unwrap()).await.unwrap_or_else(|e| panic!("{}: hub: {e}", broker.name()))
}

fn deployment(routes: Value, desired: Value) -> Value {
    let mut content = json!({"$edgeHub": {"properties.desired": {"schemaVersion": "1.0", "routes": routes}}});
    for (m, d) in desired.as_object().unwrap() {
        content[m] = json!({"properties.desired": d});
    }
    json!({"modulesContent": content})
}

fn sample_routes() -> Value {
    json!({
        "LVAToObjectCounter": "FROM /messages/modules/lvaEdge/outputs/detectedObjects INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")",
        "ObjectCounterToLVA": "FROM /messages/modules/objectCounter/outputs/objectCountTrigger INTO BrokeredEndpoint(\"/modules/lvaEdge/inputs/recordingTrigger\")",
        "LVAToIoTHub": "FROM /messages/modules/lvaEdge/outputs/* INTO $upstream",
        "ObjectCounterToIoTHub": "FROM /messages/modules/objectCounter/outputs/* INTO $upstream"
    })
}

fn inference_event() -> HubMessage {
    HubMessage::json(&json!({"inferences": [{"type": "entity", "entity": {"tag": {"value": "truck", "confidence": 0.9}}}]}))
        .with_property("topic", "/subscriptions/s/resourceGroups/rg/providers/microsoft.media/mediaservices/ams")
        .with_property("subject", "/graphInstances/Sample-Graph-1/processors/yolov3")
        .with_property("eventType", "Microsoft.Media.Graph.Analytics.Inference")
        .with_property("eventTime", "2020-05-12T23:33:10.392Z")
        .with_property("dataVersion", "1.0")
        .with_property("custom & odd/value", "a=b&c d")
}

async fn recv_input(rx: &mut tokio::sync::mpsc::Receiver<(String, HubMessage)>, what: &str) -> (String, HubMessage) {
    tokio::time::timeout(WAIT, rx.recv()).await.unwrap_or_else(|_| panic!("{what}: nothing arrived")).expect("inputs closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_output_arrives_with_its_property_bag_and_sender() {
    for broker in brokers() {
        let name = broker.name();
        let hub = hub(&broker, deployment(sample_routes(), json!({}))).await;
        let upstream = MosquittoSub::start(broker.port(), "upstream/dev/#");
        let lva = module(&broker, "lvaEdge").await;
        let counter = module(&broker, "objectCounter").await;
        let mut counter_in = counter.inputs().await.unwrap();
        let mut lva_in = lva.inputs().await.unwrap();

        let sent = inference_event();
        lva.send_output("detectedObjects", sent.clone()).await.unwrap();
        let (input, got) = recv_input(&mut counter_in, name).await;
        assert_eq!(input, "detectedObjects", "{name}");
        assert_eq!(got.body, sent.body, "{name}");
        assert_eq!(got.properties, sent.properties, "{name}: application properties");
        assert_eq!(got.message_id, sent.message_id, "{name}");
        assert_eq!(got.content_type.as_deref(), Some("application/json"), "{name}");
        assert_eq!(got.content_encoding.as_deref(), Some("utf-8"), "{name}");
        assert_eq!(got.output_name.as_deref(), Some("detectedObjects"), "{name}");
        assert_eq!(got.connection_device_id.as_deref(), Some(DEVICE), "{name}");
        assert_eq!(got.connection_module_id.as_deref(), Some("lvaEdge"), "{name}");

        // The same output also went upstream, readable by any MQTT client.
        let (topic, payload) = upstream.next(WAIT).unwrap_or_else(|| panic!("{name}: nothing upstream"));
        let prefix = "upstream/dev/lvaEdge/detectedObjects/";
        assert!(topic.starts_with(prefix), "{name}: {topic}");
        let up = HubMessage::decode(&topic[prefix.len()..], Bytes::from(payload)).unwrap();
        assert_eq!(up.body, sent.body, "{name}");
        assert_eq!(up.properties, sent.properties, "{name}");
        assert_eq!(up.connection_module_id.as_deref(), Some("lvaEdge"), "{name}");

        // Anything that can publish MQTT can play a module: objectCounter's trigger
        // sent with mosquitto_pub reaches lvaEdge's recordingTrigger input.
        mosquitto_pub(
            broker.port(),
            "devices/dev/modules/objectCounter/messages/events/%24.on=objectCountTrigger&eventTime=2020-05-12T23%3A33%3A10.392Z",
            r#"{"trigger":"truck"}"#,
        );
        let (input, got) = recv_input(&mut lva_in, name).await;
        assert_eq!(input, "recordingTrigger", "{name}");
        assert_eq!(got.body_json().unwrap(), json!({"trigger": "truck"}), "{name}");
        assert_eq!(got.property("eventTime"), Some("2020-05-12T23:33:10.392Z"), "{name}");
        assert_eq!(got.connection_module_id.as_deref(), Some("objectCounter"), "{name}");
        let (topic, _) = upstream.next(WAIT).unwrap_or_else(|| panic!("{name}: trigger not upstream"));
        assert!(topic.starts_with("upstream/dev/objectCounter/objectCountTrigger/"), "{name}: {topic}");

        // Outputs routed only upstream reach no module, and a module never hears its own
        // outputs; an output no route matches is counted and dropped.
        lva.send_output("AmsDiagnostics", HubMessage::new("x")).await.unwrap();
        counter.send_output("somethingElse", HubMessage::new("y")).await.unwrap();
        let mut topics: Vec<String> = (0..2).map(|_| upstream.next(WAIT).expect("upstream").0).collect();
        topics.sort();
        assert!(topics[0].starts_with("upstream/dev/lvaEdge/AmsDiagnostics/"), "{name}: {topics:?}");
        assert!(topics[1].starts_with("upstream/dev/objectCounter/somethingElse/"), "{name}: {topics:?}");
        let rtspsim = module(&broker, "rtspsim").await;
        rtspsim.send_output("anything", HubMessage::new("z")).await.unwrap();
        let deadline = Instant::now() + WAIT;
        while hub.stats().unrouted == 0 {
            assert!(Instant::now() < deadline, "{name}: {:?}", hub.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(upstream.next(Duration::from_millis(200)).is_none(), "{name}: unrouted output went upstream");
        assert!(counter_in.try_recv().is_err() && lva_in.try_recv().is_err(), "{name}: unexpected input");
        let stats = hub.stats();
        assert_eq!((stats.received, stats.delivered, stats.unrouted, stats.dropped), (5, 6, 1, 0), "{name}");
    }
}

/// A module serving a few methods, counting the calls it gets.
async fn serve_sample_methods(client: &ModuleClient) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let me = client.module_id().to_string();
    client
        .serve_methods(move |method, payload| {
            counter.fetch_add(1, Ordering::SeqCst);
            let me = me.clone();
            async move {
                match method.as_str() {
                    "echo" => (200, Some(json!({"module": me, "payload": payload}))),
                    "GraphTopologyDelete" => (204, None),
                    "GraphInstanceGet" => (404, Some(json!({"error": {"code": "NotFound", "message": "Graph instance is not found."}}))),
                    "huge" => (200, Some(json!({"blob": "x".repeat(MAX_METHOD_PAYLOAD_BYTES + 1)}))),
                    "panic" => panic!("handler bug"),
                    _ => (501, None),
                }
            }
        })
        .await
        .unwrap();
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_methods_round_trip_and_stay_with_their_module() {
    for broker in brokers() {
        let name = broker.name();
        let engine = module(&broker, "lvaEdge").await;
        let other = module(&broker, "avaedge").await;
        let caller = module(&broker, "ops").await;
        let engine_calls = serve_sample_methods(&engine).await;
        let other_calls = serve_sample_methods(&other).await;
        let call = |module: &'static str, method: &'static str, payload: Value| {
            let caller = caller.clone();
            async move { caller.invoke_method(DEVICE, module, method, &payload, WAIT).await }
        };

        let payload = json!({"@apiVersion": "2.0", "name": "g1"});
        assert_eq!(
            call("lvaEdge", "echo", payload.clone()).await.unwrap(),
            (200, Some(json!({"module": "lvaEdge", "payload": payload}))),
            "{name}"
        );
        assert_eq!(call("lvaEdge", "echo", Value::Null).await.unwrap(), (200, Some(json!({"module": "lvaEdge", "payload": null}))));
        assert_eq!(call("lvaEdge", "GraphTopologyDelete", json!({"name": "t"})).await.unwrap(), (204, None), "{name}");
        let (status, body) = call("lvaEdge", "GraphInstanceGet", json!({"name": "nope"})).await.unwrap();
        assert_eq!(status, 404, "{name}");
        assert_eq!(body.unwrap()["error"]["code"], "NotFound", "{name}");
        assert_eq!(call("lvaEdge", "NoSuchMethod", json!({})).await.unwrap(), (501, None), "{name}");
        let (status, body) = call("lvaEdge", "panic", json!({})).await.unwrap();
        assert_eq!((status, body.unwrap()["error"]["code"].clone()), (500, json!("InternalServerError")), "{name}");
        assert_eq!(engine_calls.load(Ordering::SeqCst), 6, "{name}");
        assert_eq!(other_calls.load(Ordering::SeqCst), 0, "{name}: avaedge saw lvaEdge's methods");

        assert_eq!(call("avaedge", "echo", json!(1)).await.unwrap(), (200, Some(json!({"module": "avaedge", "payload": 1}))), "{name}");
        assert_eq!((engine_calls.load(Ordering::SeqCst), other_calls.load(Ordering::SeqCst)), (6, 1), "{name}");

        // Many calls at once, answers matched by $rid.
        let many = futures::future::join_all((0..20).map(|i| {
            let caller = caller.clone();
            async move { caller.invoke_method(DEVICE, if i % 2 == 0 { "lvaEdge" } else { "avaedge" }, "echo", &json!(i), WAIT).await }
        }))
        .await;
        for (i, r) in many.into_iter().enumerate() {
            let (status, body) = r.unwrap();
            assert_eq!((status, body.unwrap()["payload"].clone()), (200, json!(i)), "{name}");
        }

        // Nobody serves this module: the caller times out with a clear error.
        let started = Instant::now();
        let e = caller.invoke_method(DEVICE, "ghost", "echo", &json!({}), Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(e, HubError::MethodTimeout { .. }), "{name}: {e}");
        assert!(e.to_string().contains("dev/ghost"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_desired_properties_initial_value_and_patches() {
    for broker in brokers() {
        let name = broker.name();
        let desired = json!({"objectCounter": {"objectTag": "truck", "objectConfidence": 0.5}, "lvaEdge": {"logLevel": "Information"}});
        let hub = hub(&broker, deployment(sample_routes(), desired)).await;
        let counter = module(&broker, "objectCounter").await;
        let mut twin = counter.twin_desired().await.unwrap();
        let first = tokio::time::timeout(WAIT, twin.wait_for(|v| !v.is_null())).await.expect("initial twin").unwrap().clone();
        assert_eq!(first["objectTag"], "truck", "{name}");
        assert_eq!(first["objectConfidence"], 0.5, "{name}");
        let v1 = first["$version"].as_u64().expect("$version");

        // A module the deployment does not know gets an empty twin.
        let stranger = module(&broker, "rtspsim").await;
        let mut st = stranger.twin_desired().await.unwrap();
        let doc = tokio::time::timeout(WAIT, st.wait_for(|v| !v.is_null())).await.unwrap().unwrap().clone();
        assert_eq!(doc.as_object().unwrap().keys().collect::<Vec<_>>(), ["$version"], "{name}");

        let new = json!({"objectCounter": {"objectTag": "car", "minimumCount": 2}, "lvaEdge": {"logLevel": "Information"}});
        hub.set_deployment(Deployment::from_value(&deployment(sample_routes(), new)).unwrap()).await.unwrap();
        let patched = tokio::time::timeout(WAIT, twin.wait_for(|v| v["objectTag"] == "car")).await.expect("patch").unwrap().clone();
        assert_eq!(patched, json!({"objectTag": "car", "minimumCount": 2, "$version": v1 + 1}), "{name}");

        // Reported properties are accepted and versioned.
        let r1 = counter.report_properties(&json!({"state": "counting"}), WAIT).await.unwrap();
        let r2 = counter.report_properties(&json!({"state": null}), WAIT).await.unwrap();
        assert_eq!(r2, r1 + 1, "{name}");

        // A module that connects later reads the current twin.
        drop(counter);
        let again = module(&broker, "objectCounter").await;
        let mut twin = again.twin_desired().await.unwrap();
        let doc = tokio::time::timeout(WAIT, twin.wait_for(|v| !v.is_null())).await.unwrap().unwrap().clone();
        assert_eq!(doc["objectTag"], "car", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_after_a_broker_restart_and_keep_working() {
    for mut broker in brokers() {
        let name = broker.name();
        let hub = hub(&broker, deployment(sample_routes(), json!({"objectCounter": {"objectTag": "truck"}}))).await;
        let engine = module(&broker, "lvaEdge").await;
        let counter = module(&broker, "objectCounter").await;
        let caller = module(&broker, "ops").await;
        serve_sample_methods(&engine).await;
        let mut counter_in = counter.inputs().await.unwrap();
        let mut twin = counter.twin_desired().await.unwrap();
        tokio::time::timeout(WAIT, twin.wait_for(|v| !v.is_null())).await.unwrap().unwrap();
        assert_eq!(caller.invoke_method(DEVICE, "lvaEdge", "echo", &json!(1), WAIT).await.unwrap().0, 200);

        let mut up = engine.connected();
        broker.restart();
        tokio::time::timeout(WAIT, up.wait_for(|c| !*c)).await.expect("disconnect noticed").unwrap();

        // Every client comes back by itself; methods are served again.
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = loop {
            match caller.invoke_method(DEVICE, "lvaEdge", "echo", &json!("after"), Duration::from_millis(500)).await {
                Ok(a) => break a,
                Err(e) if Instant::now() < deadline => tracing::debug!(error = %e, "not yet"),
                Err(e) => panic!("{name}: methods not served after the restart: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(answer, (200, Some(json!({"module": "lvaEdge", "payload": "after"}))), "{name}");
        assert!(engine.is_connected() && counter.is_connected(), "{name}");

        // Routing works again once the hub is back too.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = engine.send_output("detectedObjects", HubMessage::new("again")).await;
            match tokio::time::timeout(Duration::from_millis(300), counter_in.recv()).await {
                Ok(Some((input, m))) => {
                    assert_eq!((input.as_str(), m.body.as_ref()), ("detectedObjects", b"again".as_ref()), "{name}");
                    break;
                }
                _ if Instant::now() < deadline => {}
                _ => panic!("{name}: routing did not resume"),
            }
        }
        while counter_in.try_recv().is_ok() {}

        // The twin too: a change after the restart reaches the module.
        let new = deployment(sample_routes(), json!({"objectCounter": {"objectTag": "bus"}}));
        hub.set_deployment(Deployment::from_value(&new).unwrap()).await.unwrap();
        tokio::time::timeout(WAIT, twin.wait_for(|v| v["objectTag"] == "bus")).await.expect("patch after restart").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payloads_are_refused_cleanly() {
    for broker in brokers() {
        let name = broker.name();
        let _hub = hub(&broker, deployment(sample_routes(), json!({}))).await;
        let lva = module(&broker, "lvaEdge").await;
        let counter = module(&broker, "objectCounter").await;
        let caller = module(&broker, "ops").await;
        serve_sample_methods(&lva).await;
        let mut counter_in = counter.inputs().await.unwrap();
        let one_mib = "x".repeat(1024 * 1024);

        let e = lva.send_output("detectedObjects", HubMessage::new(one_mib.clone())).await.unwrap_err();
        assert!(matches!(e, HubError::PayloadTooLarge { size: 1_048_576, limit: MAX_MESSAGE_BYTES, .. }), "{name}: {e}");
        assert_eq!(e.to_string(), "message body of 1048576 bytes exceeds the limit of 262144 bytes");

        let e = caller.invoke_method(DEVICE, "lvaEdge", "echo", &json!({"blob": one_mib}), WAIT).await.unwrap_err();
        assert!(matches!(e, HubError::PayloadTooLarge { limit: MAX_METHOD_PAYLOAD_BYTES, .. }), "{name}: {e}");

        // An answer over the limit becomes a clear 413.
        let (status, body) = caller.invoke_method(DEVICE, "lvaEdge", "huge", &json!({}), WAIT).await.unwrap();
        assert_eq!((status, body.unwrap()["error"]["code"].clone()), (413, json!("PayloadTooLarge")), "{name}");

        // The largest allowed message still goes through, and the connection is intact.
        let biggest = HubMessage::new(vec![b'y'; MAX_MESSAGE_BYTES]).with_property("k", "v");
        lva.send_output("detectedObjects", biggest).await.unwrap();
        let (_, got) = recv_input(&mut counter_in, name).await;
        assert_eq!(got.body.len(), MAX_MESSAGE_BYTES, "{name}");
        assert!(lva.is_connected() && caller.is_connected(), "{name}");
        assert_eq!(caller.invoke_method(DEVICE, "lvaEdge", "echo", &json!(1), WAIT).await.unwrap().0, 200, "{name}");
    }
}

/// What rumqttd itself does with a 1 MiB publish (over its 512 KiB limit) from a client
/// that does not check sizes: it drops the connection. Documented in docs/hub.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_drops_a_client_that_publishes_over_its_limit() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).unwrap();
    let mut o = rumqttc::MqttOptions::new("raw", "127.0.0.1", broker.port());
    o.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
    let mut connected = false;
    let deadline = Instant::now() + WAIT;
    let outcome = loop {
        assert!(Instant::now() < deadline, "no outcome");
        match tokio::time::timeout(WAIT, eventloop.poll()).await.expect("poll") {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) if !connected => {
                connected = true;
                client
                    .publish("devices/dev/modules/m/messages/events/a=1", rumqttc::QoS::AtLeastOnce, false, vec![0u8; 1 << 20])
                    .await
                    .unwrap();
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break "acknowledged".to_string(),
            Ok(_) => {}
            Err(e) => break format!("connection dropped: {e}"),
        }
    };
    assert!(outcome.starts_with("connection dropped"), "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_clear() {
    let e = ModuleClient::connect(ClientOptions::new("mqtts://127.0.0.1:8883", DEVICE, "m")).await.err().unwrap();
    assert!(matches!(e, HubError::TlsNotSupported { .. }), "{e}");

    let mut o = ClientOptions::new(format!("mqtt://127.0.0.1:{}", mqtt::free_port()), DEVICE, "m");
    o.connect_timeout = Duration::from_millis(400);
    let e = ModuleClient::connect(o).await.err().unwrap();
    assert!(matches!(e, HubError::ConnectTimeout { .. }), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");

    // Wrong credentials on a broker that requires them: refused, and the password is
    // nowhere in the error.
    let creds = ("vela".to_string(), vela::hub::Password::new("s3cret"));
    let broker = EmbeddedBroker::start(BrokerConfig { credentials: Some(creds), ..Default::default() }).unwrap();
    let mut o = ClientOptions::new(format!("mqtt://vela:wrong-pw@127.0.0.1:{}", broker.port()), DEVICE, "m");
    o.connect_timeout = Duration::from_millis(600);
    let e = ModuleClient::connect(o).await.err().unwrap();
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    let mut o = ClientOptions::new(broker.url(), DEVICE, "m");
    o.username = Some("vela".into());
    o.password = Some(vela::hub::Password::new("s3cret"));
    let ok = ModuleClient::connect(o).await.unwrap();
    assert!(ok.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_round_trip_latency() {
    for broker in brokers() {
        let engine = module(&broker, "lvaEdge").await;
        let caller = module(&broker, "ops").await;
        serve_sample_methods(&engine).await;
        let payload = json!({"@apiVersion": "2.0", "name": "g1"});
        for _ in 0..20 {
            caller.invoke_method(DEVICE, "lvaEdge", "echo", &payload, WAIT).await.unwrap();
        }
        let mut samples = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            let (status, _) = caller.invoke_method(DEVICE, "lvaEdge", "echo", &payload, WAIT).await.unwrap();
            samples.push(t.elapsed());
            assert_eq!(status, 200);
        }
        samples.sort();
        println!(
            "direct method round trip on {:9}: p50 {:>7.1} µs, p99 {:>7.1} µs (200 calls)",
            broker.name(),
            samples[99].as_secs_f64() * 1e6,
            samples[197].as_secs_f64() * 1e6
        );
    }
}

/// Sends `n` uniquely identified outputs in windows of 100 and waits for each window to
/// be routed: a producer that outruns the hub for long makes it drop (see router.rs),
/// which is not what the measurements here are about.
async fn route_in_lockstep(lva: &ModuleClient, inputs: &mut tokio::sync::mpsc::Receiver<(String, HubMessage)>, start: usize, n: usize) {
    for w in (start..start + n).step_by(100) {
        for j in w..w + 100 {
            let m = HubMessage::json(&json!({"i": j})).with_property("eventTime", format!("t{j}"));
            lva.send_output("detectedObjects", m).await.unwrap();
        }
        for _ in 0..100 {
            recv_input(inputs, "lockstep").await;
        }
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()).unwrap()
}

/// Memory this process gains per routed message (each has a unique message id, so two
/// unique topics: the output and the routed input). With rumqttd in-process the growth
/// includes the broker's; with mosquitto it is ours alone. Run with `--ignored
/// --nocapture`; prints, asserts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn memory_per_routed_message() {
    for broker in brokers() {
        let _hub = hub(&broker, deployment(sample_routes(), json!({}))).await;
        let lva = module(&broker, "lvaEdge").await;
        let counter = module(&broker, "objectCounter").await;
        let mut inputs = counter.inputs().await.unwrap();
        // Warm up allocator pools and rumqttd's commit-log segments before measuring.
        route_in_lockstep(&lva, &mut inputs, 0, 20_000).await;
        let before = rss_kib();
        let n = 50_000;
        let started = Instant::now();
        route_in_lockstep(&lva, &mut inputs, 20_000, n).await;
        let elapsed = started.elapsed();
        let after = rss_kib();
        println!(
            "{:9}: {n} routed messages in {:.1} s ({:.0}/s); process RSS {before} -> {after} KiB ({:.0} bytes per message)",
            broker.name(),
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            (after.saturating_sub(before) * 1024) as f64 / n as f64
        );
    }
}

/// Why modules use clean sessions (docs/hub.md): rumqttd hands a persistent session
/// everything published to its topics while it was away, QoS 0 included, so a stale
/// direct-method request would run on reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd_replays_qos0_messages_to_a_persistent_session() {
    let broker = EmbeddedBroker::start(BrokerConfig::default()).unwrap();
    async fn session(port: u16, clean: bool) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
        let mut o = rumqttc::MqttOptions::new("persistent", "127.0.0.1", port);
        o.set_clean_session(clean);
        let (c, mut el) = rumqttc::AsyncClient::new(o, 10);
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) = el.poll().await.unwrap() {
                return (c, el);
            }
        }
    }
    let topic = "devices/dev/modules/m/$iothub/methods/POST/GraphInstanceDelete/?$rid=1";
    let (c, mut el) = session(broker.port(), false).await;
    c.subscribe("devices/dev/modules/m/$iothub/methods/POST/#", rumqttc::QoS::AtMostOnce).await.unwrap();
    while !matches!(el.poll().await.unwrap(), rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) {}
    drop((c, el));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The caller publishes while the module is away.
    let (caller, mut cel) = {
        let o = rumqttc::MqttOptions::new("caller", "127.0.0.1", broker.port());
        rumqttc::AsyncClient::new(o, 10)
    };
    caller.publish(topic, rumqttc::QoS::AtMostOnce, false, "{}").await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !matches!(cel.poll().await.unwrap(), rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(_))) {
        assert!(Instant::now() < deadline);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The module comes back with its persistent session: the stale request arrives.
    let (_c, mut el) = session(broker.port(), false).await;
    let replayed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = el.poll().await {
                return p.topic;
            }
        }
    })
    .await;
    assert_eq!(
        replayed.ok().as_deref(),
        Some(topic),
        "rumqttd no longer replays QoS 0 to persistent sessions; docs/hub.md can be revisited"
    );
}
