//! Direct methods (SPEC §3): validate a request, apply it to the store and the engine, answer with status and payload.
//!
//! One code path for every caller: MQTT direct methods, `vela ops`, and the files of
//! `config/` (hot reload). Mutating calls are serialised, as IoT Hub callers are told
//! to do anyway; Get and List never wait for them.

pub mod odata;

use crate::clock::{rfc3339_millis, Clock};
use crate::store::{Origin, Store, StoreError, StoredInstance, StoredTopology, SystemData};
use crate::topology::{self, ApiVersion, CompileErrors, Document, Generation, GraphPlan, TypeName};
use futures::future::BoxFuture;
pub use odata::{Response, Top};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The IoT Hub direct-method payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
/// What Get and List show instead of a `SecretString` parameter's value. Sending it
/// back in a Set keeps the stored value, so a fetched instance can be re-applied.
pub const REDACTED: &str = "<secret>";
/// Entities per List page.
pub const PAGE_SIZE: usize = 100;

pub type InstanceKey = (Generation, String);

/// Why the engine refused to start an instance.
#[derive(Clone, Debug, PartialEq)]
pub enum ActivationError {
    /// A node kind the runtime cannot run yet (400 ModuleValidationError).
    Unsupported { node: String, ty: TypeName },
    /// A setting the runtime cannot honour (400 ModuleValidationError).
    Invalid(String),
    /// A resource the instance needs is unusable or taken (409 ResourceValidationError).
    Resource(String),
}

/// The runtime, as the controller sees it.
pub trait Engine: Send + Sync + 'static {
    fn activate(&self, key: InstanceKey, plan: GraphPlan) -> BoxFuture<'static, Result<(), ActivationError>>;
    /// Returns when every node has stopped and every file is closed.
    fn deactivate(&self, key: InstanceKey) -> BoxFuture<'static, ()>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Inactive,
    Activating,
    Active,
    Deactivating,
}

impl State {
    pub fn as_str(&self, g: Generation) -> &'static str {
        match (self, g) {
            (State::Inactive, Generation::Lva) => "Inactive",
            (State::Activating, Generation::Lva) => "Activating",
            (State::Active, Generation::Lva) => "Active",
            (State::Deactivating, Generation::Lva) => "Deactivating",
            (State::Inactive, Generation::Ava) => "inactive",
            (State::Activating, Generation::Ava) => "activating",
            (State::Active, Generation::Ava) => "active",
            (State::Deactivating, Generation::Ava) => "deactivating",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TopologySet,
    TopologyGet,
    TopologyList,
    TopologyDelete,
    InstanceSet,
    InstanceGet,
    InstanceList,
    InstanceActivate,
    InstanceDeactivate,
    InstanceDelete,
}

const METHODS: &[(&str, &str, Op)] = &[
    ("GraphTopologySet", "pipelineTopologySet", Op::TopologySet),
    ("GraphTopologyGet", "pipelineTopologyGet", Op::TopologyGet),
    ("GraphTopologyList", "pipelineTopologyList", Op::TopologyList),
    ("GraphTopologyDelete", "pipelineTopologyDelete", Op::TopologyDelete),
    ("GraphInstanceSet", "livePipelineSet", Op::InstanceSet),
    ("GraphInstanceGet", "livePipelineGet", Op::InstanceGet),
    ("GraphInstanceList", "livePipelineList", Op::InstanceList),
    ("GraphInstanceActivate", "livePipelineActivate", Op::InstanceActivate),
    ("GraphInstanceDeactivate", "livePipelineDeactivate", Op::InstanceDeactivate),
    ("GraphInstanceDelete", "livePipelineDelete", Op::InstanceDelete),
];

/// AVA 1.1 methods that need the cloud service or ONVIF devices.
const NOT_SUPPORTED: &[&str] = &[
    "remoteDeviceAdapterSet",
    "remoteDeviceAdapterGet",
    "remoteDeviceAdapterList",
    "remoteDeviceAdapterDelete",
    "onvifDeviceDiscover",
    "onvifDeviceGet",
];

fn lookup(method: &str) -> Option<(Generation, Op)> {
    METHODS.iter().find_map(|(lva, ava, op)| {
        if lva.eq_ignore_ascii_case(method) {
            Some((Generation::Lva, *op))
        } else if ava.eq_ignore_ascii_case(method) {
            Some((Generation::Ava, *op))
        } else {
            None
        }
    })
}

fn names(g: Generation) -> (&'static str, &'static str) {
    match g {
        Generation::Lva => ("Graph topology", "Graph instance"),
        Generation::Ava => ("Pipeline topology", "Live pipeline"),
    }
}

fn in_use_code(g: Generation) -> &'static str {
    match g {
        Generation::Lva => "GraphTopologyInUse",
        Generation::Ava => "PipelineTopologyInUse",
    }
}

use crate::topology::field as get_ci;

pub struct Controller {
    store: Store,
    engine: Arc<dyn Engine>,
    clock: Arc<dyn Clock>,
    states: Mutex<HashMap<InstanceKey, State>>,
    running: Mutex<HashMap<InstanceKey, GraphPlan>>,
    writes: tokio::sync::Mutex<()>,
}

impl Controller {
    pub fn new(store: Store, engine: Arc<dyn Engine>, clock: Arc<dyn Clock>) -> Self {
        Controller {
            store,
            engine,
            clock,
            states: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn state(&self, key: &InstanceKey) -> State {
        *self.states.lock().expect("state lock").get(key).unwrap_or(&State::Inactive)
    }

    fn set_state(&self, key: &InstanceKey, s: State) {
        self.states.lock().expect("state lock").insert(key.clone(), s);
    }

    /// The plan an active instance runs.
    pub fn running_plan(&self, key: &InstanceKey) -> Option<GraphPlan> {
        self.running.lock().expect("running lock").get(key).cloned()
    }

    /// Activates every instance whose desired state is active (after a restart).
    /// Returns the ones that could not be activated, with the response saying why.
    pub async fn restore(&self) -> Vec<(InstanceKey, Response)> {
        let mut failed = Vec::new();
        for g in [Generation::Lva, Generation::Ava] {
            let instances = match self.store.instances(g) {
                Ok(i) => i,
                Err(e) => {
                    failed.push(((g, String::new()), store_error(e)));
                    continue;
                }
            };
            for i in instances.into_iter().filter(|i| i.active) {
                let r = self.activate(g, &i.name).await;
                if !r.is_success() {
                    failed.push(((g, i.name.clone()), r));
                }
            }
        }
        failed
    }

    /// Handles one direct method call.
    pub async fn invoke(&self, method: &str, payload: &[u8]) -> Response {
        let Some((g, op)) = lookup(method) else {
            if NOT_SUPPORTED.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                return Response::error(
                    501,
                    Top::NotImplemented,
                    "MethodNotSupported",
                    "$",
                    format!("'{method}' needs the Azure Video Analyzer cloud service or ONVIF discovery, which Vela does not provide"),
                );
            }
            return Response::error(501, Top::NotImplemented, "MethodNotFound", "$", format!("there is no direct method named '{method}'"));
        };
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Response::error(
                400,
                Top::BadRequest,
                "PayloadTooLarge",
                "$",
                format!("the payload is {} bytes; direct-method payloads are limited to {MAX_PAYLOAD_BYTES}", payload.len()),
            );
        }
        let doc = match topology::parse_json(payload) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Response::error(400, Top::BadRequest, "InvalidJson", "$", "the payload must be a JSON object"),
            Err(e) => return Response::error(400, Top::BadRequest, "InvalidJson", "$", e.details[0].message.clone()),
        };
        // A topology of the other generation: say which method takes it, before any
        // version complaint (its version is right for that method).
        if op == Op::TopologySet {
            if let Some(dg) = topology::document_generation(&Value::Object(doc.clone())).filter(|dg| *dg != g) {
                return generation_mismatch(g, dg, "$");
            }
        }
        let api = match get_ci(&doc, "@apiVersion") {
            Some(Value::String(s)) => match ApiVersion::parse(g, s) {
                Some(v) => v,
                None => {
                    return Response::error(
                        400,
                        Top::BadRequest,
                        "ApiVersionNotSupported",
                        "$['@apiVersion']",
                        format!("The API version '{s}' is not supported. Supported version(s): {}.", ApiVersion::supported(g)),
                    )
                }
            },
            Some(_) => {
                return Response::error(400, Top::BadRequest, "PropertyTypeInvalid", "$['@apiVersion']", "'@apiVersion' must be a string")
            }
            None => {
                return Response::error(
                    400,
                    Top::BadRequest,
                    "ApiVersionRequired",
                    "$['@apiVersion']",
                    format!("'@apiVersion' is required; supported version(s): {}", ApiVersion::supported(g)),
                )
            }
        };
        match op {
            Op::TopologySet => self.set_topology(g, api, Value::Object(doc), Origin::Method).await,
            Op::InstanceSet => self.set_instance(g, api, Value::Object(doc), Origin::Method).await,
            Op::TopologyList | Op::InstanceList => {
                if let Some(r) = unknown_keys(&doc, &["@apiVersion", "@continuationToken", "@query"]) {
                    return r;
                }
                let token = match get_ci(&doc, "@continuationToken") {
                    None => None,
                    Some(Value::String(t)) => Some(t.clone()),
                    Some(_) => {
                        return Response::error(400, Top::BadRequest, "PropertyTypeInvalid", "$['@continuationToken']", "must be a string")
                    }
                };
                let descending = match get_ci(&doc, "@query") {
                    None => false,
                    Some(Value::String(q)) => match q.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase().as_str() {
                        "$orderby=name" | "$orderby=name asc" => false,
                        "$orderby=name desc" => true,
                        _ => {
                            return Response::error(
                                400,
                                Top::BadRequest,
                                "QueryNotSupported",
                                "$['@query']",
                                format!("'{q}' is not supported; use \"$orderby=name asc\" or \"$orderby=name desc\""),
                            )
                        }
                    },
                    Some(_) => return Response::error(400, Top::BadRequest, "PropertyTypeInvalid", "$['@query']", "must be a string"),
                };
                if op == Op::TopologyList {
                    self.list_topologies(g, token, descending)
                } else {
                    self.list_instances(g, token, descending)
                }
            }
            _ => {
                if let Some(r) = unknown_keys(&doc, &["@apiVersion", "name"]) {
                    return r;
                }
                let name = match get_ci(&doc, "name") {
                    Some(Value::String(n)) if topology::valid_entity_name(n) => n.clone(),
                    Some(Value::String(n)) => {
                        return Response::error(
                            400,
                            Top::BadRequest,
                            "NameInvalid",
                            "$.Name",
                            format!("'{n}' is not a valid name: 1 to 32 letters, digits or dashes, not starting or ending with a dash"),
                        )
                    }
                    Some(_) => return Response::error(400, Top::BadRequest, "PropertyTypeInvalid", "$.Name", "'name' must be a string"),
                    None => {
                        return Response::error(400, Top::BadRequest, "PropertyRequired", "$.Name", "required property 'name' is missing")
                    }
                };
                match op {
                    Op::TopologyGet => self.get_topology(g, &name),
                    Op::TopologyDelete => self.delete_topology(g, &name).await,
                    Op::InstanceGet => self.get_instance(g, &name),
                    Op::InstanceActivate => self.activate(g, &name).await,
                    Op::InstanceDeactivate => self.deactivate(g, &name).await,
                    Op::InstanceDelete => self.delete_instance(g, &name).await,
                    _ => unreachable!("handled above"),
                }
            }
        }
    }

    fn now(&self) -> String {
        rfc3339_millis(self.clock.now())
    }

    // ---- topologies ----

    /// Creates or replaces a topology (the method's and the config files' path).
    pub async fn set_topology(&self, g: Generation, api: ApiVersion, doc: Value, origin: Origin) -> Response {
        let plan = match topology::check_topology(&doc, Some(api)) {
            Ok(p) => p,
            Err(e) => return Response::invalid(e.to_odata()),
        };
        if plan.api_version.generation() != g {
            return generation_mismatch(g, plan.api_version.generation(), "$");
        }
        let name = plan.topology_name.clone();
        let properties = doc.as_object().and_then(|m| get_ci(m, "properties")).cloned().unwrap_or(Value::Null);
        let _w = self.writes.lock().await;
        let existing = match self.store.topology(g, &name) {
            Ok(t) => t,
            Err(e) => return store_error(e),
        };
        let new_doc = topology_doc(plan.api_version.as_str(), &name, &properties);
        // Instances built on this topology must stay valid; running ones must keep
        // exactly the graph they run.
        if existing.is_some() {
            let instances = match self.store.instances(g) {
                Ok(i) => i,
                Err(e) => return store_error(e),
            };
            for i in instances.iter().filter(|i| i.topology_name == name) {
                let key = (g, i.name.clone());
                let compiled = topology::compile_instance(&new_doc, &instance_doc(i), None);
                let state = self.state(&key);
                let refusal = match (&compiled, state) {
                    (Err(e), _) => Some(format!("instance '{}' would no longer be valid: {}", i.name, first_error(e))),
                    (Ok(p), State::Active | State::Activating | State::Deactivating)
                        if !self.running_plan(&key).is_some_and(|r| r.same_graph(p)) =>
                    {
                        Some(format!("instance '{}' is {} and this change alters its graph; deactivate it first", i.name, state.as_str(g)))
                    }
                    _ => None,
                };
                if let Some(msg) = refusal {
                    return Response::error(409, Top::Conflict, in_use_code(g), "$.Name", msg);
                }
            }
        }
        let stored = StoredTopology {
            name: name.clone(),
            generation: g,
            api_version: plan.api_version.as_str().to_string(),
            system_data: system_data(existing.as_ref().map(|e| &e.system_data), self.now()),
            properties,
            origin,
        };
        if let Err(e) = self.store.put_topology(&stored) {
            return store_error(e);
        }
        Response::upserted(existing.is_some(), render_topology(&stored))
    }

    fn get_topology(&self, g: Generation, name: &str) -> Response {
        match self.store.topology(g, name) {
            Ok(Some(t)) => Response::ok(render_topology(&t)),
            Ok(None) => not_found(names(g).0, name),
            Err(e) => store_error(e),
        }
    }

    fn list_topologies(&self, g: Generation, token: Option<String>, descending: bool) -> Response {
        match self.store.topologies(g) {
            Ok(all) => page(all.iter().map(|t| (t.name.clone(), render_topology(t))).collect(), token, descending),
            Err(e) => store_error(e),
        }
    }

    /// Deletes a topology no instance uses: 200, or 204 when there was none.
    pub async fn delete_topology(&self, g: Generation, name: &str) -> Response {
        let _w = self.writes.lock().await;
        let users: Vec<String> = match self.store.instances(g) {
            Ok(i) => i.into_iter().filter(|i| i.topology_name == name).map(|i| i.name).collect(),
            Err(e) => return store_error(e),
        };
        if !users.is_empty() {
            return Response::error(
                409,
                Top::Conflict,
                in_use_code(g),
                "$.Name",
                format!("{} '{name}' is used by {}; delete them first", names(g).0, quoted(&users)),
            );
        }
        match self.store.remove_topology(g, name) {
            Ok(true) => Response::empty(200),
            Ok(false) => Response::empty(204),
            Err(e) => store_error(e),
        }
    }

    // ---- instances ----

    /// Creates or replaces an instance; only an inactive one may change.
    pub async fn set_instance(&self, g: Generation, api: ApiVersion, mut doc: Value, origin: Origin) -> Response {
        let Some((name, topology_name)) = instance_names(&doc) else {
            // Let the compiler explain what is missing.
            let empty = topology_doc(api.as_str(), "unknown", &json!({}));
            return match topology::check_instance_document(&doc) {
                Err(e) => Response::invalid(e.to_odata()),
                Ok(_) => Response::invalid(
                    topology::compile_instance(&empty, &doc, Some(api)).err().map(|e| e.to_odata()).unwrap_or(Value::Null),
                ),
            };
        };
        let _w = self.writes.lock().await;
        let topo = match self.store.topology(g, &topology_name) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Response::error(
                    400,
                    Top::InvalidResource,
                    "TopologyNotFound",
                    "$.Properties.TopologyName",
                    format!("{} '{topology_name}' does not exist; set it first", names(g).0),
                )
            }
            Err(e) => return store_error(e),
        };
        let key = (g, name.clone());
        let existing = match self.store.instance(g, &name) {
            Ok(i) => i,
            Err(e) => return store_error(e),
        };
        let state = self.state(&key);
        if state != State::Inactive {
            return not_allowed(format!("{} '{name}' is {}; deactivate it before changing it", names(g).1, state.as_str(g)));
        }
        if let Some(prev) = &existing {
            restore_redacted(&mut doc, prev);
        }
        let tdoc = topology_doc(&topo.api_version, &topo.name, &topo.properties);
        if let Err(e) = topology::compile_instance(&tdoc, &doc, Some(api)) {
            return Response::invalid(attribute(e, &topo.name));
        }
        let stored = StoredInstance {
            name: name.clone(),
            generation: g,
            api_version: api.as_str().to_string(),
            system_data: system_data(existing.as_ref().map(|e| &e.system_data), self.now()),
            topology_name,
            description: instance_description(&doc),
            parameters: instance_parameters(&doc),
            active: false,
            origin,
        };
        if let Err(e) = self.store.put_instance(&stored) {
            return store_error(e);
        }
        self.set_state(&key, State::Inactive);
        Response::upserted(existing.is_some(), self.render_instance(&stored, Some(&topo)))
    }

    /// Stores a new document for a running instance whose compiled graph it leaves
    /// identical (a description edit in a config file): nothing restarts. Refused with
    /// 409 when the graph would change.
    pub async fn update_running_instance(&self, g: Generation, api: ApiVersion, doc: Value, origin: Origin) -> Response {
        let _w = self.writes.lock().await;
        let Some((name, _)) = instance_names(&doc) else {
            return Response::error(400, Top::InvalidResource, "PropertyRequired", "$.Name", "the instance has no name or topologyName");
        };
        let key = (g, name.clone());
        let (existing, running) = match (self.store.instance(g, &name), self.running_plan(&key)) {
            (Ok(Some(e)), Some(r)) => (e, r),
            (Err(e), _) => return store_error(e),
            _ => return not_found(names(g).1, &name),
        };
        let topo = match self.store.topology(g, &existing.topology_name) {
            Ok(Some(t)) => t,
            Ok(None) => return not_found(names(g).0, &existing.topology_name),
            Err(e) => return store_error(e),
        };
        let tdoc = topology_doc(&topo.api_version, &topo.name, &topo.properties);
        match topology::compile_instance(&tdoc, &doc, Some(api)) {
            Ok(p) if p.same_graph(&running) => {}
            Ok(_) => {
                return not_allowed(format!("{} '{name}' is active and this change alters its graph; deactivate it first", names(g).1))
            }
            Err(e) => return Response::invalid(attribute(e, &topo.name)),
        }
        let stored = StoredInstance {
            system_data: system_data(Some(&existing.system_data), self.now()),
            description: instance_description(&doc),
            parameters: instance_parameters(&doc),
            origin,
            ..existing
        };
        if let Err(e) = self.store.put_instance(&stored) {
            return store_error(e);
        }
        Response::ok(self.render_instance(&stored, Some(&topo)))
    }

    fn get_instance(&self, g: Generation, name: &str) -> Response {
        match self.store.instance(g, name) {
            Ok(Some(i)) => {
                let topo = self.store.topology(g, &i.topology_name).ok().flatten();
                Response::ok(self.render_instance(&i, topo.as_ref()))
            }
            Ok(None) => not_found(names(g).1, name),
            Err(e) => store_error(e),
        }
    }

    fn list_instances(&self, g: Generation, token: Option<String>, descending: bool) -> Response {
        let all = match self.store.instances(g) {
            Ok(i) => i,
            Err(e) => return store_error(e),
        };
        let items = all
            .iter()
            .map(|i| {
                let topo = self.store.topology(g, &i.topology_name).ok().flatten();
                (i.name.clone(), self.render_instance(i, topo.as_ref()))
            })
            .collect();
        page(items, token, descending)
    }

    /// A stored instance, or the answer that it is missing (or unreadable).
    fn load_instance(&self, g: Generation, name: &str) -> Result<StoredInstance, Response> {
        match self.store.instance(g, name) {
            Ok(Some(i)) => Ok(i),
            Ok(None) => Err(not_found(names(g).1, name)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Starts an instance; returns when it is active (or refused).
    pub async fn activate(&self, g: Generation, name: &str) -> Response {
        let _w = self.writes.lock().await;
        let key = (g, name.to_string());
        let mut inst = match self.load_instance(g, name) {
            Ok(i) => i,
            Err(r) => return r,
        };
        match self.state(&key) {
            State::Active => return Response::empty(200),
            State::Deactivating => return not_allowed(format!("{} '{name}' is deactivating", names(g).1)),
            State::Inactive | State::Activating => {}
        }
        let topo = match self.store.topology(g, &inst.topology_name) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Response::error(
                    409,
                    Top::Conflict,
                    "ResourceValidationError",
                    "$.Name",
                    format!("{} '{}' of '{name}' no longer exists", names(g).0, inst.topology_name),
                )
            }
            Err(e) => return store_error(e),
        };
        let tdoc = topology_doc(&topo.api_version, &topo.name, &topo.properties);
        let plan = match topology::compile_instance(&tdoc, &instance_doc(&inst), None) {
            Ok(p) => p,
            Err(e) => return Response::invalid(attribute(e, &topo.name)),
        };
        self.set_state(&key, State::Activating);
        match self.engine.activate(key.clone(), plan.clone()).await {
            Ok(()) => {
                self.running.lock().expect("running lock").insert(key.clone(), plan);
                self.set_state(&key, State::Active);
                if !inst.active {
                    inst.active = true;
                    if let Err(e) = self.store.put_instance(&inst) {
                        return store_error(e);
                    }
                }
                Response::empty(200)
            }
            Err(ActivationError::Unsupported { node, ty }) => {
                self.set_state(&key, State::Inactive);
                Response::error(
                    400,
                    Top::InvalidResource,
                    "ModuleValidationError",
                    "$.Name",
                    format!("node '{node}' ({}) cannot run yet: this version of Vela does not implement it", ty.short()),
                )
            }
            Err(ActivationError::Invalid(msg)) => {
                self.set_state(&key, State::Inactive);
                Response::error(400, Top::InvalidResource, "ModuleValidationError", "$.Name", msg)
            }
            Err(ActivationError::Resource(msg)) => {
                self.set_state(&key, State::Inactive);
                Response::error(409, Top::Conflict, "ResourceValidationError", "$.Name", msg)
            }
        }
    }

    /// Stops an instance; returns when it is inactive.
    pub async fn deactivate(&self, g: Generation, name: &str) -> Response {
        let _w = self.writes.lock().await;
        let key = (g, name.to_string());
        let mut inst = match self.load_instance(g, name) {
            Ok(i) => i,
            Err(r) => return r,
        };
        match self.state(&key) {
            State::Inactive => {}
            State::Activating => return not_allowed(format!("{} '{name}' is activating", names(g).1)),
            State::Active | State::Deactivating => {
                self.set_state(&key, State::Deactivating);
                self.engine.deactivate(key.clone()).await;
                self.running.lock().expect("running lock").remove(&key);
                self.set_state(&key, State::Inactive);
            }
        }
        if inst.active {
            inst.active = false;
            if let Err(e) = self.store.put_instance(&inst) {
                return store_error(e);
            }
        }
        Response::empty(200)
    }

    /// Deletes an inactive instance: 200, or 204 when there was none.
    pub async fn delete_instance(&self, g: Generation, name: &str) -> Response {
        let _w = self.writes.lock().await;
        let key = (g, name.to_string());
        let state = self.state(&key);
        if state != State::Inactive {
            return not_allowed(format!("{} '{name}' is {}; only inactive ones can be deleted", names(g).1, state.as_str(g)));
        }
        match self.store.remove_instance(g, name) {
            Ok(true) => {
                self.states.lock().expect("state lock").remove(&key);
                Response::empty(200)
            }
            Ok(false) => Response::empty(204),
            Err(e) => store_error(e),
        }
    }

    fn render_instance(&self, i: &StoredInstance, topo: Option<&StoredTopology>) -> Value {
        let secret = |p: &str| topo.is_some_and(|t| secret_parameters(&t.properties).iter().any(|s| s == p));
        let params: Vec<Value> =
            i.parameters.iter().map(|(n, v)| json!({ "name": n, "value": if secret(n) { REDACTED } else { v.as_str() } })).collect();
        let mut props = Map::new();
        if let Some(d) = &i.description {
            props.insert("description".into(), json!(d));
        }
        props.insert("topologyName".into(), json!(i.topology_name));
        props.insert("parameters".into(), Value::Array(params));
        props.insert("state".into(), json!(self.state(&(i.generation, i.name.clone())).as_str(i.generation)));
        json!({ "name": i.name, "systemData": i.system_data, "properties": props })
    }
}

/// `createdAt` kept from the previous version, `lastModifiedAt` now.
fn system_data(previous: Option<&SystemData>, now: String) -> SystemData {
    SystemData { created_at: previous.map(|p| p.created_at.clone()).unwrap_or_else(|| now.clone()), last_modified_at: now }
}

fn unknown_keys(doc: &Map<String, Value>, allowed: &[&str]) -> Option<Response> {
    let bad = doc.keys().find(|k| !allowed.iter().any(|a| a.eq_ignore_ascii_case(k)))?;
    let hint = crate::topology::error::did_you_mean(bad, allowed.iter().copied());
    Some(Response::error(
        400,
        Top::BadRequest,
        "PropertyUnknown",
        &crate::topology::JsonPath::root().key(bad).to_string(),
        format!("unknown property '{bad}'{hint}; this method takes {}", allowed.join(", ")),
    ))
}

fn generation_mismatch(method: Generation, doc: Generation, target: &str) -> Response {
    let (doc_name, set_with) = match doc {
        Generation::Lva => ("an LVA (#Microsoft.Media) topology", "GraphTopologySet"),
        Generation::Ava => ("an AVA (#Microsoft.VideoAnalyzer) topology", "pipelineTopologySet"),
    };
    let _ = method;
    Response::error(400, Top::BadRequest, "GenerationMismatch", target, format!("this is {doc_name}; set it with {set_with}"))
}

/// 409 `OperationNotAllowedInState`: the instance's state forbids the call.
fn not_allowed(message: String) -> Response {
    Response::error(409, Top::Conflict, "OperationNotAllowedInState", "$.Name", message)
}

fn not_found(what: &str, name: &str) -> Response {
    Response::error(404, Top::NotFound, "NotFound", "$.Name", format!("{what} '{name}' is not found."))
}

fn store_error(e: StoreError) -> Response {
    tracing::error!(error = %e, "state database");
    Response::error(500, Top::InternalServerError, "StorageError", "$", e.to_string())
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

fn first_error(e: &CompileErrors) -> String {
    e.details.first().map(|d| format!("{} at {}: {}", d.code.as_str(e.ava), d.target, d.message)).unwrap_or_default()
}

/// The compiler's error body, with errors that point into the stored topology named
/// as such (the caller sent only the instance).
fn attribute(e: CompileErrors, topology_name: &str) -> Value {
    let mut body = e.to_odata();
    if let Some(details) = body["error"]["details"].as_array_mut() {
        for (d, src) in details.iter_mut().zip(&e.details) {
            if src.document == Document::Topology {
                let m = d["message"].as_str().unwrap_or_default().to_string();
                d["message"] = json!(format!("in topology '{topology_name}': {m}"));
            }
        }
    }
    body
}

/// One page of a List answer, sorted by name.
fn page(mut items: Vec<(String, Value)>, token: Option<String>, descending: bool) -> Response {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if descending {
        items.reverse();
    }
    let start = match token {
        None => 0,
        Some(t) => match t.strip_prefix("after:").and_then(|n| items.iter().position(|(name, _)| name == n)) {
            Some(i) => i + 1,
            None => {
                return Response::error(
                    400,
                    Top::BadRequest,
                    "ContinuationTokenInvalid",
                    "$['@continuationToken']",
                    "the continuation token is not one this module issued, or its item was deleted",
                )
            }
        },
    };
    let end = (start + PAGE_SIZE).min(items.len());
    let mut out = Map::new();
    out.insert("value".into(), Value::Array(items[start..end].iter().map(|(_, v)| v.clone()).collect()));
    if end < items.len() {
        out.insert("@continuationToken".into(), json!(format!("after:{}", items[end - 1].0)));
    }
    Response::ok(Value::Object(out))
}

/// A stored topology as a document the compiler reads.
pub(crate) fn topology_doc(api: &str, name: &str, properties: &Value) -> Value {
    json!({ "@apiVersion": api, "name": name, "properties": properties })
}

/// A stored instance as a document the compiler reads.
pub(crate) fn instance_doc(i: &StoredInstance) -> Value {
    let params: Vec<Value> = i.parameters.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect();
    let mut props = json!({ "topologyName": i.topology_name, "parameters": params });
    if let Some(d) = &i.description {
        props["description"] = json!(d);
    }
    json!({ "@apiVersion": i.api_version, "name": i.name, "properties": props })
}

fn render_topology(t: &StoredTopology) -> Value {
    let mut props = t.properties.clone();
    // SecretString defaults are secrets too.
    if let Some(params) = props
        .as_object_mut()
        .and_then(|m| m.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("parameters")))
        .and_then(|(_, v)| v.as_array_mut())
    {
        for p in params.iter_mut().filter_map(Value::as_object_mut) {
            let is_secret = get_ci(p, "type").and_then(Value::as_str).is_some_and(|ty| ty.eq_ignore_ascii_case("secretString"));
            if is_secret {
                if let Some((_, v)) = p.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("default")) {
                    *v = json!(REDACTED);
                }
            }
        }
    }
    json!({ "name": t.name, "systemData": t.system_data, "properties": props })
}

/// Names of the topology's `SecretString` parameters.
fn secret_parameters(properties: &Value) -> Vec<String> {
    let Some(params) = properties.as_object().and_then(|m| get_ci(m, "parameters")).and_then(Value::as_array) else {
        return vec![];
    };
    params
        .iter()
        .filter_map(Value::as_object)
        .filter(|p| get_ci(p, "type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("secretString")))
        .filter_map(|p| get_ci(p, "name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn props(doc: &Value) -> Option<&Map<String, Value>> {
    doc.as_object().and_then(|m| get_ci(m, "properties")).and_then(Value::as_object)
}

/// `(name, topologyName)` of an instance document, when both are strings.
fn instance_names(doc: &Value) -> Option<(String, String)> {
    let name = doc.as_object().and_then(|m| get_ci(m, "name")).and_then(Value::as_str)?;
    let topo = props(doc).and_then(|p| get_ci(p, "topologyName")).and_then(Value::as_str)?;
    Some((name.to_string(), topo.to_string()))
}

fn instance_description(doc: &Value) -> Option<String> {
    props(doc).and_then(|p| get_ci(p, "description")).and_then(Value::as_str).map(str::to_string)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The instance's parameter values (already validated by the compiler).
fn instance_parameters(doc: &Value) -> Vec<(String, String)> {
    let Some(list) = props(doc).and_then(|p| get_ci(p, "parameters")).and_then(Value::as_array) else {
        return vec![];
    };
    list.iter()
        .filter_map(Value::as_object)
        .filter_map(|p| Some((get_ci(p, "name")?.as_str()?.to_string(), scalar_text(get_ci(p, "value")?)?)))
        .collect()
}

/// A Set that sends back the redaction marker keeps the stored secret.
fn restore_redacted(doc: &mut Value, prev: &StoredInstance) {
    let Some(list) = doc
        .as_object_mut()
        .and_then(|m| m.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("properties")))
        .and_then(|(_, p)| p.as_object_mut())
        .and_then(|p| p.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("parameters")))
        .and_then(|(_, l)| l.as_array_mut())
    else {
        return;
    };
    for p in list.iter_mut().filter_map(Value::as_object_mut) {
        let Some(name) = get_ci(p, "name").and_then(Value::as_str).map(str::to_string) else { continue };
        if let Some((_, v)) = p.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("value")) {
            if v.as_str() == Some(REDACTED) {
                if let Some((_, old)) = prev.parameters.iter().find(|(n, _)| *n == name) {
                    *v = json!(old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
