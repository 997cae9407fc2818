//! The IoT Edge deployment manifest (`config/deployment.json`): routes and each module's desired properties.
//!
//! Shape (SPEC §7): `modulesContent.$edgeHub["properties.desired"].routes` and
//! `modulesContent.<module>["properties.desired"]`. `properties.desired` is one key with
//! a dot in real manifests; the nested form `properties: {desired: …}` is accepted too.
//! Docker-specific parts (`$edgeAgent`'s runtime, images, createOptions) are ignored;
//! only the names under `$edgeAgent…modules` are kept, as the modules to run. Routes may
//! be strings or, as in edgeHub schema 1.1, objects `{route, priority?, timeToLiveSecs?}`
//! (priority and time-to-live are accepted and ignored). Every problem is reported with
//! its JSON path. Pure: no I/O.

use super::routes::{parse_route, Route};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// What the hub needs from a deployment manifest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deployment {
    /// Routes in manifest order.
    pub routes: Vec<Route>,
    /// Desired properties by module (every `modulesContent` entry except `$edgeAgent`
    /// and `$edgeHub`).
    pub desired: BTreeMap<String, Map<String, Value>>,
    /// Names under `$edgeAgent["properties.desired"].modules`, in manifest order (empty
    /// when the manifest has no `$edgeAgent`).
    pub modules_to_run: Vec<String>,
    /// `$edgeHub`'s `schemaVersion`, if given.
    pub hub_schema_version: Option<String>,
}

/// One problem in a manifest: where (a JSONPath) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every problem found in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DeploymentError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for DeploymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid deployment manifest ({} problem{})", self.problems.len(), if self.problems.len() == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

/// JSONPath segment for a key: `.key` for identifiers, `['key']` otherwise.
fn key_path(parent: &str, key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{parent}.{key}")
    } else {
        format!("{parent}['{}']", key.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

use crate::topology::kind_of as type_name;

struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem { path: path.to_string(), message: message.into() });
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.push(path, format!("expected an object, found {}", type_name(other)));
                None
            }
        }
    }

    /// `properties.desired` of a `modulesContent` entry, in either spelling.
    fn desired<'v>(&mut self, entry: &'v Value, path: &str) -> Option<(&'v Map<String, Value>, String)> {
        let entry = self.object(entry, path)?;
        let flat = entry.get("properties.desired");
        let nested = entry.get("properties").and_then(|p| p.as_object()).and_then(|p| p.get("desired"));
        match (flat, nested) {
            (Some(_), Some(_)) => {
                self.push(path, "both 'properties.desired' and properties.desired are present; keep one");
                None
            }
            (Some(v), None) => {
                let p = key_path(path, "properties.desired");
                self.object(v, &p).map(|m| (m, p))
            }
            (None, Some(v)) => {
                let p = format!("{path}.properties.desired");
                self.object(v, &p).map(|m| (m, p))
            }
            (None, None) => {
                self.push(path, "missing 'properties.desired'");
                None
            }
        }
    }
}

impl Deployment {
    /// Parses a manifest from JSON text.
    pub fn from_json(text: &str) -> Result<Deployment, DeploymentError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| DeploymentError { problems: vec![Problem { path: "$".into(), message: format!("not valid JSON: {e}") }] })?;
        Deployment::from_value(&doc)
    }

    /// Parses a manifest document.
    pub fn from_value(doc: &Value) -> Result<Deployment, DeploymentError> {
        let mut c = Collector { problems: Vec::new() };
        let mut out = Deployment::default();
        if let Some(root) = c.object(doc, "$") {
            let content = match (root.get("modulesContent"), root.get("moduleContent")) {
                (Some(_), Some(_)) => {
                    c.push("$", "both modulesContent and moduleContent are present; keep modulesContent");
                    None
                }
                (Some(v), None) => c.object(v, "$.modulesContent").map(|m| (m, "$.modulesContent")),
                (None, Some(v)) => c.object(v, "$.moduleContent").map(|m| (m, "$.moduleContent")),
                (None, None) => {
                    c.push("$", "missing modulesContent");
                    None
                }
            };
            if let Some((content, base)) = content {
                parse_content(&mut c, content, base, &mut out);
            }
        }
        if c.problems.is_empty() {
            Ok(out)
        } else {
            Err(DeploymentError { problems: c.problems })
        }
    }
}

fn parse_content(c: &mut Collector, content: &Map<String, Value>, base: &str, out: &mut Deployment) {
    match content.get("$edgeHub") {
        None => c.push(base, "missing $edgeHub (it holds the routes)"),
        Some(hub) => {
            let path = key_path(base, "$edgeHub");
            if let Some((desired, dpath)) = c.desired(hub, &path) {
                match desired.get("schemaVersion") {
                    None => {}
                    Some(Value::String(s)) => out.hub_schema_version = Some(s.clone()),
                    Some(other) => c.push(&format!("{dpath}.schemaVersion"), format!("expected a string, found {}", type_name(other))),
                }
                match desired.get("routes") {
                    None => c.push(&dpath, "missing routes"),
                    Some(routes) => {
                        let rpath = format!("{dpath}.routes");
                        if let Some(routes) = c.object(routes, &rpath) {
                            for (name, value) in routes {
                                if let Some(route) = parse_route_entry(c, name, value, &key_path(&rpath, name)) {
                                    out.routes.push(route);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(agent) = content.get("$edgeAgent") {
        let path = key_path(base, "$edgeAgent");
        if let Some((desired, dpath)) = c.desired(agent, &path) {
            if let Some(modules) = desired.get("modules") {
                if let Some(modules) = c.object(modules, &format!("{dpath}.modules")) {
                    out.modules_to_run = modules.keys().cloned().collect();
                }
            }
        }
    }
    for (name, entry) in content {
        if name == "$edgeHub" || name == "$edgeAgent" {
            continue;
        }
        let path = key_path(base, name);
        if let Err(e) = super::topics::validate_id("module id", name) {
            c.push(&path, e.to_string());
            continue;
        }
        if let Some((desired, _)) = c.desired(entry, &path) {
            out.desired.insert(name.clone(), desired.clone());
        }
    }
}

fn parse_route_entry(c: &mut Collector, name: &str, value: &Value, path: &str) -> Option<Route> {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Object(m) => {
            for (k, v) in m {
                match k.as_str() {
                    "route" => {}
                    "priority" => {
                        if v.as_u64().is_none_or(|p| p > 9) {
                            c.push(&format!("{path}.priority"), format!("expected an integer from 0 to 9, found {v}"));
                        }
                    }
                    "timeToLiveSecs" => {
                        if v.as_u64().is_none() {
                            c.push(&format!("{path}.timeToLiveSecs"), format!("expected a non-negative integer, found {v}"));
                        }
                    }
                    other => c.push(&key_path(path, other), "unknown key; a route object has route, priority and timeToLiveSecs"),
                }
            }
            match m.get("route") {
                Some(Value::String(s)) => s.as_str(),
                Some(other) => {
                    c.push(&format!("{path}.route"), format!("expected a string, found {}", type_name(other)));
                    return None;
                }
                None => {
                    c.push(path, "missing route");
                    return None;
                }
            }
        }
        other => {
            c.push(path, format!("expected a route string or object, found {}", type_name(other)));
            return None;
        }
    };
    match parse_route(name, text) {
        Ok(r) => Some(r),
        Err(e) => {
            c.push(path, format!("column {}: {}", e.column, e.message));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::routes::{Sink, Source};
    use serde_json::json;

    fn problems(doc: Value) -> Vec<(String, String)> {
        Deployment::from_value(&doc).unwrap_err().problems.into_iter().map(|p| (p.path, p.message)).collect()
    }

    #[test]
    fn parses_the_object_counter_sample_shape() {
        let d = Deployment::from_value(&json!({
            "$schema-template": "2.0.0",
            "modulesContent": {
                "$edgeAgent": {"properties.desired": {"schemaVersion": "1.0", "runtime": {"type": "docker"},
                    "modules": {"lvaEdge": {"type": "docker"}, "objectCounter": {"type": "docker"}}}},
                "$edgeHub": {"properties.desired": {"schemaVersion": "1.0", "routes": {
                    "LVAToObjectCounter": "FROM /messages/modules/lvaEdge/outputs/detectedObjects INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")",
                    "ObjectCounterToIoTHub": {"route": "FROM /messages/modules/objectCounter/outputs/* INTO $upstream", "priority": 0, "timeToLiveSecs": 86400}
                }, "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}},
                "lvaEdge": {"properties.desired": {"diagnosticsEventsOutputName": "AmsDiagnostics"}},
                "objectCounter": {"properties": {"desired": {"objectTag": "truck", "objectConfidence": 0.5}}}
            }
        }))
        .unwrap();
        assert_eq!(d.routes.len(), 2);
        assert_eq!(d.routes[0].name, "LVAToObjectCounter");
        assert_eq!(d.routes[0].sink, Sink::ModuleInput { module: "objectCounter".into(), input: "detectedObjects".into() });
        assert_eq!(d.routes[1].source, Source::ModuleOutputs { module: "objectCounter".into() });
        assert_eq!(d.desired["objectCounter"]["objectTag"], json!("truck"));
        assert_eq!(d.desired["lvaEdge"]["diagnosticsEventsOutputName"], json!("AmsDiagnostics"));
        assert_eq!(d.modules_to_run, ["lvaEdge", "objectCounter"]);
        assert_eq!(d.hub_schema_version.as_deref(), Some("1.0"));
    }

    #[test]
    fn every_problem_has_a_json_path() {
        let got = problems(json!({
            "modulesContent": {
                "$edgeHub": {"properties.desired": {"schemaVersion": 1, "routes": {
                    "ok": "FROM /* INTO $upstream",
                    "typo": "FROM /messages/modules/a/output/* INTO $upstream",
                    "filtered": "FROM /* WHERE a = 1 INTO $upstream",
                    "number": 5,
                    "obj": {"priority": 12, "ttl": 1},
                    "my route": {"route": 7}
                }}},
                "lvaEdge": {"properties.desired": []},
                "objectCounter": {},
                "bad/name": {"properties.desired": {}},
                "both": {"properties.desired": {}, "properties": {"desired": {}}}
            }
        }));
        let expected = [
            ("$.modulesContent['$edgeHub']['properties.desired'].schemaVersion", "expected a string, found a number"),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes.typo", "column 26: unexpected segment \"output\""),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes.filtered", "column 9: WHERE conditions are not supported yet"),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes.number", "expected a route string or object, found a number"),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes.obj.priority", "expected an integer from 0 to 9, found 12"),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes.obj.ttl", "unknown key"),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes.obj", "missing route"),
            ("$.modulesContent['$edgeHub']['properties.desired'].routes['my route'].route", "expected a string, found a number"),
            ("$.modulesContent.lvaEdge['properties.desired']", "expected an object, found an array"),
            ("$.modulesContent.objectCounter", "missing 'properties.desired'"),
            ("$.modulesContent['bad/name']", "invalid module id"),
            ("$.modulesContent.both", "both 'properties.desired' and properties.desired"),
        ];
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (path, needle) in expected {
            assert!(got.iter().any(|(p, m)| p == path && m.contains(needle)), "missing {path}: {needle}\n{got:#?}");
        }
    }

    #[test]
    fn structural_problems() {
        assert_eq!(problems(json!([])), [("$".to_string(), "expected an object, found an array".to_string())]);
        assert_eq!(problems(json!({})), [("$".to_string(), "missing modulesContent".to_string())]);
        assert_eq!(
            problems(json!({"modulesContent": {}})),
            [("$.modulesContent".to_string(), "missing $edgeHub (it holds the routes)".to_string())]
        );
        assert_eq!(
            problems(json!({"modulesContent": {"$edgeHub": {"properties.desired": {}}}})),
            [("$.modulesContent['$edgeHub']['properties.desired']".to_string(), "missing routes".to_string())]
        );
        assert_eq!(
            problems(json!({"modulesContent": {"$edgeHub": {"properties.desired": {"routes": []}}}})),
            [("$.modulesContent['$edgeHub']['properties.desired'].routes".to_string(), "expected an object, found an array".to_string())]
        );
        let e = Deployment::from_json("{").unwrap_err();
        assert!(e.problems[0].message.starts_with("not valid JSON"), "{e}");
        assert!(e.to_string().starts_with("invalid deployment manifest (1 problem)\n  $: not valid JSON"), "{e}");
    }

    #[test]
    fn old_module_content_spelling_and_no_agent() {
        let d = Deployment::from_value(&json!({"moduleContent": {"$edgeHub": {"properties.desired": {"routes": {}}}}})).unwrap();
        assert!(d.routes.is_empty() && d.desired.is_empty() && d.modules_to_run.is_empty());
    }

    #[test]
    fn every_reference_template_parses() {
        let Some(templates) = crate::hub::routes::tests::reference_templates() else { return };
        for path in templates {
            let text = std::fs::read_to_string(&path).unwrap();
            let d = Deployment::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!d.routes.is_empty(), "{}", path.display());
            assert!(!d.modules_to_run.is_empty(), "{}", path.display());
            for m in ["lvaEdge", "avaedge"] {
                if d.modules_to_run.iter().any(|x| x == m) {
                    assert!(d.desired.contains_key(m), "{}: no desired properties for {m}", path.display());
                }
            }
        }
    }
}
