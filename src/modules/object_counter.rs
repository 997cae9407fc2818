//! `objectCounter`: the sample module between an inference output and a recording trigger (SPEC §8).
//!
//! It reads inference events from any input (the samples route them to
//! `detectedObjects`), counts the detections of the desired `objectTag` whose confidence
//! is strictly above `objectConfidence`, and when the count is positive sends
//! `{"count": N}` to output [`OUTPUT`] (`objectCountTrigger`) with the input's
//! `eventTime` application property copied, which the samples route to the engine's
//! `recordingTrigger` input (an IotHubMessageSource in front of a signal gate).
//!
//! Layout: a pure core ([`Config::from_desired`], [`decide`]) and a thin async shell
//! ([`start`] / [`run`]) that follows the twin's desired properties (a patch changes the
//! tag or threshold without restart), consumes `inputs()` and calls `send_output`.

use crate::hub::{HubError, HubMessage, ModuleClient};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The output triggers are sent to (SPEC §8; the sample's name).
pub const OUTPUT: &str = "objectCountTrigger";

/// Default `objectTag` when the twin has none: the Python sample's default and the value
/// every template sets (the C# sample's default `""` would never match anything useful).
pub const DEFAULT_OBJECT_TAG: &str = "truck";
/// Default `objectConfidence` when the twin has none (Python sample and LVA templates).
pub const DEFAULT_OBJECT_CONFIDENCE: f64 = 0.5;

/// The module's settings, from its twin's desired properties.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Compared exactly (case-sensitive) with `entity.tag.value` / `tagName`.
    pub object_tag: String,
    /// A detection counts when its confidence is strictly greater.
    pub object_confidence: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { object_tag: DEFAULT_OBJECT_TAG.to_string(), object_confidence: DEFAULT_OBJECT_CONFIDENCE }
    }
}

impl Config {
    /// Reads `objectTag` and `objectConfidence` from a desired-properties document. Keys
    /// are case-insensitive (SPEC §6, C2; an exact spelling wins over another case);
    /// values may be JSON strings or numbers (`"0.5"` or `0.5`; a numeric tag becomes its
    /// text). A missing, `null` or unusable value keeps the default, with a warning for
    /// the unusable ones.
    pub fn from_desired(desired: &Value) -> Config {
        let mut config = Config::default();
        let Some(doc) = desired.as_object() else { return config };
        match lookup(doc, "objectTag") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => config.object_tag = s.clone(),
            Some(Value::Number(n)) => config.object_tag = n.to_string(),
            Some(Value::Bool(b)) => config.object_tag = b.to_string(),
            Some(other) => warn!(value = %other, "objectCounter: objectTag is not a string; keeping {:?}", config.object_tag),
        }
        match lookup(doc, "objectConfidence") {
            None | Some(Value::Null) => {}
            Some(v) => match number(v) {
                Some(c) => config.object_confidence = c,
                None => warn!(value = %v, "objectCounter: objectConfidence is not a number; keeping {}", config.object_confidence),
            },
        }
        config
    }
}

/// A key of a JSON object, case-insensitively (an exact match first).
fn lookup<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    doc.get(key).or_else(|| doc.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// A JSON number, or a string holding one (trimmed); never NaN or infinite.
fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// Why a message produced no trigger.
#[derive(Clone, Debug, PartialEq)]
pub enum Skip {
    /// The `subject` property is missing or is neither an LVA graph instance
    /// (`/graphInstances/…`) nor an AVA live pipeline (`…/livePipelines/…`).
    Subject(Option<String>),
    /// The body is not JSON, or not an object with `inferences` or `predictions` arrays.
    Malformed(String),
    /// Valid, but nothing matched.
    NoMatch,
}

/// What to do with one incoming message.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send this message to [`OUTPUT`].
    Trigger {
        count: u64,
        message: HubMessage,
    },
    Skip(Skip),
}

/// The sample's subject check (SPEC §4.1, §8 logic 4): an LVA subject starts with
/// `/graphInstances/` (as the C# sample checks; the Python one accepts it anywhere), an
/// AVA subject contains `/livePipelines/`, case-insensitively (as the C# sample does).
pub fn subject_accepted(subject: &str) -> bool {
    subject.starts_with("/graphInstances/") || subject.to_ascii_lowercase().contains("/livepipelines/")
}

/// Counts the matching detections in an inference body (SPEC §8 logic 1–2):
/// - LVA/AVA inference metadata (SPEC §4.3): `inferences[].entity.tag.{value, confidence}`;
/// - Custom Vision results (an extension beyond SPEC §8, for the Custom Vision
///   tutorials' model): `predictions[].{tagName, probability}`.
///
/// The tag must equal `object_tag` exactly (case-sensitive) and the confidence must be
/// strictly greater than `object_confidence`. Entries without an `entity` (motion,
/// classification, …) or without a tag are skipped, as the Python sample does (the C#
/// sample throws on them); a missing confidence counts as 0 (C# default). Confidence may
/// be a number or a numeric string. Errs when the body is not JSON or has neither array.
pub fn count_matches(body: &[u8], config: &Config) -> Result<u64, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = doc.as_object().ok_or_else(|| "body is not a JSON object".to_string())?;
    let inferences = obj.get("inferences");
    let predictions = obj.get("predictions");
    if inferences.is_none() && predictions.is_none() {
        return Err("body has neither 'inferences' nor 'predictions'".to_string());
    }
    let matches = |tag: Option<&Value>, confidence: Option<&Value>| {
        tag.and_then(Value::as_str) == Some(config.object_tag.as_str())
            && confidence.map_or(Some(0.0), number).is_some_and(|c| c > config.object_confidence)
    };
    let count_predictions = |list: &Value| -> Result<u64, String> {
        let list = list.as_array().ok_or_else(|| "'predictions' is not an array".to_string())?;
        Ok(list.iter().filter(|p| matches(p.get("tagName"), p.get("probability"))).count() as u64)
    };
    let mut count = 0u64;
    if let Some(list) = inferences {
        let list = list.as_array().ok_or_else(|| "'inferences' is not an array".to_string())?;
        for inference in list {
            // A Custom Vision answer comes through the HTTP extension as it was sent (SPEC
            // §4.3: JSON outside the schema is forwarded as-is), i.e. one "inference" that
            // is the whole `{"predictions": [...]}` document.
            if let Some(p) = inference.get("predictions") {
                count += count_predictions(p)?;
                continue;
            }
            let Some(tag) = inference.get("entity").and_then(|e| e.get("tag")) else { continue };
            if matches(tag.get("value"), tag.get("confidence")) {
                count += 1;
            }
        }
    }
    if let Some(list) = predictions {
        count += count_predictions(list)?;
    }
    Ok(count)
}

/// The whole rule set of the sample for one incoming message (SPEC §8): subject check,
/// count, and the trigger `{"count": N}` (JSON, UTF-8, fresh message id) carrying the
/// input's `eventTime` application property when it has one. Never panics.
pub fn decide(message: &HubMessage, config: &Config) -> Decision {
    match message.property("subject") {
        Some(s) if subject_accepted(s) => {}
        other => return Decision::Skip(Skip::Subject(other.map(str::to_string))),
    }
    match count_matches(&message.body, config) {
        Err(reason) => Decision::Skip(Skip::Malformed(reason)),
        Ok(0) => Decision::Skip(Skip::NoMatch),
        Ok(count) => {
            let mut trigger = HubMessage::json(&json!({ "count": count }));
            if let Some(t) = message.property("eventTime") {
                trigger = trigger.with_property("eventTime", t);
            }
            Decision::Trigger { count, message: trigger }
        }
    }
}

/// Counters of a running module (all since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub triggers: u64,
    pub malformed: u64,
    pub wrong_subject: u64,
    pub no_match: u64,
    /// Triggers that could not be sent (hub disconnected, …); they are not retried.
    pub send_failures: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    triggers: AtomicU64,
    malformed: AtomicU64,
    wrong_subject: AtomicU64,
    no_match: AtomicU64,
    send_failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            received: l(&self.received),
            triggers: l(&self.triggers),
            malformed: l(&self.malformed),
            wrong_subject: l(&self.wrong_subject),
            no_match: l(&self.no_match),
            send_failures: l(&self.send_failures),
        }
    }
}

/// A running objectCounter; stops on [`ObjectCounter::shutdown`] or when dropped.
pub struct ObjectCounter {
    counters: Arc<Counters>,
    config: watch::Receiver<Option<Config>>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ObjectCounter {
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// The settings in force: `None` until the twin has been read.
    pub fn config(&self) -> Option<Config> {
        self.config.borrow().clone()
    }

    /// Follows the settings in force (for tests and status pages).
    pub fn config_watch(&self) -> watch::Receiver<Option<Config>> {
        self.config.clone()
    }

    /// Stops consuming inputs and waits for the task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the module stops by itself (the client's input channel closed).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ObjectCounter {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts objectCounter on a connected client: reads the twin (and follows its patches)
/// and subscribes to the inputs before returning. Inputs are processed once the twin's
/// first answer is in (until then they wait in the client's input buffer), so no message
/// is judged with settings the deployment did not give.
pub async fn start(client: ModuleClient) -> Result<ObjectCounter, HubError> {
    let mut twin = client.twin_desired().await?;
    let mut inputs = client.inputs().await?;
    let counters = Arc::new(Counters::default());
    let (config_tx, config_rx) = watch::channel(None::<Config>);
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let c = counters.clone();
    let module = client.module_id().to_string();
    let task = tokio::spawn(async move {
        let mut config: Option<Config> = None;
        let mut twin_open = true;
        let apply = |doc: &Value, config: &mut Option<Config>| {
            if doc.is_null() {
                return;
            }
            let new = Config::from_desired(doc);
            if config.as_ref() != Some(&new) {
                info!(module = %module, tag = %new.object_tag, confidence = new.object_confidence, "objectCounter settings");
                *config = Some(new.clone());
                config_tx.send_replace(Some(new));
            }
        };
        apply(&twin.borrow_and_update().clone(), &mut config);
        loop {
            tokio::select! {
                biased;
                _ = shutdown_rx.changed() => break,
                // Biased: a twin change is applied before the next input, so a patch
                // takes effect for every message that arrives after it.
                r = twin.changed(), if twin_open => match r {
                    Ok(()) => {
                        let doc = twin.borrow_and_update().clone();
                        apply(&doc, &mut config);
                    }
                    Err(_) => twin_open = false,
                },
                msg = inputs.recv(), if config.is_some() => {
                    let Some((input, message)) = msg else { break };
                    let cfg = config.as_ref().expect("guarded by the select condition");
                    c.received.fetch_add(1, Ordering::Relaxed);
                    match decide(&message, cfg) {
                        Decision::Trigger { count, message: trigger } => {
                            debug!(module = %module, input = %input, count, "objectCounter trigger");
                            match client.send_output(OUTPUT, trigger).await {
                                Ok(()) => c.triggers.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    warn!(module = %module, error = %e, "objectCounter: cannot send the trigger");
                                    c.send_failures.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                        }
                        Decision::Skip(Skip::Malformed(reason)) => {
                            warn!(module = %module, input = %input, %reason, "objectCounter: ignoring a malformed message");
                            c.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                        Decision::Skip(Skip::Subject(subject)) => {
                            debug!(module = %module, input = %input, ?subject, "objectCounter: not an LVA/AVA inference subject");
                            c.wrong_subject.fetch_add(1, Ordering::Relaxed);
                        }
                        Decision::Skip(Skip::NoMatch) => {
                            c.no_match.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    });
    Ok(ObjectCounter { counters, config: config_rx, shutdown: shutdown_tx, task: Some(task) })
}

/// Runs objectCounter on a connected client for as long as the process lives (the module
/// holds the client, so its inputs never close; the client reconnects by itself). Errs
/// only when the first subscriptions fail. For a stoppable handle use [`start`].
pub async fn run(client: ModuleClient) -> Result<(), HubError> {
    start(client).await?.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(tag: &str, confidence: f64) -> Config {
        Config { object_tag: tag.to_string(), object_confidence: confidence }
    }

    fn lva(body: Value) -> HubMessage {
        HubMessage::json(&body)
            .with_property("subject", "/graphInstances/g1/processors/yolo")
            .with_property("eventTime", "2020-05-12T23:33:10.392Z")
            .with_property("eventType", "Microsoft.Media.Graph.Analytics.Inference")
    }

    fn entity(tag: &str, confidence: Value) -> Value {
        json!({"type": "entity", "entity": {"tag": {"value": tag, "confidence": confidence}, "box": {"l": 0.1, "t": 0.1, "w": 0.2, "h": 0.2}}})
    }

    fn trigger_count(d: &Decision) -> Option<u64> {
        match d {
            Decision::Trigger { count, .. } => Some(*count),
            Decision::Skip(_) => None,
        }
    }

    #[test]
    fn counts_matching_entities_and_copies_event_time() {
        let body =
            json!({"timestamp": 1, "inferences": [entity("person", json!(0.9)), entity("person", json!(0.7)), entity("car", json!(0.99))]});
        let d = decide(&lva(body), &cfg("person", 0.5));
        let Decision::Trigger { count, message } = d else { panic!("{d:?}") };
        assert_eq!(count, 2);
        assert_eq!(message.body_json().unwrap(), json!({"count": 2}));
        assert_eq!(message.property("eventTime"), Some("2020-05-12T23:33:10.392Z"));
        assert_eq!(message.properties.len(), 1, "only eventTime is copied: {:?}", message.properties);
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.content_encoding.as_deref(), Some("utf-8"));
        assert!(message.message_id.is_some());
    }

    #[test]
    fn no_event_time_no_property() {
        let m = HubMessage::json(&json!({"inferences": [entity("truck", json!(0.9))]})).with_property("subject", "/graphInstances/g");
        let Decision::Trigger { message, .. } = decide(&m, &Config::default()) else { panic!() };
        assert!(message.properties.is_empty());
    }

    #[test]
    fn custom_vision_predictions_count_alone_or_forwarded_by_the_http_extension() {
        let c = cfg("person", 0.5);
        let p = |tag: &str, prob: f64| json!({"tagName": tag, "probability": prob, "boundingBox": {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.3}});
        let doc = json!({"id": "x", "predictions": [p("person", 0.9), p("person", 0.4), p("car", 0.95)]});
        assert_eq!(count_matches(doc.to_string().as_bytes(), &c), Ok(1));
        // What the HTTP extension publishes for that answer: the document as one inference.
        let event = json!({"timestamp": 1, "inferences": [doc, entity("person", json!(0.8))]});
        assert_eq!(count_matches(event.to_string().as_bytes(), &c), Ok(2));
        let bad = json!({"inferences": [{"predictions": 3}]});
        assert!(count_matches(bad.to_string().as_bytes(), &c).is_err());
    }

    #[test]
    fn threshold_is_strictly_greater() {
        let c = cfg("person", 0.5);
        assert_eq!(decide(&lva(json!({"inferences": [entity("person", json!(0.5))]})), &c), Decision::Skip(Skip::NoMatch));
        assert_eq!(decide(&lva(json!({"inferences": [entity("person", json!(0.49))]})), &c), Decision::Skip(Skip::NoMatch));
        assert_eq!(trigger_count(&decide(&lva(json!({"inferences": [entity("person", json!(0.5001))]})), &c)), Some(1));
    }

    #[test]
    fn tag_is_exact_and_case_sensitive() {
        let c = cfg("person", 0.1);
        for other in ["Person", "persons", " person", "car"] {
            assert_eq!(decide(&lva(json!({"inferences": [entity(other, json!(0.9))]})), &c), Decision::Skip(Skip::NoMatch), "{other}");
        }
    }

    #[test]
    fn inference_confidence_may_be_a_string_and_missing_counts_as_zero() {
        let c = cfg("person", 0.5);
        assert_eq!(trigger_count(&decide(&lva(json!({"inferences": [entity("person", json!("0.8"))]})), &c)), Some(1));
        assert_eq!(decide(&lva(json!({"inferences": [entity("person", json!("high"))]})), &c), Decision::Skip(Skip::NoMatch));
        let no_conf = json!({"inferences": [{"type": "entity", "entity": {"tag": {"value": "person"}}}]});
        assert_eq!(decide(&lva(no_conf.clone()), &c), Decision::Skip(Skip::NoMatch));
        assert_eq!(trigger_count(&decide(&lva(no_conf), &cfg("person", -1.0))), Some(1));
    }

    #[test]
    fn entries_without_entity_are_skipped_not_fatal() {
        let body = json!({"inferences": [
            {"type": "motion", "motion": {"box": {"l": 0, "t": 0, "w": 1, "h": 1}}},
            {"type": "classification", "classification": {"tag": {"value": "person", "confidence": 0.9}}},
            {"type": "entity", "entity": {"box": {}}},
            "junk",
            entity("person", json!(0.9)),
        ]});
        assert_eq!(trigger_count(&decide(&lva(body), &cfg("person", 0.5))), Some(1));
    }

    #[test]
    fn custom_vision_predictions() {
        let body = json!({"id": "x", "project": "p", "predictions": [
            {"probability": 0.92, "tagId": "1", "tagName": "truck", "boundingBox": {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}},
            {"probability": 0.3, "tagId": "1", "tagName": "truck"},
            {"probability": 0.95, "tagId": "2", "tagName": "car"},
        ]});
        let d = decide(&lva(body), &cfg("truck", 0.5));
        let Decision::Trigger { count, message } = d else { panic!("{d:?}") };
        assert_eq!(count, 1);
        assert_eq!(message.body_json().unwrap(), json!({"count": 1}));
    }

    #[test]
    fn subject_rules() {
        assert!(subject_accepted("/graphInstances/g1"));
        assert!(subject_accepted("/graphInstances/g1/processors/yolo"));
        assert!(!subject_accepted("/foo/graphInstances/g1"), "LVA: prefix, as the C# sample");
        assert!(!subject_accepted("/graphinstances/g1"), "LVA: case-sensitive");
        assert!(subject_accepted("/edgeModules/avaedge/livePipelines/p1/processors/yolo"));
        assert!(subject_accepted("/livePipelines/p1"));
        assert!(subject_accepted("/edgeModules/avaedge/LIVEPIPELINES/p1"), "AVA: case-insensitive, as the C# sample");
        assert!(!subject_accepted("/edgeModules/avaedge/pipelines/p1"));
        assert!(!subject_accepted(""));

        let body = json!({"inferences": [entity("truck", json!(0.9))]});
        let no_subject = HubMessage::json(&body);
        assert_eq!(decide(&no_subject, &Config::default()), Decision::Skip(Skip::Subject(None)));
        let wrong = HubMessage::json(&body).with_property("subject", "/somewhere/else");
        assert_eq!(decide(&wrong, &Config::default()), Decision::Skip(Skip::Subject(Some("/somewhere/else".into()))));
        let ava = HubMessage::json(&body).with_property("subject", "/edgeModules/avaedge/livePipelines/p1/processors/yolo");
        assert_eq!(trigger_count(&decide(&ava, &Config::default())), Some(1));
    }

    #[test]
    fn malformed_bodies_are_skipped_never_panic() {
        let c = Config::default();
        for body in
            [&b"not json"[..], b"", b"[1,2]", b"42", b"{\"inferences\": 3}", b"{\"predictions\": {}}", b"{\"other\": []}", b"\xff\xfe"]
        {
            let m = HubMessage::new(body.to_vec()).with_property("subject", "/graphInstances/g");
            match decide(&m, &c) {
                Decision::Skip(Skip::Malformed(_)) => {}
                d => panic!("{:?}: {d:?}", String::from_utf8_lossy(body)),
            }
        }
        // An empty list is valid but matches nothing.
        let m = HubMessage::new(&b"{\"inferences\": []}"[..]).with_property("subject", "/graphInstances/g");
        assert_eq!(decide(&m, &c), Decision::Skip(Skip::NoMatch));
    }

    #[test]
    fn config_from_desired_any_case_strings_or_numbers() {
        assert_eq!(Config::from_desired(&json!({"objectTag": "person", "objectConfidence": 0.25, "$version": 3})), cfg("person", 0.25));
        assert_eq!(Config::from_desired(&json!({"OBJECTTAG": "car", "objectconfidence": "0.7"})), cfg("car", 0.7));
        assert_eq!(Config::from_desired(&json!({"objectTag": "bus", "objectConfidence": " 1 "})), cfg("bus", 1.0));
        assert_eq!(Config::from_desired(&json!({"objecttag": "x", "objectTag": "exact"})), cfg("exact", 0.5), "exact spelling wins");
        assert_eq!(Config::from_desired(&json!({"objectConfidence": 0})), cfg("truck", 0.0));
        assert_eq!(Config::from_desired(&json!({"objectTag": 7})).object_tag, "7");
    }

    #[test]
    fn config_defaults_and_unusable_values() {
        assert_eq!(Config::from_desired(&Value::Null), Config::default());
        assert_eq!(Config::from_desired(&json!({})), cfg("truck", 0.5));
        assert_eq!(Config::from_desired(&json!({"objectTag": null, "objectConfidence": null})), cfg("truck", 0.5));
        assert_eq!(Config::from_desired(&json!({"objectTag": ["a"], "objectConfidence": "lots"})), cfg("truck", 0.5));
        assert_eq!(Config::from_desired(&json!({"objectConfidence": "NaN"})), cfg("truck", 0.5));
    }
}
