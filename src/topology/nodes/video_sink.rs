//! VideoSink (AVA): records into a named video in Vela's local video store.

use crate::topology::duration::SignedDuration;
use crate::topology::error::Code;
use crate::topology::reader::{check_range, Ctx, Field, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSink {
    pub video_name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// 30 s to 5 min in steps of 30 s (default 30 s).
    pub segment_length: SignedDuration,
    /// Whole days (AVA 1.1); older media is deleted.
    pub retention_period: Option<SignedDuration>,
    pub enable_video_preview_image: bool,
    pub local_media_cache_path: String,
    #[serde(rename = "localMediaCacheMaximumSizeMiB")]
    pub local_media_cache_maximum_size_mib: u64,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<VideoSink> {
    let name = match o.scalar::<String>(cx, "videoName", Need::Required) {
        Field::Value(n, p) => {
            let ok = !n.is_empty()
                && n.len() <= 260
                && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !n.starts_with(['.', '-']);
            if !ok {
                cx.error(
                    Code::PropertyValueInvalidPattern,
                    &p,
                    format!("'{n}' is not a valid video name: 1 to 260 letters, digits, '-', '_' or '.', not starting with '.' or '-'"),
                );
            }
            ok.then_some(n)
        }
        _ => None,
    };
    let (mut title, mut description, mut segment, mut retention) =
        (Some(None), Some(None), Some(SignedDuration::from_secs(30)), Some(None));
    match o.object(cx, "videoCreationProperties", Need::Optional) {
        Some(Some(c)) => {
            title = limited(&c, cx, "title", 256);
            description = limited(&c, cx, "description", 2048);
            segment = segment_length(&c, cx);
            if cx.api == crate::topology::model::ApiVersion::Ava11 {
                retention = match c.scalar::<SignedDuration>(cx, "retentionPeriod", Need::Optional) {
                    Field::Value(d, p) => {
                        let day = SignedDuration::from_secs(86_400).as_nanos();
                        if d.as_nanos() < day || d.as_nanos() % day != 0 {
                            cx.error(
                                Code::PropertyValueInvalid,
                                &p,
                                format!("retentionPeriod must be a whole number of days, at least P1D; found {d}"),
                            );
                            None
                        } else {
                            Some(Some(d))
                        }
                    }
                    Field::Absent => Some(None),
                    Field::Failed => None,
                };
            } else {
                c.gate(cx, "retentionPeriod", "AVA 1.1");
            }
            c.finish(cx);
        }
        Some(None) => {}
        None => segment = None,
    }
    let preview = if cx.api == crate::topology::model::ApiVersion::Ava11 {
        match o.object(cx, "videoPublishingOptions", Need::Optional) {
            Some(Some(p)) => {
                let v = p.opt_or(cx, "enableVideoPreviewImage", false);
                p.finish(cx);
                v
            }
            Some(None) => Some(false),
            None => None,
        }
    } else {
        o.gate(cx, "videoPublishingOptions", "AVA 1.1");
        Some(false)
    };
    let cache_path = o.req::<String>(cx, "localMediaCachePath");
    let cache_size = match o.scalar::<u64>(cx, "localMediaCacheMaximumSizeMiB", Need::Required) {
        Field::Value(v, p) => check_range(cx, &p, "localMediaCacheMaximumSizeMiB", v, 1, 1 << 30, " MiB").then_some(v),
        _ => None,
    };
    Some(VideoSink {
        video_name: name?,
        title: title?,
        description: description?,
        segment_length: segment?,
        retention_period: retention?,
        enable_video_preview_image: preview?,
        local_media_cache_path: cache_path?,
        local_media_cache_maximum_size_mib: cache_size?,
    })
}

fn limited(o: &Obj, cx: &mut Ctx, key: &'static str, max: usize) -> Option<Option<String>> {
    match o.scalar::<String>(cx, key, Need::Optional) {
        Field::Value(s, p) => {
            let n = s.chars().count();
            if n > max {
                cx.error(Code::PropertyValueOutOfRange, &p, format!("{key} is {n} characters long; at most {max} are allowed"));
                None
            } else {
                Some(Some(s))
            }
        }
        Field::Absent => Some(None),
        Field::Failed => None,
    }
}

/// `segmentLength`: 30 s to 5 min, a multiple of 30 s; default 30 s.
pub(crate) fn segment_length(o: &Obj, cx: &mut Ctx) -> Option<SignedDuration> {
    match o.scalar::<SignedDuration>(cx, "segmentLength", Need::Optional) {
        Field::Value(d, p) => {
            if !check_range(cx, &p, "segmentLength", d.as_secs_f64(), 30.0, 300.0, " s") {
                return None;
            }
            if d.as_nanos() % SignedDuration::from_secs(30).as_nanos() != 0 {
                cx.error(Code::PropertyValueInvalid, &p, format!("segmentLength must be a multiple of 30 seconds; found {d}"));
                return None;
            }
            Some(d)
        }
        Field::Absent => Some(SignedDuration::from_secs(30)),
        Field::Failed => None,
    }
}
