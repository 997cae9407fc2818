//! `ModuleClient`: a module's connection to the hub (outputs, routed inputs, direct methods, twin) over rumqttc.
//!
//! One MQTT connection per module, client id `{device}/{module}` (percent-encoded, see
//! `topics::client_id`), driven by its own task (`connection.rs`) with reconnects and
//! resubscription. Modules use `clean_session = true` by default: with a persistent
//! session rumqttd replays every message of a subscribed topic published while the module
//! was away, QoS 0 included, so a direct method whose caller gave up long ago would run on
//! reconnect. The price is that routed inputs published while a module is disconnected
//! are lost (edgeHub would store and forward them); `docs/hub.md` lists this.

use super::connection::{self, ConnectionConfig, Handler, Link, TaskGuard};
use super::error::HubError;
use super::message::HubMessage;
use super::topics::{self, HubTopic};
use super::twin::{DesiredAction, DesiredTracker};
use super::{MAX_MESSAGE_BYTES, MAX_METHOD_PAYLOAD_BYTES};
use bytes::Bytes;
use futures::FutureExt;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::{debug, error, info, warn};

/// A password or other secret: shown as `***` by `Debug`, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// How to reach the hub and who we are.
#[derive(Clone)]
pub struct ClientOptions {
    /// `mqtt://[user[:password]@]host[:port]`.
    pub url: String,
    pub device_id: String,
    pub module_id: String,
    /// Overrides a user name in the URL.
    pub username: Option<String>,
    /// Overrides a password in the URL.
    pub password: Option<Password>,
    /// Default true for modules (see the module documentation), false for the hub.
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// How long `connect` waits for the first connection.
    pub connect_timeout: Duration,
    /// Reconnect backoff: starts at `reconnect_min`, doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Routed messages buffered for `inputs()`; more are dropped and counted.
    pub input_capacity: usize,
}

impl ClientOptions {
    pub fn new(url: impl Into<String>, device_id: impl Into<String>, module_id: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            device_id: device_id.into(),
            module_id: module_id.into(),
            username: None,
            password: None,
            clean_session: true,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            input_capacity: 1024,
        }
    }

    pub(crate) fn connection_config(&self) -> Result<ConnectionConfig, HubError> {
        topics::validate_id("device id", &self.device_id)?;
        topics::validate_id("module id", &self.module_id)?;
        let mut endpoint = connection::parse_url(&self.url)?;
        if let Some(u) = &self.username {
            endpoint.username = Some(u.clone());
        }
        if let Some(p) = &self.password {
            endpoint.password = Some(p.clone());
        }
        if endpoint.password.is_some() && endpoint.username.is_none() {
            return Err(HubError::InvalidUrl { url: endpoint.display(), reason: "a password needs a user name".to_string() });
        }
        Ok(ConnectionConfig {
            endpoint,
            client_id: topics::client_id(&self.device_id, &self.module_id),
            clean_session: self.clean_session,
            keep_alive: self.keep_alive.max(Duration::from_secs(5)),
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max.max(self.reconnect_min),
            subscribe_timeout: Duration::from_secs(10),
        })
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &connection::redact_url(&self.url))
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("clean_session", &self.clean_session)
            .finish_non_exhaustive()
    }
}

/// A direct method's answer: an HTTP-like status and an optional JSON payload.
pub type MethodResponse = (u16, Option<Value>);

type BoxedHandler = Arc<dyn Fn(String, Option<Value>) -> Pin<Box<dyn Future<Output = MethodResponse> + Send>> + Send + Sync>;

/// How long a module waits for the hub to answer a twin request before asking again
/// (doubling up to 30 s).
const TWIN_RETRY_FIRST: Duration = Duration::from_secs(2);
const TWIN_RETRY_MAX: Duration = Duration::from_secs(30);

/// A module's connection to the hub. Clones share the connection, which closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct ModuleClient {
    inner: Arc<Inner>,
    _tasks: Arc<TaskGuard>,
}

struct Inner {
    link: Link,
    device: String,
    module: String,
    inputs_tx: mpsc::Sender<(String, HubMessage)>,
    inputs_rx: Mutex<Option<mpsc::Receiver<(String, HubMessage)>>>,
    dropped_inputs: AtomicU64,
    handler: RwLock<Option<BoxedHandler>>,
    /// Direct-method calls of ours waiting for an answer, by `$rid`.
    calls: Mutex<HashMap<String, oneshot::Sender<(u16, Bytes)>>>,
    /// Modules whose method answers we subscribed to.
    call_targets: Mutex<HashSet<(String, String)>>,
    twin: Mutex<TwinState>,
    twin_tx: watch::Sender<Value>,
    /// Wakes the twin task: read the whole twin (first use, reconnect, resync).
    twin_wanted: Notify,
    /// Signals the twin task that the GET it sent was answered.
    twin_answered: Notify,
}

#[derive(Default)]
struct TwinState {
    enabled: bool,
    tracker: DesiredTracker,
    get_rid: Option<String>,
    /// Reported-property patches waiting for the hub's answer, by `$rid`.
    reports: HashMap<String, oneshot::Sender<(u16, Option<u64>)>>,
}

impl ModuleClient {
    /// Connects and waits (up to `options.connect_timeout`) for the first connection.
    /// Afterwards the client reconnects by itself for as long as it lives.
    pub async fn connect(options: ClientOptions) -> Result<ModuleClient, HubError> {
        let cfg = options.connection_config()?;
        let device = options.device_id.clone();
        let module = options.module_id.clone();
        let (inputs_tx, inputs_rx) = mpsc::channel(options.input_capacity.max(1));
        info!(url = %cfg.endpoint.display(), device = %device, module = %module, clean_session = cfg.clean_session, "connecting module to the hub");
        let (link, inner, tasks) = connection::start(cfg, &[], |link| {
            Arc::new(Inner {
                link,
                device,
                module,
                inputs_tx,
                inputs_rx: Mutex::new(Some(inputs_rx)),
                dropped_inputs: AtomicU64::new(0),
                handler: RwLock::new(None),
                calls: Mutex::new(HashMap::new()),
                call_targets: Mutex::new(HashSet::new()),
                twin: Mutex::new(TwinState::default()),
                twin_tx: watch::Sender::new(Value::Null),
                twin_wanted: Notify::new(),
                twin_answered: Notify::new(),
            })
        });
        let client = ModuleClient { inner, _tasks: Arc::new(tasks) };
        link.wait_ready(options.connect_timeout).await?;
        Ok(client)
    }

    pub fn device_id(&self) -> &str {
        &self.inner.device
    }

    pub fn module_id(&self) -> &str {
        &self.inner.module
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner.link.is_connected()
    }

    /// Follows the connection going up and down.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.inner.link.connected_watch()
    }

    /// Routed messages dropped because `inputs()` was not read fast enough.
    pub fn dropped_inputs(&self) -> u64 {
        self.inner.dropped_inputs.load(Ordering::Relaxed)
    }

    /// Sends a message to one of this module's outputs (QoS 1); the hub routes it. Sets
    /// `$.on`; everything else in `message` is sent as is. Fails at once, sending
    /// nothing, when the body is over [`MAX_MESSAGE_BYTES`] or the client is
    /// disconnected.
    pub async fn send_output(&self, output: &str, mut message: HubMessage) -> Result<(), HubError> {
        topics::validate_name("output name", output)?;
        if message.body.len() > MAX_MESSAGE_BYTES {
            return Err(HubError::PayloadTooLarge { what: "message body", size: message.body.len(), limit: MAX_MESSAGE_BYTES });
        }
        message.output_name = Some(output.to_string());
        let topic = topics::events_topic(&self.inner.device, &self.inner.module, &message.encode_bag());
        self.inner.link.publish(topic, QoS::AtLeastOnce, message.body).await
    }

    /// Routed messages for this module's inputs, as `(input name, message)`. Subscribes
    /// on the first call and returns once the broker has confirmed; the receiver can be
    /// taken only once ([`HubError::InputsTaken`] afterwards).
    pub async fn inputs(&self) -> Result<mpsc::Receiver<(String, HubMessage)>, HubError> {
        let rx = self.inner.inputs_rx.lock().expect("inputs lock").take().ok_or(HubError::InputsTaken)?;
        let filter = topics::inputs_filter(&self.inner.device, &self.inner.module);
        match self.inner.link.subscribe(&[(filter, QoS::AtLeastOnce)]).await {
            Ok(()) => Ok(rx),
            Err(e) => {
                // Put it back so that a later call can try again.
                *self.inner.inputs_rx.lock().expect("inputs lock") = Some(rx);
                Err(e)
            }
        }
    }

    /// Serves this module's direct methods with `handler(method name, payload)`, which
    /// answers `(status, payload)`; `None` is sent as an empty body (JSON null). Each
    /// call runs on its own task. A handler that panics answers 500; a request over
    /// [`MAX_METHOD_PAYLOAD_BYTES`] or not JSON is answered 413 or 400 without calling
    /// it. Calling this again replaces the handler. Returns once the broker has
    /// confirmed the subscription.
    pub async fn serve_methods<F, Fut>(&self, handler: F) -> Result<(), HubError>
    where
        F: Fn(String, Option<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MethodResponse> + Send + 'static,
    {
        let boxed: BoxedHandler = Arc::new(move |method, payload| Box::pin(handler(method, payload)));
        *self.inner.handler.write().expect("handler lock") = Some(boxed);
        let filter = topics::method_requests_filter(&self.inner.device, &self.inner.module);
        self.inner.link.subscribe(&[(filter, QoS::AtMostOnce)]).await
    }

    /// Calls a direct method on any module of any device on the same broker and waits
    /// up to `timeout` for its answer. `Value::Null` is sent as an empty body.
    pub async fn invoke_method(
        &self,
        device: &str,
        module: &str,
        method: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        topics::validate_id("device id", device)?;
        topics::validate_id("module id", module)?;
        topics::validate_name("method name", method)?;
        let body = if payload.is_null() { Bytes::new() } else { Bytes::from(serde_json::to_vec(payload).expect("a Value serializes")) };
        if body.len() > MAX_METHOD_PAYLOAD_BYTES {
            return Err(HubError::PayloadTooLarge { what: "direct method payload", size: body.len(), limit: MAX_METHOD_PAYLOAD_BYTES });
        }
        let target = (device.to_string(), module.to_string());
        let new_target = self.inner.call_targets.lock().expect("targets lock").insert(target);
        if new_target {
            // Queued before the request, so the broker has it before the answer exists.
            let filter = topics::method_responses_filter(device, module);
            self.inner.link.subscribe_queued(&[(filter, QoS::AtMostOnce)]).await?;
        }
        let rid = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.inner.calls.lock().expect("calls lock").insert(rid.clone(), tx);
        // Removes the pending entry however this call ends (answer, timeout, error or cancel).
        struct Pending<'a>(&'a Inner, &'a str);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                self.0.calls.lock().expect("calls lock").remove(self.1);
            }
        }
        let _pending = Pending(&self.inner, &rid);
        let started = Instant::now();
        self.inner.link.publish(topics::method_request_topic(device, module, method, &rid), QoS::AtMostOnce, body).await?;
        let (status, body) = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(HubError::Closed),
            Err(_) => {
                warn!(device, module, method, rid = %rid, timeout_ms = timeout.as_millis() as u64, "direct method timed out");
                return Err(HubError::MethodTimeout {
                    device: device.to_string(),
                    module: module.to_string(),
                    method: method.to_string(),
                    timeout,
                });
            }
        };
        debug!(device, module, method, rid = %rid, status, elapsed_us = started.elapsed().as_micros() as u64, "direct method answered");
        if body.is_empty() {
            return Ok((status, None));
        }
        serde_json::from_slice(&body).map(|v| (status, Some(v))).map_err(|e| HubError::InvalidMethodResponse {
            device: device.to_string(),
            module: module.to_string(),
            method: method.to_string(),
            status,
            reason: e.to_string(),
        })
    }

    /// This module's desired properties: `Value::Null` until the hub's first answer,
    /// then the desired document (with `$version`), updated by every patch. The twin is
    /// read on the first call and again after every reconnect.
    pub async fn twin_desired(&self) -> Result<watch::Receiver<Value>, HubError> {
        let first = {
            let mut t = self.inner.twin.lock().expect("twin lock");
            !std::mem::replace(&mut t.enabled, true)
        };
        if first {
            let (d, m) = (&self.inner.device, &self.inner.module);
            self.inner
                .link
                .subscribe(&[
                    (topics::twin_responses_filter(d, m), QoS::AtLeastOnce),
                    (topics::twin_desired_patches_filter(d, m), QoS::AtLeastOnce),
                ])
                .await?;
            let inner = self.inner.clone();
            self._tasks.adopt(tokio::spawn(async move { inner.twin_task().await }));
            self.inner.twin_wanted.notify_one();
        }
        Ok(self.inner.twin_tx.subscribe())
    }

    /// Reports properties (a merge patch) to this module's twin; returns the new
    /// reported version. Waits up to `timeout` for the hub.
    pub async fn report_properties(&self, patch: &Value, timeout: Duration) -> Result<u64, HubError> {
        let body = Bytes::from(serde_json::to_vec(patch).expect("a Value serializes"));
        if body.len() > MAX_METHOD_PAYLOAD_BYTES {
            return Err(HubError::PayloadTooLarge { what: "reported properties", size: body.len(), limit: MAX_METHOD_PAYLOAD_BYTES });
        }
        let (d, m) = (&self.inner.device, &self.inner.module);
        self.inner.link.subscribe_queued(&[(topics::twin_responses_filter(d, m), QoS::AtLeastOnce)]).await?;
        let rid = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.inner.twin.lock().expect("twin lock").reports.insert(rid.clone(), tx);
        let result = async {
            self.inner.link.publish(topics::twin_reported_patch_topic(d, m, &rid), QoS::AtLeastOnce, body).await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok((status, Some(version)))) if (200..300).contains(&status) => Ok(version),
                Ok(Ok((status, _))) => Err(HubError::InvalidMethodResponse {
                    device: d.clone(),
                    module: "$edgeHub".to_string(),
                    method: "twin reported PATCH".to_string(),
                    status,
                    reason: "the hub refused the patch".to_string(),
                }),
                Ok(Err(_)) => Err(HubError::Closed),
                Err(_) => Err(HubError::MethodTimeout {
                    device: d.clone(),
                    module: "$edgeHub".to_string(),
                    method: "twin reported PATCH".to_string(),
                    timeout,
                }),
            }
        }
        .await;
        self.inner.twin.lock().expect("twin lock").reports.remove(&rid);
        result
    }

    /// Sends DISCONNECT and stops the client (clones included).
    pub async fn disconnect(&self) {
        self.inner.link.disconnect().await;
    }
}

impl Inner {
    fn on_input(&self, input: &str, bag: &str, body: Bytes) {
        let message = match HubMessage::decode(bag, body) {
            Ok(m) => m,
            Err(e) => {
                warn!(module = %self.module, input, error = %e, "dropping a routed message with a malformed property bag");
                return;
            }
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.inputs_tx.try_send((input.to_string(), message)) {
            let n = self.dropped_inputs.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!(module = %self.module, input, dropped_total = n, "inputs() is not read fast enough; dropping routed messages");
            }
        }
    }

    fn on_method(self: &Arc<Self>, method: &str, rid: String, body: Bytes) {
        let handler = self.handler.read().expect("handler lock").clone();
        let inner = self.clone();
        let method = method.to_string();
        tokio::spawn(async move {
            let started = Instant::now();
            let (status, payload) = inner.run_method(handler, &method, &rid, body).await;
            let mut body = match &payload {
                None => Bytes::new(),
                Some(v) => Bytes::from(serde_json::to_vec(v).expect("a Value serializes")),
            };
            let mut status = status;
            if body.len() > MAX_METHOD_PAYLOAD_BYTES {
                error!(module = %inner.module, method = %method, rid = %rid, size = body.len(), "direct method answer too large; answering 413");
                status = 413;
                body = error_body(
                    "PayloadTooLarge",
                    &format!("The answer of {} bytes exceeds the direct-method limit of {MAX_METHOD_PAYLOAD_BYTES} bytes.", body.len()),
                );
            }
            let topic = topics::method_response_topic(&inner.device, &inner.module, status, &rid);
            match inner.link.publish(topic, QoS::AtMostOnce, body).await {
                Ok(()) => {
                    debug!(module = %inner.module, method = %method, rid = %rid, status, elapsed_us = started.elapsed().as_micros() as u64, "direct method served")
                }
                Err(e) => {
                    warn!(module = %inner.module, method = %method, rid = %rid, status, error = %e, "could not send a direct method answer")
                }
            }
        });
    }

    async fn run_method(&self, handler: Option<BoxedHandler>, method: &str, rid: &str, body: Bytes) -> (u16, Option<Value>) {
        if body.len() > MAX_METHOD_PAYLOAD_BYTES {
            warn!(module = %self.module, method, rid, size = body.len(), "direct method request too large; answering 413");
            let message =
                format!("The request of {} bytes exceeds the direct-method limit of {MAX_METHOD_PAYLOAD_BYTES} bytes.", body.len());
            return (413, Some(error_json("PayloadTooLarge", &message)));
        }
        let payload = if body.is_empty() {
            None
        } else {
            // A UTF-8 byte order mark is not an error (files saved by some editors carry one).
            match serde_json::from_slice::<Value>(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body)) {
                Ok(v) => Some(v),
                Err(e) => return (400, Some(error_json("BadRequest", &format!("The method payload is not valid JSON: {e}.")))),
            }
        };
        let Some(handler) = handler else {
            return (501, Some(error_json("NotImplemented", &format!("The module does not serve direct methods (called {method})."))));
        };
        match AssertUnwindSafe(handler(method.to_string(), payload)).catch_unwind().await {
            Ok(answer) => answer,
            Err(_) => {
                error!(module = %self.module, method, rid, "direct method handler panicked; answering 500");
                (500, Some(error_json("InternalServerError", "The direct method failed unexpectedly.")))
            }
        }
    }

    fn on_twin_response(&self, status: u16, rid: &str, version: Option<u64>, body: &[u8]) {
        let mut twin = self.twin.lock().expect("twin lock");
        if let Some(tx) = twin.reports.remove(rid) {
            let _ = tx.send((status, version));
            return;
        }
        if twin.get_rid.as_deref() != Some(rid) {
            return;
        }
        twin.get_rid = None;
        self.twin_answered.notify_one();
        let desired = match (status, serde_json::from_slice::<Value>(body)) {
            (200, Ok(doc)) if doc.get("desired").is_some_and(Value::is_object) => doc["desired"].clone(),
            (status, _) => {
                warn!(module = %self.module, status, "unusable twin answer from the hub");
                return;
            }
        };
        let action = twin.tracker.on_get(desired);
        drop(twin);
        self.apply(action);
    }

    fn on_desired_patch(&self, version: u64, body: &[u8]) {
        let Ok(patch) = serde_json::from_slice::<Value>(body) else {
            warn!(module = %self.module, version, "desired-properties patch is not JSON; reading the twin again");
            self.twin_wanted.notify_one();
            return;
        };
        let action = self.twin.lock().expect("twin lock").tracker.on_patch(version, patch);
        self.apply(action);
    }

    fn apply(&self, action: DesiredAction) {
        match action {
            DesiredAction::None => {}
            DesiredAction::Publish(doc) => {
                debug!(module = %self.module, version = doc.get("$version").and_then(|v| v.as_u64()), "desired properties updated");
                self.twin_tx.send_replace(doc);
            }
            DesiredAction::Resync => {
                debug!(module = %self.module, "desired-properties version gap; reading the twin again");
                self.twin_wanted.notify_one();
            }
        }
    }

    /// Reads the whole twin whenever asked, retrying until the hub answers.
    async fn twin_task(self: Arc<Self>) {
        let mut connected = self.link.connected_watch();
        loop {
            self.twin_wanted.notified().await;
            let mut wait = TWIN_RETRY_FIRST;
            loop {
                if connected.wait_for(|c| *c).await.is_err() {
                    return;
                }
                let rid = uuid::Uuid::new_v4().simple().to_string();
                self.twin.lock().expect("twin lock").get_rid = Some(rid.clone());
                let topic = topics::twin_get_topic(&self.device, &self.module, &rid);
                if let Err(e) = self.link.publish(topic, QoS::AtLeastOnce, Bytes::new()).await {
                    debug!(module = %self.module, error = %e, "twin GET not sent");
                }
                if tokio::time::timeout(wait, self.twin_answered.notified()).await.is_ok() {
                    break;
                }
                debug!(module = %self.module, retry_in_ms = wait.as_millis() as u64, "no twin answer from the hub yet");
                wait = (wait * 2).min(TWIN_RETRY_MAX);
            }
        }
    }
}

impl Handler for Inner {
    fn on_publish(self: &Arc<Self>, p: rumqttc::Publish) {
        let Some(topic) = topics::parse_topic(&p.topic) else {
            debug!(module = %self.module, topic = %p.topic, "ignoring a message on an unknown topic");
            return;
        };
        match topic {
            HubTopic::Input { device, module, input, bag } if device == self.device && module == self.module => {
                self.on_input(input, bag, p.payload)
            }
            HubTopic::MethodRequest { device, module, method, rid } if device == self.device && module == self.module => {
                self.on_method(method, rid, p.payload)
            }
            HubTopic::MethodResponse { status, rid, .. } => {
                if let Some(tx) = self.calls.lock().expect("calls lock").remove(&rid) {
                    let _ = tx.send((status, p.payload));
                }
            }
            HubTopic::TwinResponse { device, module, status, rid, version } if device == self.device && module == self.module => {
                self.on_twin_response(status, &rid, version, &p.payload)
            }
            HubTopic::TwinDesiredPatch { device, module, version } if device == self.device && module == self.module => {
                self.on_desired_patch(version, &p.payload)
            }
            _ => debug!(module = %self.module, topic = %p.topic, "ignoring a message not meant for this module"),
        }
    }

    async fn on_connected(self: &Arc<Self>) {
        if self.twin.lock().expect("twin lock").enabled {
            self.twin_wanted.notify_one();
        }
    }
}

/// The OData-style error body of SPEC §3.2, for answers the hub layer gives itself; it
/// carries a detail like the engine's own errors, so callers read `details[0].code` alike.
pub(crate) fn error_json(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "details": [{"code": code, "target": "$", "message": message}]}})
}

fn error_body(code: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&error_json(code, message)).expect("a Value serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut o = ClientOptions::new("mqtt://vela:hunter2@127.0.0.1:1883", "dev", "lvaEdge");
        o.password = Some(Password::new("hunter3"));
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
        assert!(shown.contains("Password(***)") && shown.contains("vela:***@127.0.0.1"), "{shown}");
    }

    #[test]
    fn options_are_validated() {
        let bad = ClientOptions::new("mqtt://h", "dev", "a/b").connection_config().err().unwrap();
        assert!(bad.to_string().contains("module id"), "{bad}");
        let bad = ClientOptions::new("mqtts://h", "dev", "m").connection_config().err().unwrap();
        assert!(matches!(bad, HubError::TlsNotSupported { .. }));
        let mut o = ClientOptions::new("mqtt://h", "dev", "m");
        o.password = Some(Password::new("x"));
        assert!(o.connection_config().is_err(), "password without a user name");
        o.username = Some("u".into());
        let cfg = o.connection_config().unwrap();
        assert_eq!(cfg.client_id, "dev%2Fm");
        assert_eq!(cfg.endpoint.username.as_deref(), Some("u"));
    }
}
