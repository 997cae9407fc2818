//! Supervision: a panicking node is rebuilt in place after a backoff, and an instance whose node keeps failing restarts whole; each restart is reported.

mod common;

use actix::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vela::clock::SystemClock;
use vela::runtime::events::{EventOutputs, Events, Identity, Subject};
use vela::runtime::instance::InstanceSupervisor;
use vela::runtime::node::{Node, NodeActor, NodeCtx, NodeEnv, NodeFailed, Output};
use vela::runtime::packet::{Event, Packet};
use vela::runtime::Services;
use vela::topology::{Flow, Generation, MediaTypes, Role};

use common::Recorder;

trait Codes {
    fn codes(&self) -> Vec<String>;
}

impl Codes for Recorder {
    fn codes(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.properties["eventType"].ends_with("Diagnostics.RuntimeError"))
            .map(|m| serde_json::from_slice::<serde_json::Value>(&m.body).unwrap()["code"].as_str().unwrap().to_string())
            .collect()
    }
}

fn events(rec: Arc<Recorder>) -> Events {
    Events::new(
        rec,
        Identity { device: "dev".into(), module: "avaedge".into(), topic: "t".into() },
        EventOutputs { diagnostics: "diagnostics".into(), operational: String::new() },
    )
}

/// Panics on the first packet it ever sees (across rebuilds), passes the rest on.
struct Flaky {
    panicked: Arc<Mutex<bool>>,
}

impl Node for Flaky {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let mut done = self.panicked.lock().unwrap();
        if !*done {
            *done = true;
            drop(done);
            panic!("boom");
        }
        ctx.emit(p);
    }
}

/// Collects what reaches it.
struct Sink(Arc<Mutex<Vec<String>>>);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Packet> for Sink {
    type Result = ();
    fn handle(&mut self, p: Packet, _: &mut Context<Self>) {
        if let Packet::Event(e) = p {
            self.0.lock().unwrap().push(String::from_utf8_lossy(&e.body).into());
        }
    }
}

impl Handler<NodeFailed> for Sink {
    type Result = ();
    fn handle(&mut self, f: NodeFailed, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(format!("failed {}", f.node));
    }
}

fn event(body: &'static str) -> Packet {
    Packet::Event(Arc::new(Event { time: None, body: bytes::Bytes::from_static(body.as_bytes()), properties: Default::default() }))
}

#[actix_rt::test]
async fn a_panicking_node_is_rebuilt_and_keeps_its_address() {
    let rec = Arc::new(Recorder::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(seen.clone()).start();
    let panicked = Arc::new(Mutex::new(false));
    let p2 = panicked.clone();
    let env = NodeEnv {
        subject: Subject { generation: Generation::Ava, instance: "p".into(), node: Some((Role::Processor, "flaky".into())) },
        events: events(rec.clone()),
        stats: Default::default(),
        color: false,
    };
    let output = Output { to: sink.clone().recipient(), flow: Flow::Events, media: MediaTypes::ALL };
    let node =
        NodeActor::new(Box::new(move || Box::new(Flaky { panicked: p2.clone() })), vec![output], env.clone(), sink.clone().recipient())
            .start();
    node.do_send(event("first"));
    // The node is down for the first backoff (0.5 s from its failure); what arrives
    // meanwhile is not handled by a node that no longer exists. (Waiting for the failure
    // first: printing a panic's backtrace can take longer than the backoff itself.)
    let seen_now = || seen.lock().unwrap().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen_now().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the node's failure was not reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    node.do_send(event("second"));
    while seen_now().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen_now(), ["failed flaky", "second"]);
    assert_eq!(rec.codes(), ["NodeFailed"]);
    assert_eq!(env.stats.restarts.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[actix_rt::test]
async fn an_instance_whose_node_keeps_failing_restarts_whole() {
    // A real plan: camera (unreachable, retrying) + hub-triggered gate + file sink.
    let state = std::env::temp_dir().join(format!("vela-sup-{}", uuid::Uuid::new_v4()));
    let rec = Arc::new(Recorder::default());
    let services = Services {
        events: events(rec.clone()),
        inputs: Default::default(),
        state_dir: state.clone(),
        clock: Arc::new(SystemClock),
        recordings: None,
        detector_model: None,
    };
    let topo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::fixture("reference/ava-topologies/evr-hubMessage-file-sink/topology.json")).unwrap())
            .unwrap();
    let inst = serde_json::json!({ "@apiVersion": "1.1", "name": "p", "properties": { "topologyName": "EVRtoFilesBasedOnHubMessages",
        "parameters": [{ "name": "rtspUrl", "value": format!("rtsp://127.0.0.1:{}/none", common_port()) }] } });
    let plan = vela::topology::compile_instance(&topo, &inst, None).unwrap();
    let sup = InstanceSupervisor::new((Generation::Ava, "p".into()), plan, services.clone()).start();
    let until = |n: usize| {
        let inputs = services.inputs.clone();
        async move {
            for _ in 0..100 {
                if inputs.listeners("recordingTrigger") == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("listeners never became {n}");
        }
    };
    until(1).await;
    for _ in 0..5 {
        sup.do_send(NodeFailed { node: "fileSink".into(), reason: "test".into() });
    }
    // Stopped: the hub source unregistered; then started again after 1 s.
    until(0).await;
    until(1).await;
    assert!(rec.codes().contains(&"InstanceRestarting".to_string()), "{:?}", rec.codes());
    let _ = sup.send(vela::runtime::instance::StopInstance).await;
    assert_eq!(services.inputs.listeners("recordingTrigger"), 0);
    std::fs::remove_dir_all(state).ok();
}

/// A port nothing listens on.
fn common_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
