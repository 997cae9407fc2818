//! The edge hub: routes module outputs to module inputs and `$upstream`, and serves module twins from the deployment.
//!
//! It is an MQTT client like the modules (client id `{device}/$edgeHub`), so it works
//! the same on the embedded broker and on an external one. It subscribes to every
//! module output of its device, matches each message against the routes, and publishes
//! one copy per sink with `$.cdid`/`$.cmid` set to the sender. Twin GETs and reported
//! patches are answered from memory; desired properties come from the deployment and
//! every change made by [`EdgeHub::set_deployment`] is published as a patch. The hub
//! uses a persistent session by default, so outputs sent while it reconnects are
//! delivered when it is back (within the broker's queue limits).

use super::client::{error_json, ClientOptions};
use super::connection::{self, Handler, Link, TaskGuard};
use super::deployment::Deployment;
use super::error::HubError;
use super::message::{encode_component, HubMessage};
use super::routes::{targets, Route, Sink};
use super::topics::{self, HubTopic};
use super::twin::TwinStore;
use bytes::Bytes;
use rumqttc::{Publish, QoS};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// The module id the hub connects as.
pub const HUB_MODULE_ID: &str = "$edgeHub";

/// Messages waiting for the routing task, by count and by payload bytes; beyond either
/// they are dropped and counted. The MQTT poll loop must never wait for the router (see
/// `connection.rs`), and waiting would not slow a producer anyway: the broker
/// acknowledges its publishes and would drop for a slow hub instead, silently.
const QUEUE_CAPACITY: usize = 8192;
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Module outputs received.
    pub received: u64,
    /// Copies published to sinks.
    pub delivered: u64,
    /// Outputs no route matched.
    pub unrouted: u64,
    /// Outputs or copies lost: malformed, queue full, or publish failed.
    pub dropped: u64,
}

/// The running hub. Stops when dropped.
pub struct EdgeHub {
    inner: Arc<HubInner>,
    _tasks: Arc<TaskGuard>,
}

struct HubInner {
    link: Link,
    device: String,
    state: Mutex<HubState>,
    /// Serializes `set_deployment` so patches go out in version order.
    deploy_lock: tokio::sync::Mutex<()>,
    queue: mpsc::Sender<Publish>,
    queued_bytes: AtomicUsize,
    received: AtomicU64,
    delivered: AtomicU64,
    unrouted: AtomicU64,
    dropped: AtomicU64,
}

struct HubState {
    routes: Arc<Vec<Route>>,
    twins: TwinStore,
}

impl ClientOptions {
    /// Options for the hub itself: module id `$edgeHub` and a persistent session.
    pub fn hub(url: impl Into<String>, device_id: impl Into<String>) -> Self {
        let mut o = ClientOptions::new(url, device_id, HUB_MODULE_ID);
        o.clean_session = false;
        o
    }
}

impl EdgeHub {
    /// Connects as `{device}/$edgeHub` (whatever `options.module_id` says), waits for
    /// the first connection and starts routing with `deployment`.
    pub async fn start(mut options: ClientOptions, deployment: Deployment) -> Result<EdgeHub, HubError> {
        options.module_id = HUB_MODULE_ID.to_string();
        let cfg = options.connection_config()?;
        let device = options.device_id.clone();
        let initial = [
            (topics::events_filter(&device), QoS::AtLeastOnce),
            (topics::twin_gets_filter(&device), QoS::AtLeastOnce),
            (topics::twin_reported_patches_filter(&device), QoS::AtLeastOnce),
        ];
        // Twins live in memory; a base unique to this start lets modules that knew an
        // earlier hub notice (see twin.rs).
        let base = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1);
        let mut twins = TwinStore::with_base_version(base);
        twins.set_all_desired(&deployment.desired);
        let routes = deployment.routes.len();
        let (queue_tx, mut queue_rx) = mpsc::channel(QUEUE_CAPACITY);
        info!(url = %cfg.endpoint.display(), device = %device, routes, modules = deployment.desired.len(), "starting the edge hub");
        let (link, inner, tasks) = connection::start(cfg, &initial, |link| {
            Arc::new(HubInner {
                link,
                device,
                state: Mutex::new(HubState { routes: Arc::new(deployment.routes), twins }),
                deploy_lock: tokio::sync::Mutex::new(()),
                queue: queue_tx,
                queued_bytes: AtomicUsize::new(0),
                received: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                unrouted: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            })
        });
        let worker = inner.clone();
        tasks.adopt(tokio::spawn(async move {
            while let Some(p) = queue_rx.recv().await {
                worker.queued_bytes.fetch_sub(p.payload.len(), Ordering::Relaxed);
                worker.process(p).await;
            }
        }));
        let hub = EdgeHub { inner, _tasks: Arc::new(tasks) };
        link.wait_ready(options.connect_timeout).await?;
        Ok(hub)
    }

    pub fn device_id(&self) -> &str {
        &self.inner.device
    }

    /// The routes in force.
    pub fn routes(&self) -> Vec<Route> {
        self.inner.state.lock().expect("hub state lock").routes.as_ref().clone()
    }

    pub fn stats(&self) -> HubStats {
        let i = &self.inner;
        HubStats {
            received: i.received.load(Ordering::Relaxed),
            delivered: i.delivered.load(Ordering::Relaxed),
            unrouted: i.unrouted.load(Ordering::Relaxed),
            dropped: i.dropped.load(Ordering::Relaxed),
        }
    }

    /// Replaces the routes and the desired properties, and publishes a desired patch to
    /// every module whose properties changed (a module left out of `deployment` gets
    /// its properties removed). A patch that cannot be sent now reaches the module
    /// later: the hub sends its latest patches again after every reconnection.
    pub async fn set_deployment(&self, deployment: Deployment) -> Result<(), HubError> {
        let _order = self.inner.deploy_lock.lock().await;
        let routes = deployment.routes.len();
        let patches = {
            let mut st = self.inner.state.lock().expect("hub state lock");
            st.routes = Arc::new(deployment.routes);
            st.twins.set_all_desired(&deployment.desired)
        };
        info!(device = %self.inner.device, routes, changed_modules = patches.len(), "deployment applied");
        for (module, version, patch) in patches {
            self.inner.send_desired_patch(&module, version, &patch).await;
        }
        Ok(())
    }

    /// Disconnects cleanly and stops.
    pub async fn shutdown(self) {
        self.inner.link.disconnect().await;
    }
}

impl HubInner {
    async fn process(&self, p: Publish) {
        match topics::parse_topic(&p.topic) {
            Some(HubTopic::Events { device, module, bag }) if device == self.device => self.route(module, bag, p.payload).await,
            Some(HubTopic::TwinGet { device, module, rid }) if device == self.device => {
                let doc = self.state.lock().expect("hub state lock").twins.get(module);
                let body = Bytes::from(serde_json::to_vec(&doc).expect("a Value serializes"));
                self.send(topics::twin_response_topic(&self.device, module, 200, &rid, None), body).await;
                debug!(module, rid = %rid, "twin served");
            }
            Some(HubTopic::TwinReportedPatch { device, module, rid }) if device == self.device => {
                let (status, version, body) = match serde_json::from_slice::<Value>(&p.payload) {
                    Ok(Value::Object(patch)) => {
                        let v = self.state.lock().expect("hub state lock").twins.patch_reported(module, &patch);
                        (204, Some(v), Bytes::new())
                    }
                    _ => {
                        let e = error_json("BadRequest", "Reported properties must be a JSON object.");
                        (400, None, Bytes::from(serde_json::to_vec(&e).expect("a Value serializes")))
                    }
                };
                self.send(topics::twin_response_topic(&self.device, module, status, &rid, version), body).await;
            }
            _ => debug!(topic = %p.topic, "hub ignores a message"),
        }
    }

    async fn route(&self, module: &str, bag: &str, body: Bytes) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let mut msg = match HubMessage::decode(bag, body) {
            Ok(m) => m,
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(from = module, error = %e, "dropping an output with a malformed property bag");
                return;
            }
        };
        let routes = self.state.lock().expect("hub state lock").routes.clone();
        let sinks = targets(&routes, module, msg.output_name.as_deref());
        if sinks.is_empty() {
            self.unrouted.fetch_add(1, Ordering::Relaxed);
            debug!(from = module, output = msg.output_name.as_deref(), "no route matches");
            return;
        }
        msg.connection_device_id = Some(self.device.clone());
        msg.connection_module_id = Some(module.to_string());
        let bag = msg.encode_bag();
        for sink in &sinks {
            let topic = match sink {
                Sink::Upstream => {
                    // The output is one topic level here; a name that could not be one
                    // is percent-encoded (the bag has it verbatim in `$.on`).
                    let output = msg.output_name.as_deref().map(|o| match topics::validate_name("output name", o) {
                        Ok(()) => o.to_string(),
                        Err(_) => encode_component(o),
                    });
                    topics::upstream_topic(&self.device, module, output.as_deref(), &bag)
                }
                Sink::ModuleInput { module: to, input } => topics::input_topic(&self.device, to, input, &bag),
            };
            match self.link.publish(topic, QoS::AtLeastOnce, msg.body.clone()).await {
                Ok(()) => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    debug!(from = module, output = msg.output_name.as_deref(), sink = %sink, "routed");
                }
                Err(e) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    warn!(from = module, output = msg.output_name.as_deref(), sink = %sink, error = %e, "could not deliver a routed message");
                }
            }
        }
    }

    async fn send_desired_patch(&self, module: &str, version: u64, patch: &Value) {
        let body = Bytes::from(serde_json::to_vec(patch).expect("a Value serializes"));
        match self.link.publish(topics::twin_desired_patch_topic(&self.device, module, version), QoS::AtLeastOnce, body).await {
            Ok(()) => debug!(module, version, "desired properties patch sent"),
            Err(e) => warn!(module, version, error = %e, "desired properties patch not sent; it is sent again on reconnection"),
        }
    }

    async fn send(&self, topic: String, body: Bytes) {
        if let Err(e) = self.link.publish(topic, QoS::AtLeastOnce, body).await {
            warn!(error = %e, "hub answer not sent");
        }
    }
}

impl Handler for HubInner {
    fn on_publish(self: &Arc<Self>, p: Publish) {
        let size = p.payload.len();
        let over_budget = self.queued_bytes.fetch_add(size, Ordering::Relaxed) + size > QUEUE_BYTES;
        let refused = if over_budget {
            Some(p)
        } else {
            match self.queue.try_send(p) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p)) => Some(p),
            }
        };
        if let Some(p) = refused {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(topic = %p.topic, dropped_total = n, "hub queue full (outputs arrive faster than they are routed); dropping");
            }
        }
    }

    async fn on_connected(self: &Arc<Self>) {
        let patches = self.state.lock().expect("hub state lock").twins.last_patches();
        for (module, version, patch) in patches {
            self.send_desired_patch(&module, version, &patch).await;
        }
    }
}
