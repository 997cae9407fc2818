//! AssetSink (LVA): records to a named asset; Vela keeps the asset in its local video store.

use super::common::has_system_variable;
use super::video_sink::segment_length;
use crate::topology::duration::SignedDuration;
use crate::topology::error::Code;
use crate::topology::params::NamePattern;
use crate::topology::reader::{check_range, Ctx, Field, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetSink {
    pub asset_name_pattern: NamePattern,
    /// 30 s to 5 min in steps of 30 s (default 30 s).
    pub segment_length: SignedDuration,
    pub local_media_cache_path: Option<String>,
    #[serde(rename = "localMediaCacheMaximumSizeMiB")]
    pub local_media_cache_maximum_size_mib: Option<u64>,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<AssetSink> {
    let pattern = asset_name(o, cx);
    let segment = segment_length(o, cx);
    // Required from LVA 2.0; optional in 1.0.
    let need = if cx.api.at_least_lva20() { Need::Required } else { Need::Optional };
    let cache_path = match o.scalar::<String>(cx, "localMediaCachePath", need) {
        Field::Value(v, _) => Some(Some(v)),
        Field::Absent => Some(None),
        Field::Failed => None,
    };
    let need = if cx.api.at_least_lva20() { Need::Required } else { Need::Optional };
    let cache_size = match o.scalar::<u64>(cx, "localMediaCacheMaximumSizeMiB", need) {
        Field::Value(v, p) => check_range(cx, &p, "localMediaCacheMaximumSizeMiB", v, 1, 1 << 30, " MiB").then_some(Some(v)),
        Field::Absent => Some(None),
        Field::Failed => None,
    };
    Some(AssetSink {
        asset_name_pattern: pattern?,
        segment_length: segment?,
        local_media_cache_path: cache_path?,
        local_media_cache_maximum_size_mib: cache_size?,
    })
}

/// `^[^<>%&:\\/?*+.']{1,260}$` with at least one system variable (D-LVA-DM).
fn asset_name(o: &Obj, cx: &mut Ctx) -> Option<NamePattern> {
    let (raw, path) = o.need(cx, "assetNamePattern", Need::Required).ok()??;
    let (pattern, text) = cx.pattern(raw, &path)?;
    let mut ok = true;
    if !has_system_variable(raw) {
        // LVA documents the rule, yet Microsoft's own IoT Central gateway records into
        // "${assetName}". A fixed name is meaningful here: recordings append to one video.
        cx.warn(
            Code::PropertyValueInvalidPattern,
            &path,
            "assetNamePattern has no system variable: every recording of every instance goes into the same asset",
        );
    }
    let literal = pattern.literal_text();
    let len = text.value.chars().count();
    if len == 0 || len > 260 || literal.chars().any(|c| "<>%&:\\/?*+.'".contains(c)) {
        cx.error(
            Code::PropertyValueInvalidPattern,
            &path,
            format!("{}{} does not match ^[^<>%&:\\\\/?*+.']{{1,260}}$", text.shown(), text.origin()),
        );
        ok = false;
    }
    ok.then_some(pattern)
}
