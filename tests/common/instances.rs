//! Plausible instance (live pipeline) documents for topologies: every parameter without
//! a default gets a value that fits its declared type and the place it is used in.
//!
//! Shared by `tests/robustness.rs` and `benches/compile.rs` (both include it with
//! `#[path]`); it needs nothing but `serde_json`.
#![allow(dead_code)]

use serde_json::{json, Map, Value};

/// The camera of the Vela development setup (the RTSP simulator's sample file).
pub const RTSP_URL: &str = "rtsp://127.0.0.1:8554/media/vtest.mkv";
/// A gRPC inference server (`tcp://host:port`, as LVA/AVA require).
pub const GRPC_URL: &str = "tcp://127.0.0.1:5001";
/// An HTTP inference server.
pub const HTTP_URL: &str = "http://127.0.0.1:8080/score";
/// An HTTPS inference server (for a `TlsEndpoint`).
pub const HTTPS_URL: &str = "https://127.0.0.1:8443/score";

/// Case-insensitive property lookup, as the compiler reads documents.
pub fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// One declared parameter, as far as it can be read.
#[derive(Clone, Debug)]
pub struct Declared {
    pub name: String,
    /// Lower-cased declared type: `string`, `secretstring`, `int`, `double`, `bool`.
    pub ty: String,
    pub default: Option<Value>,
}

/// The parameter declarations of a topology (entries that are not objects with a
/// string `name` are skipped).
pub fn declarations(topology: &Value) -> Vec<Declared> {
    let params = get_ci(topology, "properties").and_then(|p| get_ci(p, "parameters")).and_then(Value::as_array);
    params
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(Declared {
                name: get_ci(p, "name")?.as_str()?.to_string(),
                ty: get_ci(p, "type").and_then(Value::as_str).unwrap_or("string").to_ascii_lowercase(),
                default: get_ci(p, "default").filter(|d| !d.is_null()).cloned(),
            })
        })
        .collect()
}

/// Where a `${name}` reference occurs.
#[derive(Clone, Debug)]
pub struct Usage {
    /// `sources`, `processors` or `sinks`.
    pub role: String,
    /// The node's `@type`.
    pub node_type: String,
    /// The keys from the node down to the string (`["endpoint", "url"]`).
    pub keys: Vec<String>,
    /// The `@type` of the object holding the string (`…UnsecuredEndpoint`).
    pub holder_type: String,
    /// Text before and after the reference in the string.
    pub before: String,
    pub after: String,
}

/// Every use of `${name}` in the node lists of a topology.
pub fn usages(topology: &Value, name: &str) -> Vec<Usage> {
    let needle = format!("${{{name}}}");
    let mut out = Vec::new();
    let Some(props) = get_ci(topology, "properties") else {
        return out;
    };
    for role in ["sources", "processors", "sinks"] {
        for node in get_ci(props, role).and_then(Value::as_array).into_iter().flatten() {
            let node_type = get_ci(node, "@type").and_then(Value::as_str).unwrap_or("").to_string();
            walk(node, &mut Vec::new(), "", &mut |keys, holder, s| {
                if let Some(pos) = s.find(&needle) {
                    out.push(Usage {
                        role: role.to_string(),
                        node_type: node_type.clone(),
                        keys: keys.to_vec(),
                        holder_type: holder.to_string(),
                        before: s[..pos].to_string(),
                        after: s[pos + needle.len()..].to_string(),
                    });
                }
            });
        }
    }
    out
}

fn walk(v: &Value, keys: &mut Vec<String>, holder: &str, f: &mut dyn FnMut(&[String], &str, &str)) {
    match v {
        Value::String(s) => f(keys, holder, s),
        Value::Array(a) => a.iter().for_each(|x| walk(x, keys, holder, f)),
        Value::Object(m) => {
            let here = get_ci(v, "@type").and_then(Value::as_str).unwrap_or(holder);
            let here = here.to_string();
            for (k, x) in m {
                keys.push(k.clone());
                walk(x, keys, &here, f);
                keys.pop();
            }
        }
        _ => {}
    }
}

/// The value a type takes when nothing better is known.
fn type_fallback(ty: &str) -> &'static str {
    match ty {
        "int" => "1",
        "double" => "1.0",
        "bool" => "false",
        _ => "sample",
    }
}

/// Whether `value` fits the declared type (the compiler's rule, restated).
pub fn fits(ty: &str, value: &str) -> bool {
    match ty {
        "int" => value.trim().parse::<i32>().is_ok(),
        "double" => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
        "bool" => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false"),
        _ => true,
    }
}

/// The URL an endpoint of this node needs.
fn url_for(role: &str, node_type: &str, holder_type: &str) -> &'static str {
    let t = node_type.to_ascii_lowercase();
    if role == "sources" || t.ends_with("rtspsource") {
        RTSP_URL
    } else if t.ends_with("grpcextension") || t.ends_with("cognitiveservicesvisionprocessor") {
        GRPC_URL
    } else if holder_type.to_ascii_lowercase().ends_with("tlsendpoint") {
        HTTPS_URL
    } else {
        HTTP_URL
    }
}

/// A value for a parameter used where `u` says, when it fills the whole string.
fn value_for_use(u: &Usage) -> Option<&'static str> {
    let key = u.keys.last().map(|k| k.to_ascii_lowercase()).unwrap_or_default();
    let parent = u.keys.iter().rev().nth(1).map(|k| k.to_ascii_lowercase()).unwrap_or_default();
    Some(match key.as_str() {
        "url" => url_for(&u.role, &u.node_type, &u.holder_type),
        "username" => "testuser",
        "password" | "headervalue" => "testpassword",
        "headername" => "x-api-key",
        "mode" if parent == "datatransfer" => "embedded",
        "mode" => "pad",
        "width" | "height" => "416",
        "quality" => "90",
        "pixelformat" => "rgb24",
        "encoding" => "jpeg",
        "maximumsamplespersecond" => "2.0",
        "maximumfps" => "2",
        "skipsampleswithoutannotation"
        | "outputmotionregion"
        | "enablevideopreviewimage"
        | "ignorehostname"
        | "ignoresignature"
        | "enablefacemaskclassifier"
        | "disablearchive"
        | "disablertsppublishing" => "false",
        "sensitivity" | "accuracy" => "medium",
        "transport" => "tcp",
        "eventaggregationwindow" | "activationevaluationwindow" => "PT1S",
        "activationsignaloffset" => "-PT5S",
        "minimumactivationtime" | "maximumactivationtime" | "segmentlength" => "PT30S",
        "retentionperiod" => "P30D",
        "videoname" => "sample-video",
        "assetnamepattern" => "sampleAsset",
        "filenamepattern" | "filepathpattern" => "sampleFile",
        "basedirectorypath" => "/var/media",
        "localmediacachepath" => "/var/lib/videoanalyzer/tmp/",
        "localmediacachemaximumsizemib" | "maximumsizemib" => "2048",
        "sharedmemorysizemib" => "64",
        "huboutputname" => "inferenceOutput",
        "hubinputname" => "recordingTrigger",
        "line" => "[[0.1,0.5],[0.9,0.5]]",
        "polygon" => "[[0.1,0.1],[0.9,0.1],[0.9,0.9],[0.1,0.9]]",
        "extensionconfiguration" => "{}",
        "name" => "sample1",
        "title" | "description" => "Sample",
        _ => return None,
    })
}

/// A value for a parameter nobody uses, from its name.
fn value_for_name(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    Some(if n.contains("rtsp") && (n.contains("url") || n.contains("uri")) {
        RTSP_URL
    } else if n.contains("grpc") && (n.contains("url") || n.contains("address")) {
        GRPC_URL
    } else if n.contains("url") || n.contains("uri") || n.contains("endpoint") {
        HTTP_URL
    } else if n.contains("password") || n.contains("secret") || n.contains("key") {
        "testpassword"
    } else if n.contains("user") {
        "testuser"
    } else {
        return None;
    })
}

/// A plausible value for one declared parameter of `topology`.
pub fn plausible_value(topology: &Value, d: &Declared) -> String {
    let uses = usages(topology, &d.name);
    let candidate = match uses.first() {
        Some(u) if u.before.is_empty() && u.after.is_empty() => value_for_use(u).map(str::to_string),
        // Part of a longer string: a host, a port or a word.
        Some(u) if u.before.ends_with("://") || u.before.ends_with('@') => Some("127.0.0.1".to_string()),
        Some(u) if u.before.ends_with(':') => Some("8554".to_string()),
        Some(u) if u.before.is_empty() && u.after.starts_with('/') => {
            Some(url_for(&u.role, &u.node_type, &u.holder_type).rsplit_once('/').map(|(a, _)| a).unwrap_or_default().to_string())
        }
        Some(_) => Some("sample".to_string()),
        None => value_for_name(&d.name).map(str::to_string),
    };
    match candidate {
        Some(v) if fits(&d.ty, &v) => v,
        _ => type_fallback(&d.ty).to_string(),
    }
}

/// The topology's name, if it has a string one.
pub fn topology_name(topology: &Value) -> Option<&str> {
    get_ci(topology, "name")?.as_str()
}

fn instance_doc(topology: &Value, instance_name: &str, values: Vec<(String, String)>) -> Value {
    let mut doc = Map::new();
    if let Some(v) = get_ci(topology, "@apiVersion") {
        doc.insert("@apiVersion".into(), v.clone());
    }
    doc.insert("name".into(), json!(instance_name));
    doc.insert(
        "properties".into(),
        json!({
            "topologyName": topology_name(topology).unwrap_or(""),
            "description": "generated by tests/common/instances.rs",
            "parameters": values
                .into_iter()
                .map(|(n, v)| json!({ "name": n, "value": v }))
                .collect::<Vec<_>>(),
        }),
    );
    Value::Object(doc)
}

/// An instance giving every parameter without a default a plausible value.
pub fn plausible_instance(topology: &Value, instance_name: &str) -> Value {
    let values = declarations(topology)
        .into_iter()
        .filter(|d| d.default.is_none())
        .map(|d| {
            let v = plausible_value(topology, &d);
            (d.name, v)
        })
        .collect();
    instance_doc(topology, instance_name, values)
}

/// Like `plausible_instance`, but parameters with a default are given it explicitly.
pub fn explicit_instance(topology: &Value, instance_name: &str) -> Value {
    let values = declarations(topology)
        .into_iter()
        .map(|d| {
            let v = match &d.default {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => plausible_value(topology, &d),
            };
            (d.name, v)
        })
        .collect();
    instance_doc(topology, instance_name, values)
}
