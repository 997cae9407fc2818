//! Graph-level rules (SPEC §1.5): names, references, cycles, partitions, placement, and what each edge carries.

use super::error::{did_you_mean, Code, JsonPath};
use super::model::{ApiVersion, Role, TypeName};
use super::reader::Ctx;
use serde::Serialize;

/// What flows along an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Flow {
    /// Encoded samples as the camera sent them (H.264 video, AAC audio, metadata):
    /// recording paths, never decoded.
    EncodedMedia,
    /// Decoded pictures (with the inferences attached upstream): only these edges
    /// make an instance decode.
    Frames,
    /// Analytics and hub messages.
    Events,
}

impl Flow {
    pub fn as_str(&self) -> &'static str {
        match self {
            Flow::EncodedMedia => "media",
            Flow::Frames => "frames",
            Flow::Events => "events",
        }
    }
}

/// Which elementary streams an edge lets through (`outputSelectors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaTypes {
    pub video: bool,
    pub audio: bool,
    pub application: bool,
}

impl MediaTypes {
    pub const ALL: MediaTypes = MediaTypes { video: true, audio: true, application: true };
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub flow: Flow,
    pub media: MediaTypes,
}

/// A node as the graph rules see it.
pub(crate) struct GraphNode {
    pub name: String,
    pub ty: TypeName,
    pub role: Role,
    pub path: JsonPath,
    pub inputs: Vec<InputRef>,
}

pub(crate) struct InputRef {
    pub node_name: String,
    pub media: MediaTypes,
    pub path: JsonPath,
}

/// Producer categories, for the placement table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cat {
    Rtsp,
    Hub,
    Motion,
    RateFilter,
    Extension,
    Vision,
    Gate,
    Tracker,
    Line,
    Sink,
}

fn cat(ty: TypeName) -> Cat {
    use TypeName::*;
    match ty {
        RtspSource => Cat::Rtsp,
        IotHubMessageSource => Cat::Hub,
        MotionDetectionProcessor => Cat::Motion,
        FrameRateFilterProcessor => Cat::RateFilter,
        HttpExtension | GrpcExtension => Cat::Extension,
        CognitiveServicesVisionProcessor => Cat::Vision,
        SignalGateProcessor => Cat::Gate,
        ObjectTrackingProcessor => Cat::Tracker,
        LineCrossingProcessor => Cat::Line,
        _ => Cat::Sink,
    }
}

/// What a consumer accepts: for each producer category, the flow of that edge.
/// `None` means the connection is not allowed; the message says what is.
fn accepts(consumer: TypeName, producer: Cat, api: ApiVersion) -> Result<Flow, &'static str> {
    use Cat::*;
    use TypeName as T;
    let events_from = [Hub, Motion, Extension, Vision, Tracker, Line];
    match consumer {
        T::MotionDetectionProcessor => match producer {
            Rtsp => Ok(Flow::Frames),
            _ => Err("a motion detector must be immediately downstream of the RTSP source"),
        },
        T::FrameRateFilterProcessor => match producer {
            Rtsp | Motion | RateFilter => Ok(Flow::Frames),
            _ => Err("a frame rate filter must be immediately downstream of the RTSP source, a motion detector or another frame rate filter"),
        },
        T::HttpExtension | T::GrpcExtension => match producer {
            Rtsp | Motion | RateFilter => Ok(Flow::Frames),
            Extension if api != ApiVersion::Lva10 => Ok(Flow::Frames),
            Extension => Err("LVA 1.0 cannot chain extensions (use API 2.0)"),
            Gate => Err("a signal gate cannot be upstream of an extension: gates only feed recording sinks"),
            _ => Err("an extension takes video frames from the RTSP source, a motion detector, a frame rate filter or another extension"),
        },
        T::CognitiveServicesVisionProcessor => match producer {
            Rtsp | Motion | RateFilter => Ok(Flow::Frames),
            _ => Err("a spatial analysis processor takes video frames from the RTSP source, a motion detector or a frame rate filter"),
        },
        T::SignalGateProcessor => match producer {
            Rtsp => Ok(Flow::EncodedMedia),
            Gate => Err("signal gates cannot be chained"),
            p if events_from.contains(&p) => Ok(Flow::Events),
            _ => Err("a signal gate takes media from the RTSP source and events from motion detection, extensions, trackers, line crossing or hub messages"),
        },
        T::ObjectTrackingProcessor => match producer {
            Extension => Ok(Flow::Frames),
            Vision => Err("an object tracker cannot follow a spatial analysis processor"),
            _ => Err("an object tracker must be immediately downstream of an HTTP or gRPC extension"),
        },
        T::LineCrossingProcessor => match producer {
            // Frames, not events: the tracked entities ride on every frame, with the
            // picture size the crossing margins are measured in.
            Tracker | Extension => Ok(Flow::Frames),
            _ => Err("a line crossing processor must be immediately downstream of an object tracker (or an extension that tracks)"),
        },
        T::IotHubMessageSink => match producer {
            Hub => Err("an IoT Hub message sink cannot be immediately downstream of an IoT Hub message source"),
            Motion | Extension | Vision | Tracker | Line => Ok(Flow::Events),
            _ => Err("an IoT Hub message sink publishes events: connect it to a motion detector, extension, tracker or line crossing processor"),
        },
        T::FileSink => match producer {
            Gate => Ok(Flow::EncodedMedia),
            _ => Err("a file sink must be immediately downstream of a signal gate"),
        },
        T::AssetSink => match producer {
            Rtsp | Gate => Ok(Flow::EncodedMedia),
            _ => Err("an asset sink must be immediately downstream of the RTSP source or a signal gate"),
        },
        T::VideoSink => match producer {
            Rtsp | Gate => Ok(Flow::EncodedMedia),
            Motion | Extension | Vision | Tracker | Line => Ok(Flow::Events),
            _ => Err("a video sink records media from the RTSP source or a signal gate (and optionally inference events)"),
        },
        _ => Err("this node has no inputs"),
    }
}

/// Node names: 1–64 characters, no whitespace, no '/' (they appear in event subjects).
pub(crate) fn valid_node_name(n: &str) -> bool {
    !n.is_empty() && n.chars().count() <= 64 && !n.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/')
}

/// Checks the graph and returns its edges. Errors go to `cx`. `unreadable` names
/// nodes whose own errors were already reported; with `incomplete`, rules about the
/// whole graph (dead ends, partitions) are skipped, since they would only repeat
/// those errors.
pub(crate) fn check(nodes: &[GraphNode], unreadable: &[String], incomplete: bool, names_complete: bool, cx: &mut Ctx) -> Vec<Edge> {
    let api = cx.api;
    let mut ok_names = vec![true; nodes.len()];
    let mut seen_names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        if !valid_node_name(&n.name) {
            cx.error(
                Code::NameInvalid,
                &n.path.key("name"),
                format!("'{}' is not a valid node name: 1 to 64 characters without spaces or '/'", n.name),
            );
        }
        if !seen_names.insert(n.name.as_str()) {
            cx.error(
                Code::NodeNameDuplicate,
                &n.path.key("name"),
                format!("node name '{}' is used more than once; names must be unique in a topology", n.name),
            );
            ok_names[i] = false;
        }
    }
    // A map, not a scan per input: documents may hold thousands of nodes.
    let by_name: std::collections::HashMap<&str, usize> = nodes.iter().enumerate().rev().map(|(i, n)| (n.name.as_str(), i)).collect();
    let index = |name: &str| by_name.get(name).copied();

    // Resolve inputs into edges.
    let mut edges: Vec<(usize, usize, Flow, MediaTypes)> = Vec::new();
    let mut resolved_all = !incomplete;
    for (ci, n) in nodes.iter().enumerate() {
        if n.role != Role::Source && n.inputs.is_empty() {
            cx.error(Code::PropertyRequired, &n.path.key("inputs"), format!("'{}' has no inputs", n.name));
        }
        for (k, input) in n.inputs.iter().enumerate() {
            if unreadable.contains(&input.node_name) {
                resolved_all = false;
                continue;
            }
            let Some(pi) = index(&input.node_name) else {
                resolved_all = false;
                if !names_complete {
                    // A node list or a node's name could not be read: the input may name it.
                    continue;
                }
                let hint = did_you_mean(&input.node_name, nodes.iter().map(|m| m.name.as_str()));
                cx.error(
                    Code::NodeInputUnknown,
                    &input.path.key("nodeName"),
                    format!("'{}' takes input from '{}', which is not a node of this topology{hint}", n.name, input.node_name),
                );
                resolved_all = false;
                continue;
            };
            if pi == ci {
                cx.error(Code::GraphValidation, &input.path.key("nodeName"), format!("'{}' takes input from itself", n.name));
                resolved_all = false;
                continue;
            }
            if n.inputs[..k].iter().any(|other| other.node_name == input.node_name) {
                cx.error(
                    Code::GraphValidation,
                    &input.path.key("nodeName"),
                    format!("'{}' lists '{}' as an input more than once", n.name, input.node_name),
                );
                continue;
            }
            let p = &nodes[pi];
            if p.role == Role::Sink {
                cx.error(
                    Code::GraphValidation,
                    &input.path.key("nodeName"),
                    format!("'{}' takes input from the sink '{}', but sinks have no outputs", n.name, p.name),
                );
                resolved_all = false;
                continue;
            }
            match accepts(n.ty, cat(p.ty), api) {
                Ok(flow) => {
                    if flow == Flow::Frames && !input.media.video {
                        cx.error(
                            Code::GraphValidation,
                            &input.path.key("outputSelectors"),
                            format!(
                                "'{}' needs video frames, but the output selectors on its input from '{}' exclude video",
                                n.name, p.name
                            ),
                        );
                    }
                    edges.push((pi, ci, flow, input.media));
                }
                Err(why) => {
                    // The edge is refused; rules about the whole graph would now see a
                    // graph the user did not write and blame other nodes.
                    resolved_all = false;
                    cx.error(
                        Code::GraphValidation,
                        &input.path.key("nodeName"),
                        format!("'{}' ({}) cannot take input from '{}' ({}): {why}", n.name, n.ty.short(), p.name, p.ty.short()),
                    )
                }
            }
        }
    }

    let mut inputs_of: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut has_output = vec![false; nodes.len()];
    for (k, e) in edges.iter().enumerate() {
        inputs_of[e.1].push(k);
        has_output[e.0] = true;
    }

    // Per-kind input counts.
    for (ci, n) in nodes.iter().enumerate() {
        let ins: Vec<&(usize, usize, Flow, MediaTypes)> = inputs_of[ci].iter().map(|&k| &edges[k]).collect();
        let media = ins.iter().filter(|e| e.2 == Flow::EncodedMedia).count();
        let events = ins.iter().filter(|e| e.2 == Flow::Events).count();
        let frames = ins.iter().filter(|e| e.2 == Flow::Frames).count();
        let at = n.path.key("inputs");
        match n.ty {
            TypeName::SignalGateProcessor if resolved_all => {
                if media != 1 {
                    cx.error(
                        Code::GraphValidation,
                        &at,
                        format!("signal gate '{}' needs exactly one media input from the RTSP source; it has {media}", n.name),
                    );
                }
                if events == 0 {
                    cx.error(
                        Code::GraphValidation,
                        &at,
                        format!(
                            "signal gate '{}' has no event input to trigger it (motion detection, an extension or a hub message source)",
                            n.name
                        ),
                    );
                }
            }
            TypeName::VideoSink | TypeName::AssetSink | TypeName::FileSink if resolved_all && media != 1 => {
                cx.error(Code::GraphValidation, &at, format!("'{}' needs exactly one media input; it has {media}", n.name));
            }
            ty if n.role == Role::Processor && ty != TypeName::SignalGateProcessor && frames + events > 1 => {
                cx.error(Code::GraphValidation, &at, format!("'{}' takes exactly one input; it has {}", n.name, frames + events));
            }
            _ => {}
        }
    }

    // Counts per topology.
    let count = |t: TypeName| nodes.iter().filter(|n| n.ty == t).count();
    let at_most = |cx: &mut Ctx, t: TypeName, max: usize, why: &str| {
        if count(t) > max {
            let extra = nodes.iter().filter(|n| n.ty == t).nth(max).expect("count > max");
            cx.error(
                Code::GraphValidation,
                &extra.path,
                format!("a topology may have at most {max} {}{why}; '{}' is one too many", t.short(), extra.name),
            );
        }
    };
    at_most(cx, TypeName::RtspSource, 1, "");
    at_most(cx, TypeName::FileSink, 1, "");
    at_most(cx, TypeName::AssetSink, 1, "");
    if api == ApiVersion::Lva10 {
        at_most(cx, TypeName::MotionDetectionProcessor, 1, " in LVA 1.0");
        at_most(cx, TypeName::HttpExtension, 1, " in LVA 1.0");
    }
    if count(TypeName::RtspSource) == 0 && !nodes.is_empty() && !incomplete {
        cx.error(
            Code::GraphValidation,
            &JsonPath::root().key("properties").key("sources"),
            "a topology needs an RtspSource: every graph starts from a camera",
        );
    }

    // Dead ends: every source and processor must feed something.
    for (i, n) in nodes.iter().enumerate() {
        if n.role != Role::Sink && ok_names[i] && resolved_all && !has_output[i] {
            cx.error(Code::GraphValidation, &n.path, format!("'{}' has no downstream node: its output would go nowhere", n.name));
        }
    }

    if let Some(cycle) = find_cycle(nodes.len(), &edges) {
        let chain: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
        cx.error(Code::GraphValidation, &nodes[cycle[0]].path, format!("the graph has a cycle: {}", chain.join(" -> ")));
    } else if resolved_all {
        partitions(nodes, &edges, cx);
    }

    edges.into_iter().map(|(p, c, flow, media)| Edge { from: nodes[p].name.clone(), to: nodes[c].name.clone(), flow, media }).collect()
}

/// A cycle as the list of node indices, first node repeated at the end.
///
/// Iterative: a recursive search would overflow the stack on a long chain of nodes
/// (a 4 MiB document holds tens of thousands).
fn find_cycle(n: usize, edges: &[(usize, usize, Flow, MediaTypes)]) -> Option<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in edges {
        out[e.0].push(e.1);
    }
    // 0 = unvisited, 1 = on the path, 2 = done.
    let mut state = vec![0u8; n];
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        // (node, index of the next successor to look at)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = path.last_mut() {
            if let Some(&w) = out[v].get(*next) {
                *next += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        path.push((w, 0));
                    }
                    1 => {
                        let start = path.iter().position(|&(x, _)| x == w).expect("on the path");
                        let mut c: Vec<usize> = path[start..].iter().map(|&(x, _)| x).collect();
                        c.push(w);
                        return Some(c);
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                path.pop();
            }
        }
    }
    None
}

/// Reports nodes not connected (ignoring direction) to the first node.
fn partitions(nodes: &[GraphNode], edges: &[(usize, usize, Flow, MediaTypes)], cx: &mut Ctx) {
    if nodes.is_empty() {
        return;
    }
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        p[x] = r;
        r
    }
    for e in edges {
        let (a, b) = (find(&mut parent, e.0), find(&mut parent, e.1));
        parent[a] = b;
    }
    let root_node = nodes.iter().position(|n| n.ty == TypeName::RtspSource).unwrap_or(0);
    let root = find(&mut parent, root_node);
    let apart: Vec<&str> = (0..nodes.len()).filter(|&i| find(&mut parent, i) != root).map(|i| nodes[i].name.as_str()).collect();
    if !apart.is_empty() {
        cx.error(
            Code::GraphValidation,
            &JsonPath::root().key("properties"),
            format!(
                "the graph is partitioned: {} not connected to '{}'",
                apart.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "),
                nodes[root_node].name
            ),
        );
    }
}
