//! MotionDetectionProcessor: finds moving regions in decoded frames and emits motion events.

use crate::topology::duration::SignedDuration;
use crate::topology::reader::{check_range, text_enum, Ctx, Field, Obj};
use serde::Serialize;

text_enum! {
    pub enum Sensitivity { Low = "low", Medium = "medium", High = "high" }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MotionDetection {
    /// Default `medium` (what every sample uses; undocumented upstream).
    pub sensitivity: Sensitivity,
    /// Whether events carry the boxes of the moving regions (default true).
    pub output_motion_region: bool,
    /// Events within this window are merged into one; zero emits every event (default 1 s).
    pub event_aggregation_window: SignedDuration,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<MotionDetection> {
    let sensitivity = o.opt_or(cx, "sensitivity", Sensitivity::Medium);
    let output_motion_region = o.opt_or(cx, "outputMotionRegion", true);
    let window = if cx.api.at_least_lva20() {
        match o.scalar::<SignedDuration>(cx, "eventAggregationWindow", crate::topology::reader::Need::Optional) {
            Field::Value(d, p) => check_range(cx, &p, "eventAggregationWindow", d.as_secs_f64(), 0.0, 3600.0, " s").then_some(d),
            Field::Absent => Some(SignedDuration::from_secs(1)),
            Field::Failed => None,
        }
    } else {
        o.gate(cx, "eventAggregationWindow", "LVA 2.0");
        Some(SignedDuration::from_secs(1))
    };
    Some(MotionDetection { sensitivity: sensitivity?, output_motion_region: output_motion_region?, event_aggregation_window: window? })
}
