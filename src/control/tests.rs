//! The direct-method contract, call by call, against a real sled store and an engine that records what it is asked.

use super::*;
use crate::clock::SystemClock;
use std::path::PathBuf;

/// Records activations; refuses the node kinds it is told it cannot run.
#[derive(Default)]
struct RecordingEngine {
    calls: Mutex<Vec<String>>,
    plans: Mutex<Vec<GraphPlan>>,
    cannot_run: Vec<TypeName>,
}

impl Engine for RecordingEngine {
    fn activate(&self, key: InstanceKey, plan: GraphPlan) -> BoxFuture<'static, Result<(), ActivationError>> {
        self.calls.lock().unwrap().push(format!("activate {}", key.1));
        let refused = plan.nodes.iter().find(|n| self.cannot_run.contains(&n.ty)).map(|n| (n.name.clone(), n.ty));
        self.plans.lock().unwrap().push(plan);
        Box::pin(async move {
            match refused {
                Some((node, ty)) => Err(ActivationError::Unsupported { node, ty }),
                None => Ok(()),
            }
        })
    }

    fn deactivate(&self, key: InstanceKey) -> BoxFuture<'static, ()> {
        self.calls.lock().unwrap().push(format!("deactivate {}", key.1));
        Box::pin(async {})
    }
}

struct Fixture {
    dir: PathBuf,
    engine: Arc<RecordingEngine>,
    c: Controller,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn fixture_with(engine: RecordingEngine) -> Fixture {
    let dir = std::env::temp_dir().join(format!("vela-control-{}", uuid::Uuid::new_v4()));
    let engine = Arc::new(engine);
    let c = Controller::new(Store::open(&dir).unwrap(), engine.clone(), Arc::new(SystemClock));
    Fixture { dir, engine, c }
}

fn fixture() -> Fixture {
    fixture_with(RecordingEngine::default())
}

fn corpus(rel: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(rel);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

async fn call(c: &Controller, method: &str, payload: Value) -> Response {
    c.invoke(method, &serde_json::to_vec(&payload).unwrap()).await
}

fn detail_code(r: &Response) -> String {
    r.payload.as_ref().unwrap()["error"]["details"][0]["code"].as_str().unwrap().to_string()
}

fn detail_message(r: &Response) -> String {
    r.payload.as_ref().unwrap()["error"]["details"][0]["message"].as_str().unwrap().to_string()
}

fn lva_instance(name: &str, password: &str) -> Value {
    json!({
        "@apiVersion": "2.0",
        "name": name,
        "properties": {
            "topologyName": "EVRtoFilesBasedOnHubMessages",
            "description": "door camera",
            "parameters": [
                { "name": "rtspUrl", "value": "rtsp://127.0.0.1:8554/media/vtest.mkv" },
                { "name": "rtspPassword", "value": password }
            ]
        }
    })
}

/// The LVA hub-message EVR topology with its password parameter made secret.
fn lva_topology() -> Value {
    let mut t = corpus("lva-topologies/evr-hubMessage-files/2.0/topology.json");
    for p in t["properties"]["parameters"].as_array_mut().unwrap() {
        if p["name"] == "rtspPassword" {
            p["type"] = json!("SecretString");
        }
    }
    // The published file hard-codes its URL; use the parameters like the other samples.
    t["properties"]["sources"][0]["endpoint"]["url"] = json!("${rtspUrl}");
    t["properties"]["sources"][0]["endpoint"]["credentials"]["password"] = json!("${rtspPassword}");
    t
}

#[tokio::test]
async fn the_console_app_sample_flow_runs_end_to_end() {
    let f = fixture();
    let c = &f.c;
    assert_eq!(call(c, "GraphTopologyList", json!({"@apiVersion": "2.0"})).await, Response::ok(json!({"value": []})));
    assert_eq!(call(c, "GraphInstanceList", json!({"@apiVersion": "2.0"})).await, Response::ok(json!({"value": []})));

    let set = call(c, "GraphTopologySet", lva_topology()).await;
    assert_eq!(set.status, 201, "{set:?}");
    let created = set.payload.as_ref().unwrap()["systemData"]["createdAt"].clone();
    let again = call(c, "GraphTopologySet", lva_topology()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.payload.as_ref().unwrap()["systemData"]["createdAt"], created, "createdAt is kept on update");

    let inst = call(c, "GraphInstanceSet", lva_instance("Sample-Graph-1", "testpassword")).await;
    assert_eq!(inst.status, 201, "{inst:?}");
    assert_eq!(inst.payload.as_ref().unwrap()["properties"]["state"], "Inactive");

    assert_eq!(call(c, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await.status, 200);
    let got = call(c, "GraphInstanceGet", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await;
    assert_eq!(got.payload.as_ref().unwrap()["properties"]["state"], "Active");
    // Idempotent.
    assert_eq!(call(c, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await.status, 200);

    assert_eq!(call(c, "GraphInstanceDeactivate", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await.status, 200);
    assert_eq!(call(c, "GraphInstanceDeactivate", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await.status, 200);
    assert_eq!(call(c, "GraphInstanceDelete", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await.status, 200);
    assert_eq!(call(c, "GraphInstanceDelete", json!({"@apiVersion": "2.0", "name": "Sample-Graph-1"})).await, Response::empty(204));
    let name = json!({"@apiVersion": "2.0", "name": "EVRtoFilesBasedOnHubMessages"});
    assert_eq!(call(c, "GraphTopologyDelete", name.clone()).await, Response::empty(200));
    assert_eq!(call(c, "GraphTopologyDelete", name).await, Response::empty(204));
    assert_eq!(*f.engine.calls.lock().unwrap(), ["activate Sample-Graph-1", "deactivate Sample-Graph-1"]);
}

#[tokio::test]
async fn ava_methods_use_ava_names_and_casing() {
    let f = fixture();
    let t = corpus("ava-topologies/evr-hubMessage-file-sink/topology.json");
    assert_eq!(call(&f.c, "pipelineTopologySet", t).await.status, 201);
    let inst = json!({"@apiVersion": "1.1", "name": "p1", "properties": {"topologyName": "EVRtoFilesBasedOnHubMessages",
        "parameters": [{"name": "rtspUrl", "value": "rtsp://127.0.0.1/media/vtest.mkv"}]}});
    let r = call(&f.c, "livePipelineSet", inst).await;
    assert_eq!(r.payload.as_ref().unwrap()["properties"]["state"], "inactive");
    // The LVA methods do not see AVA entities.
    assert_eq!(call(&f.c, "GraphTopologyList", json!({"@apiVersion": "2.0"})).await, Response::ok(json!({"value": []})));
    assert_eq!(call(&f.c, "livePipelineList", json!({"@apiVersion": "1.1"})).await.payload.unwrap()["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_body() {
    let f = fixture();
    let c = &f.c;
    let r = c.invoke("GraphTopologyFrobnicate", b"{}").await;
    assert_eq!((r.status, detail_code(&r)), (501, "MethodNotFound".into()));
    let r = c.invoke("onvifDeviceDiscover", b"{\"@apiVersion\":\"1.1\"}").await;
    assert_eq!((r.status, detail_code(&r)), (501, "MethodNotSupported".into()));
    let r = c.invoke("GraphTopologyList", b"{not json").await;
    assert_eq!((r.status, detail_code(&r)), (400, "InvalidJson".into()));
    assert!(detail_message(&r).contains("line 1 column 2"), "{}", detail_message(&r));
    let r = c.invoke("GraphTopologyList", b"[]").await;
    assert_eq!((r.status, detail_code(&r)), (400, "InvalidJson".into()));
    let r = call(c, "GraphTopologyList", json!({})).await;
    assert_eq!((r.status, detail_code(&r)), (400, "ApiVersionRequired".into()));
    let r = call(c, "GraphTopologyList", json!({"@apiVersion": "1.1"})).await;
    assert_eq!((r.status, detail_code(&r)), (400, "ApiVersionNotSupported".into()));
    assert_eq!(detail_message(&r), "The API version '1.1' is not supported. Supported version(s): 1.0, 2.0.");
    assert_eq!(r.payload.as_ref().unwrap()["error"]["code"], "BadRequest");
    let r = call(c, "GraphTopologyGet", json!({"@apiVersion": "2.0", "name": 5})).await;
    assert_eq!((r.status, detail_code(&r)), (400, "PropertyTypeInvalid".into()));
    let r = call(c, "GraphTopologyGet", json!({"@apiVersion": "2.0", "nmae": "x"})).await;
    assert_eq!((r.status, detail_code(&r)), (400, "PropertyUnknown".into()));
    assert!(detail_message(&r).contains("did you mean 'name'"));
    let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    let r = c.invoke("GraphTopologySet", &huge).await;
    assert_eq!((r.status, detail_code(&r)), (400, "PayloadTooLarge".into()));
    let r = call(c, "GraphTopologyGet", json!({"@apiVersion": "2.0", "name": "nope"})).await;
    assert_eq!((r.status, detail_code(&r)), (404, "NotFound".into()));
    assert_eq!(detail_message(&r), "Graph topology 'nope' is not found.");
    let r = call(c, "GraphTopologyList", json!({"@apiVersion": "2.0", "@query": "$orderby=createdAt"})).await;
    assert_eq!((r.status, detail_code(&r)), (400, "QueryNotSupported".into()));
}

#[tokio::test]
async fn invalid_topologies_return_every_compiler_error() {
    let f = fixture();
    let mut t = lva_topology();
    t["properties"]["processors"][0]["activationSignalOffset"] = json!("-PT99S");
    t["properties"]["sinks"][0]["fileNamePattern"] = json!("no-variable");
    let r = call(&f.c, "GraphTopologySet", t).await;
    assert_eq!(r.status, 400);
    let details = r.payload.as_ref().unwrap()["error"]["details"].as_array().unwrap().clone();
    assert_eq!(details.len(), 2, "{details:#?}");
    assert_eq!(details[0]["target"], "$.Properties.Processors[0].ActivationSignalOffset");
    // Nothing was stored.
    assert_eq!(call(&f.c, "GraphTopologyList", json!({"@apiVersion": "2.0"})).await, Response::ok(json!({"value": []})));
}

#[tokio::test]
async fn a_topology_of_the_other_generation_is_refused() {
    let f = fixture();
    let mut t = corpus("ava-topologies/evr-hubMessage-file-sink/topology.json");
    t["@apiVersion"] = json!("2.0");
    let r = call(&f.c, "GraphTopologySet", t).await;
    // LVA method, AVA types, LVA version: the compiler sees an AVA document with version 2.0.
    assert_eq!(r.status, 400, "{r:?}");
    let t = corpus("ava-topologies/evr-hubMessage-file-sink/topology.json");
    let mut t2 = t.clone();
    t2["@apiVersion"] = json!("1.0");
    let r = call(&f.c, "GraphTopologySet", t2).await;
    assert_eq!((r.status, detail_code(&r)), (400, "GenerationMismatch".into()));
    assert!(detail_message(&r).contains("pipelineTopologySet"));
}

#[tokio::test]
async fn in_use_and_state_conflicts_are_409() {
    let f = fixture();
    let c = &f.c;
    call(c, "GraphTopologySet", lva_topology()).await;
    call(c, "GraphInstanceSet", lva_instance("cam-1", "pw")).await;
    let topo_name = json!({"@apiVersion": "2.0", "name": "EVRtoFilesBasedOnHubMessages"});
    let r = call(c, "GraphTopologyDelete", topo_name.clone()).await;
    assert_eq!((r.status, detail_code(&r)), (409, "GraphTopologyInUse".into()));
    assert!(detail_message(&r).contains("'cam-1'"));

    call(c, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    let r = call(c, "GraphInstanceSet", lva_instance("cam-1", "other")).await;
    assert_eq!((r.status, detail_code(&r)), (409, "OperationNotAllowedInState".into()));
    let r = call(c, "GraphInstanceDelete", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    assert_eq!((r.status, detail_code(&r)), (409, "OperationNotAllowedInState".into()));

    // While it runs, a topology change that alters its graph is refused, one that
    // does not (the description) is accepted.
    let mut changed = lva_topology();
    changed["properties"]["processors"][0]["minimumActivationTime"] = json!("PT4S");
    let r = call(c, "GraphTopologySet", changed).await;
    assert_eq!((r.status, detail_code(&r)), (409, "GraphTopologyInUse".into()));
    assert!(detail_message(&r).contains("deactivate it first"), "{}", detail_message(&r));
    let mut described = lva_topology();
    described["properties"]["description"] = json!("new words");
    assert_eq!(call(c, "GraphTopologySet", described).await.status, 200);
}

#[tokio::test]
async fn topology_updates_must_keep_inactive_instances_valid() {
    let f = fixture();
    let c = &f.c;
    call(c, "GraphTopologySet", lva_topology()).await;
    call(c, "GraphInstanceSet", lva_instance("cam-1", "pw")).await;
    let mut t = lva_topology();
    t["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "extra", "type": "String"}));
    t["properties"]["sinks"][0]["baseDirectoryPath"] = json!("/var/media/${extra}");
    let r = call(c, "GraphTopologySet", t).await;
    assert_eq!((r.status, detail_code(&r)), (409, "GraphTopologyInUse".into()));
    assert!(detail_message(&r).contains("'extra' has no default"), "{}", detail_message(&r));
}

#[tokio::test]
async fn secrets_are_redacted_and_survive_a_round_trip() {
    let f = fixture();
    let c = &f.c;
    call(c, "GraphTopologySet", lva_topology()).await;
    call(c, "GraphInstanceSet", lva_instance("cam-1", "hunter2")).await;
    let got = call(c, "GraphInstanceGet", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    let text = serde_json::to_string(&got.payload).unwrap();
    assert!(!text.contains("hunter2") && text.contains(REDACTED), "{text}");
    let listed = serde_json::to_string(&call(c, "GraphInstanceList", json!({"@apiVersion": "2.0"})).await.payload).unwrap();
    assert!(!listed.contains("hunter2"));

    // Send the fetched entity back unchanged: the stored secret is kept.
    let mut back = got.payload.unwrap();
    back["@apiVersion"] = json!("2.0");
    back.as_object_mut().unwrap().remove("systemData");
    back["properties"].as_object_mut().unwrap().remove("state");
    assert_eq!(call(c, "GraphInstanceSet", back).await.status, 200);
    call(c, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    let plan = f.engine.plans.lock().unwrap().last().cloned().unwrap();
    let crate::topology::NodeSettings::RtspSource(r) = &plan.node("rtspSource").unwrap().settings else { panic!() };
    let Some(crate::topology::nodes::common::Credentials::UsernamePassword { password, .. }) = &r.endpoint.credentials else { panic!() };
    assert_eq!(password.expose(), "hunter2");
}

#[tokio::test]
async fn instance_errors_name_the_document_they_point_into() {
    let f = fixture();
    let c = &f.c;
    call(c, "GraphTopologySet", lva_topology()).await;
    let mut inst = lva_instance("cam-1", "pw");
    inst["properties"]["parameters"][0]["value"] = json!("http://not-a-camera/");
    let r = call(c, "GraphInstanceSet", inst).await;
    assert_eq!((r.status, detail_code(&r)), (400, "RtspEndpointUrlInvalidScheme".into()));
    assert!(detail_message(&r).starts_with("in topology 'EVRtoFilesBasedOnHubMessages': "), "{}", detail_message(&r));
    let mut inst = lva_instance("cam-1", "pw");
    inst["properties"]["topologyName"] = json!("Missing");
    let r = call(c, "GraphInstanceSet", inst).await;
    assert_eq!((r.status, detail_code(&r)), (400, "TopologyNotFound".into()));
}

#[tokio::test]
async fn nodes_the_runtime_cannot_run_are_refused_at_activation_by_name() {
    let f = fixture_with(RecordingEngine { cannot_run: vec![TypeName::IotHubMessageSource], ..Default::default() });
    let c = &f.c;
    call(c, "GraphTopologySet", lva_topology()).await;
    call(c, "GraphInstanceSet", lva_instance("cam-1", "pw")).await;
    let r = call(c, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    assert_eq!((r.status, detail_code(&r)), (400, "ModuleValidationError".into()));
    assert!(detail_message(&r).contains("node 'iotMessageSource' (IotHubMessageSource)"), "{}", detail_message(&r));
    let got = call(c, "GraphInstanceGet", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    assert_eq!(got.payload.unwrap()["properties"]["state"], "Inactive");
}

#[tokio::test]
async fn active_instances_are_activated_again_after_a_restart() {
    let f = fixture();
    call(&f.c, "GraphTopologySet", lva_topology()).await;
    call(&f.c, "GraphInstanceSet", lva_instance("cam-1", "pw")).await;
    call(&f.c, "GraphInstanceSet", lva_instance("cam-2", "pw")).await;
    call(&f.c, "GraphInstanceActivate", json!({"@apiVersion": "2.0", "name": "cam-1"})).await;
    let store = f.c.store().clone();
    // A new controller on the same store, as after a restart.
    let engine = Arc::new(RecordingEngine::default());
    let c2 = Controller::new(store, engine.clone(), Arc::new(SystemClock));
    assert!(c2.restore().await.is_empty());
    assert_eq!(*engine.calls.lock().unwrap(), ["activate cam-1"]);
    assert_eq!(c2.state(&(Generation::Lva, "cam-1".into())), State::Active);
    assert_eq!(c2.state(&(Generation::Lva, "cam-2".into())), State::Inactive);
}

#[tokio::test]
async fn lists_page_with_continuation_tokens_and_order() {
    let f = fixture();
    for i in 0..(PAGE_SIZE + 20) {
        let mut t = lva_topology();
        t["name"] = json!(format!("topo-{i:03}"));
        assert_eq!(call(&f.c, "GraphTopologySet", t).await.status, 201);
    }
    let first = call(&f.c, "GraphTopologyList", json!({"@apiVersion": "2.0"})).await.payload.unwrap();
    assert_eq!(first["value"].as_array().unwrap().len(), PAGE_SIZE);
    assert_eq!(first["value"][0]["name"], "topo-000");
    let token = first["@continuationToken"].as_str().unwrap().to_string();
    let second = call(&f.c, "GraphTopologyList", json!({"@apiVersion": "2.0", "@continuationToken": token})).await.payload.unwrap();
    assert_eq!(second["value"].as_array().unwrap().len(), 20);
    assert!(second.get("@continuationToken").is_none());
    let desc = call(&f.c, "GraphTopologyList", json!({"@apiVersion": "2.0", "@query": "$orderby=name desc"})).await.payload.unwrap();
    assert_eq!(desc["value"][0]["name"], format!("topo-{:03}", PAGE_SIZE + 19));
    let bad = call(&f.c, "GraphTopologyList", json!({"@apiVersion": "2.0", "@continuationToken": "garbage"})).await;
    assert_eq!(detail_code(&bad), "ContinuationTokenInvalid");
}
