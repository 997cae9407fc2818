//! What the extension nodes share: an HTTP answer's meaning (SPEC §5.1, §4.3), boxes mapped back from a padded image, Inference events and rate-limited diagnostics.
//!
//! [`interpret`] and [`Content`] are pure: the HTTP extension node feeds `interpret` the
//! status, content type, `Retry-After` and body it received, and acts on the [`Outcome`].
//! [`inference_event`] and [`Reporter`] are the one place the HTTP and gRPC extension nodes
//! build their events, so both publish the same envelope and diagnostics.

use super::sampling::FrameSampling;
use crate::runtime::events::EventClass;
use crate::runtime::frames::REPORT_EVERY;
use crate::runtime::node::{NodeCtx, NodeEnv};
use crate::runtime::packet::{Event, Frame, Nanos, Packet};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Back-off after a 503 without a usable `Retry-After` (SPEC gap: undocumented; a few
/// seconds lets a busy server recover without losing much).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The longest back-off a server can ask for: a camera's analytics never stop for longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Inferences to attach to the frame and publish (never empty).
    Results(Vec<Value>),
    /// 204, or a 200 with an empty `inferences` list: nothing found, no event.
    Nothing,
    /// The sample is lost (400, 500, any other status); reported as a diagnostic.
    Dropped { status: u16, message: String },
    /// 503: no request before this long.
    BackOff(Duration),
}

/// The part of a padded image that holds the picture, normalised `[l, t, w, h]`; boxes the
/// extension returns relative to the padded image are mapped back to the picture (SPEC §1.3:
/// "(0.2,0,0.6,1.0) becomes (0,0,1,1)").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Content(pub [f64; 4]);

impl Content {
    pub const WHOLE: Content = Content([0.0, 0.0, 1.0, 1.0]);

    /// The picture's place in a `pw`×`ph` image when it was scaled to `cw`×`ch` and centred.
    pub fn centred(cw: u32, ch: u32, pw: u32, ph: u32) -> Content {
        if pw == 0 || ph == 0 || (cw, ch) == (pw, ph) {
            return Content::WHOLE;
        }
        let l = f64::from((pw - cw.min(pw)) / 2) / f64::from(pw);
        let t = f64::from((ph - ch.min(ph)) / 2) / f64::from(ph);
        Content([l, t, f64::from(cw) / f64::from(pw), f64::from(ch) / f64::from(ph)])
    }

    fn map(&self, b: &mut Map<String, Value>) {
        if *self == Content::WHOLE {
            return;
        }
        let [cl, ct, cw, ch] = self.0;
        let get = |b: &Map<String, Value>, k: &str| b.get(k).and_then(Value::as_f64);
        let (Some(l), Some(t), Some(w), Some(h)) = (get(b, "l"), get(b, "t"), get(b, "w"), get(b, "h")) else { return };
        // Clip to the picture, then express in its coordinates.
        let (x0, y0) = (((l - cl) / cw).clamp(0.0, 1.0), ((t - ct) / ch).clamp(0.0, 1.0));
        let (x1, y1) = (((l + w - cl) / cw).clamp(0.0, 1.0), ((t + h - ct) / ch).clamp(0.0, 1.0));
        let r = |v: f64| (v * 1e6).round() / 1e6;
        b.insert("l".into(), json!(r(x0)));
        b.insert("t".into(), json!(r(y0)));
        b.insert("w".into(), json!(r(x1 - x0)));
        b.insert("h".into(), json!(r(y1 - y0)));
    }
}

/// Reads an answer. `retry_after` is the header's value, if any.
pub fn interpret(status: u16, content_type: Option<&str>, retry_after: Option<&str>, body: &[u8], content: Content) -> Outcome {
    match status {
        200 => {
            let json_type = content_type.is_some_and(|c| {
                let c = c.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                c == "application/json" || c.ends_with("+json")
            });
            match json_type.then(|| serde_json::from_slice::<Value>(body)) {
                Some(Ok(v)) => from_json(v, content),
                Some(Err(e)) => Outcome::Dropped { status, message: format!("the 200 response is not valid JSON: {e}") },
                // SPEC §4.3 [inferred]: a non-JSON answer travels as an opaque `other` inference.
                None if body.is_empty() => Outcome::Nothing,
                None => Outcome::Results(vec![json!({"type": "other", "other": {
                    "contentType": content_type.unwrap_or("application/octet-stream"),
                    "contentBytes": base64::engine::general_purpose::STANDARD.encode(body),
                }})]),
            }
        }
        204 => Outcome::Nothing,
        503 => Outcome::BackOff(retry_after.and_then(parse_retry_after).unwrap_or(DEFAULT_RETRY_AFTER).min(MAX_RETRY_AFTER)),
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string();
            Outcome::Dropped { status, message: if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") } }
        }
    }
}

/// `{"inferences": [...]}` → its inferences with boxes mapped; other JSON (not the schema)
/// is forwarded as it came, as SPEC §4.3 says, with its boxes left alone.
fn from_json(mut v: Value, content: Content) -> Outcome {
    let Some(list) = v.get_mut("inferences").and_then(Value::as_array_mut) else {
        return Outcome::Results(vec![v]);
    };
    if list.is_empty() {
        return Outcome::Nothing;
    }
    map_boxes(list, content);
    Outcome::Results(std::mem::take(list))
}

/// Maps the boxes of SPEC inferences (entity, motion, event) from the image the extension
/// saw back to the picture; values without a box, or not in the schema, are left alone.
pub fn map_boxes(list: &mut [Value], content: Content) {
    for inf in list.iter_mut() {
        for kind in ["entity", "motion", "event"] {
            if let Some(b) = inf.get_mut(kind).and_then(|k| k.get_mut("box")).and_then(Value::as_object_mut) {
                content.map(b);
            }
        }
    }
}

/// `Analytics.Inference` (SPEC §4.2): `{timestamp, inferences}` with the envelope of the
/// node's subject. `timestamp` is the media time in 90 kHz units, the motion detector's
/// clock; `wall` is the same instant as the event's time.
pub fn inference_event(env: &NodeEnv, timestamp: u64, wall: Nanos, inferences: &[Value]) -> Event {
    let body = json!({ "timestamp": timestamp, "inferences": inferences });
    let time = UNIX_EPOCH + Duration::from_nanos(wall.max(0) as u64);
    let properties = env.events.envelope(&env.subject, EventClass::Analytics, "Inference", time);
    Event { time: Some(wall), body: Bytes::from(serde_json::to_vec(&body).expect("json")), properties }
}

/// The frame an extension node sends, when `p` is one its sampling takes; everything
/// else goes straight on downstream.
pub fn sample_to_send(sampling: &mut FrameSampling, p: Packet, ctx: &mut NodeCtx<'_>) -> Option<Arc<Frame>> {
    let Packet::Frame(f) = p else {
        ctx.emit(p);
        return None;
    };
    if !sampling.take(&f) {
        ctx.emit(Packet::Frame(f));
        return None;
    }
    Some(f)
}

/// Dropped samples and failures of an extension node as diagnostics, each kind at most once
/// per [`REPORT_EVERY`] (with running totals for drops), so a dead or flaky extension cannot
/// flood the hub.
#[derive(Debug, Default)]
pub struct Reporter {
    dropped: u64,
    last_drop: Option<Instant>,
    /// Last report per event type and code: a second kind of failure is not hidden behind
    /// the first one.
    last_error: HashMap<String, Instant>,
}

impl Reporter {
    /// A sampled frame went on without being sent (`why` says what stood in the way).
    pub fn dropped(&mut self, env: &NodeEnv, why: &str) {
        self.dropped += 1;
        env.stats.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.last_drop.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            self.last_drop = Some(Instant::now());
            let body = json!({ "dataType": "videoFrame", "dropped": self.dropped, "reason": why });
            env.events.emit(&env.subject, EventClass::Diagnostics, "DataDropped", body);
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped
    }

    /// A `Diagnostics.{ty}` event, unless one with the same type and `code`/`errorCode` went
    /// out less than [`REPORT_EVERY`] ago. Returns whether it was published.
    pub fn error(&mut self, env: &NodeEnv, ty: &str, body: Value) -> bool {
        let code = body.get("errorCode").or_else(|| body.get("code")).and_then(Value::as_str).unwrap_or("");
        let key = format!("{ty}/{code}");
        if self.last_error.get(&key).is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return false;
        }
        self.last_error.insert(key, Instant::now());
        tracing::warn!(node = env.name(), kind = ty, %body, "extension failure");
        env.events.emit(&env.subject, EventClass::Diagnostics, ty, body);
        true
    }
}

/// `Retry-After`: delay-seconds (RFC 9110 §10.2.3). HTTP dates are rare from inference
/// servers and would need a trusted clock: they get the default.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Outcome {
        interpret(200, Some("application/json; charset=utf-8"), None, body.as_bytes(), Content::WHOLE)
    }

    #[test]
    fn results_nothing_and_errors_mean_what_spec_says() {
        let body = r#"{"inferences":[{"type":"entity","entity":{"tag":{"value":"person","confidence":0.9},"box":{"l":0.1,"t":0.2,"w":0.3,"h":0.4}}}]}"#;
        let Outcome::Results(r) = ok(body) else { panic!() };
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["entity"]["tag"]["value"], "person");
        assert_eq!(ok(r#"{"inferences":[]}"#), Outcome::Nothing);
        assert_eq!(interpret(204, None, None, b"", Content::WHOLE), Outcome::Nothing);
        assert!(matches!(interpret(400, Some("text/plain"), None, b"bad image", Content::WHOLE),
            Outcome::Dropped { status: 400, message } if message.contains("bad image")));
        assert!(matches!(interpret(500, None, None, b"", Content::WHOLE), Outcome::Dropped { status: 500, .. }));
        assert!(matches!(ok("{not json"), Outcome::Dropped { status: 200, .. }));
    }

    #[test]
    fn a_503_backs_off_as_asked_within_bounds() {
        assert_eq!(interpret(503, None, Some("7"), b"", Content::WHOLE), Outcome::BackOff(Duration::from_secs(7)));
        assert_eq!(interpret(503, None, None, b"", Content::WHOLE), Outcome::BackOff(DEFAULT_RETRY_AFTER));
        assert_eq!(interpret(503, None, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"", Content::WHOLE), Outcome::BackOff(DEFAULT_RETRY_AFTER));
        assert_eq!(interpret(503, None, Some("86400"), b"", Content::WHOLE), Outcome::BackOff(MAX_RETRY_AFTER));
    }

    #[test]
    fn non_json_answers_travel_as_other_and_foreign_json_as_is() {
        let Outcome::Results(r) = interpret(200, Some("text/plain"), None, b"cat", Content::WHOLE) else { panic!() };
        assert_eq!(r, vec![json!({"type": "other", "other": {"contentType": "text/plain", "contentBytes": "Y2F0"}})]);
        let Outcome::Results(r) = ok(r#"{"predictions":[{"tagName":"person"}]}"#) else { panic!() };
        assert_eq!(r[0]["predictions"][0]["tagName"], "person");
    }

    #[test]
    fn boxes_on_a_padded_image_map_back_to_the_picture() {
        // SPEC's example: 0.2 padding left and right.
        let c = Content([0.2, 0.0, 0.6, 1.0]);
        let body = r#"{"inferences":[{"type":"entity","entity":{"tag":{"value":"car"},"box":{"l":0.2,"t":0.0,"w":0.6,"h":1.0}}},
            {"type":"motion","motion":{"box":{"l":0.0,"t":0.5,"w":0.3,"h":0.5}}}]}"#;
        let Outcome::Results(r) = interpret(200, Some("application/json"), None, body.as_bytes(), c) else { panic!() };
        assert_eq!(r[0]["entity"]["box"], json!({"l": 0.0, "t": 0.0, "w": 1.0, "h": 1.0}));
        // A box reaching into the bar is clipped to the picture.
        assert_eq!(r[1]["motion"]["box"], json!({"l": 0.0, "t": 0.5, "w": 0.166667, "h": 0.5}));
    }

    #[test]
    fn the_content_rectangle_of_a_centred_picture() {
        // 1280×720 padded into 416×416: scaled to 416×234, bars of 91 px above and below.
        let c = Content::centred(416, 234, 416, 416);
        assert_eq!(c.0[0], 0.0);
        assert!((c.0[1] - 91.0 / 416.0).abs() < 1e-12);
        assert!((c.0[3] - 234.0 / 416.0).abs() < 1e-12);
        assert_eq!(Content::centred(416, 416, 416, 416), Content::WHOLE);
    }
}
