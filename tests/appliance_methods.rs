//! Direct methods against the running appliance (`vela run` as a process), over MQTT only:
//! the published sample `operations.json` flows through `vela ops` on the embedded broker and
//! on mosquitto, bad requests published raw or through `ModuleClient`, and the state rules.

mod common;

#[path = "common/appliance.rs"]
mod appliance;
#[path = "common/mqtt.rs"]
mod mqtt;

use appliance::{Appliance, Setup};
use mqtt::{mosquitto_pub, Mosquitto};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vela::hub::ModuleClient;

const TIMEOUT: Duration = Duration::from_secs(20);
/// The engine's method topics (device `vela`, module `avaedge`; docs/hub.md).
const REQUESTS: &str = "devices/vela/modules/avaedge/$iothub/methods/POST";
const ANSWERS: &str = "devices/vela/modules/avaedge/$iothub/methods/res/";

/// The published console-app samples: (sample folder, reference topology it is pointed at,
/// the statuses of its calls in order).
const SAMPLES: &[(&str, &str, &[u16])] = &[
    // TopologyList, InstanceList, TopologySet, InstanceSet, Activate, InstanceList,
    // Deactivate, Delete, InstanceList, TopologyDelete, TopologyList.
    (
        "live-video-analytics-iot-edge-csharp",
        "lva-topologies/evr-hubMessage-files/2.0/topology.json",
        &[200, 200, 201, 201, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "live-video-analytics-iot-edge-python",
        "lva-topologies/evr-hubMessage-files/2.0/topology.json",
        &[200, 200, 201, 201, 200, 200, 200, 200, 200, 200, 200],
    ),
    // No InstanceList after Activate in this one.
    (
        "video-analyzer-iot-edge-csharp",
        "ava-topologies/evr-hubMessage-file-sink/topology.json",
        &[200, 200, 201, 201, 200, 200, 200, 200, 200, 200],
    ),
    (
        "video-analyzer-iot-edge-python",
        "ava-topologies/evr-hubMessage-file-sink/topology.json",
        &[200, 200, 201, 201, 200, 200, 200, 200, 200, 200, 200],
    ),
];

fn appliance(external_hub: Option<String>) -> Appliance {
    let mut a = Appliance::new(&Setup { external_hub, ..Setup::empty() });
    a.start();
    a
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn camera_url(a: &Appliance) -> String {
    format!("rtsp://127.0.0.1:{}/media/vtest.mkv", a.camera_port)
}

/// A reference topology made runnable here: the RTSP endpoint takes the instance's
/// `rtspUrl`/`rtspUserName`/`rtspPassword` (the LVA one hard-codes `rtspsim:554`), and the
/// file sink writes under the state folder instead of `/var/media`.
fn runnable_topology(reference: &str) -> Value {
    let mut t = read_json(&common::fixture("reference").join(reference));
    for src in t["properties"]["sources"].as_array_mut().unwrap() {
        if src["@type"].as_str().unwrap().ends_with("RtspSource") {
            src["endpoint"]["url"] = json!("${rtspUrl}");
            src["endpoint"]["credentials"]["username"] = json!("${rtspUserName}");
            src["endpoint"]["credentials"]["password"] = json!("${rtspPassword}");
        }
    }
    for sink in t["properties"]["sinks"].as_array_mut().unwrap() {
        if sink["@type"].as_str().unwrap().ends_with("FileSink") {
            sink["baseDirectoryPath"] = json!("media");
        }
    }
    t
}

/// Writes a copy of a sample's operations.json (and the topology it sets) into `dir`,
/// with the placeholders replaced and every operation kept in order. Returns the file.
fn rewrite_sample(a: &Appliance, sample: &str, reference: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let topology = runnable_topology(reference);
    let topology_name = topology["name"].as_str().unwrap().to_string();
    std::fs::write(dir.join("topology.json"), serde_json::to_vec_pretty(&topology).unwrap()).unwrap();
    let original = common::fixture("reference/samples").join(sample).join("src/cloud-to-device-console-app/operations.json");
    let mut ops = read_json(&original);
    let n = ops["operations"].as_array().unwrap().len();
    // The placeholder topology name the sample uses ("MotionDetection", "TopologyName").
    let placeholder = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|op| op.pointer("/opParams/properties/topologyName").and_then(Value::as_str))
        .unwrap()
        .to_string();
    for op in ops["operations"].as_array_mut().unwrap() {
        let params = op["opParams"].as_object_mut().unwrap();
        for key in ["topologyUrl", "pipelineTopologyUrl"] {
            if params.contains_key(key) {
                // Both forms `vela ops` takes: a file:// URL and a path relative to the file.
                let url = if sample.ends_with("csharp") {
                    format!("file://{}", dir.join("topology.json").display())
                } else {
                    "topology.json".into()
                };
                params.insert(key.into(), json!(url));
            }
        }
        if params.get("name").and_then(Value::as_str) == Some(placeholder.as_str()) {
            params.insert("name".into(), json!(topology_name));
        }
        if let Some(props) = params.get_mut("properties") {
            props["topologyName"] = json!(topology_name);
            for p in props["parameters"].as_array_mut().unwrap() {
                if p["name"] == "rtspUrl" {
                    p["value"] = json!(camera_url(a));
                }
            }
        }
    }
    assert_eq!(ops["operations"].as_array().unwrap().len(), n);
    let file = dir.join("operations.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&ops).unwrap()).unwrap();
    file
}

/// `vela ops --hub URL --no-wait [--fail-on-error] FILE`: (exit code, stdout).
async fn vela_ops(hub: &str, file: &Path, fail_on_error: bool) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vela"));
    cmd.args(["ops", "--hub", hub, "--no-wait"]);
    if fail_on_error {
        cmd.arg("--fail-on-error");
    }
    cmd.arg(file).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("vela ops hangs").unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code().unwrap_or(-1),
        format!("{stdout}{}", if stderr.is_empty() { String::new() } else { format!("\n[stderr]\n{stderr}") }),
    )
}

/// One step of `vela ops` output.
#[derive(Debug, PartialEq)]
enum Step {
    Wait(String),
    Call { method: String, request: Value, status: u16, answer: Value },
}

/// Reads one JSON document printed with `to_string_pretty` (or `null`).
fn take_json<'a>(lines: &mut impl Iterator<Item = &'a str>, out: &str) -> Value {
    let mut acc = String::new();
    for line in lines {
        acc.push_str(line);
        acc.push('\n');
        if let Ok(v) = serde_json::from_str(&acc) {
            return v;
        }
    }
    panic!("unterminated JSON in vela ops output:\n{out}");
}

fn parse_ops_output(out: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = out.lines().take_while(|l| *l != "[stderr]");
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("-----------------------  Request: ") else {
            steps.push(Step::Wait(line.to_string()));
            continue;
        };
        let method = rest.split_whitespace().next().unwrap().to_string();
        let request = take_json(&mut lines, out);
        let header = lines.next().unwrap_or_else(|| panic!("no response line for {method}:\n{out}"));
        assert!(header.contains(&format!("Response: {method} - Status: ")), "{header}");
        let status = header.split("Status: ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
        let answer = take_json(&mut lines, out);
        steps.push(Step::Call { method, request, status, answer });
    }
    steps
}

/// The status each sample operation must get on a fresh appliance.
fn expected_status(method: &str) -> u16 {
    let m = method.to_ascii_lowercase();
    if m.ends_with("topologyset") || m.ends_with("instanceset") || m == "livepipelineset" {
        201
    } else {
        200
    }
}

/// Runs one rewritten sample and checks every step against the original file.
async fn run_sample(a: &Appliance, sample: &str, reference: &str, statuses: &[u16]) {
    let dir = a.root.join("ops").join(sample);
    let file = rewrite_sample(a, sample, reference, &dir);
    let (code, out) = vela_ops(&a.hub_url, &file, true).await;
    assert_eq!(code, 0, "{sample}: vela ops --fail-on-error exited {code}:\n{out}");
    let steps = parse_ops_output(&out);
    let ops = read_json(&file);
    let api = ops["apiVersion"].as_str().unwrap();
    let ops = ops["operations"].as_array().unwrap();
    assert_eq!(steps.len(), ops.len(), "{sample}: one step per operation:\n{out}");
    let got: Vec<u16> = steps.iter().filter_map(|s| if let Step::Call { status, .. } = s { Some(*status) } else { None }).collect();
    assert_eq!(got, statuses, "{sample}:\n{out}");
    let topology = runnable_topology(reference);
    let (mut activated, mut created_instance, mut created_topology) = (false, false, false);
    let (mut deleted_instance, mut deleted_topology) = (false, false);
    for (i, (op, step)) in ops.iter().zip(&steps).enumerate() {
        let op_name = op["opName"].as_str().unwrap();
        let at = format!("{sample}, operation {i} ({op_name})");
        if op_name == "WaitForInput" {
            assert_eq!(step, &Step::Wait(op["opParams"]["message"].as_str().unwrap().to_string()), "{at}");
            continue;
        }
        let Step::Call { method, request, status, answer } = step else { panic!("{at}: got {step:?}\n{out}") };
        assert_eq!(method, op_name, "{at}");
        assert_eq!(*status, expected_status(method), "{at}: answer {answer}\n{out}");
        let m = method.to_ascii_lowercase();
        if m.ends_with("topologyset") {
            // The topology document is sent verbatim, its own @apiVersion included.
            assert_eq!(request, &topology, "{at}");
            assert_eq!(answer["name"], topology["name"], "{at}");
            assert!(answer["systemData"]["createdAt"].is_string(), "{at}: {answer}");
        } else {
            assert_eq!(request["@apiVersion"], api, "{at}: {request}");
            assert_eq!(request.as_object().unwrap().keys().next().unwrap(), "@apiVersion", "{at}: @apiVersion comes first");
        }
        if m.ends_with("topologyset") {
            created_topology = true;
        }
        if m.ends_with("instanceset") || m == "livepipelineset" {
            created_instance = true;
            assert_eq!(answer["properties"]["state"].as_str().unwrap().to_ascii_lowercase(), "inactive", "{at}: {answer}");
            assert_eq!(answer["properties"]["topologyName"], topology["name"], "{at}");
        }
        if m.ends_with("activate") && !m.ends_with("deactivate") {
            assert_eq!(answer, &Value::Null, "{at}");
            activated = true;
        }
        if m.ends_with("deactivate") {
            activated = false;
        }
        if m == "graphinstancedelete" || m == "livepipelinedelete" {
            deleted_instance = true;
        }
        if m.ends_with("topologydelete") {
            deleted_topology = true;
        }
        if m.ends_with("list") {
            let is_topologies = m.contains("topology");
            let value = answer["value"].as_array().unwrap_or_else(|| panic!("{at}: {answer}"));
            let (created, deleted) =
                if is_topologies { (created_topology, deleted_topology) } else { (created_instance, deleted_instance) };
            if !created || deleted {
                assert_eq!(answer, &json!({ "value": [] }), "{at}");
            } else if !is_topologies && activated {
                assert_eq!(value.len(), 1, "{at}: {answer}");
                assert_eq!(value[0]["properties"]["state"].as_str().unwrap().to_ascii_lowercase(), "active", "{at}: {answer}");
                let url = value[0]["properties"]["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "rtspUrl").unwrap();
                assert_eq!(url["value"], camera_url(a), "{at}");
            }
        }
    }
    // Each sample ends with everything it made deleted, both lists empty.
    assert!(deleted_instance && deleted_topology, "{sample}");
    let last_list = |kind: &str| {
        steps
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Call { method, answer, .. } if method.to_ascii_lowercase().ends_with(kind) => Some(answer.clone()),
                _ => None,
            })
            .unwrap()
    };
    let instance_list = if api == "2.0" { "instancelist" } else { "livepipelinelist" };
    assert_eq!(last_list(instance_list), json!({ "value": [] }), "{sample}");
    assert_eq!(last_list("topologylist"), json!({ "value": [] }), "{sample}");
}

async fn run_all_samples(a: &Appliance) {
    for (sample, reference, statuses) in SAMPLES {
        run_sample(a, sample, reference, statuses).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_operations_run_end_to_end_on_the_embedded_broker_and_a_failure_fails_vela_ops() {
    let a = appliance(None);
    run_all_samples(&a).await;

    // A flow with a failing call: it goes on, and --fail-on-error makes it exit 1.
    let file = a.root.join("ops/failing.json");
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&json!({ "apiVersion": "1.1", "operations": [
            { "opName": "livePipelineActivate", "opParams": { "name": "no-such-pipeline" } },
            { "opName": "pipelineTopologyList", "opParams": {} },
        ] }))
        .unwrap(),
    )
    .unwrap();
    let (code, out) = vela_ops(&a.hub_url, &file, true).await;
    assert_eq!(code, 1, "{out}");
    let steps = parse_ops_output(&out);
    assert_eq!(steps.len(), 2, "{out}");
    let Step::Call { status, answer, .. } = &steps[0] else { panic!("{out}") };
    assert_eq!(*status, 404, "{out}");
    assert_eq!(answer["error"]["code"], "NotFound", "{answer}");
    assert!(answer["error"]["details"][0]["message"].as_str().unwrap().contains("'no-such-pipeline'"), "{answer}");
    assert!(matches!(&steps[1], Step::Call { status: 200, answer, .. } if answer == &json!({ "value": [] })), "{out}");
    // Without the flag the same flow is a success.
    let (code, out) = vela_ops(&a.hub_url, &file, false).await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_operations_run_end_to_end_with_mosquitto_as_the_external_broker() {
    let broker = Mosquitto::start();
    let a = appliance(Some(broker.url()));
    assert_eq!(a.hub_url, broker.url());
    run_all_samples(&a).await;
}

/// A plain MQTT client (rumqttc, no `ModuleClient`) that publishes raw method requests to
/// the engine and reads the answers.
struct RawCaller {
    client: rumqttc::AsyncClient,
    answers: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl RawCaller {
    async fn connect(port: u16) -> RawCaller {
        use rumqttc::{Event, Packet};
        let mut o = rumqttc::MqttOptions::new(format!("raw-{}", uuid::Uuid::new_v4().simple()), "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = rumqttc::AsyncClient::new(o, 16);
        let (tx, answers) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic, p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("raw MQTT client: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        client.subscribe(format!("{ANSWERS}#"), rumqttc::QoS::AtMostOnce).await.unwrap();
        tokio::time::timeout(TIMEOUT, ready).await.expect("no SUBACK").unwrap();
        RawCaller { client, answers, task }
    }

    fn topic(method: &str, rid: &str) -> String {
        format!("{REQUESTS}/{method}/?$rid={rid}")
    }

    async fn call(&mut self, method: &str, body: Vec<u8>) -> (u16, Option<Value>) {
        let rid = uuid::Uuid::new_v4().simple().to_string();
        self.client.publish(Self::topic(method, &rid), rumqttc::QoS::AtMostOnce, false, body).await.unwrap();
        self.answer(&rid).await
    }

    /// The answer to request `rid`: status from the topic, JSON body (None when empty).
    async fn answer(&mut self, rid: &str) -> (u16, Option<Value>) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let (topic, body) = tokio::time::timeout_at(deadline, self.answers.recv())
                .await
                .unwrap_or_else(|_| panic!("no answer to $rid={rid} within {TIMEOUT:?}"))
                .unwrap();
            let rest = topic.strip_prefix(ANSWERS).unwrap_or_else(|| panic!("unexpected topic {topic}"));
            let (status, their_rid) = rest.split_once("/?$rid=").unwrap_or_else(|| panic!("unexpected topic {topic}"));
            if their_rid == rid {
                let body = if body.is_empty() { None } else { Some(serde_json::from_slice(&body).expect("answers are JSON")) };
                return (status.parse().unwrap(), body);
            }
        }
    }
}

impl Drop for RawCaller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn call(c: &ModuleClient, method: &str, payload: Value) -> (u16, Option<Value>) {
    c.invoke_method("vela", "avaedge", method, &payload, TIMEOUT).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Checks an OData error body (SPEC §3.2) and returns its first detail.
fn odata<'a>(answer: &'a Option<Value>, code: &str, what: &str) -> &'a Value {
    let body = answer.as_ref().unwrap_or_else(|| panic!("{what}: no body"));
    let e = &body["error"];
    assert_eq!(e["code"], code, "{what}: {body}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    &e["details"][0]
}

fn detail<'a>(answer: &'a Option<Value>, code: &str, detail_code: &str, what: &str) -> &'a Value {
    let d = odata(answer, code, what);
    assert_eq!(d["code"], detail_code, "{what}: {}", answer.as_ref().unwrap());
    assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {d}");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_odata_error_and_the_engine_keeps_serving() {
    let a = appliance(None);
    let mut raw = RawCaller::connect(a.hub_port).await;
    let c = a.client("caller").await;

    // Malformed JSON, from a foreign MQTT client (mosquitto_pub): the hub client answers.
    let rid = "malformed-1";
    mosquitto_pub(a.hub_port, &RawCaller::topic("pipelineTopologyList", rid), r#"{"@apiVersion": "1.1",}"#);
    let (status, answer) = raw.answer(rid).await;
    assert_eq!(status, 400);
    odata(&answer, "BadRequest", "malformed JSON");
    assert!(answer.as_ref().unwrap()["error"]["message"].as_str().unwrap().contains("not valid JSON"), "{answer:?}");
    // The same from the raw rumqttc client.
    let (status, answer) = raw.call("livePipelineList", b"{not json".to_vec()).await;
    assert_eq!(status, 400, "{answer:?}");
    odata(&answer, "BadRequest", "malformed JSON");

    // A JSON array, and no body at all (JSON null): the payload must be an object.
    let (status, answer) = call(&c, "pipelineTopologyList", json!([{ "@apiVersion": "1.1" }])).await;
    assert_eq!(status, 400);
    assert!(detail(&answer, "BadRequest", "InvalidJson", "array")["message"].as_str().unwrap().contains("JSON object"));
    let (status, answer) = call(&c, "pipelineTopologyList", Value::Null).await;
    assert_eq!(status, 400);
    detail(&answer, "BadRequest", "InvalidJson", "empty body");

    // Unknown methods: 501 (SPEC §3.1), and the cloud-only AVA methods say why.
    let (status, answer) = call(&c, "pipelineTopologyFrobnicate", json!({ "@apiVersion": "1.1" })).await;
    assert_eq!(status, 501);
    assert!(detail(&answer, "NotImplemented", "MethodNotFound", "unknown method")["message"]
        .as_str()
        .unwrap()
        .contains("pipelineTopologyFrobnicate"));
    let (status, answer) = call(&c, "onvifDeviceDiscover", json!({ "@apiVersion": "1.1" })).await;
    assert_eq!(status, 501);
    detail(&answer, "NotImplemented", "MethodNotSupported", "onvifDeviceDiscover");

    // Wrong types.
    let (status, answer) = call(&c, "pipelineTopologyGet", json!({ "@apiVersion": "1.1", "name": 5 })).await;
    assert_eq!(status, 400);
    assert_eq!(detail(&answer, "BadRequest", "PropertyTypeInvalid", "name: 5")["target"], "$.Name");
    let (status, answer) = call(&c, "GraphInstanceGet", json!({ "@apiVersion": 2.0, "name": "x" })).await;
    assert_eq!(status, 400);
    detail(&answer, "BadRequest", "PropertyTypeInvalid", "@apiVersion: 2.0");

    // Over 128 KiB (ModuleClient refuses to send it): the engine's hub client answers 413.
    let huge = serde_json::to_vec(&json!({ "@apiVersion": "1.1", "name": "x", "pad": "a".repeat(200 * 1024) })).unwrap();
    let size = huge.len();
    assert!(c.invoke_method("vela", "avaedge", "pipelineTopologyGet", &serde_json::from_slice(&huge).unwrap(), TIMEOUT).await.is_err());
    let (status, answer) = raw.call("pipelineTopologyGet", huge).await;
    assert_eq!(status, 413, "{answer:?}");
    let e = odata(&answer, "PayloadTooLarge", "huge payload");
    // Errors the hub client answers itself carry a detail like the engine's.
    assert_eq!(e["code"], "PayloadTooLarge", "{answer:?}");
    let message = answer.as_ref().unwrap()["error"]["message"].as_str().unwrap();
    assert!(message.contains(&size.to_string()) && message.contains("131072"), "{message}");

    // @apiVersion: unknown, missing.
    let (status, answer) = call(&c, "pipelineTopologyList", json!({ "@apiVersion": "9.9" })).await;
    assert_eq!(status, 400);
    let d = detail(&answer, "BadRequest", "ApiVersionNotSupported", "9.9");
    let m = d["message"].as_str().unwrap();
    assert!(m.contains("'9.9'") && m.contains("Supported version(s): ") && m.contains("1.1"), "{m}");
    let (status, answer) = call(&c, "GraphTopologyList", json!({ "@apiVersion": "9.9" })).await;
    assert_eq!(status, 400);
    assert!(detail(&answer, "BadRequest", "ApiVersionNotSupported", "LVA 9.9")["message"].as_str().unwrap().contains("2.0"));
    let (status, answer) = call(&c, "livePipelineGet", json!({ "name": "x" })).await;
    assert_eq!(status, 400);
    assert_eq!(detail(&answer, "BadRequest", "ApiVersionRequired", "no @apiVersion")["target"], "$['@apiVersion']");

    // An invalid topology: 400 with every problem, each with its PascalCase target.
    let mut bad = read_json(&common::fixture("reference/lva-topologies/evr-hubMessage-files/2.0/topology.json"));
    bad["properties"]["sources"][0]["endpoint"]["url"] = json!("http://camera/stream");
    bad["properties"]["processors"][0]["inputs"][0]["nodeName"] = json!("nowhere");
    bad["properties"]["processors"][0]["activationEvaluationWindow"] = json!("PT1X");
    let (status, answer) = call(&c, "GraphTopologySet", bad).await;
    assert_eq!(status, 400, "{answer:?}");
    let body = answer.unwrap();
    assert_eq!(body["error"]["code"], "InvalidResource", "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    let mut got: Vec<(String, String)> =
        details.iter().map(|d| (d["code"].as_str().unwrap().to_string(), d["target"].as_str().unwrap().to_string())).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("NodeInputUnknown".to_string(), "$.Properties.Processors[0].Inputs[0].NodeName".to_string()),
            ("PropertyValueInvalid".to_string(), "$.Properties.Processors[0].ActivationEvaluationWindow".to_string()),
            ("RtspEndpointUrlInvalidScheme".to_string(), "$.Properties.Sources[0].Endpoint.Url".to_string()),
        ],
        "{body}"
    );
    assert!(details.iter().all(|d| d["message"].as_str().is_some_and(|m| !m.is_empty())), "{body}");
    // Nothing was stored.
    let (status, answer) = call(&c, "GraphTopologyList", json!({ "@apiVersion": "2.0" })).await;
    assert_eq!((status, answer), (200, Some(json!({ "value": [] }))));

    // After all that, both kinds of caller are still served.
    let (status, answer) = call(&c, "pipelineTopologyList", json!({ "@apiVersion": "1.1" })).await;
    assert_eq!((status, answer), (200, Some(json!({ "value": [] }))));
    let (status, answer) = raw.call("pipelineTopologyList", br#"{"@apiVersion":"1.1"}"#.to_vec()).await;
    assert_eq!((status, answer), (200, Some(json!({ "value": [] }))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_rules_over_mqtt_on_mosquitto() {
    let broker = Mosquitto::start();
    let a = appliance(Some(broker.url()));
    let c = a.client("caller").await;
    let api = json!("1.1");
    let topology = runnable_topology("ava-topologies/evr-hubMessage-file-sink/topology.json");
    let tname = topology["name"].as_str().unwrap().to_string();
    let (status, answer) = call(&c, "pipelineTopologySet", topology).await;
    assert_eq!(status, 201, "{answer:?}");
    let pipeline = json!({ "@apiVersion": api, "name": "p1", "properties": {
        "topologyName": tname, "parameters": [{ "name": "rtspUrl", "value": camera_url(&a) }] } });
    let (status, answer) = call(&c, "livePipelineSet", pipeline).await;
    assert_eq!(status, 201, "{answer:?}");
    let observer = a.client("observer").await;
    let mut events = observer.inputs().await.unwrap();
    let (status, answer) = call(&c, "livePipelineActivate", json!({ "@apiVersion": api, "name": "p1" })).await;
    assert_eq!((status, answer), (200, None));
    // It really runs: its RTSP source reaches the simulated camera.
    let session = appliance::next_event(&mut events, "Diagnostics.MediaSessionEstablished", TIMEOUT).await;
    assert_eq!(session.property("subject"), Some("/edgeModules/avaedge/livePipelines/p1/sources/rtspSource"));

    // An active pipeline cannot be deleted; a used topology cannot be deleted.
    let (status, answer) = call(&c, "livePipelineDelete", json!({ "@apiVersion": api, "name": "p1" })).await;
    assert_eq!(status, 409);
    let d = detail(&answer, "Conflict", "OperationNotAllowedInState", "delete active");
    assert!(d["message"].as_str().unwrap().contains("active"), "{d}");
    let (status, answer) = call(&c, "pipelineTopologyDelete", json!({ "@apiVersion": api, "name": tname })).await;
    assert_eq!(status, 409);
    assert!(detail(&answer, "Conflict", "PipelineTopologyInUse", "delete used")["message"].as_str().unwrap().contains("'p1'"));
    let (status, answer) = call(&c, "livePipelineGet", json!({ "@apiVersion": api, "name": "p1" })).await;
    assert_eq!(status, 200);
    assert_eq!(answer.unwrap()["properties"]["state"], "active");

    // Missing ones: Get 404, Delete 204 (SPEC §3.3), in both generations.
    for (method, name) in [("livePipelineGet", "nope"), ("pipelineTopologyGet", "nope")] {
        let (status, answer) = call(&c, method, json!({ "@apiVersion": api, "name": name })).await;
        assert_eq!(status, 404, "{method}");
        assert!(detail(&answer, "NotFound", "NotFound", method)["message"].as_str().unwrap().contains("'nope'"));
    }
    let (status, answer) = call(&c, "GraphInstanceGet", json!({ "@apiVersion": "2.0", "name": "nope" })).await;
    assert_eq!(status, 404);
    detail(&answer, "NotFound", "NotFound", "GraphInstanceGet");
    for method in ["livePipelineDelete", "pipelineTopologyDelete"] {
        assert_eq!(call(&c, method, json!({ "@apiVersion": api, "name": "nope" })).await, (204, None), "{method}");
    }
    for method in ["GraphInstanceDelete", "GraphTopologyDelete"] {
        assert_eq!(call(&c, method, json!({ "@apiVersion": "2.0", "name": "nope" })).await, (204, None), "{method}");
    }

    // In order, everything goes.
    for (method, name) in [("livePipelineDeactivate", "p1"), ("livePipelineDelete", "p1"), ("pipelineTopologyDelete", tname.as_str())] {
        assert_eq!(call(&c, method, json!({ "@apiVersion": api, "name": name })).await, (200, None), "{method}");
    }
    for method in ["livePipelineList", "pipelineTopologyList"] {
        assert_eq!(call(&c, method, json!({ "@apiVersion": api })).await, (200, Some(json!({ "value": [] }))), "{method}");
    }
}
