//! ObjectTrackingProcessor (AVA): follows detected objects across frames with stable ids.

use super::motion_detection::Sensitivity as Level;
use crate::topology::reader::{Ctx, Obj};
use serde::Serialize;

/// Tracker effort: `low`, `medium` (default; undocumented upstream) or `high`.
pub type Accuracy = Level;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectTracking {
    pub accuracy: Accuracy,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<ObjectTracking> {
    Some(ObjectTracking { accuracy: o.opt_or(cx, "accuracy", Level::Medium)? })
}
