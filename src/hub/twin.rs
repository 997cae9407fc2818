//! Module twins: JSON merge patches, the hub's twin store and the module's view of its desired properties.
//!
//! Desired-property patches follow IoT Hub: a JSON merge patch (RFC 7386, `null` removes
//! a key) carrying the new `$version`, which goes up by one per change. A module applies
//! a patch only when it is exactly the next version, ignores a repeat of its current one
//! and asks for the full twin again on anything else: a gap (a patch lost while it was
//! disconnected) or a version from another hub incarnation. The hub keeps twins in
//! memory only, so each incarnation starts counting from a different base (its start
//! time in milliseconds) and announces every desired document once at start; modules
//! that knew an older incarnation see a foreign version and read the twin again.
//! Pure: no I/O.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The key IoT Hub uses for the version inside `desired` and `reported`.
pub const VERSION_KEY: &str = "$version";

/// Applies an RFC 7386 merge patch to `target`.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let obj = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            obj.remove(k);
        } else {
            apply_merge_patch(obj.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The merge patch that turns `old` into `new`; `None` when they are equal.
pub fn merge_patch_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch_diff(ov, nv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        // A null inside a desired document cannot be expressed by a merge patch (null
        // means "remove"); the key is removed instead, which is what IoT Hub does too.
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// One module's twin as the hub keeps it.
#[derive(Clone, Debug, Default)]
struct ModuleTwin {
    desired: Map<String, Value>,
    desired_version: u64,
    reported: Map<String, Value>,
    reported_version: u64,
    /// The patch that produced `desired_version`, re-sent when the hub reconnects.
    last_patch: Option<Value>,
}

/// The hub's twins: desired properties from the deployment, reported properties from
/// the modules. Versions start at the store's base and grow by one per change.
#[derive(Clone, Debug)]
pub struct TwinStore {
    base_version: u64,
    twins: BTreeMap<String, ModuleTwin>,
}

impl Default for TwinStore {
    fn default() -> Self {
        TwinStore::with_base_version(1)
    }
}

impl TwinStore {
    /// A store whose twins start at `base_version` (the hub uses its start time in
    /// milliseconds, see the module documentation).
    pub fn with_base_version(base_version: u64) -> Self {
        TwinStore { base_version: base_version.max(1), twins: BTreeMap::new() }
    }

    fn twin(&mut self, module: &str) -> &mut ModuleTwin {
        let base = self.base_version;
        self.twins.entry(module.to_string()).or_insert_with(|| ModuleTwin {
            desired_version: base,
            reported_version: base,
            ..Default::default()
        })
    }

    /// Sets a module's desired properties; returns the new version and the patch to
    /// publish when they changed. `$version` keys in `desired` are ignored.
    pub fn set_desired(&mut self, module: &str, desired: &Map<String, Value>) -> Option<(u64, Value)> {
        let mut desired = desired.clone();
        desired.remove(VERSION_KEY);
        let twin = self.twin(module);
        let mut patch = merge_patch_diff(&Value::Object(twin.desired.clone()), &Value::Object(desired.clone()))?;
        twin.desired = desired;
        twin.desired_version += 1;
        patch.as_object_mut().expect("a diff of two objects is an object").insert(VERSION_KEY.into(), twin.desired_version.into());
        twin.last_patch = Some(patch.clone());
        Some((twin.desired_version, patch))
    }

    /// Sets the desired properties of every module in `all` and clears those of known
    /// modules missing from it; returns the patches to publish, by module.
    pub fn set_all_desired(&mut self, all: &BTreeMap<String, Map<String, Value>>) -> Vec<(String, u64, Value)> {
        let empty = Map::new();
        let modules: Vec<String> =
            self.twins.keys().chain(all.keys()).cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        modules.into_iter().filter_map(|m| self.set_desired(&m, all.get(&m).unwrap_or(&empty)).map(|(v, p)| (m, v, p))).collect()
    }

    /// The latest desired patch of every module that has one. Sending them again is
    /// safe: a module at that version ignores it, one just behind applies it, one
    /// further behind (or from another hub incarnation) reads its twin again.
    pub fn last_patches(&self) -> Vec<(String, u64, Value)> {
        self.twins.iter().filter_map(|(m, t)| t.last_patch.clone().map(|p| (m.clone(), t.desired_version, p))).collect()
    }

    /// The desired properties with their `$version`.
    pub fn desired(&mut self, module: &str) -> Value {
        let twin = self.twin(module);
        with_version(&twin.desired, twin.desired_version)
    }

    /// The twin document a GET answers: `{desired, reported}`, each with its `$version`.
    pub fn get(&mut self, module: &str) -> Value {
        let twin = self.twin(module);
        serde_json::json!({
            "desired": with_version(&twin.desired, twin.desired_version),
            "reported": with_version(&twin.reported, twin.reported_version),
        })
    }

    /// Merges a reported-properties patch; returns the new reported version.
    pub fn patch_reported(&mut self, module: &str, patch: &Map<String, Value>) -> u64 {
        let twin = self.twin(module);
        let mut reported = Value::Object(std::mem::take(&mut twin.reported));
        let mut patch = patch.clone();
        patch.remove(VERSION_KEY);
        apply_merge_patch(&mut reported, &Value::Object(patch));
        twin.reported = match reported {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        twin.reported_version += 1;
        twin.reported_version
    }
}

fn with_version(props: &Map<String, Value>, version: u64) -> Value {
    let mut m = props.clone();
    m.insert(VERSION_KEY.into(), version.into());
    Value::Object(m)
}

/// What a module should do after a twin message.
#[derive(Clone, Debug, PartialEq)]
pub enum DesiredAction {
    /// Nothing changed (a repeated patch, or still waiting for the first GET).
    None,
    /// The desired properties are now this document (with `$version`).
    Publish(Value),
    /// A patch was missed or comes from another hub incarnation: read the whole twin again.
    Resync,
}

/// A module's view of its desired properties, fed by GET answers and patches.
#[derive(Clone, Debug, Default)]
pub struct DesiredTracker {
    current: Option<(Value, u64)>,
    /// Patches that arrived before the first GET answer.
    early: Vec<(u64, Value)>,
}

impl DesiredTracker {
    /// The current version, if the twin was read.
    pub fn version(&self) -> Option<u64> {
        self.current.as_ref().map(|(_, v)| *v)
    }

    /// A GET answer's `desired` document is authoritative; patches that arrived before
    /// it and are newer are applied on top.
    pub fn on_get(&mut self, desired: Value) -> DesiredAction {
        let version = version_of(&desired);
        let mut doc = desired;
        let mut v = version;
        let mut early = std::mem::take(&mut self.early);
        early.sort_by_key(|(pv, _)| *pv);
        for (pv, patch) in early {
            if pv == v + 1 {
                apply_merge_patch(&mut doc, &patch);
                v = pv;
            } else if pv > v + 1 {
                self.current = Some((doc, v));
                return DesiredAction::Resync;
            }
        }
        self.current = Some((doc.clone(), v));
        DesiredAction::Publish(doc)
    }

    /// A desired-properties patch with its version from the topic.
    pub fn on_patch(&mut self, version: u64, patch: Value) -> DesiredAction {
        let Some((doc, current)) = &mut self.current else {
            self.early.push((version, patch));
            return DesiredAction::None;
        };
        if version == *current {
            return DesiredAction::None;
        }
        if version != *current + 1 {
            return DesiredAction::Resync;
        }
        apply_merge_patch(doc, &patch);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert(VERSION_KEY.into(), version.into());
        }
        *current = version;
        DesiredAction::Publish(doc.clone())
    }
}

fn version_of(doc: &Value) -> u64 {
    doc.get(VERSION_KEY).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (json!({"a":{"b":"c"}}), json!({"a":{"b":"d","c":null}}), json!({"a":{"b":"d"}})),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (target, patch, expected) in cases {
            let mut t = target.clone();
            apply_merge_patch(&mut t, &patch);
            assert_eq!(t, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn diff_then_apply_gives_the_new_document() {
        let pairs = [
            (json!({}), json!({"objectTag": "truck", "objectConfidence": 0.5})),
            (json!({"objectTag": "truck", "objectConfidence": 0.5}), json!({"objectTag": "car", "objectConfidence": 0.5})),
            (json!({"a": {"b": 1, "c": 2}, "d": [1]}), json!({"a": {"b": 1}, "d": [1, 2], "e": "x"})),
            (json!({"a": 1}), json!({})),
        ];
        for (old, new) in pairs {
            let patch = merge_patch_diff(&old, &new).unwrap();
            let mut t = old.clone();
            apply_merge_patch(&mut t, &patch);
            assert_eq!(t, new, "patch {patch}");
        }
        assert_eq!(merge_patch_diff(&json!({"a": {"b": 1}}), &json!({"a": {"b": 1}})), None);
        assert_eq!(merge_patch_diff(&json!({"a": 1, "b": 2}), &json!({"a": 1, "b": 3})), Some(json!({"b": 3})));
    }

    #[test]
    fn store_versions_patches_and_get() {
        let mut s = TwinStore::default();
        assert_eq!(s.get("m"), json!({"desired": {"$version": 1}, "reported": {"$version": 1}}));
        let (v, patch) = s.set_desired("m", &obj(json!({"objectTag": "truck", "$version": 99}))).unwrap();
        assert_eq!((v, patch), (2, json!({"objectTag": "truck", "$version": 2})));
        assert_eq!(s.set_desired("m", &obj(json!({"objectTag": "truck"}))), None);
        let (v, patch) = s.set_desired("m", &obj(json!({"objectConfidence": 0.5}))).unwrap();
        assert_eq!((v, patch), (3, json!({"objectTag": null, "objectConfidence": 0.5, "$version": 3})));
        assert_eq!(s.desired("m"), json!({"objectConfidence": 0.5, "$version": 3}));
        assert_eq!(s.patch_reported("m", &obj(json!({"state": "ok", "n": 1}))), 2);
        assert_eq!(s.patch_reported("m", &obj(json!({"n": null}))), 3);
        assert_eq!(s.get("m")["reported"], json!({"state": "ok", "$version": 3}));
    }

    #[test]
    fn set_all_desired_clears_modules_that_left_the_deployment() {
        let mut s = TwinStore::default();
        let first: BTreeMap<String, Map<String, Value>> =
            [("a".to_string(), obj(json!({"x": 1}))), ("b".to_string(), obj(json!({"y": 2})))].into_iter().collect();
        let patches = s.set_all_desired(&first);
        assert_eq!(patches.len(), 2);
        let second: BTreeMap<String, Map<String, Value>> = [("a".to_string(), obj(json!({"x": 1})))].into_iter().collect();
        assert_eq!(s.set_all_desired(&second), vec![("b".to_string(), 3, json!({"y": null, "$version": 3}))]);
        assert_eq!(
            s.last_patches(),
            vec![("a".to_string(), 2, json!({"x": 1, "$version": 2})), ("b".to_string(), 3, json!({"y": null, "$version": 3}))]
        );
    }

    #[test]
    fn versions_start_at_the_base() {
        let mut s = TwinStore::with_base_version(1_700_000_000_000);
        assert_eq!(s.get("m")["desired"]["$version"], json!(1_700_000_000_000u64));
        assert_eq!(s.set_desired("m", &obj(json!({"a": 1}))).unwrap().0, 1_700_000_000_001);
    }

    #[test]
    fn tracker_applies_next_version_ignores_old_and_resyncs_on_gaps() {
        let mut t = DesiredTracker::default();
        assert_eq!(t.on_patch(3, json!({"a": 2, "$version": 3})), DesiredAction::None, "before the first GET");
        assert_eq!(t.on_get(json!({"a": 1, "$version": 2})), DesiredAction::Publish(json!({"a": 2, "$version": 3})));
        assert_eq!(t.version(), Some(3));
        assert_eq!(t.on_patch(3, json!({"a": 9, "$version": 3})), DesiredAction::None, "duplicate");
        assert_eq!(t.on_patch(4, json!({"b": true, "$version": 4})), DesiredAction::Publish(json!({"a": 2, "b": true, "$version": 4})));
        assert_eq!(t.on_patch(6, json!({"c": 1, "$version": 6})), DesiredAction::Resync, "gap");
        assert_eq!(t.on_patch(2, json!({"c": 1, "$version": 2})), DesiredAction::Resync, "another incarnation");
        assert_eq!(t.version(), Some(4));
        // The GET answer of a restarted hub replaces everything, whatever its version.
        assert_eq!(t.on_get(json!({"z": 0, "$version": 1})), DesiredAction::Publish(json!({"z": 0, "$version": 1})));
    }

    #[test]
    fn tracker_resyncs_when_early_patches_have_a_gap() {
        let mut t = DesiredTracker::default();
        t.on_patch(5, json!({"a": 5, "$version": 5}));
        assert_eq!(t.on_get(json!({"a": 1, "$version": 2})), DesiredAction::Resync);
        // Older early patches are dropped silently.
        let mut t = DesiredTracker::default();
        t.on_patch(1, json!({"a": 0, "$version": 1}));
        assert_eq!(t.on_get(json!({"a": 1, "$version": 2})), DesiredAction::Publish(json!({"a": 1, "$version": 2})));
    }
}
