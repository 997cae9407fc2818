//! Robustness of the topology compiler: whatever it is given — arbitrary bytes, arbitrary
//! JSON, published topologies and generated instances damaged in random ways — it never
//! panics, and it answers either with a plan that has nodes or with a non-empty list of
//! diagnostics, each with a message and a target that is a JSONPath (`$…`).
//!
//! The properties run with a fixed seed (set `PROPTEST_RNG_SEED` to explore others,
//! `PROPTEST_CASES` to run more cases) and without failure persistence, so a failure is
//! reproducible from the seed and leaves no regressions file behind.
//!
//! `every_compiling_corpus_topology_compiles_with_a_plausible_instance` runs the instance
//! path over the whole corpus with values from `common/instances.rs`.

mod common;
#[path = "common/instances.rs"]
mod instances;

use common::{fixture, json_files};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{RngSeed, TestCaseError};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use vela::topology::{
    self, check_instance_document, check_topology, compile_instance, parse_json, ApiVersion, CompileErrors, Diagnostic, Plan, TopologyPlan,
};

// ---------------------------------------------------------------------------------------
// Configuration and shared checks
// ---------------------------------------------------------------------------------------

/// The seed used unless `PROPTEST_RNG_SEED` names another.
const SEED: u64 = 0x7e1a_2024_0b5e_55ed;

fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() { default.rng_seed } else { RngSeed::Fixed(SEED) },
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..default
    }
}

fn check_diagnostic(what: &str, d: &Diagnostic) -> Result<(), TestCaseError> {
    prop_assert!(!d.message.trim().is_empty(), "{what}: a diagnostic without a message: {d:?}");
    prop_assert!(d.target.as_str().starts_with('$'), "{what}: a diagnostic whose target is not a JSONPath: {d:?}");
    Ok(())
}

fn check_errors(what: &str, e: &CompileErrors) -> Result<(), TestCaseError> {
    prop_assert!(!e.details.is_empty(), "{what}: an error without details");
    for d in &e.details {
        check_diagnostic(what, d)?;
    }
    // The renderings the service and the CLI use must not panic either.
    let _ = e.to_odata();
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

/// A plan has nodes, its edges join nodes of the plan, and it renders.
fn check_plan<S: serde::Serialize>(what: &str, p: &Plan<S>) -> Result<(), TestCaseError> {
    prop_assert!(!p.nodes.is_empty(), "{what}: Ok with an empty plan");
    for e in &p.edges {
        prop_assert!(
            p.node(&e.from).is_some() && p.node(&e.to).is_some(),
            "{what}: edge {} -> {} names a node that is not in the plan",
            e.from,
            e.to
        );
    }
    for w in &p.warnings {
        check_diagnostic(what, w)?;
    }
    let _ = p.summary();
    prop_assert!(serde_json::to_string(p).is_ok(), "{what}: plan does not serialise");
    Ok(())
}

fn check_result<S: serde::Serialize>(what: &str, r: &Result<Plan<S>, CompileErrors>) -> Result<(), TestCaseError> {
    match r {
        Ok(p) => check_plan(what, p),
        Err(e) => check_errors(what, e),
    }
}

/// Runs bytes through everything that reads a single document.
fn check_bytes(bytes: &[u8], strict: bool) -> Result<(), TestCaseError> {
    let report = vela::check::check_file("fuzz.json", bytes, strict);
    prop_assert!(report.text.starts_with("OK") || report.text.starts_with("FAIL"), "unexpected report: {}", report.text);
    match parse_json(bytes) {
        Err(e) => check_errors("parse_json", &e),
        Ok(doc) => check_document(&doc),
    }
}

fn check_document(doc: &Value) -> Result<(), TestCaseError> {
    if topology::is_instance_document(doc) {
        if let Err(e) = check_instance_document(doc) {
            check_errors("check_instance_document", &e)?;
        }
    }
    check_result("check_topology", &check_topology(doc, None))
}

fn hints() -> impl Strategy<Value = Option<ApiVersion>> {
    select(vec![None, Some(ApiVersion::Lva10), Some(ApiVersion::Lva20), Some(ApiVersion::Ava10), Some(ApiVersion::Ava11)])
}

// ---------------------------------------------------------------------------------------
// The corpus and its vocabulary
// ---------------------------------------------------------------------------------------

struct Corpus {
    /// Every file's bytes (topologies, instances, one invalid JSON file).
    raw: Vec<(String, Vec<u8>)>,
    /// Files that parse and are not instance documents.
    topologies: Vec<(String, Value)>,
    /// Topologies that compile on their own, with their plan.
    compiling: Vec<(String, Value, TopologyPlan)>,
    keys: Vec<String>,
    strings: Vec<String>,
    types: Vec<String>,
    /// Real nodes per role (`sources`, `processors`, `sinks`).
    nodes: [Vec<Value>; 3],
}

const ROLES: [&str; 3] = ["sources", "processors", "sinks"];

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let base = fixture("reference");
        let mut files = json_files(&base.join("lva-topologies"), &base);
        files.extend(json_files(&base.join("ava-topologies"), &base));
        let mut c = Corpus {
            raw: vec![],
            topologies: vec![],
            compiling: vec![],
            keys: vec![],
            strings: vec![],
            types: vec![],
            nodes: [vec![], vec![], vec![]],
        };
        for f in files {
            let name = f.display().to_string();
            let bytes = std::fs::read(base.join(&f)).unwrap();
            if let Ok(doc) = parse_json(&bytes) {
                vocabulary(&doc, &mut c);
                if !topology::is_instance_document(&doc) {
                    if let Ok(plan) = check_topology(&doc, None) {
                        c.compiling.push((name.clone(), doc.clone(), plan));
                    }
                    for (i, role) in ROLES.iter().enumerate() {
                        if let Some(items) =
                            instances::get_ci(&doc, "properties").and_then(|p| instances::get_ci(p, role)).and_then(Value::as_array)
                        {
                            c.nodes[i].extend(items.iter().cloned());
                        }
                    }
                    c.topologies.push((name.clone(), doc));
                }
            }
            c.raw.push((name, bytes));
        }
        for v in [&mut c.keys, &mut c.strings, &mut c.types] {
            v.sort();
            v.dedup();
        }
        assert!(c.compiling.len() >= 80, "only {} corpus topologies compile", c.compiling.len());
        c
    })
}

fn vocabulary(v: &Value, c: &mut Corpus) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                c.keys.push(k.clone());
                if k == "@type" {
                    if let Some(s) = x.as_str() {
                        c.types.push(s.to_string());
                    }
                }
                vocabulary(x, c);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| vocabulary(x, c)),
        Value::String(s) if s.len() <= 200 => c.strings.push(s.clone()),
        _ => {}
    }
}

/// Property names the compiler reads, beyond those the corpus uses.
const EXTRA_KEYS: &[&str] = &[
    "@type",
    "@apiVersion",
    "name",
    "properties",
    "sources",
    "processors",
    "sinks",
    "inputs",
    "nodeName",
    "endpoint",
    "url",
    "parameters",
    "default",
    "type",
    "value",
    "topologyName",
    "state",
    "headerName",
    "headerValue",
    "validationOptions",
    "ignoreHostname",
    "ignoreSignature",
    "trustedCertificates",
    "certificates",
    "outputMotionRegion",
    "accuracy",
    "enableVideoPreviewImage",
    "calibrationConfiguration",
    "kind",
    "sku",
];

/// `@type` strings beyond those the corpus uses: cloud types, other generation, typos.
const EXTRA_TYPES: &[&str] = &[
    "#Microsoft.VideoAnalyzer.VideoSource",
    "#Microsoft.VideoAnalyzer.EncoderProcessor",
    "#Microsoft.VideoAnalyzer.SecureIotDeviceRemoteTunnel",
    "#Microsoft.VideoAnalyzer.TlsEndpoint",
    "#Microsoft.VideoAnalyzer.HttpHeaderCredentials",
    "#Microsoft.VideoAnalyzer.SymmetricKeyCredentials",
    "#Microsoft.VideoAnalyzer.PemCertificateList",
    "#Microsoft.VideoAnalyzer.ImageFormatPng",
    "#Microsoft.VideoAnalyzer.ImageFormatBmp",
    "#Microsoft.VideoAnalyzer.ImageFormatRaw",
    "#Microsoft.VideoAnalyzer.SpatialAnalysisCustomOperation",
    "#Microsoft.Media.MediaGraphFrameRateFilterProcessor",
    "#Microsoft.Media.MediaGraphImageFormatEncoded",
    "#Microsoft.Media.MediaGraphTlsEndpoint",
    "#Microsoft.Media.MediaGraphHttpHeaderCredentials",
    "#Microsoft.Media.MediaGraphAssetSink",
    "#microsoft.videoanalyzer.rtspsource",
    "#Microsoft.VideoAnalyzer.",
    "#Microsoft.Media.MediaGraph",
    "#Microsoft.VideoAnalyzer.RtspSorce",
    "#Microsoft.Media.MediaGraphRtspSource ",
];

/// Values at the edges of what the compiler parses: references, durations, numbers,
/// URLs, coordinates, enum spellings.
const SPECIAL_STRINGS: &[&str] = &[
    "",
    " ",
    "${x}",
    "${rtspUrl}",
    "${unknown}",
    "${System.DateTime}",
    "${System.Runtime.DateTime}",
    "${System.PreciseDateTime}",
    "${System.GraphTopologyName}",
    "${System.PipelineName}",
    "${System.Nope}",
    "${System.}",
    "${",
    "${}",
    "${a b}",
    "${abcdefé}",
    "$AVA_TOKEN",
    "}${x",
    "clip-${System.DateTime}",
    "/var/media/clip-${System.DateTime}",
    "-PT5S",
    "PT30S",
    "PT0S",
    "PT0.5S",
    "P1D",
    "P30D",
    "P1Y",
    "PT",
    "P",
    "PT1.5M2S",
    "PT99999999999999999999S",
    "P9999999999999999D",
    "PT9223372036.854775807S",
    "PT9223372037S",
    "PT170141183460469231731687303715.999999999S",
    "0",
    "-1",
    "1.5",
    "416.0",
    "4294967296",
    "1e400",
    "NaN",
    "inf",
    "true",
    "False",
    "rtsp://127.0.0.1:8554/media/vtest.mkv",
    "rtsp://",
    "rtsp://user:pass@[::1]:554/x",
    "rtsps://camera/x",
    "http://127.0.0.1:8080/score",
    "https://127.0.0.1/score",
    "tcp://127.0.0.1:5001",
    "tcp://127.0.0.1",
    "http://",
    "not a url",
    "[[0.1,0.2],[0.3,0.4]]",
    "[[0.1,0.2]]",
    "[[2,2],[0,0],[1,1]]",
    "[[0.1]]",
    "medium",
    "Medium",
    "embedded",
    "sharedMemory",
    "preserveAspectRatio",
    "pad",
    "rgb24",
    "jpeg",
    "isNot",
    "video",
    "audio",
    "1.0",
    "2.0",
    "1.1",
    "3.0",
    "a/b",
    "..",
    "é",
    "\u{0}",
    "\u{202e}",
];

fn random_case(s: &str, seed: u64) -> String {
    s.chars().enumerate().map(|(i, c)| if seed >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
}

// ---------------------------------------------------------------------------------------
// Strategies: keys, strings, JSON values, shaped documents
// ---------------------------------------------------------------------------------------

fn all_keys() -> Vec<String> {
    let mut k = corpus().keys.clone();
    k.extend(EXTRA_KEYS.iter().map(|s| s.to_string()));
    k.sort();
    k.dedup();
    k
}

fn all_types() -> Vec<String> {
    let mut t = corpus().types.clone();
    t.extend(EXTRA_TYPES.iter().map(|s| s.to_string()));
    t.sort();
    t.dedup();
    t
}

fn arb_char() -> BoxedStrategy<char> {
    prop_oneof![
        2 => any::<char>(),
        2 => select("aZ09_-.$@{}/: é€😀".chars().collect::<Vec<_>>()),
    ]
    .boxed()
}

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(all_keys()),
        2 => (select(all_keys()), any::<u64>()).prop_map(|(k, s)| random_case(&k, s)),
        1 => "[a-zA-Z@$_ é-]{0,10}",
    ]
    .boxed()
}

fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(all_types()),
        3 => select(SPECIAL_STRINGS.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        3 => select(corpus().strings.clone()),
        2 => "\\$\\{[a-zA-Z0-9_.é€ -]{0,10}\\}",
        1 => "[a-z]{0,4}\\$\\{[a-zA-Z.]{1,12}\\}[a-z/]{0,4}",
        2 => "[-+]?[Pp][Tt]?[0-9]{0,4}([.,][0-9]{0,3})?[SMHDWY]?",
        1 => "[0-9]{1,25}",
        2 => "\\PC{0,16}",
        1 => ".{0,8}",
    ]
    .boxed()
}

fn arb_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        select(vec![0.0, -0.0, 0.5, 1e300, -1e300, 4294967296.0, 30.0]).prop_map(Value::from),
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => arb_number(),
        6 => arb_string().prop_map(Value::String),
    ]
    .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    arb_leaf()
        .prop_recursive(5, 96, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((arb_key(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

const NODE_NAMES: &[&str] = &["n0", "n1", "n2", "n3"];
const PARAM_NAMES: &[&str] = &[
    "x",
    "rtspUrl",
    "rtspUserName",
    "rtspPassword",
    "inferencingUrl",
    "motionSensitivity",
    "hubSinkOutputName",
    "System.DateTime",
    "a b",
    "é",
    "",
];

fn arb_node_name() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => select(NODE_NAMES).prop_map(Value::from),
        1 => arb_leaf(),
    ]
    .boxed()
}

/// A node: a real one from the corpus renamed and rewired, or one assembled from
/// real property names; then a few properties set to arbitrary values.
fn arb_node(role: usize) -> BoxedStrategy<Value> {
    let real = select(corpus().nodes[role].clone());
    let inputs = vec(
        prop_oneof![
            6 => arb_node_name().prop_map(|n| json!({ "nodeName": n })),
            1 => (arb_node_name(), arb_json()).prop_map(|(n, s)| json!({ "nodeName": n, "outputSelectors": s })),
            1 => arb_json(),
        ],
        0..3,
    );
    let base = prop_oneof![
        3 => (real, arb_node_name(), inputs.clone()).prop_map(move |(mut n, name, inputs)| {
            if let Some(m) = n.as_object_mut() {
                m.insert("name".into(), name);
                if role != 0 {
                    m.insert("inputs".into(), Value::Array(inputs));
                }
            }
            n
        }),
        1 => (select(all_types()), arb_node_name(), inputs).prop_map(|(t, name, inputs)| {
            json!({ "@type": t, "name": name, "inputs": inputs })
        }),
    ];
    (base, vec((arb_key(), arb_json()), 0..3))
        .prop_map(|(mut n, extra)| {
            if let Some(m) = n.as_object_mut() {
                for (k, v) in extra {
                    m.insert(k, v);
                }
            }
            n
        })
        .boxed()
}

fn arb_declaration() -> BoxedStrategy<Value> {
    (
        select(PARAM_NAMES),
        select(vec!["String", "string", "SecretString", "secretString", "Int", "double", "Bool", "bogus"]),
        proptest::option::of(arb_leaf()),
    )
        .prop_map(|(n, t, d)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(n));
            m.insert("type".into(), json!(t));
            if let Some(d) = d {
                m.insert("default".into(), d);
            }
            Value::Object(m)
        })
        .boxed()
}

fn arb_topology() -> BoxedStrategy<Value> {
    (
        proptest::option::of(prop_oneof![select(vec!["1.0", "2.0", "1.1", "3.0"]).prop_map(Value::from), arb_leaf()]),
        prop_oneof![5 => Just(json!("t")), 1 => arb_leaf()],
        vec(arb_declaration(), 0..4),
        vec(arb_node(0), 0..3),
        vec(arb_node(1), 0..4),
        vec(arb_node(2), 0..3),
    )
        .prop_map(|(api, name, params, sources, processors, sinks)| {
            let mut m = Map::new();
            if let Some(a) = api {
                m.insert("@apiVersion".into(), a);
            }
            m.insert("name".into(), name);
            m.insert(
                "properties".into(),
                json!({
                    "parameters": params,
                    "sources": sources,
                    "processors": processors,
                    "sinks": sinks,
                }),
            );
            Value::Object(m)
        })
        .boxed()
}

/// Real nodes of one generation and role.
fn generation_pool(ava: bool, role: usize) -> Vec<Value> {
    let prefix = if ava { "#microsoft.videoanalyzer." } else { "#microsoft.media." };
    corpus().nodes[role]
        .iter()
        .filter(|n| instances::get_ci(n, "@type").and_then(Value::as_str).is_some_and(|t| t.to_ascii_lowercase().starts_with(prefix)))
        .cloned()
        .collect()
}

/// The `${name}` references (not system variables) in a value.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(p) = rest.find("${") {
                rest = &rest[p + 2..];
                let Some(end) = rest.find('}') else { break };
                let name = &rest[..end];
                if !name.to_ascii_lowercase().starts_with("system.") && !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
                rest = &rest[end + 1..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        Value::Object(m) => m.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

type NodePick = (Value, Vec<Index>);

/// A topology recombined from real nodes of one generation: sources, processors and
/// sinks taken from different published topologies, wired to earlier nodes, with the
/// parameters they reference declared (some with a plausible default), plus a little
/// noise. Few of these compile: most break a placement rule, which exercises the
/// graph checks with real node settings.
fn arb_recombined_topology() -> BoxedStrategy<Value> {
    any::<bool>()
        .prop_flat_map(|ava| {
            let node = |role: usize| (select(generation_pool(ava, role)), vec(any::<Index>(), 1..=2));
            let hub_sources: Vec<Value> =
                generation_pool(ava, 0).into_iter().filter(|n| !n["@type"].as_str().unwrap_or("").ends_with("RtspSource")).collect();
            let rtsp_sources: Vec<Value> =
                generation_pool(ava, 0).into_iter().filter(|n| n["@type"].as_str().unwrap_or("").ends_with("RtspSource")).collect();
            let sources = (select(rtsp_sources), proptest::option::of(select(hub_sources))).prop_map(|(r, h)| {
                let mut v = vec![(r, vec![])];
                v.extend(h.map(|h| (h, vec![])));
                v
            });
            let versions = if ava { vec![Some("1.1"), Some("1.0"), None] } else { vec![Some("2.0"), Some("1.0"), None] };
            (
                select(versions),
                sources,
                vec(node(1), 0..=4),
                vec(node(2), 1..=2),
                vec(any::<bool>(), 8),
                vec((any::<Index>(), arb_key(), arb_json()), 0..=2),
            )
        })
        .prop_map(|(api, sources, processors, sinks, defaults, noise)| {
            let mut names: Vec<String> = Vec::new();
            let mut count = 0;
            let mut wire = |list: Vec<NodePick>, role: usize| -> Vec<Value> {
                list.into_iter()
                    .map(|(mut n, picks)| {
                        let upstream = names.len();
                        let name = format!("n{count}");
                        count += 1;
                        if let Some(m) = n.as_object_mut() {
                            m.retain(|k, _| !k.eq_ignore_ascii_case("name") && !k.eq_ignore_ascii_case("inputs"));
                            m.insert("name".into(), json!(name));
                            if role != 0 && upstream > 0 {
                                let mut inputs: Vec<String> = Vec::new();
                                for p in picks {
                                    let from = names[p.index(upstream)].clone();
                                    if !inputs.contains(&from) {
                                        inputs.push(from);
                                    }
                                }
                                m.insert("inputs".into(), Value::Array(inputs.into_iter().map(|i| json!({ "nodeName": i })).collect()));
                            }
                        }
                        if role != 2 {
                            names.push(name);
                        }
                        n
                    })
                    .collect()
            };
            let sources = wire(sources, 0);
            let processors = wire(processors, 1);
            let sinks = wire(sinks, 2);
            let mut refs = Vec::new();
            for n in sources.iter().chain(&processors).chain(&sinks) {
                references(n, &mut refs);
            }
            let mut m = Map::new();
            if let Some(a) = api {
                m.insert("@apiVersion".into(), json!(a));
            }
            m.insert("name".into(), json!("recombined"));
            m.insert(
                "properties".into(),
                json!({
                    "parameters": refs.iter().map(|r| json!({ "name": r, "type": "String" })).collect::<Vec<_>>(),
                    "sources": sources,
                    "processors": processors,
                    "sinks": sinks,
                }),
            );
            let mut topo = Value::Object(m);
            let decls = instances::declarations(&topo);
            let values: Vec<String> = decls.iter().map(|d| instances::plausible_value(&topo, d)).collect();
            if let Some(params) = topo["properties"]["parameters"].as_array_mut() {
                for (i, (p, v)) in params.iter_mut().zip(values).enumerate() {
                    if defaults[i % defaults.len()] {
                        p["default"] = json!(v);
                    }
                }
            }
            // Noise: a property of a node set to something arbitrary.
            let t = targets(&topo);
            for (at, k, v) in noise {
                if let Some(p) = pick(&t.nodes, &at) {
                    if let Some(Value::Object(n)) = get_mut(&mut topo, p) {
                        n.insert(k, v);
                    }
                }
            }
            topo
        })
        .boxed()
}

/// A compiling corpus topology with 1–4 of its nodes replaced by nodes of the same
/// `@type` from other published topologies (keeping name and inputs), and the
/// parameters those reference declared, with a plausible default or none. Most of
/// these compile, with settings combinations no single sample has.
fn arb_transplanted_topology() -> BoxedStrategy<Value> {
    (any::<Index>(), vec((any::<Index>(), any::<Index>()), 1..=4), vec(any::<bool>(), 4))
        .prop_map(|(file, swaps, defaults)| {
            let c = corpus();
            let mut topo = c.compiling[file.index(c.compiling.len())].1.clone();
            let t = targets(&topo);
            for (which, donor) in swaps {
                let Some(p) = pick(&t.nodes, &which) else { continue };
                let Some(Value::Object(node)) = get_mut(&mut topo, p) else { continue };
                let ty = |n: &Value| instances::get_ci(n, "@type").and_then(Value::as_str).map(str::to_ascii_lowercase);
                let mine = ty(&Value::Object(node.clone()));
                let donors: Vec<&Value> = c.nodes.iter().flatten().filter(|n| ty(n) == mine).collect();
                let Some(Value::Object(d)) = pick(&donors, &donor).map(|d| (*d).clone()) else {
                    continue;
                };
                let keep: Vec<(String, Value)> = node
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("name") || k.eq_ignore_ascii_case("inputs"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                *node = d
                    .into_iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("name") && !k.eq_ignore_ascii_case("inputs"))
                    .chain(keep)
                    .collect();
            }
            let mut refs = Vec::new();
            for role in ROLES {
                references(&topo["properties"][role], &mut refs);
            }
            let declared: Vec<String> = instances::declarations(&topo).into_iter().map(|d| d.name).collect();
            let missing: Vec<String> = refs.into_iter().filter(|r| !declared.contains(r)).collect();
            let snapshot = topo.clone();
            if let Some(params) =
                topo["properties"].as_object_mut().map(|p| p.entry("parameters").or_insert_with(|| json!([]))).and_then(Value::as_array_mut)
            {
                for (i, name) in missing.into_iter().enumerate() {
                    let mut p = json!({ "name": name, "type": "String" });
                    if defaults[i % defaults.len()] {
                        let d = instances::Declared { name: name.clone(), ty: "string".into(), default: None };
                        p["default"] = json!(instances::plausible_value(&snapshot, &d));
                    }
                    params.push(p);
                }
            }
            topo
        })
        .boxed()
}

fn arb_instance() -> BoxedStrategy<Value> {
    (
        prop_oneof![5 => Just(json!("i1")), 1 => arb_leaf()],
        prop_oneof![5 => Just(json!("t")), 1 => arb_leaf()],
        vec(
            prop_oneof![
                5 => (select(PARAM_NAMES), arb_leaf()).prop_map(|(n, v)| json!({ "name": n, "value": v })),
                1 => arb_json(),
            ],
            0..5,
        ),
    )
        .prop_map(|(name, topology, params)| json!({ "name": name, "properties": { "topologyName": topology, "parameters": params } }))
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Structural mutations
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Idx(usize),
}

#[derive(Clone, Debug)]
enum Mutation {
    DeleteKey(Index),
    RenameKeyCase(Index, u64),
    /// A typo: delete (0), insert (1), replace (2) or swap (3) at a position.
    RenameKeyTypo(Index, u8, Index, char),
    ReplaceType(Index, Index),
    DuplicateElement(Index),
    SwapNodeNames(Index, Index),
    InsertUnknownRef(Index, Index),
    GarbageDuration(Index, String),
    InsertChar(Index, Index, char),
    /// Sets a string or parameter value to another value (instances mostly).
    SetValue(Index, Value),
}

fn arb_garbage_duration() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            "",
            "P",
            "PT",
            "-P",
            "--PT1S",
            "P1Y",
            "P1M",
            "PT5",
            "5S",
            "PT.5S",
            "PT5.S",
            "PTS",
            "P5H",
            "PT1D",
            "1 second",
            "PT99999999999999999999S",
            "P99999999999999999999W",
            "PT1.99999999999999999999S",
            "P1.5DT1S",
            "-PT61S",
            "PT3601S",
            "P0D",
            "PT0.0000000001S",
            "PT170141183460469231731687303715.999999999S",
        ])
        .prop_map(String::from),
        "[-+]?[PpTt]{0,3}[0-9.,]{0,30}[YMWDHSyms]{0,2}",
        "\\PC{0,8}",
    ]
    .boxed()
}

fn arb_mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::DeleteKey),
        (any::<Index>(), any::<u64>()).prop_map(|(i, s)| Mutation::RenameKeyCase(i, s)),
        (any::<Index>(), 0u8..4, any::<Index>(), arb_char()).prop_map(|(i, op, p, c)| Mutation::RenameKeyTypo(i, op, p, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, k)| Mutation::ReplaceType(i, k)),
        any::<Index>().prop_map(Mutation::DuplicateElement),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapNodeNames(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, p)| Mutation::InsertUnknownRef(i, p)),
        (any::<Index>(), arb_garbage_duration()).prop_map(|(i, g)| Mutation::GarbageDuration(i, g)),
        (any::<Index>(), any::<Index>(), arb_char()).prop_map(|(i, p, c)| Mutation::InsertChar(i, p, c)),
        (any::<Index>(), arb_leaf()).prop_map(|(i, v)| Mutation::SetValue(i, v)),
    ]
    .boxed()
}

fn get_mut<'a>(mut v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    for s in path {
        v = match (s, v) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::Idx(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

#[derive(Default)]
struct Targets {
    /// (path of the object, key)
    keys: Vec<(Vec<Seg>, String)>,
    values: Vec<Vec<Seg>>,
    arrays: Vec<Vec<Seg>>,
    strings: Vec<Vec<Seg>>,
    durations: Vec<Vec<Seg>>,
    /// Paths of node objects (under properties.sources/processors/sinks).
    nodes: Vec<Vec<Seg>>,
    /// Paths of instance parameter values (`properties.parameters[i].value`).
    param_values: Vec<Vec<Seg>>,
}

fn looks_like_duration(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']);
    t.len() < 40 && (t.starts_with('P') || t.starts_with('p')) && t.len() > 1
}

fn targets(v: &Value) -> Targets {
    fn walk(v: &Value, path: &mut Vec<Seg>, t: &mut Targets) {
        if !path.is_empty() {
            t.values.push(path.clone());
        }
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    t.keys.push((path.clone(), k.clone()));
                    path.push(Seg::Key(k.clone()));
                    walk(x, path, t);
                    path.pop();
                }
            }
            Value::Array(a) => {
                if !a.is_empty() {
                    t.arrays.push(path.clone());
                }
                for (i, x) in a.iter().enumerate() {
                    path.push(Seg::Idx(i));
                    walk(x, path, t);
                    path.pop();
                }
            }
            Value::String(s) => {
                t.strings.push(path.clone());
                if looks_like_duration(s) {
                    t.durations.push(path.clone());
                }
            }
            _ => {}
        }
    }
    let mut t = Targets::default();
    walk(v, &mut vec![], &mut t);
    let key_ci = |v: &Value, k: &str| v.as_object().and_then(|m| m.keys().find(|x| x.eq_ignore_ascii_case(k)).cloned());
    if let Some(pk) = key_ci(v, "properties") {
        let props = &v[&pk];
        for role in ROLES.iter().chain(["parameters"].iter()) {
            if let Some(rk) = key_ci(props, role) {
                for (i, n) in props[&rk].as_array().into_iter().flatten().enumerate() {
                    let p = vec![Seg::Key(pk.clone()), Seg::Key(rk.clone()), Seg::Idx(i)];
                    if *role == "parameters" {
                        if let Some(vk) = key_ci(n, "value") {
                            let mut p = p;
                            p.push(Seg::Key(vk));
                            t.param_values.push(p);
                        }
                    } else if n.is_object() {
                        t.nodes.push(p);
                    }
                }
            }
        }
    }
    t
}

fn pick<'a, T>(items: &'a [T], i: &Index) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[i.index(items.len())])
}

fn rename_key(doc: &mut Value, obj: &[Seg], old: &str, new: String) {
    if let Some(Value::Object(m)) = get_mut(doc, obj) {
        let taken = std::mem::take(m);
        *m = taken.into_iter().map(|(k, v)| if k == old { (new.clone(), v) } else { (k, v) }).collect();
    }
}

fn char_boundary(s: &str, i: &Index) -> usize {
    let n = s.chars().count();
    let at = i.index(n + 1);
    s.char_indices().nth(at).map(|(b, _)| b).unwrap_or(s.len())
}

fn typo(k: &str, op: u8, at: &Index, c: char) -> String {
    let mut chars: Vec<char> = k.chars().collect();
    let n = chars.len();
    match op {
        0 if n > 0 => {
            chars.remove(at.index(n));
        }
        2 if n > 0 => chars[at.index(n)] = c,
        3 if n > 1 => {
            let i = at.index(n - 1);
            chars.swap(i, i + 1);
        }
        _ => chars.insert(at.index(n + 1), c),
    }
    chars.into_iter().collect()
}

/// A value of another JSON type than `old`.
fn other_type(old: &Value, k: &Index) -> Value {
    let choices = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1e300),
        json!(""),
        json!("x"),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({ "@type": "x" }),
    ];
    let kind = |v: &Value| std::mem::discriminant(v);
    let start = k.index(choices.len());
    (0..choices.len()).map(|d| &choices[(start + d) % choices.len()]).find(|c| kind(c) != kind(old)).cloned().unwrap_or(Value::Null)
}

fn apply(doc: &mut Value, m: &Mutation) {
    let t = targets(doc);
    match m {
        Mutation::DeleteKey(i) => {
            if let Some((obj, k)) = pick(&t.keys, i) {
                if let Some(Value::Object(o)) = get_mut(doc, obj) {
                    o.shift_remove(k);
                }
            }
        }
        Mutation::RenameKeyCase(i, seed) => {
            if let Some((obj, k)) = pick(&t.keys, i) {
                rename_key(doc, obj, k, random_case(k, *seed));
            }
        }
        Mutation::RenameKeyTypo(i, op, at, c) => {
            if let Some((obj, k)) = pick(&t.keys, i) {
                rename_key(doc, obj, k, typo(k, *op, at, *c));
            }
        }
        Mutation::ReplaceType(i, k) => {
            if let Some(p) = pick(&t.values, i) {
                if let Some(v) = get_mut(doc, p) {
                    *v = other_type(v, k);
                }
            }
        }
        Mutation::DuplicateElement(i) => {
            if let Some(p) = pick(&t.arrays, i) {
                if let Some(Value::Array(a)) = get_mut(doc, p) {
                    let at = i.index(a.len());
                    let copy = a[at].clone();
                    a.insert(at + 1, copy);
                }
            }
        }
        Mutation::SwapNodeNames(a, b) => {
            if let (Some(pa), Some(pb)) = (pick(&t.nodes, a), pick(&t.nodes, b)) {
                let name =
                    |doc: &mut Value, p: &[Seg]| get_mut(doc, p).and_then(|n| n.as_object_mut()).and_then(|n| n.get("name").cloned());
                if let (Some(na), Some(nb)) = (name(doc, pa), name(doc, pb)) {
                    for (p, v) in [(pa, nb), (pb, na)] {
                        if let Some(Value::Object(n)) = get_mut(doc, p) {
                            n.insert("name".into(), v);
                        }
                    }
                }
            }
        }
        Mutation::InsertUnknownRef(i, at) => {
            if let Some(p) = pick(&t.strings, i) {
                if let Some(Value::String(s)) = get_mut(doc, p) {
                    let b = char_boundary(s, at);
                    s.insert_str(b, "${unknown}");
                }
            }
        }
        Mutation::GarbageDuration(i, g) => {
            if let Some(p) = pick(&t.durations, i) {
                if let Some(v) = get_mut(doc, p) {
                    *v = Value::String(g.clone());
                }
            }
        }
        Mutation::InsertChar(i, at, c) => {
            if let Some(p) = pick(&t.strings, i) {
                if let Some(Value::String(s)) = get_mut(doc, p) {
                    let b = char_boundary(s, at);
                    s.insert(b, *c);
                }
            }
        }
        Mutation::SetValue(i, v) => {
            let pool = if t.param_values.is_empty() { &t.strings } else { &t.param_values };
            if let Some(p) = pick(pool, i) {
                if let Some(x) = get_mut(doc, p) {
                    *x = v.clone();
                }
            }
        }
    }
}

/// After the mutations, maybe serialise and cut the text at some byte.
fn serialise(doc: &Value, pretty: bool, cut: &Option<Index>) -> Vec<u8> {
    let mut bytes = if pretty { serde_json::to_vec_pretty(doc).unwrap() } else { serde_json::to_vec(doc).unwrap() };
    if let Some(at) = cut {
        bytes.truncate(at.index(bytes.len() + 1));
    }
    bytes
}

fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    vec(arb_mutation(), 1..=5)
}

fn arb_cut() -> impl Strategy<Value = Option<Index>> {
    proptest::option::weighted(0.2, any::<Index>())
}

// ---------------------------------------------------------------------------------------
// Bytes with corpus structure
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum ByteEdit {
    Insert(Index, Vec<u8>),
    Overwrite(Index, u8),
    Delete(Index, usize),
    InsertChar(Index, char),
}

fn arb_byte_edit() -> BoxedStrategy<ByteEdit> {
    prop_oneof![
        (any::<Index>(), vec(any::<u8>(), 1..4)).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Overwrite(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        (any::<Index>(), arb_char()).prop_map(|(i, c)| ByteEdit::InsertChar(i, c)),
    ]
    .boxed()
}

fn edit_bytes(mut b: Vec<u8>, edits: &[ByteEdit], bom: bool) -> Vec<u8> {
    for e in edits {
        match e {
            ByteEdit::Insert(i, x) => {
                let at = i.index(b.len() + 1);
                b.splice(at..at, x.iter().copied());
            }
            ByteEdit::Overwrite(i, x) if !b.is_empty() => {
                let at = i.index(b.len());
                b[at] = *x;
            }
            ByteEdit::Delete(i, n) if !b.is_empty() => {
                let at = i.index(b.len());
                let end = (at + n).min(b.len());
                b.drain(at..end);
            }
            ByteEdit::InsertChar(i, c) => {
                let at = i.index(b.len() + 1);
                let mut buf = [0u8; 4];
                b.splice(at..at, c.encode_utf8(&mut buf).bytes());
            }
            _ => {}
        }
    }
    if bom {
        let mut with = b"\xEF\xBB\xBF".to_vec();
        with.extend(b);
        with
    } else {
        b
    }
}

fn arb_bytes() -> BoxedStrategy<Vec<u8>> {
    let n = corpus().raw.len();
    prop_oneof![
        2 => vec(any::<u8>(), 0..512),
        1 => vec(select(vec![
            &b"{"[..], b"}", b"[", b"]", b":", b",", b"\"", b"\"@type\"", b"\"name\"", b"\"properties\"",
            b"\"sources\"", b"\"sinks\"", b"\"\\u0000\"", b"\"\\ud800\"", b"1e999", b"-", b"0", b"null",
            b"true", b" ", b"\n", b"\xff", b"\xc3", b"\xe2\x82", b"\xEF\xBB\xBF",
        ]), 0..64).prop_map(|parts| parts.concat()),
        3 => (0..n, vec(arb_byte_edit(), 0..6), any::<bool>()).prop_map(|(i, edits, bom)| {
            edit_bytes(corpus().raw[i].1.clone(), &edits, bom)
        }),
    ]
    .boxed()
}

const MARK: &str = "S3cr3tMark";

/// Where `MARK` appears in a serialised plan, as `path = value`.
fn marked(v: &Value, path: String, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains(MARK) => out.push(format!("{path} = {s:?}")),
        Value::Object(m) => m.iter().for_each(|(k, x)| marked(x, format!("{path}.{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| marked(x, format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// The topology with some parameters declared `SecretString` (without default), and an
/// instance giving every parameter without a default a value: the secret ones a
/// plausible value (their default, if they had one) with `MARK` in it.
fn with_secrets(original: &Value, all: bool) -> (Value, Value) {
    let decls = instances::declarations(original);
    let mut topo = original.clone();
    let mut marked = Vec::new();
    let params = topo
        .as_object_mut()
        .and_then(|t| t.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("properties")))
        .and_then(|(_, p)| p.as_object_mut())
        .and_then(|p| p.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("parameters")))
        .and_then(|(_, p)| p.as_array_mut());
    for p in params.into_iter().flatten().filter_map(Value::as_object_mut) {
        let Some(d) = decls.iter().find(|d| Some(d.name.as_str()) == p.get("name").and_then(Value::as_str)) else {
            continue;
        };
        let n = d.name.to_ascii_lowercase();
        let secret = if all {
            d.ty == "string" || d.ty == "secretstring"
        } else {
            n.contains("url") || n.contains("password") || n.contains("user")
        };
        if !secret {
            continue;
        }
        let v = match &d.default {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => instances::plausible_value(original, d),
        };
        // Keep URLs URLs: the mark goes into the user info and the path.
        let v = if v.contains("://") { v.replacen("://", &format!("://{MARK}:{MARK}@"), 1) + "/" + MARK } else { format!("{v}{MARK}") };
        p.insert("type".into(), json!("SecretString"));
        p.remove("default");
        marked.push((d.name.clone(), v));
    }
    let mut inst = instances::plausible_instance(&topo, "robustness-1");
    for p in inst["properties"]["parameters"].as_array_mut().unwrap() {
        if let Some((_, v)) = marked.iter().find(|(n, _)| p["name"] == *n) {
            p["value"] = json!(v);
        }
    }
    (topo, inst)
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// 1. Arbitrary bytes, including invalid UTF-8 and damaged corpus files.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in arb_bytes(), strict in any::<bool>()) {
        check_bytes(&bytes, strict)?;
    }

    /// 2. Arbitrary JSON (free-form, topology- and instance-shaped with real names and
    /// types, or recombined from real nodes) into `check_topology` and
    /// `compile_instance`. When both accept the topology, the instance cannot change
    /// the graph's shape.
    #[test]
    fn arbitrary_json_never_panics(
        topology in prop_oneof![
            1 => arb_json(),
            2 => arb_topology(),
            2 => arb_recombined_topology(),
            3 => arb_transplanted_topology(),
        ],
        instance in prop_oneof![
            2 => Just(None),
            1 => arb_json().prop_map(Some),
            2 => arb_instance().prop_map(Some),
        ],
        hint in hints(),
    ) {
        // `None`: a plausible instance of the topology itself.
        let instance = instance.unwrap_or_else(|| instances::plausible_instance(&topology, "i1"));
        let alone = check_topology(&topology, hint);
        check_result("check_topology", &alone)?;
        let with = compile_instance(&topology, &instance, hint);
        check_result("compile_instance", &with)?;
        if let (Ok(a), Ok(w)) = (&alone, &with) {
            let names = |p: Vec<&String>| p.into_iter().cloned().collect::<Vec<_>>();
            prop_assert_eq!(
                names(a.nodes.iter().map(|n| &n.name).collect()),
                names(w.nodes.iter().map(|n| &n.name).collect())
            );
            prop_assert_eq!(&a.edges, &w.edges);
        }
        if topology::is_instance_document(&instance) {
            if let Err(e) = check_instance_document(&instance) {
                check_errors("check_instance_document", &e)?;
            }
        }
    }

    /// 3a. Corpus topologies after 1–5 structural mutations (and maybe truncation).
    #[test]
    fn mutated_corpus_topologies_never_panic(
        file in any::<Index>(),
        mutations in arb_mutations(),
        pretty in any::<bool>(),
        cut in arb_cut(),
        hint in hints(),
    ) {
        let c = corpus();
        let (name, doc) = &c.topologies[file.index(c.topologies.len())];
        let mut doc = doc.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        let what = format!("{name} after {mutations:?}");
        check_result(&what, &check_topology(&doc, hint))?;
        check_bytes(&serialise(&doc, pretty, &cut), false)?;
    }

    /// 3b. Generated instances of compiling corpus topologies after 1–5 mutations:
    /// never a panic, and an accepted instance keeps the topology's graph.
    #[test]
    fn mutated_instances_never_panic(
        file in any::<Index>(),
        mutations in arb_mutations(),
        cut in arb_cut(),
    ) {
        let c = corpus();
        let (name, topo, plan) = &c.compiling[file.index(c.compiling.len())];
        let mut inst = instances::plausible_instance(topo, "robustness-1");
        for m in &mutations {
            apply(&mut inst, m);
        }
        let what = format!("{name} with an instance after {mutations:?}");
        let r = compile_instance(topo, &inst, None);
        check_result(&what, &r)?;
        if let Ok(g) = &r {
            prop_assert_eq!(g.nodes.len(), plan.nodes.len(), "{}", what);
            prop_assert_eq!(&g.edges, &plan.edges, "{}", what);
        }
        if cut.is_some() {
            let bytes = serialise(&inst, false, &cut);
            match parse_json(&bytes) {
                Ok(i) => check_result(&what, &compile_instance(topo, &i, None))?,
                Err(e) => check_errors(&what, &e)?,
            }
        }
    }

    /// 3d. Property names are matched in any case (SPEC C2): re-casing keys of a
    /// compiling corpus topology gives the same plan.
    #[test]
    fn key_case_does_not_change_the_plan(
        file in any::<Index>(),
        recase in vec((any::<Index>(), any::<u64>()), 1..=12),
    ) {
        let c = corpus();
        let (name, topo, plan) = &c.compiling[file.index(c.compiling.len())];
        let mut doc = topo.clone();
        for (i, seed) in &recase {
            apply(&mut doc, &Mutation::RenameKeyCase(*i, *seed));
        }
        match check_topology(&doc, None) {
            Ok(p) => {
                prop_assert_eq!(&p.nodes, &plan.nodes, "{} re-cased: {}", name, doc);
                prop_assert_eq!(&p.edges, &plan.edges, "{}", name);
            }
            Err(e) => prop_assert!(false, "{} re-cased fails: {}\n{}", name, e, doc),
        }
    }
}
proptest! {
    #![proptest_config(config(256))]

    /// 3c. Values of `SecretString` parameters never appear in diagnostics, summaries
    /// or serialised plans, however the rest of the instance is damaged. Either the
    /// URL, user and password parameters are secret (the plan mostly compiles), or every
    /// string parameter is, with a value made invalid by the mark (it mostly fails).
    #[test]
    fn secret_values_never_leak(
        file in any::<Index>(),
        all_secret in any::<bool>(),
        mutations in vec(arb_mutation(), 0..=4),
    ) {
        let c = corpus();
        let (name, topo, _) = &c.compiling[file.index(c.compiling.len())];
        let (topo, mut inst) = with_secrets(topo, all_secret);
        // Damage only what is not secret: the secret values stay as they are.
        for m in &mutations {
            if matches!(m, Mutation::SetValue(..) | Mutation::InsertChar(..) | Mutation::InsertUnknownRef(..) | Mutation::GarbageDuration(..)) {
                continue;
            }
            apply(&mut inst, m);
        }
        let what = format!("{name} with secrets after {mutations:?}");
        let r = compile_instance(&topo, &inst, None);
        check_result(&what, &r)?;
        match &r {
            Ok(g) => {
                let mut leaks = Vec::new();
                marked(&serde_json::to_value(g).unwrap(), "$".into(), &mut leaks);
                if g.summary().contains(MARK) {
                    leaks.push(format!("summary: {}", g.summary()));
                }
                prop_assert!(leaks.is_empty(), "{}: a secret value in the plan at {}", what, leaks.join(", "));
                for w in &g.warnings {
                    prop_assert!(!w.message.contains(MARK), "{}: a secret in a warning: {:?}", what, w);
                }
            }
            Err(e) => {
                let text = e.to_string() + &e.to_odata().to_string();
                prop_assert!(!text.contains(MARK), "{}: a secret value in the errors: {}", what, text);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. The instance path over the whole corpus
// ---------------------------------------------------------------------------------------

/// Every corpus topology that compiles on its own also compiles with a generated
/// instance (each parameter without a default given a plausible value of its type,
/// URLs by where they are used: `rtsp://` for sources, `tcp://host:port` for gRPC and
/// spatial analysis, `http://` for HTTP extensions), into the same graph: same nodes,
/// same edges, and the same settings for every node that was complete without the
/// instance. Giving every default explicitly changes nothing.
///
/// No corpus topology needs an exception: the parameters without defaults in the corpus
/// are `rtspUrl`, `rtspUserName`, `rtspPassword` (the camera) and `inferencingUrl`
/// (an HTTP extension's endpoint, or unused).
#[test]
fn every_compiling_corpus_topology_compiles_with_a_plausible_instance() {
    let c = corpus();
    let mut failures = Vec::new();
    for (name, topo, plan) in &c.compiling {
        let inst = instances::plausible_instance(topo, "robustness-1");
        let g = match compile_instance(topo, &inst, None) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name} with {inst}:\n{e}"));
                continue;
            }
        };
        let mut problems = Vec::new();
        if g.nodes.len() != plan.nodes.len() {
            problems.push(format!("{} nodes, topology has {}", g.nodes.len(), plan.nodes.len()));
        }
        if g.edges.len() != plan.edges.len() || g.edges != plan.edges {
            problems.push(format!("{} edges, topology has {}", g.edges.len(), plan.edges.len()));
        }
        if g.instance_name.as_deref() != Some("robustness-1") {
            problems.push(format!("instance name {:?}", g.instance_name));
        }
        for (t, n) in plan.nodes.iter().zip(&g.nodes) {
            if t.name != n.name || t.ty != n.ty || t.role != n.role {
                problems.push(format!("node '{}' became '{}'", t.name, n.name));
            }
            if let Some(s) = &t.settings {
                if *s != n.settings {
                    problems.push(format!("node '{}' changed its settings: {s:?} became {:?}", t.name, n.settings));
                }
            }
        }
        let explicit = instances::explicit_instance(topo, "robustness-1");
        match compile_instance(topo, &explicit, None) {
            Ok(e) if e.nodes == g.nodes && e.edges == g.edges => {}
            Ok(_) => problems.push("explicit defaults give another plan".to_string()),
            Err(e) => problems.push(format!("explicit defaults fail: {e}")),
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} compiling corpus topologies fail with a plausible instance:\n{}",
        failures.len(),
        c.compiling.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Regressions: inputs that made the compiler panic or overflow its stack
// ---------------------------------------------------------------------------------------

fn ava_topology(source_url: &str, gate_min: &str) -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": "t",
        "properties": {
            "sources": [{
                "@type": "#Microsoft.VideoAnalyzer.RtspSource",
                "name": "camera",
                "endpoint": { "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": source_url }
            }],
            "processors": [
                {
                    "@type": "#Microsoft.VideoAnalyzer.MotionDetectionProcessor",
                    "name": "motion",
                    "inputs": [{ "nodeName": "camera" }]
                },
                {
                    "@type": "#Microsoft.VideoAnalyzer.SignalGateProcessor",
                    "name": "gate",
                    "inputs": [{ "nodeName": "camera" }, { "nodeName": "motion" }],
                    "minimumActivationTime": gate_min,
                    "maximumActivationTime": "PT30S"
                }
            ],
            "sinks": [{
                "@type": "#Microsoft.VideoAnalyzer.FileSink",
                "name": "files",
                "inputs": [{ "nodeName": "gate" }],
                "baseDirectoryPath": "/var/media",
                "fileNamePattern": "clip-${System.DateTime}",
                "maximumSizeMiB": "512"
            }]
        }
    })
}

#[test]
fn the_regression_base_topology_compiles() {
    let plan = check_topology(&ava_topology(instances::RTSP_URL, "PT30S"), None);
    assert!(plan.is_ok(), "{}", plan.unwrap_err());
}

/// `${…}` whose name has a multi-byte character across its 7th byte (where the
/// `System.` prefix is compared).
#[test]
fn non_ascii_parameter_reference_is_an_error_not_a_panic() {
    for url in ["rtsp://h/${abcdefé}", "${rtspUré}", "${€€€}", "${Systemé.x}"] {
        let doc = ava_topology(url, "PT30S");
        let r = std::panic::catch_unwind(|| check_topology(&doc, None));
        match r {
            Ok(Err(e)) => assert!(e.details.iter().all(|d| d.target.as_str().starts_with('$')), "{e}"),
            Ok(Ok(_)) => panic!("{url:?} accepted"),
            Err(_) => panic!("check_topology panicked on the URL {url:?}"),
        }
    }
}

/// A duration whose whole seconds fit i128 nanoseconds but whose fraction does not.
#[test]
fn duration_at_the_i128_limit_is_an_error_not_a_panic() {
    for d in [
        "PT170141183460469231731687303715.999999999S",
        "P281318094346013941355303.999W",
        "P1969226660422097589487121.9D",
        "PT99999999999999999999S",
    ] {
        let doc = ava_topology(instances::RTSP_URL, d);
        let r = std::panic::catch_unwind(|| check_topology(&doc, None));
        match r {
            Ok(Err(e)) => assert!(e.details.iter().any(|d| d.target.as_str().ends_with("MinimumActivationTime")), "{d:?}: {e}"),
            Ok(Ok(_)) => panic!("{d:?} accepted"),
            Err(_) => panic!("check_topology panicked on the duration {d:?}"),
        }
    }
}

/// Nodes in the extension chain of the stack test: about 3.8 MB, just within the
/// 4 MiB the compiler accepts (asserted below).
const CHAIN: usize = 20_000;
const CHILD_ENV: &str = "VELA_ROBUSTNESS_DEEP_CHAIN_CHILD";

fn chain_document(n: usize) -> Vec<u8> {
    let mut processors = Vec::with_capacity(n);
    for i in 0..n {
        let prev = if i == 0 { "s".to_string() } else { format!("e{}", i - 1) };
        processors.push(json!({
            "@type": "#Microsoft.VideoAnalyzer.HttpExtension",
            "name": format!("e{i}"),
            "inputs": [{ "nodeName": prev }],
            "endpoint": { "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "http://a" },
            "image": {}
        }));
    }
    serde_json::to_vec(&json!({
        "@apiVersion": "1.1",
        "name": "t",
        "properties": {
            "sources": [{
                "@type": "#Microsoft.VideoAnalyzer.RtspSource",
                "name": "s",
                "endpoint": { "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "rtsp://h/x" }
            }],
            "processors": processors,
            "sinks": [{
                "@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink",
                "name": "k",
                "inputs": [{ "nodeName": format!("e{}", n - 1) }],
                "hubOutputName": "o"
            }]
        }
    }))
    .unwrap()
}

/// The child half of `a_long_extension_chain_fits_a_thread_stack`: does nothing unless
/// started by it.
#[test]
fn deep_chain_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let bytes = chain_document(CHAIN);
    assert!(bytes.len() <= vela::topology::compile::MAX_DOCUMENT_BYTES);
    // 2 MiB: the default stack of spawned threads and of tokio's workers.
    let t = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let doc = parse_json(&bytes).unwrap();
            check_topology(&doc, None).map(|p| p.nodes.len())
        })
        .unwrap();
    let r = t.join().unwrap();
    assert_eq!(r.unwrap(), CHAIN + 2);
}

/// A long but legal chain of extensions (LVA 2.0/AVA allow chaining them) compiles on a
/// thread with a 2 MiB stack. Run in a child process: a stack overflow aborts the
/// process rather than failing one test.
#[test]
fn a_long_extension_chain_fits_a_thread_stack() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "deep_chain_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "compiling a chain of {CHAIN} extensions ({} bytes) on a 2 MiB stack failed ({}):\n{}",
        chain_document(CHAIN).len(),
        out.status,
        output.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("at ")).take(12).collect::<Vec<_>>().join("\n")
    );
}
