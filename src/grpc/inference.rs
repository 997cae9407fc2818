//! Inferences between the proto form (gRPC) and the JSON form of SPEC §4.3 (events, HTTP, frames).
//!
//! Proto3 cannot tell an absent field from its default, so JSON gets no `subtype`,
//! `inferenceId`, `sequenceId`, lists or maps when they are empty, and no `text` timestamps
//! when they are 0; tag and attribute confidences are always written (0 is a confidence).
//! Floats are 32-bit in the proto: they are written with the shortest decimal that reads
//! back as the same f32 (0.3, not 0.30000001192092896).

use super::pb;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Why a JSON inference cannot travel as a proto one.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct InferenceError {
    /// JSON path inside the inference, e.g. `entity.box.l`.
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> InferenceError {
    InferenceError { path: path.into(), message: message.into() }
}

fn num(v: f32) -> Value {
    let d: f64 = v.to_string().parse().unwrap_or(f64::from(v));
    serde_json::Number::from_f64(d).map_or(Value::Null, Value::Number)
}

fn type_name(t: pb::inference::InferenceType) -> &'static str {
    use pb::inference::InferenceType as T;
    match t {
        T::Classification => "classification",
        T::Motion => "motion",
        T::Entity => "entity",
        T::Text => "text",
        T::Event => "event",
        T::Other => "other",
        T::Auto => "other",
    }
}

fn value_type(v: &pb::inference::Value) -> pb::inference::InferenceType {
    use pb::inference::{InferenceType as T, Value as V};
    match v {
        V::Classification(_) => T::Classification,
        V::Motion(_) => T::Motion,
        V::Entity(_) => T::Entity,
        V::Text(_) => T::Text,
        V::Event(_) => T::Event,
        V::Other(_) => T::Other,
    }
}

fn rect(r: &pb::Rectangle) -> Value {
    json!({ "l": num(r.l), "t": num(r.t), "w": num(r.w), "h": num(r.h) })
}

fn tag(t: &pb::Tag) -> Value {
    json!({ "value": t.value, "confidence": num(t.confidence) })
}

fn attributes(o: &mut Map<String, Value>, a: &[pb::Attribute]) {
    if !a.is_empty() {
        let list = a.iter().map(|a| json!({ "name": a.name, "value": a.value, "confidence": num(a.confidence) }));
        o.insert("attributes".into(), Value::Array(list.collect()));
    }
}

fn string_map(m: &std::collections::HashMap<String, String>) -> Value {
    // Sorted, so that the same inference always prints the same.
    let mut keys: Vec<_> = m.keys().collect();
    keys.sort();
    Value::Object(keys.into_iter().map(|k| (k.clone(), Value::String(m[k].clone()))).collect())
}

/// The JSON form of a proto inference. `None` when it carries no value (the sample servers
/// reject those with InvalidArgument; a client drops them).
pub fn to_json(i: &pb::Inference) -> Option<Value> {
    use pb::inference::Value as V;
    let value = i.value.as_ref()?;
    // AUTO (and a type that disagrees with the value) is read from the value, as LVA does.
    let kind = type_name(value_type(value));
    let mut o = Map::new();
    o.insert("type".into(), json!(kind));
    if !i.subtype.is_empty() {
        o.insert("subtype".into(), json!(i.subtype));
    }
    if !i.inference_id.is_empty() {
        o.insert("inferenceId".into(), json!(i.inference_id));
    }
    if !i.related_inferences.is_empty() {
        o.insert("relatedInferences".into(), json!(i.related_inferences));
    }
    if !i.sequence_id.is_empty() {
        o.insert("sequenceId".into(), json!(i.sequence_id));
    }
    if !i.extensions.is_empty() {
        o.insert("extensions".into(), string_map(&i.extensions));
    }
    let body = match value {
        V::Classification(c) => {
            let mut b = Map::new();
            b.insert("tag".into(), c.tag.as_ref().map_or(json!({ "value": "" }), tag));
            attributes(&mut b, &c.attributes);
            Value::Object(b)
        }
        V::Motion(m) => {
            let mut b = Map::new();
            if let Some(r) = &m.r#box {
                b.insert("box".into(), rect(r));
            }
            Value::Object(b)
        }
        V::Entity(e) => {
            let mut b = Map::new();
            if !e.id.is_empty() {
                b.insert("id".into(), json!(e.id));
            }
            b.insert("tag".into(), e.tag.as_ref().map_or(json!({ "value": "" }), tag));
            attributes(&mut b, &e.attributes);
            b.insert("box".into(), e.r#box.as_ref().map_or(json!({ "l": 0, "t": 0, "w": 0, "h": 0 }), rect));
            Value::Object(b)
        }
        V::Text(t) => {
            let mut b = Map::new();
            b.insert("value".into(), json!(t.value));
            if !t.language.is_empty() {
                b.insert("language".into(), json!(t.language));
            }
            if t.start_timestamp != 0 {
                b.insert("startTimestamp".into(), json!(t.start_timestamp));
            }
            if t.end_timestamp != 0 {
                b.insert("endTimestamp".into(), json!(t.end_timestamp));
            }
            Value::Object(b)
        }
        V::Event(e) => json!({ "name": e.name, "properties": string_map(&e.properties) }),
        V::Other(x) => json!({
            "contentType": x.content_type,
            "contentBytes": base64::engine::general_purpose::STANDARD.encode(&x.content_bytes),
        }),
    };
    o.insert(kind.into(), body);
    Some(Value::Object(o))
}

struct Reader<'a> {
    o: &'a Map<String, Value>,
    path: String,
}

impl<'a> Reader<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, InferenceError> {
        let o = v.as_object().ok_or_else(|| err(path, "expected an object"))?;
        Ok(Reader { o, path: path.into() })
    }
    fn at(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.into()
        } else {
            format!("{}.{k}", self.path)
        }
    }
    fn text(&self, k: &str) -> Result<String, InferenceError> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(&self.at(k), "expected a string")),
        }
    }
    fn float(&self, k: &str) -> Result<f32, InferenceError> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(0.0),
            Some(v) => v.as_f64().map(|v| v as f32).ok_or_else(|| err(&self.at(k), "expected a number")),
        }
    }
    fn uint(&self, k: &str) -> Result<u64, InferenceError> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_u64().ok_or_else(|| err(&self.at(k), "expected a non-negative integer")),
        }
    }
    fn child(&self, k: &str) -> Result<Option<Reader<'a>>, InferenceError> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Reader::new(v, &self.at(k)).map(Some),
        }
    }
    fn strings(&self, k: &str) -> Result<Vec<String>, InferenceError> {
        match self.o.get(k) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(n, v)| v.as_str().map(str::to_owned).ok_or_else(|| err(&format!("{}[{n}]", self.at(k)), "expected a string")))
                .collect(),
            Some(_) => Err(err(&self.at(k), "expected an array of strings")),
        }
    }
    fn string_map(&self, k: &str) -> Result<std::collections::HashMap<String, String>, InferenceError> {
        let Some(r) = self.child(k)? else { return Ok(Default::default()) };
        r.o.iter()
            .map(|(key, v)| match v {
                Value::String(s) => Ok((key.clone(), s.clone())),
                // Numbers and booleans are common in hand-written properties: kept as text.
                Value::Number(_) | Value::Bool(_) => Ok((key.clone(), v.to_string())),
                _ => Err(err(&r.at(key), "expected a string")),
            })
            .collect()
    }
    fn rect(&self, k: &str) -> Result<Option<pb::Rectangle>, InferenceError> {
        let Some(b) = self.child(k)? else { return Ok(None) };
        Ok(Some(pb::Rectangle { l: b.float("l")?, t: b.float("t")?, w: b.float("w")?, h: b.float("h")? }))
    }
    fn tag(&self) -> Result<Option<pb::Tag>, InferenceError> {
        let Some(t) = self.child("tag")? else { return Ok(None) };
        Ok(Some(pb::Tag { value: t.text("value")?, confidence: t.float("confidence")? }))
    }
    fn attributes(&self) -> Result<Vec<pb::Attribute>, InferenceError> {
        match self.o.get("attributes") {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(n, v)| {
                    let r = Reader::new(v, &format!("{}[{n}]", self.at("attributes")))?;
                    Ok(pb::Attribute { name: r.text("name")?, value: r.text("value")?, confidence: r.float("confidence")? })
                })
                .collect(),
            Some(_) => Err(err(&self.at("attributes"), "expected an array")),
        }
    }
}

/// The proto form of a JSON inference (SPEC §4.3 schema); errors name the JSON path.
pub fn from_json(v: &Value) -> Result<pb::Inference, InferenceError> {
    use pb::inference::{InferenceType as T, Value as V};
    let r = Reader::new(v, "")?;
    let kind = r.text("type")?;
    let value_of = |name: &str| r.child(name)?.ok_or_else(|| err(name, format!("a '{kind}' inference needs its '{name}' object")));
    let (ty, value) = match kind.as_str() {
        "classification" => {
            let c = value_of("classification")?;
            (T::Classification, V::Classification(pb::Classification { tag: c.tag()?, attributes: c.attributes()? }))
        }
        "motion" => {
            let m = r.child("motion")?;
            let b = match m {
                Some(m) => m.rect("box")?,
                None => None,
            };
            (T::Motion, V::Motion(pb::Motion { r#box: b }))
        }
        "entity" => {
            let e = value_of("entity")?;
            let entity = pb::Entity { tag: e.tag()?, attributes: e.attributes()?, r#box: e.rect("box")?, id: e.text("id")? };
            (T::Entity, V::Entity(entity))
        }
        "text" => {
            let t = value_of("text")?;
            let text = pb::Text {
                value: t.text("value")?,
                language: t.text("language")?,
                start_timestamp: t.uint("startTimestamp")?,
                end_timestamp: t.uint("endTimestamp")?,
            };
            (T::Text, V::Text(text))
        }
        "event" => {
            let e = value_of("event")?;
            (T::Event, V::Event(pb::Event { name: e.text("name")?, properties: e.string_map("properties")? }))
        }
        "other" => {
            let o = value_of("other")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(o.text("contentBytes")?)
                .map_err(|e| err("other.contentBytes", format!("not base64: {e}")))?;
            (T::Other, V::Other(pb::InferenceOther { content_type: o.text("contentType")?, content_bytes: bytes }))
        }
        "" => return Err(err("type", "missing")),
        other => return Err(err("type", format!("'{other}' is not one of classification, motion, entity, text, event, other"))),
    };
    Ok(pb::Inference {
        r#type: ty as i32,
        subtype: r.text("subtype")?,
        inference_id: r.text("inferenceId")?,
        related_inferences: r.strings("relatedInferences")?,
        sequence_id: r.text("sequenceId")?,
        value: Some(value),
        extensions: r.string_map("extensions")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) {
        let p = from_json(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(to_json(&p).unwrap(), v);
    }

    #[test]
    fn every_kind_survives_a_round_trip() {
        round_trip(json!({"type": "entity", "subtype": "objectDetection", "inferenceId": "a1",
            "entity": {"tag": {"value": "person", "confidence": 0.87}, "box": {"l": 0.1, "t": 0.2, "w": 0.3, "h": 0.4}}}));
        round_trip(json!({"type": "entity", "sequenceId": "7", "entity": {"id": "car-3", "tag": {"value": "car", "confidence": 0.5},
            "attributes": [{"name": "color", "value": "red", "confidence": 0.25}], "box": {"l": 0.0, "t": 0.0, "w": 1.0, "h": 1.0}}}));
        round_trip(json!({"type": "classification", "classification": {"tag": {"value": "daylight", "confidence": 0.99}}}));
        round_trip(json!({"type": "motion", "motion": {"box": {"l": 0.5, "t": 0.25, "w": 0.125, "h": 0.0625}}}));
        round_trip(json!({"type": "motion", "motion": {}}));
        round_trip(
            json!({"type": "text", "text": {"value": "ABC 123", "language": "en-US", "startTimestamp": 90000, "endTimestamp": 180000}}),
        );
        round_trip(json!({"type": "event", "subtype": "lineCrossing", "relatedInferences": ["a", "b"],
            "event": {"name": "LineCrossing", "properties": {"count": "3", "direction": "clockwise"}}}));
        round_trip(json!({"type": "other", "extensions": {"k": "v"}, "other": {"contentType": "text/plain", "contentBytes": "Y2F0"}}));
    }

    #[test]
    fn auto_and_mismatched_types_are_read_from_the_value() {
        let p = pb::Inference {
            r#type: pb::inference::InferenceType::Auto as i32,
            value: Some(pb::inference::Value::Motion(pb::Motion { r#box: None })),
            ..Default::default()
        };
        assert_eq!(to_json(&p).unwrap()["type"], "motion");
        let none = pb::Inference { r#type: pb::inference::InferenceType::Entity as i32, ..Default::default() };
        assert_eq!(to_json(&none), None);
    }

    #[test]
    fn f32_values_print_as_short_decimals() {
        let p = from_json(&json!({"type": "entity", "entity": {"tag": {"value": "x", "confidence": 0.3}, "box": {"l": 0.1, "t": 0.7, "w": 0.2, "h": 0.9}}})).unwrap();
        let s = to_json(&p).unwrap().to_string();
        assert!(s.contains("\"confidence\":0.3") && s.contains("\"t\":0.7"), "{s}");
    }

    #[test]
    fn bad_json_is_refused_with_its_path() {
        let e = |v: Value| from_json(&v).unwrap_err();
        assert_eq!(e(json!({"type": "entity"})).path, "entity");
        assert_eq!(e(json!({"type": "entity", "entity": {"tag": {"value": 3}, "box": {}}})).path, "entity.tag.value");
        assert_eq!(e(json!({"type": "entity", "entity": {"tag": {"value": "a"}, "box": {"l": "x"}}})).path, "entity.box.l");
        assert_eq!(e(json!({"type": "object"})).path, "type");
        assert_eq!(e(json!({"type": "other", "other": {"contentBytes": "@@"}})).path, "other.contentBytes");
        assert_eq!(e(json!({"type": "event", "event": {"name": "n", "properties": {"a": [1]}}})).path, "event.properties.a");
        assert_eq!(
            e(json!({"type": "classification", "relatedInferences": [1], "classification": {"tag": {"value": "a"}}})).path,
            "relatedInferences[0]"
        );
        assert_eq!(e(json!([])).path, "");
    }
}
