//! Events leave through the hub with the envelope of SPEC §4.1: subject, eventType, eventTime, topic, dataVersion.

use crate::clock::rfc3339_millis;
use crate::topology::{Generation, Role};
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// A message for one of the module's hub outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct OutMessage {
    pub output: String,
    pub body: Bytes,
    /// Application properties (the envelope).
    pub properties: BTreeMap<String, String>,
}

/// Where messages leave the module: the hub client in the appliance, a recorder in tests.
pub trait Outbox: Send + Sync + 'static {
    /// Queues a message; never blocks the caller (media threads call it).
    fn send(&self, msg: OutMessage);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventClass {
    Analytics,
    Diagnostics,
    Operational,
}

impl EventClass {
    fn as_str(&self) -> &'static str {
        match self {
            EventClass::Analytics => "Analytics",
            EventClass::Diagnostics => "Diagnostics",
            EventClass::Operational => "Operational",
        }
    }
}

/// Who the module is, for the envelope.
#[derive(Clone, Debug)]
pub struct Identity {
    pub device: String,
    pub module: String,
    /// The `topic` property: the ARM id the original module was bound to (twin
    /// `azureMediaServicesArmId`), or Vela's own identifier when there is none.
    pub topic: String,
}

/// Twin-controlled outputs for the two event classes that do not go through sinks;
/// empty means the class is not published (SPEC §4.1).
#[derive(Clone, Debug, Default)]
pub struct EventOutputs {
    pub diagnostics: String,
    pub operational: String,
}

/// Builds envelopes and publishes module-level events.
#[derive(Clone)]
pub struct Events {
    outbox: Arc<dyn Outbox>,
    identity: Identity,
    outputs: Arc<RwLock<EventOutputs>>,
}

/// Where an event comes from: an instance and, optionally, one of its nodes.
#[derive(Clone, Debug)]
pub struct Subject {
    pub generation: Generation,
    pub instance: String,
    pub node: Option<(Role, String)>,
}

impl Events {
    pub fn new(outbox: Arc<dyn Outbox>, identity: Identity, outputs: EventOutputs) -> Self {
        Events { outbox, identity, outputs: Arc::new(RwLock::new(outputs)) }
    }

    /// Applies a twin change (these properties are dynamic).
    pub fn set_outputs(&self, outputs: EventOutputs) {
        *self.outputs.write().expect("outputs lock") = outputs;
    }

    pub fn subject(&self, s: &Subject) -> String {
        if s.instance.is_empty() {
            // Module-level events (configuration errors and the like).
            return format!("/edgeModules/{}", self.identity.module);
        }
        let mut out = match s.generation {
            Generation::Lva => format!("/graphInstances/{}", s.instance),
            Generation::Ava => format!("/edgeModules/{}/livePipelines/{}", self.identity.module, s.instance),
        };
        if let Some((role, node)) = &s.node {
            out.push_str(&format!("/{}/{}", role.key(), node));
        }
        out
    }

    /// The envelope's application properties.
    pub fn envelope(&self, s: &Subject, class: EventClass, ty: &str, time: SystemTime) -> BTreeMap<String, String> {
        let prefix = match s.generation {
            Generation::Lva => "Microsoft.Media.Graph",
            Generation::Ava => "Microsoft.VideoAnalyzer",
        };
        BTreeMap::from([
            ("topic".to_string(), self.identity.topic.clone()),
            ("subject".to_string(), self.subject(s)),
            ("eventType".to_string(), format!("{prefix}.{}.{ty}", class.as_str())),
            ("eventTime".to_string(), rfc3339_millis(time)),
            ("dataVersion".to_string(), "1.0".to_string()),
        ])
    }

    /// Publishes a diagnostics or operational event on the twin-configured output.
    pub fn emit(&self, s: &Subject, class: EventClass, ty: &str, body: Value) {
        let output = {
            let o = self.outputs.read().expect("outputs lock");
            match class {
                EventClass::Diagnostics => o.diagnostics.clone(),
                EventClass::Operational => o.operational.clone(),
                EventClass::Analytics => return, // analytics leave through IoT Hub sinks only
            }
        };
        tracing::info!(instance = %s.instance, node = ?s.node.as_ref().map(|n| &n.1), event = ty, class = class.as_str(), "event");
        if output.is_empty() {
            return;
        }
        let properties = self.envelope(s, class, ty, SystemTime::now());
        self.outbox.send(OutMessage { output, body: Bytes::from(serde_json::to_vec(&body).expect("json")), properties });
    }

    /// Sends an already enveloped message to a sink's output.
    pub fn send(&self, msg: OutMessage) {
        self.outbox.send(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<OutMessage>>);
    impl Outbox for Collect {
        fn send(&self, msg: OutMessage) {
            self.0.lock().unwrap().push(msg);
        }
    }

    fn events(outputs: EventOutputs) -> (Arc<Collect>, Events) {
        let c = Arc::new(Collect::default());
        let id = Identity {
            device: "dev".into(),
            module: "avaedge".into(),
            topic: "/subscriptions/x/resourceGroups/y/providers/Microsoft.Media/videoAnalyzers/z".into(),
        };
        (c.clone(), Events::new(c, id, outputs))
    }

    #[test]
    fn subjects_and_types_follow_the_generation() {
        let (_, e) = events(EventOutputs::default());
        let lva = Subject { generation: Generation::Lva, instance: "cam1".into(), node: Some((Role::Sink, "fileSink".into())) };
        let ava = Subject { generation: Generation::Ava, instance: "cam1".into(), node: Some((Role::Source, "rtspSource".into())) };
        assert_eq!(e.subject(&lva), "/graphInstances/cam1/sinks/fileSink");
        assert_eq!(e.subject(&ava), "/edgeModules/avaedge/livePipelines/cam1/sources/rtspSource");
        let env = e.envelope(&lva, EventClass::Operational, "RecordingStarted", std::time::UNIX_EPOCH);
        assert_eq!(env["eventType"], "Microsoft.Media.Graph.Operational.RecordingStarted");
        assert_eq!(env["eventTime"], "1970-01-01T00:00:00.000Z");
        assert_eq!(env["dataVersion"], "1.0");
        let env = e.envelope(&ava, EventClass::Diagnostics, "MediaSessionEstablished", std::time::UNIX_EPOCH);
        assert_eq!(env["eventType"], "Microsoft.VideoAnalyzer.Diagnostics.MediaSessionEstablished");
    }

    #[test]
    fn classes_go_to_their_twin_outputs_and_empty_means_off() {
        let (c, e) = events(EventOutputs { diagnostics: "diagnostics".into(), operational: String::new() });
        let s = Subject { generation: Generation::Ava, instance: "p".into(), node: None };
        e.emit(&s, EventClass::Diagnostics, "RuntimeError", serde_json::json!({"code": "x"}));
        e.emit(&s, EventClass::Operational, "RecordingStarted", serde_json::json!({}));
        let sent = c.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].output, "diagnostics");
        e.set_outputs(EventOutputs { diagnostics: String::new(), operational: "operational".into() });
        drop(sent);
        e.emit(&s, EventClass::Operational, "RecordingStarted", serde_json::json!({}));
        assert_eq!(c.0.lock().unwrap()[1].output, "operational");
    }
}
