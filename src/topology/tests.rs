//! Unit tests of the compiler, one or more per validation rule, on small inline documents.

use super::*;
use serde_json::{json, Value};

/// An AVA 1.1 EVR topology: camera → motion → gate → file sink, motion events to the hub.
fn ava() -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": "evr",
        "properties": {
            "parameters": [
                { "name": "rtspUrl", "type": "string" },
                { "name": "rtspPassword", "type": "secretString", "default": "pw" },
                { "name": "sensitivity", "type": "string", "default": "medium" },
                { "name": "outputName", "type": "string", "default": "clips" }
            ],
            "sources": [{
                "@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource",
                "endpoint": {
                    "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}",
                    "credentials": { "@type": "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials", "username": "u", "password": "${rtspPassword}" }
                }
            }],
            "processors": [
                { "@type": "#Microsoft.VideoAnalyzer.MotionDetectionProcessor", "name": "motion", "sensitivity": "${sensitivity}",
                  "inputs": [{ "nodeName": "rtspSource", "outputSelectors": [{ "property": "mediaType", "operator": "is", "value": "video" }] }] },
                { "@type": "#Microsoft.VideoAnalyzer.SignalGateProcessor", "name": "gate",
                  "activationEvaluationWindow": "PT1S", "activationSignalOffset": "-PT5S",
                  "minimumActivationTime": "PT30S", "maximumActivationTime": "PT30S",
                  "inputs": [{ "nodeName": "motion" }, { "nodeName": "rtspSource" }] }
            ],
            "sinks": [
                { "@type": "#Microsoft.VideoAnalyzer.FileSink", "name": "fileSink", "baseDirectoryPath": "media",
                  "fileNamePattern": "${outputName}-${System.TopologyName}-${System.Runtime.DateTime}", "maximumSizeMiB": "512",
                  "inputs": [{ "nodeName": "gate" }] },
                { "@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hubSink", "hubOutputName": "events",
                  "inputs": [{ "nodeName": "motion" }] }
            ]
        }
    })
}

fn instance(params: Value) -> Value {
    json!({ "@apiVersion": "1.1", "name": "cam-1", "properties": { "topologyName": "evr", "parameters": params } })
}

fn url_instance() -> Value {
    instance(json!([{ "name": "rtspUrl", "value": "rtsp://127.0.0.1:8554/media/vtest.mkv" }]))
}

/// Sets the value at a JSON pointer (creating object keys as needed).
fn set(mut doc: Value, pointer: &str, v: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = doc.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(m) => {
            m.insert(key.to_string(), v);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = v,
        _ => panic!("{parent} is not a container"),
    }
    doc
}

fn remove(mut doc: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match doc.pointer_mut(parent).unwrap() {
        Value::Object(m) => {
            m.remove(key).unwrap_or_else(|| panic!("no {pointer}"));
        }
        Value::Array(a) => {
            a.remove(key.parse().unwrap());
        }
        _ => panic!(),
    }
    doc
}

fn errors(doc: &Value) -> Vec<(String, String, String)> {
    match check_topology(doc, None) {
        Ok(_) => vec![],
        Err(e) => e.details.iter().map(|d| (d.code.as_str(e.ava).to_string(), d.target.to_string(), d.message.clone())).collect(),
    }
}

fn instance_errors(doc: &Value, inst: &Value) -> Vec<(String, String, String)> {
    match compile_instance(doc, inst, None) {
        Ok(_) => vec![],
        Err(e) => e.details.iter().map(|d| (d.code.as_str(e.ava).to_string(), d.target.to_string(), d.message.clone())).collect(),
    }
}

/// Asserts exactly one error, with this code and target, whose message contains `needle`.
#[track_caller]
fn assert_one(errs: &[(String, String, String)], code: &str, target: &str, needle: &str) {
    assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
    let (c, t, m) = &errs[0];
    assert_eq!((c.as_str(), t.as_str()), (code, target), "{m}");
    assert!(m.contains(needle), "message {m:?} lacks {needle:?}");
}

#[test]
fn the_base_topology_compiles_and_classifies_its_edges() {
    let plan = check_topology(&ava(), None).unwrap();
    assert_eq!(plan.nodes.len(), 5);
    let flow = |from: &str, to: &str| plan.edges.iter().find(|e| e.from == from && e.to == to).unwrap().flow;
    assert_eq!(flow("rtspSource", "motion"), Flow::Frames);
    assert_eq!(flow("rtspSource", "gate"), Flow::EncodedMedia);
    assert_eq!(flow("motion", "gate"), Flow::Events);
    assert_eq!(flow("gate", "fileSink"), Flow::EncodedMedia);
    assert_eq!(flow("motion", "hubSink"), Flow::Events);
    assert!(plan.needs_decode());
    // rtspUrl has no default: the camera's settings wait for an instance.
    assert!(plan.node("rtspSource").unwrap().settings.is_none());
    assert!(plan.node("gate").unwrap().settings.is_some());
    assert!(plan.warnings.is_empty());
}

// ---- structure and names ----

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    let d = set(ava(), "/properties/processors/1/minimumActivatonTime", json!("PT30S"));
    assert_one(&errors(&d), "PropertyUnknown", "$.Properties.Processors[1].MinimumActivatonTime", "did you mean 'minimumActivationTime'");
}

#[test]
fn property_names_and_enums_match_in_any_case() {
    let mut d = ava();
    let gate = d.pointer_mut("/properties/processors/1").unwrap().as_object_mut().unwrap();
    let v = gate.remove("minimumActivationTime").unwrap();
    gate.insert("MINIMUMACTIVATIONTIME".into(), v);
    let d = set(d, "/properties/processors/0/@type", json!("#microsoft.videoanalyzer.motiondetectionprocessor"));
    let d = set(d, "/properties/parameters/2/default", json!("HIGH"));
    let d = set(d, "/properties/parameters/0/type", json!("String"));
    let plan = check_topology(&d, None).unwrap();
    match &plan.node("motion").unwrap().settings {
        Some(NodeSettings::MotionDetection(m)) => assert_eq!(m.sensitivity.as_str(), "high"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_given_twice_in_different_case_is_an_error() {
    let d = set(ava(), "/properties/sinks/1/HubOutputName", json!("other"));
    assert_one(&errors(&d), "InvalidDocument", "$.Properties.Sinks[1].HubOutputName", "more than once");
}

#[test]
fn missing_required_properties_are_reported_each() {
    let d = remove(remove(ava(), "/properties/sinks/1/hubOutputName"), "/properties/sinks/0/maximumSizeMiB");
    let e = errors(&d);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e.iter().any(|x| x.0 == "PropertyRequired" && x.1 == "$.Properties.Sinks[0].MaximumSizeMiB"));
    assert!(e.iter().any(|x| x.0 == "PropertyRequired" && x.1 == "$.Properties.Sinks[1].HubOutputName"));
}

#[test]
fn wrong_json_types_are_reported() {
    let d = set(ava(), "/properties/sources/0/endpoint", json!(["rtsp://x"]));
    assert_one(&errors(&d), "PropertyTypeInvalid", "$.Properties.Sources[0].Endpoint", "must be an object, found an array");
}

#[test]
fn numbers_and_booleans_may_be_json_scalars_or_strings() {
    let d = set(ava(), "/properties/sinks/0/maximumSizeMiB", json!(512));
    let d = set(d, "/properties/processors/0/outputMotionRegion", json!(false));
    check_topology(&d, None).unwrap();
    let d = set(ava(), "/properties/processors/0/outputMotionRegion", json!("False"));
    check_topology(&d, None).unwrap();
}

#[test]
fn topology_names_follow_the_entity_rules() {
    for bad in ["", "has space", "-dash", "dash-", "a23456789012345678901234567890123"] {
        let e = errors(&set(ava(), "/name", json!(bad)));
        assert_one(&e, "NameInvalid", "$.Name", "not a valid topology name");
    }
    assert!(errors(&set(ava(), "/name", json!("a2345678901234567890123456789012"))).is_empty());
}

#[test]
fn node_names_must_be_unique() {
    let d = set(ava(), "/properties/sinks/1/name", json!("motion"));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.0 == "NodeNameDuplicate" && x.1 == "$.Properties.Sinks[1].Name"), "{e:#?}");
}

#[test]
fn unknown_types_get_a_suggestion_and_the_expected_list() {
    let d = set(ava(), "/properties/sinks/0/@type", json!("#Microsoft.VideoAnalyzer.FileSnk"));
    assert_one(&errors(&d), "TypeUnknown", "$.Properties.Sinks[0]['@type']", "did you mean '#Microsoft.VideoAnalyzer.FileSink'");
}

#[test]
fn a_node_in_the_wrong_list_is_told_where_it_belongs() {
    let mut d = ava();
    let sink = d["properties"]["sinks"].as_array_mut().unwrap().remove(1);
    d["properties"]["processors"].as_array_mut().unwrap().push(sink);
    let e = errors(&d);
    assert!(e.iter().any(|x| x.0 == "TypeNotAllowedHere" && x.2.contains("move it to 'sinks'")), "{e:#?}");
}

#[test]
fn mixing_generations_is_refused() {
    let d = set(ava(), "/properties/sinks/1/@type", json!("#Microsoft.Media.MediaGraphIoTHubMessageSink"));
    assert_one(&errors(&d), "TypeUnknown", "$.Properties.Sinks[1]['@type']", "mixes generations");
}

#[test]
fn unsupported_api_versions_are_refused_with_the_supported_list() {
    let e = check_topology(&set(ava(), "/@apiVersion", json!("2.0")), None).unwrap_err();
    assert_eq!(e.top_code().0, "InvalidVersion");
    assert_one(
        &errors(&set(ava(), "/@apiVersion", json!("2.0"))),
        "ApiVersionNotSupported",
        "$['@apiVersion']",
        "Supported version(s): 1.0, 1.1.",
    );
}

#[test]
fn cloud_types_and_documents_are_refused() {
    let d = set(ava(), "/properties/sources/0/endpoint/tunnel", json!({ "@type": "#Microsoft.VideoAnalyzer.SecureIotDeviceRemoteTunnel" }));
    assert_one(&errors(&d), "CloudTopologyNotSupported", "$.Properties.Sources[0].Endpoint.Tunnel", "cloud service");
    let d = set(ava(), "/Kind", json!("live"));
    assert_one(&errors(&d), "CloudTopologyNotSupported", "$.Kind", "cloud topology");
}

// ---- version gating ----

fn lva10() -> Value {
    let text = serde_json::to_string(&ava())
        .unwrap()
        .replace("#Microsoft.VideoAnalyzer.", "#Microsoft.Media.MediaGraph")
        .replace("IotHub", "IoTHub");
    let d: Value = serde_json::from_str(&text).unwrap();
    let d = set(d, "/@apiVersion", json!("1.0"));
    let d = remove(d, "/properties/processors/0/inputs/0/outputSelectors");
    let d = remove(
        remove(remove(d, "/properties/sinks/0/baseDirectoryPath"), "/properties/sinks/0/fileNamePattern"),
        "/properties/sinks/0/maximumSizeMiB",
    );
    set(d, "/properties/sinks/0/filePathPattern", json!("/var/media/${outputName}-${System.DateTime}"))
}

#[test]
fn lva10_file_sink_splits_its_path_pattern() {
    let mut inst = url_instance();
    inst["@apiVersion"] = json!("1.0");
    let plan = compile_instance(&lva10(), &inst, None).unwrap();
    match &plan.node("fileSink").unwrap().settings {
        NodeSettings::FileSink(f) => {
            assert_eq!(f.base_directory_path, "/var/media/");
            assert_eq!(f.file_name_pattern.to_string(), "clips-${System.DateTime}");
            assert_eq!(f.maximum_size_mib, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn properties_of_later_versions_are_refused_in_lva10() {
    let d = set(lva10(), "/properties/processors/0/eventAggregationWindow", json!("PT1S"));
    assert_one(&errors(&d), "PropertyNotInVersion", "$.Properties.Processors[0].EventAggregationWindow", "available from LVA 2.0");
    let d = set(lva10(), "/properties/processors/0/inputs/0/outputSelectors", json!([]));
    assert_one(&errors(&d), "PropertyNotInVersion", "$.Properties.Processors[0].Inputs[0].OutputSelectors", "LVA 2.0");
}

#[test]
fn types_of_other_versions_are_refused() {
    let frf = json!({ "@type": "#Microsoft.Media.MediaGraphFrameRateFilterProcessor", "name": "frf", "maximumFps": "2", "inputs": [{ "nodeName": "rtspSource" }] });
    let mut d = set(lva10(), "/@apiVersion", json!("2.0"));
    d = set(d, "/properties/sinks/0/baseDirectoryPath", json!("/m"));
    d["properties"]["processors"].as_array_mut().unwrap().push(frf);
    let e = errors(&d);
    assert!(e.iter().any(|x| x.0 == "TypeNotInVersion" && x.2.contains("does not exist in LVA 2.0")), "{e:#?}");
}

// ---- values ----

#[test]
fn durations_are_iso8601_and_in_range() {
    let d = set(ava(), "/properties/processors/1/activationSignalOffset", json!("5 seconds"));
    assert_one(&errors(&d), "PropertyValueInvalid", "$.Properties.Processors[1].ActivationSignalOffset", "not an ISO 8601 duration");
    let d = set(ava(), "/properties/processors/1/activationEvaluationWindow", json!("PT11S"));
    assert_one(&errors(&d), "PropertyValueOutOfRange", "$.Properties.Processors[1].ActivationEvaluationWindow", "0 s to 10 s");
    let d = set(ava(), "/properties/processors/1/activationSignalOffset", json!("-PT61S"));
    assert_one(&errors(&d), "PropertyValueOutOfRange", "$.Properties.Processors[1].ActivationSignalOffset", "-60 s to 60 s");
}

#[test]
fn ava_activation_times_start_at_ten_seconds_lva_at_one() {
    let d = set(ava(), "/properties/processors/1/minimumActivationTime", json!("PT5S"));
    assert_one(&errors(&d), "PropertyValueOutOfRange", "$.Properties.Processors[1].MinimumActivationTime", "10 s to 3600 s");
    let d = set(lva10(), "/properties/processors/1/minimumActivationTime", json!("PT5S"));
    assert!(errors(&d).is_empty(), "{:#?}", errors(&d));
}

#[test]
fn gate_maximum_below_minimum_is_refused() {
    let d = set(ava(), "/properties/processors/1/maximumActivationTime", json!("PT20S"));
    assert_one(
        &errors(&d),
        "PropertyValueOutOfRange",
        "$.Properties.Processors[1].MaximumActivationTime",
        "shorter than minimumActivationTime",
    );
}

#[test]
fn gate_defaults_are_the_published_sample_values() {
    let mut d = ava();
    for k in ["activationEvaluationWindow", "activationSignalOffset", "minimumActivationTime", "maximumActivationTime"] {
        d = remove(d, &format!("/properties/processors/1/{k}"));
    }
    let plan = check_topology(&d, None).unwrap();
    match &plan.node("gate").unwrap().settings {
        Some(NodeSettings::SignalGate(g)) => {
            assert_eq!(
                [g.activation_evaluation_window, g.activation_signal_offset, g.minimum_activation_time, g.maximum_activation_time]
                    .map(|d| d.to_string()),
                ["PT1S", "PT0S", "PT30S", "PT30S"]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn enum_values_list_the_choices() {
    let d = set(ava(), "/properties/processors/0/sensitivity", json!("extreme"));
    assert_one(&errors(&d), "PropertyValueInvalid", "$.Properties.Processors[0].Sensitivity", "expected one of low, medium, high");
}

#[test]
fn rtsp_urls_need_the_rtsp_scheme() {
    let inst = instance(json!([{ "name": "rtspUrl", "value": "http://camera/stream" }]));
    let e = instance_errors(&ava(), &inst);
    assert_one(
        &e,
        "RtspEndpointUrlInvalidScheme",
        "$.Properties.Sources[0].Endpoint.Url",
        "Uri scheme 'http' is not valid for an RTSP source endpoint. Valid values are: rtsp",
    );
}

#[test]
fn extension_image_settings_are_checked() {
    let ext = json!({
        "@type": "#Microsoft.VideoAnalyzer.HttpExtension", "name": "ai",
        "endpoint": { "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "http://127.0.0.1:8000/score" },
        "image": { "scale": { "mode": "pad", "width": "0", "height": "416" }, "format": { "@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "101" } },
        "inputs": [{ "nodeName": "rtspSource" }]
    });
    let mut d = ava();
    d["properties"]["processors"].as_array_mut().unwrap().push(ext);
    d["properties"]["sinks"][1]["inputs"].as_array_mut().unwrap()[0] = json!({ "nodeName": "ai" });
    d["properties"]["processors"][1]["inputs"].as_array_mut().unwrap().push(json!({ "nodeName": "ai" }));
    let e = errors(&d);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e.iter().any(|x| x.1 == "$.Properties.Processors[2].Image.Scale.Width" && x.2.contains("1 px to 8192 px")), "{e:#?}");
    assert!(e.iter().any(|x| x.1 == "$.Properties.Processors[2].Image.Format.Quality" && x.2.contains("0 to 100")), "{e:#?}");
    let d2 = set(d.clone(), "/properties/processors/2/image/scale", json!({ "mode": "stretch", "width": "416" }));
    let d2 = set(d2, "/properties/processors/2/image/format/quality", json!("75"));
    let e = errors(&d2);
    assert!(e.iter().any(|x| x.2.contains("needs both width and height")), "{e:#?}");
}

#[test]
fn file_name_patterns_need_a_system_variable_and_no_separators() {
    let d = set(ava(), "/properties/sinks/0/fileNamePattern", json!("clip"));
    assert_one(&errors(&d), "PropertyValueInvalidPattern", "$.Properties.Sinks[0].FileNamePattern", "at least one system variable");
    let d = set(ava(), "/properties/sinks/0/fileNamePattern", json!("a/b-${System.Runtime.DateTime}"));
    assert_one(&errors(&d), "PropertyValueInvalidPattern", "$.Properties.Sinks[0].FileNamePattern", "contains '/'");
}

#[test]
fn date_time_variables_only_in_name_patterns() {
    let d = set(ava(), "/properties/sinks/1/hubOutputName", json!("out-${System.Runtime.DateTime}"));
    assert_one(
        &errors(&d),
        "SystemVariableNotAllowedHere",
        "$.Properties.Sinks[1].HubOutputName",
        "can only be used in file name patterns",
    );
}

#[test]
fn hub_names_cannot_contain_topic_characters() {
    let d = set(ava(), "/properties/sinks/1/hubOutputName", json!("a/b"));
    assert_one(&errors(&d), "PropertyValueInvalidPattern", "$.Properties.Sinks[1].HubOutputName", "not a valid hub output name");
}

// ---- graph rules ----

#[test]
fn dangling_inputs_get_a_suggestion() {
    let d = set(ava(), "/properties/sinks/0/inputs/0/nodeName", json!("gaet"));
    let e = errors(&d);
    assert!(
        e.iter()
            .any(|x| x.0 == "NodeInputUnknown" && x.1 == "$.Properties.Sinks[0].Inputs[0].NodeName" && x.2.contains("did you mean 'gate'")),
        "{e:#?}"
    );
}

#[test]
fn cycles_are_reported_with_their_chain() {
    // Two extensions feeding each other.
    let ext = |name: &str, input: &str| {
        json!({
            "@type": "#Microsoft.VideoAnalyzer.HttpExtension", "name": name,
            "endpoint": { "@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "http://127.0.0.1/score" },
            "image": {}, "inputs": [{ "nodeName": input }]
        })
    };
    let mut d = ava();
    d["properties"]["processors"].as_array_mut().unwrap().extend([ext("a", "b"), ext("b", "a")]);
    d["properties"]["sinks"][1]["inputs"].as_array_mut().unwrap().push(json!({ "nodeName": "a" }));
    let e = errors(&d);
    let cycle: Vec<_> = e.iter().filter(|x| x.2.contains("cycle")).collect();
    assert_eq!(cycle.len(), 1, "{e:#?}");
    assert_eq!(cycle[0].0, "PipelineValidationError");
    assert!(cycle[0].2.contains("a -> b -> a"), "{}", cycle[0].2);
}

#[test]
fn partitions_are_reported() {
    let mut d = ava();
    // A second, unconnected chain: hub source → its own gate is impossible without
    // media, so use a motion detector island fed by nothing reachable.
    d["properties"]["sources"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "@type": "#Microsoft.VideoAnalyzer.IotHubMessageSource", "name": "trigger", "hubInputName": "t" }));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.2.contains("'trigger' has no downstream node")), "{e:#?}");
}

#[test]
fn only_one_rtsp_source() {
    let mut d = ava();
    let cam = d["properties"]["sources"][0].clone();
    d["properties"]["sources"].as_array_mut().unwrap().push(set(cam, "/name", json!("cam2")));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.0 == "PipelineValidationError" && x.2.contains("at most 1 RtspSource")), "{e:#?}");
}

#[test]
fn file_sinks_must_follow_a_gate() {
    let d = set(ava(), "/properties/sinks/0/inputs/0/nodeName", json!("rtspSource"));
    let e = errors(&d);
    assert!(
        e.iter().any(|x| x.1 == "$.Properties.Sinks[0].Inputs[0].NodeName"
            && x.2.contains("a file sink must be immediately downstream of a signal gate")),
        "{e:#?}"
    );
}

#[test]
fn motion_detection_must_follow_the_camera() {
    let d = set(ava(), "/properties/processors/0/inputs/0", json!({ "nodeName": "gate" }));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.2.contains("a motion detector must be immediately downstream of the RTSP source")), "{e:#?}");
}

#[test]
fn gates_cannot_be_chained_and_need_a_trigger() {
    let mut d = ava();
    let gate2 = json!({ "@type": "#Microsoft.VideoAnalyzer.SignalGateProcessor", "name": "gate2", "inputs": [{ "nodeName": "gate" }, { "nodeName": "rtspSource" }] });
    d["properties"]["processors"].as_array_mut().unwrap().push(gate2);
    d["properties"]["sinks"][0]["inputs"][0]["nodeName"] = json!("gate2");
    // Only the chaining is reported: with that edge refused, gate2's missing trigger
    // would be a consequence, not a second mistake.
    assert_one(&errors(&d), "PipelineValidationError", "$.Properties.Processors[2].Inputs[0].NodeName", "signal gates cannot be chained");
    let mut d = ava();
    d["properties"]["processors"][1]["inputs"].as_array_mut().unwrap().remove(0);
    d["properties"]["sinks"][1]["inputs"][0]["nodeName"] = json!("motion");
    let e = errors(&d);
    assert!(e.iter().any(|x| x.2.contains("no event input to trigger it")), "{e:#?}");
}

#[test]
fn hub_sink_cannot_follow_hub_source() {
    let mut d = ava();
    d["properties"]["sources"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "@type": "#Microsoft.VideoAnalyzer.IotHubMessageSource", "name": "trigger" }));
    d["properties"]["sinks"][1]["inputs"].as_array_mut().unwrap().push(json!({ "nodeName": "trigger" }));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.2.contains("cannot be immediately downstream of an IoT Hub message source")), "{e:#?}");
}

#[test]
fn selectors_that_exclude_video_starve_frame_consumers() {
    let d = set(ava(), "/properties/processors/0/inputs/0/outputSelectors/0/value", json!("audio"));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.1 == "$.Properties.Processors[0].Inputs[0].OutputSelectors" && x.2.contains("exclude video")), "{e:#?}");
}

// ---- parameters and substitution ----

#[test]
fn undeclared_references_get_a_suggestion() {
    let d = set(ava(), "/properties/sinks/1/hubOutputName", json!("${outputNme}"));
    assert_one(&errors(&d), "ParameterUndeclared", "$.Properties.Sinks[1].HubOutputName", "did you mean 'outputName'");
}

#[test]
fn unused_declarations_are_warnings() {
    let mut d = ava();
    d["properties"]["parameters"].as_array_mut().unwrap().push(json!({ "name": "spare", "type": "string", "default": "x" }));
    let plan = check_topology(&d, None).unwrap();
    assert_eq!(plan.warnings.len(), 1);
    assert_eq!(plan.warnings[0].code, Code::ParameterUnused);
    assert_eq!(plan.warnings[0].target.as_str(), "$.Properties.Parameters[4].Name");
}

#[test]
fn declarations_are_checked() {
    let mut d = ava();
    let params = d["properties"]["parameters"].as_array_mut().unwrap();
    params.push(json!({ "name": "rtspUrl", "type": "string" }));
    params.push(json!({ "name": "count", "type": "int", "default": "many" }));
    params.push(json!({ "name": "flag", "type": "boolean" }));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.0 == "ParameterDuplicate" && x.1 == "$.Properties.Parameters[4].Name"), "{e:#?}");
    assert!(
        e.iter()
            .any(|x| x.0 == "ParameterValueInvalid" && x.1 == "$.Properties.Parameters[5].Default" && x.2.contains("not a whole number")),
        "{e:#?}"
    );
    assert!(e.iter().any(|x| x.0 == "PropertyValueInvalid" && x.1 == "$.Properties.Parameters[6].Type"), "{e:#?}");
}

#[test]
fn substitution_mixes_literal_text_several_references_and_system_variables() {
    let inst = instance(json!([
        { "name": "rtspUrl", "value": "rtsp://127.0.0.1:8554/media/vtest.mkv" },
        { "name": "outputName", "value": "door" }
    ]));
    let plan = compile_instance(&ava(), &inst, None).unwrap();
    let NodeSettings::FileSink(f) = &plan.node("fileSink").unwrap().settings else { panic!() };
    // TopologyName is known once compiled; DateTime waits for each file.
    assert_eq!(f.file_name_pattern.to_string(), "door-evr-${System.DateTime}");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_582_392_720);
    assert_eq!(f.file_name_pattern.render(t), "door-evr-20200222T173200Z");
    assert_eq!(plan.instance_name.as_deref(), Some("cam-1"));
}

#[test]
fn system_instance_name_resolves_from_the_instance() {
    let d = set(ava(), "/properties/sinks/1/hubOutputName", json!("${System.PipelineName}-${System.GraphTopologyName}"));
    let plan = compile_instance(&d, &url_instance(), None).unwrap();
    let NodeSettings::IotHubMessageSink(s) = &plan.node("hubSink").unwrap().settings else { panic!() };
    assert_eq!(s.hub_output_name, "cam-1-evr");
}

#[test]
fn defaults_apply_and_instance_values_override_them() {
    let plan = compile_instance(&ava(), &url_instance(), None).unwrap();
    let NodeSettings::MotionDetection(m) = &plan.node("motion").unwrap().settings else { panic!() };
    assert_eq!(m.sensitivity.as_str(), "medium");
    let inst = instance(json!([{ "name": "rtspUrl", "value": "rtsp://h/x" }, { "name": "sensitivity", "value": "low" }]));
    let plan = compile_instance(&ava(), &inst, None).unwrap();
    let NodeSettings::MotionDetection(m) = &plan.node("motion").unwrap().settings else { panic!() };
    assert_eq!(m.sensitivity.as_str(), "low");
}

#[test]
fn secret_values_never_appear_in_errors_or_serialised_plans() {
    let inst = instance(json!([{ "name": "rtspUrl", "value": "rtsp://h/x" }, { "name": "rtspPassword", "value": "hunter2" }]));
    let plan = compile_instance(&ava(), &inst, None).unwrap();
    let NodeSettings::RtspSource(r) = &plan.node("rtspSource").unwrap().settings else { panic!() };
    let Some(nodes::common::Credentials::UsernamePassword { password, .. }) = &r.endpoint.credentials else { panic!() };
    assert_eq!(password.expose(), "hunter2");
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(!shown.contains("hunter2") && shown.contains("<secret>"), "{shown}");
    assert!(!format!("{plan:?}").contains("hunter2"));

    // A secret that lands in a URL: the URL is redacted when shown, and an invalid
    // one is reported without echoing it.
    let mut d = ava();
    d["properties"]["parameters"][0]["type"] = json!("secretString");
    let inst = instance(json!([{ "name": "rtspUrl", "value": "rtsp://admin:s3cr3t@cam/x" }]));
    let plan = compile_instance(&d, &inst, None).unwrap();
    assert!(!serde_json::to_string(&plan).unwrap().contains("s3cr3t"));
    let inst = instance(json!([{ "name": "rtspUrl", "value": "not a url s3cr3t" }]));
    let e = instance_errors(&d, &inst);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(!e[0].2.contains("s3cr3t") && e[0].2.contains("from parameter 'rtspUrl'"), "{}", e[0].2);
}

#[test]
fn instance_values_are_checked_against_declarations() {
    let mut d = ava();
    d["properties"]["parameters"].as_array_mut().unwrap().push(json!({ "name": "quota", "type": "int", "default": "512" }));
    d["properties"]["sinks"][0]["maximumSizeMiB"] = json!("${quota}");
    let inst = instance(json!([
        { "name": "rtspUrl", "value": "rtsp://h/x" },
        { "name": "quota", "value": "4.5" },
        { "name": "rtspURL", "value": "x" }
    ]));
    let e = instance_errors(&d, &inst);
    assert!(
        e.iter().any(|x| x.0 == "ParameterValueInvalid" && x.1 == "$.Properties.Parameters[1].Value" && x.2.contains("not a whole number")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|x| x.0 == "ParameterUndeclared" && x.1 == "$.Properties.Parameters[2].Name" && x.2.contains("did you mean 'rtspUrl'")),
        "{e:#?}"
    );
    assert_eq!(e.len(), 2, "{e:#?}");
}

#[test]
fn missing_parameter_values_are_reported_once() {
    let e = instance_errors(&ava(), &instance(json!([])));
    assert_one(&e, "ParameterMissing", "$.Properties.Parameters", "'rtspUrl' has no default");
}

#[test]
fn type_errors_after_substitution_name_the_parameter() {
    let mut d = ava();
    d["properties"]["sinks"][0]["maximumSizeMiB"] = json!("${outputName}");
    let e = errors(&d);
    assert_one(
        &e,
        "PropertyValueInvalid",
        "$.Properties.Sinks[0].MaximumSizeMiB",
        "'clips' (from parameter 'outputName') is not valid for 'maximumSizeMiB'",
    );
}

#[test]
fn instances_must_name_the_right_topology() {
    let mut inst = url_instance();
    inst["properties"]["topologyName"] = json!("other");
    assert_one(&instance_errors(&ava(), &inst), "TopologyNameMismatch", "$.Properties.TopologyName", "names topology 'other'");
}

#[test]
fn structure_cannot_be_parameterised() {
    let d = set(ava(), "/properties/sinks/0/inputs/0/nodeName", json!("${gateName}"));
    let e = errors(&d);
    assert!(e.iter().any(|x| x.0 == "ParameterNotAllowedHere" && x.1 == "$.Properties.Sinks[0].Inputs[0].NodeName"), "{e:#?}");
}

#[test]
fn odata_error_bodies_have_the_published_shape() {
    let inst = instance(json!([{ "name": "rtspUrl", "value": "http://camera/stream" }]));
    let e = compile_instance(&ava(), &inst, None).unwrap_err();
    let body = e.to_odata();
    assert_eq!(body["error"]["code"], "InvalidResource");
    assert_eq!(body["error"]["details"][0]["code"], "RtspEndpointUrlInvalidScheme");
    assert_eq!(body["error"]["details"][0]["target"], "$.Properties.Sources[0].Endpoint.Url");
}

#[test]
fn json_syntax_errors_name_line_and_column() {
    let e = parse_json(b"{\n  \"name\": \"x\",\n  \"properties\": {\n}").unwrap_err();
    assert_eq!(e.details[0].code, Code::InvalidJson);
    assert!(e.details[0].message.contains("line 4 column 1"), "{}", e.details[0].message);
    assert_eq!(e.top_code().0, "BadRequest");
}
