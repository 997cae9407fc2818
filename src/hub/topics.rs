//! The hub's MQTT topic layout: builders, subscription filters and a parser, plus id and name validation.
//!
//! Layout (details and rationale in `docs/hub.md`):
//!
//! | what | topic |
//! |---|---|
//! | module output | `devices/{d}/modules/{m}/messages/events/{bag}` |
//! | routed input | `devices/{d}/modules/{m}/inputs/{input}/{bag}` |
//! | method request | `devices/{d}/modules/{m}/$iothub/methods/POST/{method}/?$rid={rid}` |
//! | method response | `devices/{d}/modules/{m}/$iothub/methods/res/{status}/?$rid={rid}` |
//! | twin GET | `devices/{d}/modules/{m}/$iothub/twin/GET/?$rid={rid}` |
//! | twin response | `devices/{d}/modules/{m}/$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]` |
//! | desired patch | `devices/{d}/modules/{m}/$iothub/twin/PATCH/properties/desired/?$version={v}` |
//! | reported patch | `devices/{d}/modules/{m}/$iothub/twin/PATCH/properties/reported/?$rid={rid}` |
//! | `$upstream` | `upstream/{d}/{m}/{output or $none}/{bag}` |
//!
//! edgeHub's `$iothub/…` topics are per connection; a plain broker has one namespace, so
//! they are prefixed with the module's own `devices/{d}/modules/{m}/` (SPEC §7's shape
//! is kept after the prefix). `$` is an ordinary character in a non-first level for both
//! mosquitto and rumqttd (MQTT only reserves a leading `$`). Pure: no I/O.

use super::error::HubError;
use super::message::{decode_component, encode_component};

/// MQTT's limit on a topic name (a two-byte length prefix).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Output level used in `$upstream` topics for a message sent without an output name.
pub const NO_OUTPUT: &str = "$none";

/// Checks a device or module id: what IoT Hub allows (ASCII letters and digits plus
/// `- . % _ * ? ! ( ) , : = @ $ '`, at most 128 characters). None of them is special in
/// an MQTT topic level, so ids can be used verbatim in topics.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), HubError> {
    let bad = |reason: &'static str| Err(HubError::InvalidName { kind, value: id.to_string(), reason });
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > 128 {
        return bad("it is longer than 128 characters");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.%_*?!(),:=@$'".contains(&b)) {
        return bad("only ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ ' are allowed");
    }
    Ok(())
}

/// Checks an input, output or method name, which becomes one topic level: not empty, at
/// most 256 bytes, no `/`, `+`, `#` or NUL, and not starting with `?` (the level that
/// carries `$rid`).
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), HubError> {
    let bad = |reason: &'static str| Err(HubError::InvalidName { kind, value: name.to_string(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 256 {
        return bad("it is longer than 256 bytes");
    }
    if name.contains(['/', '+', '#', '\0']) {
        return bad("it contains '/', '+', '#' or NUL, which cannot be in an MQTT topic level");
    }
    if name.starts_with('?') {
        return bad("it starts with '?'");
    }
    Ok(())
}

/// The MQTT client id for `{device}/{module}` (SPEC §7), percent-encoded like a property
/// bag value: `dev/lvaEdge` becomes `dev%2FlvaEdge` and `dev/$edgeHub` `dev%2F%24edgeHub`.
/// rumqttd refuses client ids containing `/`, `+`, `$` or `#`; encoding keeps the id
/// reversible and identical on every broker.
pub fn client_id(device: &str, module: &str) -> String {
    encode_component(&format!("{device}/{module}"))
}

fn module_prefix(device: &str, module: &str) -> String {
    format!("devices/{device}/modules/{module}")
}

/// Where a module publishes to an output (`$.on` in the bag names it).
pub fn events_topic(device: &str, module: &str, bag: &str) -> String {
    format!("{}/messages/events/{bag}", module_prefix(device, module))
}

/// Everything any module of `device` sends to its outputs (the hub subscribes to it).
pub fn events_filter(device: &str) -> String {
    format!("devices/{device}/modules/+/messages/events/#")
}

/// Where the hub delivers a routed message to a module input.
pub fn input_topic(device: &str, module: &str, input: &str, bag: &str) -> String {
    format!("{}/inputs/{input}/{bag}", module_prefix(device, module))
}

/// Every input of one module.
pub fn inputs_filter(device: &str, module: &str) -> String {
    format!("{}/inputs/#", module_prefix(device, module))
}

/// A direct-method request to a module.
pub fn method_request_topic(device: &str, module: &str, method: &str, rid: &str) -> String {
    format!("{}/$iothub/methods/POST/{method}/?$rid={}", module_prefix(device, module), encode_component(rid))
}

/// Every direct-method request to one module.
pub fn method_requests_filter(device: &str, module: &str) -> String {
    format!("{}/$iothub/methods/POST/#", module_prefix(device, module))
}

/// A module's answer to a direct method.
pub fn method_response_topic(device: &str, module: &str, status: u16, rid: &str) -> String {
    format!("{}/$iothub/methods/res/{status}/?$rid={}", module_prefix(device, module), encode_component(rid))
}

/// Every direct-method answer of one module (callers subscribe to it and match `$rid`).
pub fn method_responses_filter(device: &str, module: &str) -> String {
    format!("{}/$iothub/methods/res/#", module_prefix(device, module))
}

/// A module asks the hub for its twin.
pub fn twin_get_topic(device: &str, module: &str, rid: &str) -> String {
    format!("{}/$iothub/twin/GET/?$rid={}", module_prefix(device, module), encode_component(rid))
}

/// The hub's answer to a twin GET or a reported-properties PATCH.
pub fn twin_response_topic(device: &str, module: &str, status: u16, rid: &str, version: Option<u64>) -> String {
    let mut t = format!("{}/$iothub/twin/res/{status}/?$rid={}", module_prefix(device, module), encode_component(rid));
    if let Some(v) = version {
        t.push_str(&format!("&$version={v}"));
    }
    t
}

/// Answers to one module's twin requests.
pub fn twin_responses_filter(device: &str, module: &str) -> String {
    format!("{}/$iothub/twin/res/#", module_prefix(device, module))
}

/// A desired-properties patch for a module.
pub fn twin_desired_patch_topic(device: &str, module: &str, version: u64) -> String {
    format!("{}/$iothub/twin/PATCH/properties/desired/?$version={version}", module_prefix(device, module))
}

/// Desired-properties patches for one module.
pub fn twin_desired_patches_filter(device: &str, module: &str) -> String {
    format!("{}/$iothub/twin/PATCH/properties/desired/#", module_prefix(device, module))
}

/// A module reports properties.
pub fn twin_reported_patch_topic(device: &str, module: &str, rid: &str) -> String {
    format!("{}/$iothub/twin/PATCH/properties/reported/?$rid={}", module_prefix(device, module), encode_component(rid))
}

/// Twin GETs of every module of `device` (the hub subscribes to it).
pub fn twin_gets_filter(device: &str) -> String {
    format!("devices/{device}/modules/+/$iothub/twin/GET/#")
}

/// Reported-properties patches of every module of `device` (the hub subscribes to it).
pub fn twin_reported_patches_filter(device: &str) -> String {
    format!("devices/{device}/modules/+/$iothub/twin/PATCH/properties/reported/#")
}

/// Where the hub delivers messages routed `INTO $upstream`.
pub fn upstream_topic(device: &str, module: &str, output: Option<&str>, bag: &str) -> String {
    format!("upstream/{device}/{module}/{}/{bag}", output.unwrap_or(NO_OUTPUT))
}

/// Everything routed upstream from `device`.
pub fn upstream_filter(device: &str) -> String {
    format!("upstream/{device}/#")
}

/// A topic of the layout, parsed. Borrowed parts are raw topic levels; `rid` is decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubTopic<'a> {
    Events { device: &'a str, module: &'a str, bag: &'a str },
    Input { device: &'a str, module: &'a str, input: &'a str, bag: &'a str },
    MethodRequest { device: &'a str, module: &'a str, method: &'a str, rid: String },
    MethodResponse { device: &'a str, module: &'a str, status: u16, rid: String },
    TwinGet { device: &'a str, module: &'a str, rid: String },
    TwinResponse { device: &'a str, module: &'a str, status: u16, rid: String, version: Option<u64> },
    TwinDesiredPatch { device: &'a str, module: &'a str, version: u64 },
    TwinReportedPatch { device: &'a str, module: &'a str, rid: String },
    Upstream { device: &'a str, module: &'a str, output: Option<&'a str>, bag: &'a str },
}

/// Parses a topic of the layout; `None` for anything else (including a topic of the
/// layout with a missing `$rid` or a non-numeric status or version).
pub fn parse_topic(topic: &str) -> Option<HubTopic<'_>> {
    let levels: Vec<&str> = topic.split('/').collect();
    match levels.as_slice() {
        ["upstream", device, module, output, rest @ ..] => {
            Some(HubTopic::Upstream { device, module, output: (*output != NO_OUTPUT).then_some(*output), bag: bag_of(topic, rest)? })
        }
        ["devices", device, "modules", module, rest @ ..] => parse_module_topic(topic, device, module, rest),
        _ => None,
    }
}

fn parse_module_topic<'a>(topic: &'a str, device: &'a str, module: &'a str, rest: &[&'a str]) -> Option<HubTopic<'a>> {
    Some(match rest {
        ["messages", "events", bag @ ..] => HubTopic::Events { device, module, bag: bag_of(topic, bag)? },
        ["inputs", input, bag @ ..] if !input.is_empty() => HubTopic::Input { device, module, input, bag: bag_of(topic, bag)? },
        ["$iothub", "methods", "POST", method, query] if !method.is_empty() => {
            HubTopic::MethodRequest { device, module, method, rid: query_param(query, "$rid")? }
        }
        ["$iothub", "methods", "res", status, query] => {
            HubTopic::MethodResponse { device, module, status: status.parse().ok()?, rid: query_param(query, "$rid")? }
        }
        ["$iothub", "twin", "GET", query] => HubTopic::TwinGet { device, module, rid: query_param(query, "$rid")? },
        ["$iothub", "twin", "res", status, query] => HubTopic::TwinResponse {
            device,
            module,
            status: status.parse().ok()?,
            rid: query_param(query, "$rid")?,
            version: query_param(query, "$version").and_then(|v| v.parse().ok()),
        },
        ["$iothub", "twin", "PATCH", "properties", "desired", query] => {
            HubTopic::TwinDesiredPatch { device, module, version: query_param(query, "$version")?.parse().ok()? }
        }
        ["$iothub", "twin", "PATCH", "properties", "reported", query] => {
            HubTopic::TwinReportedPatch { device, module, rid: query_param(query, "$rid")? }
        }
        _ => return None,
    })
}

/// The property bag: everything after the fixed levels, with one trailing `/` tolerated
/// (the documented examples end with one).
fn bag_of<'a>(topic: &'a str, rest: &[&'a str]) -> Option<&'a str> {
    let Some(first) = rest.first() else { return Some("") };
    // `first` is a slice of `topic`, so its offset gives the start of the remainder.
    let start = first.as_ptr() as usize - topic.as_ptr() as usize;
    let bag = &topic[start..];
    let bag = bag.strip_suffix('/').unwrap_or(bag);
    (!bag.contains('/')).then_some(bag)
}

/// A `$rid`/`$version` parameter from a `?k=v&k=v` level.
fn query_param(level: &str, name: &str) -> Option<String> {
    let query = level.strip_prefix('?')?;
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).and_then(|(_, v)| decode_component(v, 0).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        for ok in ["dev", "lvaEdge", "$edgeHub", "a-b.c_d*e?f!(g),h:i=j@k'l%m"] {
            validate_id("module id", ok).unwrap();
        }
        for bad in ["", "a/b", "a b", "a+b", "a#b", "é", &"x".repeat(129)] {
            assert!(validate_id("module id", bad).is_err(), "{bad:?}");
        }
        for ok in ["detectedObjects", "AmsDiagnostics", "a b", "ü", "$x"] {
            validate_name("output name", ok).unwrap();
        }
        for bad in ["", "a/b", "a+b", "a#b", "?x", "a\0b"] {
            assert!(validate_name("output name", bad).is_err(), "{bad:?}");
        }
        let e = validate_name("input name", "a/b").unwrap_err().to_string();
        assert!(e.contains("input name") && e.contains("\"a/b\""), "{e}");
    }

    #[test]
    fn client_ids_avoid_characters_rumqttd_refuses() {
        assert_eq!(client_id("dev", "lvaEdge"), "dev%2FlvaEdge");
        assert_eq!(client_id("dev", "$edgeHub"), "dev%2F%24edgeHub");
    }

    #[test]
    fn every_topic_round_trips_through_the_parser() {
        let d = "dev";
        let m = "lvaEdge";
        assert_eq!(parse_topic(&events_topic(d, m, "%24.on=x&a=1")), Some(HubTopic::Events { device: d, module: m, bag: "%24.on=x&a=1" }));
        assert_eq!(
            parse_topic(&input_topic(d, m, "recordingTrigger", "a=1")),
            Some(HubTopic::Input { device: d, module: m, input: "recordingTrigger", bag: "a=1" })
        );
        assert_eq!(
            parse_topic(&method_request_topic(d, m, "GraphTopologySet", "r 1")),
            Some(HubTopic::MethodRequest { device: d, module: m, method: "GraphTopologySet", rid: "r 1".into() })
        );
        assert_eq!(
            parse_topic(&method_response_topic(d, m, 404, "r1")),
            Some(HubTopic::MethodResponse { device: d, module: m, status: 404, rid: "r1".into() })
        );
        assert_eq!(parse_topic(&twin_get_topic(d, m, "7")), Some(HubTopic::TwinGet { device: d, module: m, rid: "7".into() }));
        assert_eq!(
            parse_topic(&twin_response_topic(d, m, 204, "7", Some(3))),
            Some(HubTopic::TwinResponse { device: d, module: m, status: 204, rid: "7".into(), version: Some(3) })
        );
        assert_eq!(
            parse_topic(&twin_response_topic(d, m, 200, "7", None)),
            Some(HubTopic::TwinResponse { device: d, module: m, status: 200, rid: "7".into(), version: None })
        );
        assert_eq!(
            parse_topic(&twin_desired_patch_topic(d, m, 12)),
            Some(HubTopic::TwinDesiredPatch { device: d, module: m, version: 12 })
        );
        assert_eq!(
            parse_topic(&twin_reported_patch_topic(d, m, "9")),
            Some(HubTopic::TwinReportedPatch { device: d, module: m, rid: "9".into() })
        );
        assert_eq!(
            parse_topic(&upstream_topic(d, m, Some("AmsDiagnostics"), "a=1")),
            Some(HubTopic::Upstream { device: d, module: m, output: Some("AmsDiagnostics"), bag: "a=1" })
        );
        assert_eq!(parse_topic(&upstream_topic(d, m, None, "")), Some(HubTopic::Upstream { device: d, module: m, output: None, bag: "" }));
    }

    #[test]
    fn spec_examples_parse() {
        assert_eq!(
            parse_topic("devices/TestEdgeDevice/modules/TestModule/messages/events/%24.on=alert/"),
            Some(HubTopic::Events { device: "TestEdgeDevice", module: "TestModule", bag: "%24.on=alert" })
        );
        assert_eq!(parse_topic("devices/dev/modules/m/messages/events/"), Some(HubTopic::Events { device: "dev", module: "m", bag: "" }));
        assert_eq!(parse_topic("devices/dev/modules/m/messages/events"), Some(HubTopic::Events { device: "dev", module: "m", bag: "" }));
        assert_eq!(
            parse_topic("devices/dev/modules/m/$iothub/twin/res/200/?$rid=1&$version=4"),
            Some(HubTopic::TwinResponse { device: "dev", module: "m", status: 200, rid: "1".into(), version: Some(4) })
        );
    }

    #[test]
    fn foreign_or_broken_topics_are_not_parsed() {
        for t in [
            "",
            "devices/dev/messages/events/a=1",
            "devices/dev/modules/m/messages/events/a/b",
            "devices/dev/modules/m/inputs//a=1",
            "devices/dev/modules/m/$iothub/methods/POST/x/",
            "devices/dev/modules/m/$iothub/methods/POST/x/?$other=1",
            "devices/dev/modules/m/$iothub/methods/res/abc/?$rid=1",
            "devices/dev/modules/m/$iothub/twin/PATCH/properties/desired/?$version=x",
            "$iothub/methods/POST/x/?$rid=1",
            "other/topic",
        ] {
            assert_eq!(parse_topic(t), None, "{t}");
        }
    }

    #[test]
    fn filters_match_their_topics() {
        fn matches(filter: &str, topic: &str) -> bool {
            let (f, t): (Vec<_>, Vec<_>) = (filter.split('/').collect(), topic.split('/').collect());
            for (i, l) in f.iter().enumerate() {
                match *l {
                    "#" => return true,
                    "+" if i < t.len() => {}
                    _ if t.get(i) == Some(l) => {}
                    _ => return false,
                }
            }
            f.len() == t.len()
        }
        let (d, m) = ("dev", "m");
        assert!(matches(&events_filter(d), &events_topic(d, m, "a=1")));
        assert!(matches(&inputs_filter(d, m), &input_topic(d, m, "i", "a=1")));
        assert!(!matches(&inputs_filter(d, "other"), &input_topic(d, m, "i", "a=1")));
        assert!(matches(&method_requests_filter(d, m), &method_request_topic(d, m, "x", "1")));
        assert!(!matches(&method_requests_filter(d, "n"), &method_request_topic(d, m, "x", "1")));
        assert!(matches(&method_responses_filter(d, m), &method_response_topic(d, m, 200, "1")));
        assert!(matches(&twin_responses_filter(d, m), &twin_response_topic(d, m, 200, "1", None)));
        assert!(matches(&twin_desired_patches_filter(d, m), &twin_desired_patch_topic(d, m, 2)));
        assert!(matches(&twin_gets_filter(d), &twin_get_topic(d, m, "1")));
        assert!(matches(&twin_reported_patches_filter(d), &twin_reported_patch_topic(d, m, "1")));
        assert!(matches(&upstream_filter(d), &upstream_topic(d, m, Some("o"), "a=1")));
        // A module's own outputs never reach its input subscription (no echo).
        assert!(!matches(&inputs_filter(d, m), &events_topic(d, m, "a=1")));
    }
}
