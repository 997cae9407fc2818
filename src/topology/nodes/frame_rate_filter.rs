//! FrameRateFilterProcessor (LVA 1.0): lets at most `maximumFps` frames per second through.

use crate::topology::reader::{check_range, Ctx, Field, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameRateFilter {
    pub maximum_fps: f64,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<FrameRateFilter> {
    match o.scalar::<f64>(cx, "maximumFps", Need::Required) {
        Field::Value(v, p) => check_range(cx, &p, "maximumFps", v, 0.0001, 1000.0, " fps").then_some(FrameRateFilter { maximum_fps: v }),
        _ => None,
    }
}
