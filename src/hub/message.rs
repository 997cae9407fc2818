//! Hub messages and the IoT Hub property bag (`k=v&k=v`, URL-encoded) that carries their properties in the topic.
//!
//! MQTT 3.1.1 has no message properties, so IoT Hub and edgeHub put them in the last
//! topic level: system properties under `$.`-prefixed keys (`$.on`, `$.mid`, `$.ct`,
//! `$.ce`, `$.cdid`, `$.cmid`) and application properties under their own names.
//! Pure: no I/O.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;

/// System property: output name the message was sent to.
pub const SYS_OUTPUT_NAME: &str = "$.on";
/// System property: message id (a GUID for events, SPEC §4.1).
pub const SYS_MESSAGE_ID: &str = "$.mid";
/// System property: content type, `application/json` for events.
pub const SYS_CONTENT_TYPE: &str = "$.ct";
/// System property: content encoding, `utf-8` for events.
pub const SYS_CONTENT_ENCODING: &str = "$.ce";
/// System property: device id of the sender, set by the hub on routed messages.
pub const SYS_CONNECTION_DEVICE_ID: &str = "$.cdid";
/// System property: module id of the sender, set by the hub on routed messages.
pub const SYS_CONNECTION_MODULE_ID: &str = "$.cmid";

/// One message through the hub: a body plus its properties.
///
/// `properties` holds the application properties (`topic`, `subject`, `eventType`,
/// `eventTime`, `dataVersion`, or anything a module sets). System properties this type
/// does not model (`$.cid`, `$.uid`, `$.to`, `$.exp`, …) are kept in `properties` under
/// their `$.` key so that they survive a trip through the hub unchanged; a `$.` key that
/// duplicates one of the typed fields is ignored when encoding (the field wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubMessage {
    pub body: Bytes,
    pub properties: BTreeMap<String, String>,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub output_name: Option<String>,
    pub connection_device_id: Option<String>,
    pub connection_module_id: Option<String>,
}

impl HubMessage {
    /// A message with this body and no properties.
    pub fn new(body: impl Into<Bytes>) -> Self {
        HubMessage { body: body.into(), ..Default::default() }
    }

    /// A JSON event body with the system properties of SPEC §4.1: `application/json`,
    /// `utf-8` and a fresh GUID as message id.
    pub fn json(value: &serde_json::Value) -> Self {
        HubMessage {
            body: Bytes::from(serde_json::to_vec(value).expect("serializing a serde_json::Value cannot fail")),
            message_id: Some(uuid::Uuid::new_v4().to_string()),
            content_type: Some("application/json".to_string()),
            content_encoding: Some("utf-8".to_string()),
            ..Default::default()
        }
    }

    /// Adds or replaces an application property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// An application property.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// The body parsed as JSON.
    pub fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    fn system_fields(&self) -> [(&'static str, Option<&String>); 6] {
        [
            (SYS_OUTPUT_NAME, self.output_name.as_ref()),
            (SYS_MESSAGE_ID, self.message_id.as_ref()),
            (SYS_CONTENT_TYPE, self.content_type.as_ref()),
            (SYS_CONTENT_ENCODING, self.content_encoding.as_ref()),
            (SYS_CONNECTION_DEVICE_ID, self.connection_device_id.as_ref()),
            (SYS_CONNECTION_MODULE_ID, self.connection_module_id.as_ref()),
        ]
    }

    /// The property bag for the topic: system properties first in a fixed order, then the
    /// application properties sorted by key. Keys and values are percent-encoded (every
    /// byte except `A-Z a-z 0-9 - . _ ~`), so the bag is one topic level and never
    /// contains `/`, `+` or `#`.
    pub fn encode_bag(&self) -> String {
        let mut out = String::new();
        let mut push = |k: &str, v: &str| {
            if !out.is_empty() {
                out.push('&');
            }
            encode_into(&mut out, k);
            out.push('=');
            encode_into(&mut out, v);
        };
        let system = self.system_fields();
        for (key, value) in system.iter() {
            if let Some(v) = value {
                push(key, v);
            }
        }
        for (k, v) in &self.properties {
            if system.iter().any(|(key, value)| key == k && value.is_some()) {
                continue;
            }
            push(k, v);
        }
        out
    }

    /// Parses a property bag (the last topic level; an empty bag is allowed) into a
    /// message with `body`. A key without `=` has an empty value. When a key repeats,
    /// the last value wins. `+` is a literal plus, as in IoT Hub's protocol gateway (it
    /// cannot appear unescaped in a published topic anyway).
    pub fn decode(bag: &str, body: Bytes) -> Result<HubMessage, BagError> {
        let mut msg = HubMessage::new(body);
        let mut start = 0;
        for part in bag.split('&') {
            let offset = start;
            start += part.len() + 1;
            if part.is_empty() {
                continue;
            }
            let (k, v, v_offset) = match part.find('=') {
                Some(i) => (&part[..i], &part[i + 1..], offset + i + 1),
                None => (part, "", offset + part.len()),
            };
            let key = decode_component(k, offset)?;
            if key.is_empty() {
                return Err(BagError { position: offset, reason: "empty property name".to_string() });
            }
            let value = decode_component(v, v_offset)?;
            match key.as_str() {
                SYS_OUTPUT_NAME => msg.output_name = Some(value),
                SYS_MESSAGE_ID => msg.message_id = Some(value),
                SYS_CONTENT_TYPE => msg.content_type = Some(value),
                SYS_CONTENT_ENCODING => msg.content_encoding = Some(value),
                SYS_CONNECTION_DEVICE_ID => msg.connection_device_id = Some(value),
                SYS_CONNECTION_MODULE_ID => msg.connection_module_id = Some(value),
                _ => {
                    msg.properties.insert(key, value);
                }
            }
        }
        Ok(msg)
    }
}

/// A malformed property bag: what is wrong and the byte offset in the bag where it starts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("property bag, byte {position}: {reason}")]
pub struct BagError {
    pub position: usize,
    pub reason: String,
}

/// Percent-encodes `s` (RFC 3986 unreserved characters stay as they are).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s);
    out
}

fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Decodes `%XX` escapes; `offset` is where `s` starts in the bag, for error positions.
pub fn decode_component(s: &str, offset: usize) -> Result<String, BagError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => out.push(b),
                None => {
                    let shown: String = s[i..].chars().take(3).collect();
                    return Err(BagError { position: offset + i, reason: format!("invalid percent escape {shown:?}") });
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| BagError { position: offset, reason: format!("escapes decode to invalid UTF-8 ({e})") })
}

impl fmt::Display for HubMessage {
    /// A short description for logs: properties and body size, never the body itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} bytes", self.encode_bag(), self.body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_system_then_application_properties() {
        let mut m = HubMessage::new("{}")
            .with_property("subject", "/graphInstances/g1")
            .with_property("eventType", "Microsoft.Media.Graph.Analytics.Inference");
        m.output_name = Some("detectedObjects".into());
        m.content_type = Some("application/json".into());
        m.content_encoding = Some("utf-8".into());
        assert_eq!(
            m.encode_bag(),
            "%24.on=detectedObjects&%24.ct=application%2Fjson&%24.ce=utf-8&eventType=Microsoft.Media.Graph.Analytics.Inference&subject=%2FgraphInstances%2Fg1"
        );
    }

    #[test]
    fn round_trips_every_field_and_awkward_values() {
        let mut m = HubMessage::new(Bytes::from_static(b"\x00\xffbinary"));
        m.output_name = Some("out put/1".into());
        m.message_id = Some("9c2f1a8e-0000-4000-8000-000000000001".into());
        m.content_type = Some("application/json".into());
        m.content_encoding = Some("utf-8".into());
        m.connection_device_id = Some("dev".into());
        m.connection_module_id = Some("$edgeHub".into());
        m.properties.insert("eventTime".into(), "2020-05-12T23:33:10.392Z".into());
        m.properties.insert("topic".into(), "/subscriptions/s/resourceGroups/rg/providers/microsoft.media/mediaservices/a".into());
        m.properties.insert("weird key&=+#".into(), "ü €/%&=+#?".into());
        m.properties.insert("empty".into(), String::new());
        m.properties.insert("$.cid".into(), "corr".into());
        let bag = m.encode_bag();
        assert!(!bag.contains('/') && !bag.contains('+') && !bag.contains('#'), "{bag}");
        let back = HubMessage::decode(&bag, m.body.clone()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn decodes_the_documented_examples() {
        let m = HubMessage::decode("%24.on=alert", Bytes::new()).unwrap();
        assert_eq!(m.output_name.as_deref(), Some("alert"));
        let m = HubMessage::decode("%24.cdid=dev&%24.cmid=objectCounter&eventTime=2020-05-12T23%3A33%3A10.392Z", Bytes::new()).unwrap();
        assert_eq!(m.connection_device_id.as_deref(), Some("dev"));
        assert_eq!(m.connection_module_id.as_deref(), Some("objectCounter"));
        assert_eq!(m.property("eventTime"), Some("2020-05-12T23:33:10.392Z"));
    }

    #[test]
    fn decode_accepts_raw_dollar_keys_empty_parts_missing_values_and_repeats() {
        let m = HubMessage::decode("$.on=x&&flag&a=1&a=2&", Bytes::new()).unwrap();
        assert_eq!(m.output_name.as_deref(), Some("x"));
        assert_eq!(m.property("flag"), Some(""));
        assert_eq!(m.property("a"), Some("2"));
        assert_eq!(HubMessage::decode("", Bytes::new()).unwrap(), HubMessage::default());
        assert_eq!(HubMessage::decode("a+b=c+d", Bytes::new()).unwrap().property("a+b"), Some("c+d"));
    }

    #[test]
    fn decode_errors_say_where() {
        let e = HubMessage::decode("ok=1&bad=%zz", Bytes::new()).unwrap_err();
        assert_eq!(e.position, 9);
        assert!(e.reason.contains("%zz"), "{e}");
        let e = HubMessage::decode("ok=1&x=%4", Bytes::new()).unwrap_err();
        assert_eq!(e.position, 7);
        let e = HubMessage::decode("a=1&=v", Bytes::new()).unwrap_err();
        assert_eq!((e.position, e.reason.as_str()), (4, "empty property name"));
        let e = HubMessage::decode("a=%ff%fe", Bytes::new()).unwrap_err();
        assert!(e.reason.contains("UTF-8"), "{e}");
    }

    #[test]
    fn typed_field_wins_over_a_duplicate_dollar_property() {
        let mut m = HubMessage::new("");
        m.output_name = Some("real".into());
        m.properties.insert("$.on".into(), "shadow".into());
        assert_eq!(m.encode_bag(), "%24.on=real");
        m.output_name = None;
        assert_eq!(m.encode_bag(), "%24.on=shadow");
    }

    #[test]
    fn json_constructor_sets_event_system_properties() {
        let m = HubMessage::json(&json!({"inferences": []}));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(m.message_id.as_deref().map(str::len), Some(36));
        assert_eq!(m.body_json().unwrap(), json!({"inferences": []}));
    }

    #[test]
    fn display_never_shows_the_body() {
        let m = HubMessage::new("secret body").with_property("k", "v");
        assert_eq!(m.to_string(), "[k=v] 11 bytes");
    }
}
