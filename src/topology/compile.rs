//! Topology (+ instance) documents in, a validated plan or every error out.

use super::error::{did_you_mean, Code, CompileErrors, Diagnostic, JsonPath};
use super::graph::{self, GraphNode, InputRef, MediaTypes};
use super::model::{ApiVersion, Generation, Role, TypeName};
use super::nodes::{self, NodeSettings};
use super::params::{tokenize, valid_param_name, Binding, Bindings, ParamType, ParameterDeclaration, Token};
use super::plan::{GraphPlan, Plan, PlanNode, TopologyPlan};
use super::reader::{kind_of, Ctx, Need, Obj, TextEnum};
use serde_json::Value;

/// Largest document accepted (the IoT Hub direct-method payload limit is 128 KB;
/// files may be larger, but not unboundedly).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// Parses JSON text; a syntax error names line and column.
pub fn parse_json(text: &[u8]) -> Result<Value, CompileErrors> {
    let err = |m: String| CompileErrors::single(false, Diagnostic::new(Code::InvalidJson, JsonPath::root(), m));
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(err(format!("the document is {} bytes; at most {} are accepted", text.len(), MAX_DOCUMENT_BYTES)));
    }
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    serde_json::from_slice(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end of the document".to_string(),
            _ => e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
        };
        err(format!("invalid JSON at line {} column {}: {what}", e.line(), e.column()))
    })
}

/// Checks a topology on its own: structure, literal values and defaults. Nodes whose
/// settings depend on a parameter without a default get no settings yet.
pub fn check_topology(doc: &Value, api_hint: Option<ApiVersion>) -> Result<TopologyPlan, CompileErrors> {
    compile(doc, None, api_hint)
}

/// Compiles a topology with an instance's parameter values into the plan the runtime
/// executes. `instance` is the instance (live pipeline) document.
pub fn compile_instance(topology: &Value, instance: &Value, api_hint: Option<ApiVersion>) -> Result<GraphPlan, CompileErrors> {
    let plan = compile(topology, Some(instance), api_hint)?;
    let ava = plan.api_version.is_ava();
    let mut nodes = Vec::with_capacity(plan.nodes.len());
    for n in plan.nodes {
        match n.settings {
            Some(settings) => nodes.push(PlanNode { name: n.name, ty: n.ty, role: n.role, settings }),
            // Every parameter has a value once an instance is applied; a node without
            // settings would be a compiler bug, reported rather than panicking.
            None => {
                return Err(CompileErrors::single(
                    ava,
                    Diagnostic::new(
                        Code::ParameterMissing,
                        JsonPath::root(),
                        format!("node '{}' still depends on a parameter without a value", n.name),
                    ),
                ))
            }
        }
    }
    Ok(Plan {
        api_version: plan.api_version,
        topology_name: plan.topology_name,
        instance_name: plan.instance_name,
        description: plan.description,
        parameters: plan.parameters,
        nodes,
        edges: plan.edges,
        warnings: plan.warnings,
    })
}

/// Checks an instance document on its own (its shape and names); its parameter
/// values can only be checked against its topology.
pub fn check_instance_document(doc: &Value) -> Result<(String, usize), CompileErrors> {
    let api = api_version(doc).map(|(v, _)| v).unwrap_or(ApiVersion::Ava11);
    let empty = Bindings::default();
    let mut cx = Ctx::new(api, &empty);
    let iv = read_instance(doc, &mut cx);
    match iv {
        Some(InstanceValues { topology_name: Some((t, _)), values, .. }) if cx.errors.is_empty() => Ok((t, values.len())),
        _ => Err(CompileErrors { ava: api.is_ava(), details: cx.errors }),
    }
}

/// Which generation the document's `@type`s name, and where a conflicting one is.
fn detect_generation(v: &Value, path: JsonPath, found: &mut Vec<(Generation, JsonPath)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.eq_ignore_ascii_case("@type") {
                    if let Some((_, g)) = x.as_str().and_then(TypeName::lookup) {
                        found.push((g, path.key("@type")));
                    }
                } else {
                    detect_generation(x, path.key(k), found);
                }
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| detect_generation(x, path.index(i), found)),
        _ => {}
    }
}

use super::get_ci;

/// The generation the document's `@type`s name (the majority when mixed), if any.
pub fn document_generation(doc: &Value) -> Option<Generation> {
    let mut found = Vec::new();
    detect_generation(doc, JsonPath::root(), &mut found);
    let lva = found.iter().filter(|f| f.0 == Generation::Lva).count();
    match (lva, found.len() - lva) {
        (0, 0) => None,
        (l, a) if a > l => Some(Generation::Ava),
        _ => Some(Generation::Lva),
    }
}

/// Decides the API version: the document's `@apiVersion`, else the caller's, else
/// inferred from the types used.
fn api_version(doc: &Value) -> Result<(ApiVersion, bool), CompileErrors> {
    let mut found = Vec::new();
    detect_generation(doc, JsonPath::root(), &mut found);
    let lva = found.iter().filter(|f| f.0 == Generation::Lva).count();
    let ava = found.len() - lva;
    let generation = if ava > lva {
        Generation::Ava
    } else if lva > 0 {
        Generation::Lva
    } else {
        Generation::Ava
    };
    let is_ava = generation == Generation::Ava;
    if lva > 0 && ava > 0 {
        let details = found
            .iter()
            .filter(|f| f.0 != generation)
            .map(|f| {
                Diagnostic::new(
                    Code::TypeUnknown,
                    f.1.clone(),
                    format!(
                        "this document mixes generations: most types are {} but this one is {}; a topology uses one generation",
                        if is_ava { "AVA (#Microsoft.VideoAnalyzer)" } else { "LVA (#Microsoft.Media)" },
                        if is_ava { "LVA (#Microsoft.Media)" } else { "AVA (#Microsoft.VideoAnalyzer)" }
                    ),
                )
            })
            .collect();
        return Err(CompileErrors { ava: is_ava, details });
    }
    let declared = get_ci(doc, "@apiVersion");
    match declared {
        Some(Value::String(s)) => match ApiVersion::parse(generation, s) {
            Some(v) => Ok((v, true)),
            None => Err(CompileErrors::single(
                is_ava,
                Diagnostic::new(
                    Code::ApiVersionNotSupported,
                    JsonPath::root().key("@apiVersion"),
                    format!("The API version '{s}' is not supported. Supported version(s): {}.", ApiVersion::supported(generation)),
                ),
            )),
        },
        Some(other) => Err(CompileErrors::single(
            is_ava,
            Diagnostic::new(
                Code::PropertyTypeInvalid,
                JsonPath::root().key("@apiVersion"),
                format!("'@apiVersion' must be a string such as \"1.1\", found {}", kind_of(other)),
            ),
        )),
        None => Ok((
            match generation {
                Generation::Ava => ApiVersion::Ava11,
                Generation::Lva if uses_lva10_only(doc) => ApiVersion::Lva10,
                Generation::Lva => ApiVersion::Lva20,
            },
            false,
        )),
    }
}

/// Whether an LVA document without `@apiVersion` uses something only 1.0 had.
fn uses_lva10_only(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            k.eq_ignore_ascii_case("filePathPattern")
                || (k.eq_ignore_ascii_case("@type")
                    && x.as_str()
                        .and_then(TypeName::lookup)
                        .is_some_and(|(t, _)| matches!(t, TypeName::FrameRateFilterProcessor | TypeName::ImageFormatEncoded)))
                || uses_lva10_only(x)
        }),
        Value::Array(a) => a.iter().any(uses_lva10_only),
        _ => false,
    }
}

/// Names of topologies and instances (C4): letters, digits and dashes, not starting
/// or ending with a dash, at most 32 characters.
pub fn valid_entity_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 32 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !n.starts_with('-') && !n.ends_with('-')
}

fn entity_name(o: &Obj, cx: &mut Ctx, what: &str) -> Option<String> {
    let (n, path) = o.literal(cx, "name")?;
    if !valid_entity_name(&n) {
        cx.error(
            Code::NameInvalid,
            &path,
            format!(
                "'{n}' ({} characters) is not a valid {what} name: 1 to 32 letters, digits or dashes, not starting or ending with a dash",
                n.chars().count()
            ),
        );
        return None;
    }
    Some(n)
}

struct InstanceValues {
    name: Option<String>,
    /// (name, value, path of the entry)
    values: Vec<(String, Option<String>, JsonPath)>,
    topology_name: Option<(String, JsonPath)>,
}

/// Reads an instance (live pipeline) document. Its errors use paths into it.
fn read_instance(doc: &Value, cx: &mut Ctx) -> Option<InstanceValues> {
    let top = Obj::new(doc, JsonPath::root(), cx, "an instance")?;
    top.skip(cx, "@apiVersion");
    top.skip(cx, "systemData");
    let name = entity_name(&top, cx, "instance");
    let mut values = Vec::new();
    let mut topology_name = None;
    if let Some(Some(props)) = top.object(cx, "properties", Need::Required) {
        props.opt::<String>(cx, "description");
        // Read back from Get: accepted and ignored.
        props.skip(cx, "state");
        topology_name = props.literal(cx, "topologyName");
        for (v, path) in props.array(cx, "parameters", Need::Optional).unwrap_or_default() {
            let Some(p) = Obj::new(v, path.clone(), cx, "a parameter value") else {
                continue;
            };
            let pname = p.literal(cx, "name");
            let value = match p.get(cx, "value") {
                Some((Value::String(s), _)) => Some(s.clone()),
                Some((Value::Number(n), _)) => Some(n.to_string()),
                Some((Value::Bool(b), _)) => Some(b.to_string()),
                Some((other, vp)) => {
                    cx.error(Code::PropertyTypeInvalid, &vp, format!("a parameter value must be a string, found {}", kind_of(other)));
                    None
                }
                None => None,
            };
            p.finish(cx);
            if let Some((n, _)) = pname {
                values.push((n, value, path));
            }
        }
        props.finish(cx);
    }
    top.finish(cx);
    Some(InstanceValues { name, values, topology_name })
}

/// Declarations, plus the names of those that are declared but broken (bad type or
/// default): references to them are not "undeclared" and their values stay unknown,
/// so one mistake is reported once.
fn declarations(props: &Obj, cx: &mut Ctx) -> (Vec<(ParameterDeclaration, JsonPath)>, Vec<String>) {
    let mut out: Vec<(ParameterDeclaration, JsonPath)> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    for (v, path) in props.array(cx, "parameters", Need::Optional).unwrap_or_default() {
        let Some(o) = Obj::new(v, path.clone(), cx, "a parameter declaration") else {
            continue;
        };
        let name = o.literal(cx, "name");
        let ty = o.req::<ParamTypeText>(cx, "type").map(|t| t.0);
        let description = o.opt::<String>(cx, "description").flatten();
        let default = match o.get(cx, "default") {
            Some((Value::String(s), _)) => Some(s.clone()),
            Some((Value::Number(n), _)) => Some(n.to_string()),
            Some((Value::Bool(b), _)) => Some(b.to_string()),
            Some((other, dp)) => {
                cx.error(Code::PropertyTypeInvalid, &dp, format!("a default must be a string, found {}", kind_of(other)));
                None
            }
            None => None,
        };
        o.finish(cx);
        let (Some((name, npath)), Some(ty)) = (name.clone(), ty) else {
            broken.extend(name.map(|n| n.0));
            continue;
        };
        if !valid_param_name(&name) {
            cx.error(
                Code::ParameterDeclarationInvalid,
                &npath,
                format!(
                    "'{name}' is not a valid parameter name: letters, digits, '_', '-' or '.', at most 64, not starting with 'System.'"
                ),
            );
            continue;
        }
        if out.iter().any(|(d, _)| d.name == name) {
            cx.error(Code::ParameterDuplicate, &npath, format!("parameter '{name}' is declared more than once"));
            continue;
        }
        if let Some(d) = &default {
            if let Err(why) = ty.check(d) {
                let shown = if ty.is_secret() { "<secret>".to_string() } else { why };
                cx.error(
                    Code::ParameterValueInvalid,
                    &path.key("default"),
                    format!("the default of parameter '{name}' does not fit its type: {shown}"),
                );
                broken.push(name.clone());
            }
        }
        out.push((ParameterDeclaration { name, ty, description, default }, path));
    }
    (out, broken)
}

/// `ParamType` read with the generic any-case enum reader.
#[derive(Clone, Copy)]
struct ParamTypeText(ParamType);

impl TextEnum for ParamTypeText {
    const VALUES: &'static [(&'static str, Self)] = &[
        ("string", ParamTypeText(ParamType::String)),
        ("secretString", ParamTypeText(ParamType::SecretString)),
        ("int", ParamTypeText(ParamType::Int)),
        ("double", ParamTypeText(ParamType::Double)),
        ("bool", ParamTypeText(ParamType::Bool)),
    ];
}

/// Every `${…}` in the node lists: malformed and undeclared references are errors,
/// and the set of referenced names is returned.
fn scan_references(v: &Value, path: JsonPath, declared: &[&str], cx: &mut Ctx, used: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains("${") => match tokenize(s) {
            Ok(tokens) => {
                for t in tokens {
                    if let Token::Param(p) = t {
                        if declared.contains(&p) {
                            if !used.iter().any(|u| u == p) {
                                used.push(p.to_string());
                            }
                        } else {
                            let hint = did_you_mean(p, declared.iter().copied());
                            cx.error(
                                Code::ParameterUndeclared,
                                &path,
                                format!("'${{{p}}}' refers to a parameter that is not declared{hint}"),
                            );
                        }
                    }
                }
            }
            Err(why) => {
                let code =
                    if why.starts_with("unknown system variable") { Code::SystemVariableUnknown } else { Code::PropertyValueInvalid };
                cx.error(code, &path, why);
            }
        },
        Value::Object(m) => m.iter().for_each(|(k, x)| scan_references(x, path.key(k), declared, cx, used)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| scan_references(x, path.index(i), declared, cx, used)),
        _ => {}
    }
}

const SOURCE_TYPES: &[TypeName] = &[TypeName::RtspSource, TypeName::IotHubMessageSource, TypeName::VideoSource];
const PROCESSOR_TYPES: &[TypeName] = &[
    TypeName::MotionDetectionProcessor,
    TypeName::FrameRateFilterProcessor,
    TypeName::HttpExtension,
    TypeName::GrpcExtension,
    TypeName::CognitiveServicesVisionProcessor,
    TypeName::SignalGateProcessor,
    TypeName::ObjectTrackingProcessor,
    TypeName::LineCrossingProcessor,
    TypeName::EncoderProcessor,
];
const SINK_TYPES: &[TypeName] = &[TypeName::IotHubMessageSink, TypeName::FileSink, TypeName::AssetSink, TypeName::VideoSink];

fn compile(doc: &Value, instance: Option<&Value>, api_hint: Option<ApiVersion>) -> Result<TopologyPlan, CompileErrors> {
    if !doc.is_object() {
        return Err(CompileErrors::single(
            false,
            Diagnostic::new(Code::InvalidDocument, JsonPath::root(), format!("a topology must be a JSON object, found {}", kind_of(doc))),
        ));
    }
    for cloud_key in ["kind", "sku"] {
        if get_ci(doc, cloud_key).is_some() {
            return Err(CompileErrors::single(
                true,
                Diagnostic::new(
                    Code::CloudTopologyNotSupported,
                    JsonPath::root().key(cloud_key),
                    "this is an Azure Video Analyzer cloud topology (it has 'kind'/'sku'), deployed through Azure Resource Manager; Vela runs edge topologies only",
                ),
            ));
        }
    }
    let (mut api, explicit) = api_version(doc)?;
    if !explicit {
        if let Some(h) = api_hint.filter(|h| h.generation() == api.generation()) {
            api = h;
        }
    }
    let empty = Bindings::default();
    let mut cx = Ctx::new(api, &empty);

    let top = Obj::new(doc, JsonPath::root(), &mut cx, "a topology").expect("checked above");
    top.skip(&mut cx, "@apiVersion");
    // Read back from Get: accepted and ignored.
    top.skip(&mut cx, "systemData");
    let topology_name = entity_name(&top, &mut cx, "topology");
    let props = top.object(&mut cx, "properties", Need::Required).flatten();
    top.finish(&mut cx);
    let Some(props) = props else {
        return Err(CompileErrors { ava: api.is_ava(), details: cx.errors });
    };
    let description = props.opt::<String>(&mut cx, "description").flatten();
    let (decls, broken) = declarations(&props, &mut cx);

    // Instance values over defaults.
    let inst = instance.map(|d| {
        let mut icx = Ctx::new(api, &empty);
        let v = read_instance(d, &mut icx);
        cx.errors.extend(icx.errors.drain(..).map(Diagnostic::in_instance));
        v
    });
    let mut bindings = Bindings {
        values: Default::default(),
        topology_name: topology_name.clone().unwrap_or_default(),
        instance_name: inst.as_ref().and_then(|i| i.as_ref().and_then(|i| i.name.clone())),
    };
    for (d, _) in &decls {
        let value = if broken.contains(&d.name) { None } else { d.default.clone() };
        bindings.values.insert(d.name.clone(), Binding { value, secret: d.ty.is_secret() });
    }
    for b in &broken {
        bindings.values.entry(b.clone()).or_insert(Binding { value: None, secret: false });
    }
    if let Some(Some(iv)) = &inst {
        if let (Some((tn, tpath)), Some(name)) = (&iv.topology_name, &topology_name) {
            if tn != name {
                cx.instance_error(
                    Code::TopologyNameMismatch,
                    tpath,
                    format!("the instance names topology '{tn}', but the topology given is '{name}'"),
                );
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (name, value, path) in &iv.values {
            let Some((decl, _)) = decls.iter().find(|(d, _)| &d.name == name) else {
                let hint = did_you_mean(name, decls.iter().map(|(d, _)| d.name.as_str()));
                cx.instance_error(
                    Code::ParameterUndeclared,
                    &path.key("name"),
                    format!("parameter '{name}' is not declared by the topology{hint}"),
                );
                continue;
            };
            if seen.contains(&name.as_str()) {
                cx.instance_error(Code::ParameterDuplicate, &path.key("name"), format!("parameter '{name}' is given more than once"));
                continue;
            }
            seen.push(name);
            if let Some(v) = value {
                if let Err(why) = decl.ty.check(v) {
                    let shown = if decl.ty.is_secret() { "<secret>".to_string() } else { why };
                    cx.instance_error(
                        Code::ParameterValueInvalid,
                        &path.key("value"),
                        format!("the value of parameter '{name}' does not fit its type {}: {shown}", decl.ty.name(cx.ava())),
                    );
                    bindings.values.insert(name.clone(), Binding { value: None, secret: decl.ty.is_secret() });
                    continue;
                }
                bindings.values.insert(name.clone(), Binding { value: Some(v.clone()), secret: decl.ty.is_secret() });
            }
        }
        for (d, _) in &decls {
            if bindings.values.get(&d.name).is_some_and(|b| b.value.is_none())
                && !broken.contains(&d.name)
                && !iv.values.iter().any(|(n, v, _)| n == &d.name && v.is_some())
            {
                cx.instance_error(
                    Code::ParameterMissing,
                    &JsonPath::root().key("properties").key("parameters"),
                    format!("parameter '{}' has no default and the instance gives no value for it", d.name),
                );
            }
        }
    }

    // References: undeclared ones, unused declarations.
    let declared: Vec<&str> = decls.iter().map(|(d, _)| d.name.as_str()).chain(broken.iter().map(String::as_str)).collect();
    let mut used = Vec::new();
    let mut lists = Vec::new();
    let mut lists_readable = true;
    for role in [Role::Source, Role::Processor, Role::Sink] {
        let need = if role == Role::Processor { Need::Optional } else { Need::Required };
        let items = props.array(&mut cx, role.key(), need);
        if let Some(items) = &items {
            for (v, p) in items {
                scan_references(v, p.clone(), &declared, &mut cx, &mut used);
            }
            if items.is_empty() && role != Role::Processor {
                cx.error(
                    Code::PropertyRequired,
                    &props.path.key(role.key()),
                    format!("a topology needs at least one {}", if role == Role::Source { "source" } else { "sink" }),
                );
            }
        }
        lists_readable &= items.is_some();
        lists.push((role, items.unwrap_or_default()));
    }
    props.finish(&mut cx);
    for (d, path) in &decls {
        if !used.contains(&d.name) {
            cx.warn(Code::ParameterUnused, &path.key("name"), format!("parameter '{}' is declared but never used", d.name));
        }
    }

    // Nodes.
    let mut cx = Ctx { api, bindings: &bindings, errors: cx.errors, warnings: cx.warnings, deferred: false, secret_ok: false };
    let mut graph_nodes = Vec::new();
    let mut settings: Vec<Option<NodeSettings>> = Vec::new();
    // Nodes that could not be read: the graph rules must not blame their neighbours.
    let mut unreadable: Vec<String> = Vec::new();
    let mut incomplete = !lists_readable;
    let mut names_complete = lists_readable;
    for (role, items) in &lists {
        let allowed = match role {
            Role::Source => SOURCE_TYPES,
            Role::Processor => PROCESSOR_TYPES,
            Role::Sink => SINK_TYPES,
        };
        for (v, path) in items {
            let Some(o) = Obj::new(v, path.clone(), &mut cx, "a node") else {
                incomplete = true;
                names_complete = false;
                continue;
            };
            let ty = node_type(&o, &mut cx, *role, allowed);
            let name = o.literal(&mut cx, "name");
            let inputs = if *role == Role::Source { Some(vec![]) } else { node_inputs(&o, &mut cx) };
            let Some(ty) = ty else {
                incomplete = true;
                names_complete &= name.is_some();
                unreadable.extend(name.map(|n| n.0));
                continue;
            };
            cx.deferred = false;
            let node_name = name.as_ref().map(|n| n.0.clone()).unwrap_or_default();
            let s = nodes::parse(ty, &o, &mut cx, &node_name);
            o.finish(&mut cx);
            match (name, inputs) {
                (Some((name, _)), Some(inputs)) => {
                    graph_nodes.push(GraphNode { name, ty, role: *role, path: path.clone(), inputs });
                    settings.push(s);
                }
                (name, _) => {
                    incomplete = true;
                    names_complete &= name.is_some();
                    unreadable.extend(name.map(|n| n.0));
                }
            }
        }
    }
    let edges = graph::check(&graph_nodes, &unreadable, incomplete, names_complete, &mut cx);

    if !cx.errors.is_empty() {
        return Err(CompileErrors { ava: api.is_ava(), details: cx.errors });
    }
    Ok(Plan {
        api_version: api,
        topology_name: topology_name.unwrap_or_default(),
        instance_name: bindings.instance_name.clone(),
        description,
        parameters: decls.into_iter().map(|(d, _)| d).collect(),
        nodes: graph_nodes.into_iter().zip(settings).map(|(g, s)| PlanNode { name: g.name, ty: g.ty, role: g.role, settings: s }).collect(),
        edges,
        warnings: cx.warnings,
    })
}

/// A node's `@type`, with a precise message when it names a node of another role.
fn node_type(o: &Obj, cx: &mut Ctx, role: Role, allowed: &[TypeName]) -> Option<TypeName> {
    let (v, path) = o.need(cx, "@type", Need::Required).ok()??;
    if let Some((ty, _)) = v.as_str().and_then(TypeName::lookup) {
        if let Some(actual) = Role::of(ty).filter(|r| *r != role) {
            cx.error(
                Code::TypeNotAllowedHere,
                &path,
                format!(
                    "{} is a {}, but it is listed under '{}'; move it to '{}'",
                    ty.short(),
                    role_word(actual),
                    role.key(),
                    actual.key()
                ),
            );
            return None;
        }
        if Role::of(ty).is_none() {
            cx.error(Code::TypeNotAllowedHere, &path, format!("{} is not a node type", ty.short()));
            return None;
        }
    }
    cx.type_of(v, &path, allowed, role_word(role))
}

fn role_word(r: Role) -> &'static str {
    match r {
        Role::Source => "source",
        Role::Processor => "processor",
        Role::Sink => "sink",
    }
}

fn node_inputs(o: &Obj, cx: &mut Ctx) -> Option<Vec<InputRef>> {
    let items = o.array(cx, "inputs", Need::Required)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (v, path) in items {
        let Some(i) = Obj::new(v, path.clone(), cx, "an input") else {
            ok = false;
            continue;
        };
        let node_name = i.literal(cx, "nodeName");
        let media = if cx.api.at_least_lva20() {
            selectors(&i, cx)
        } else {
            i.gate(cx, "outputSelectors", "LVA 2.0");
            Some(MediaTypes::ALL)
        };
        i.finish(cx);
        match (node_name, media) {
            (Some((node_name, _)), Some(media)) => out.push(InputRef { node_name, media, path }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `outputSelectors`: each `{property: mediaType, operator: is|isNot, value}` narrows
/// the streams taken from the upstream node.
fn selectors(i: &Obj, cx: &mut Ctx) -> Option<MediaTypes> {
    let mut m = MediaTypes::ALL;
    let mut ok = true;
    for (v, path) in i.array(cx, "outputSelectors", Need::Optional)? {
        let Some(s) = Obj::new(v, path, cx, "an output selector") else {
            ok = false;
            continue;
        };
        let property = s.req::<SelectorProperty>(cx, "property");
        let op = s.req::<SelectorOperator>(cx, "operator");
        let value = s.req::<SelectorValue>(cx, "value");
        s.finish(cx);
        let (Some(_), Some(op), Some(value)) = (property, op, value) else {
            ok = false;
            continue;
        };
        let is = op == SelectorOperator::Is;
        let only = |t: SelectorValue| (t == value) == is;
        m.video &= only(SelectorValue::Video);
        m.audio &= only(SelectorValue::Audio);
        m.application &= only(SelectorValue::Application);
    }
    ok.then_some(m)
}

super::reader::text_enum! {
    enum SelectorProperty { MediaType = "mediaType" }
}
super::reader::text_enum! {
    enum SelectorOperator { Is = "is", IsNot = "isNot" }
}
super::reader::text_enum! {
    enum SelectorValue { Video = "video", Audio = "audio", Application = "application" }
}
