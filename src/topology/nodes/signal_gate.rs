//! SignalGateProcessor: lets media through for a while around each triggering event (SPEC §1.3).

use crate::topology::duration::SignedDuration;
use crate::topology::error::Code;
use crate::topology::reader::{check_range, Ctx, Field, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalGate {
    /// How long after the first event earlier-timestamped events still count (0–10 s).
    pub activation_evaluation_window: SignedDuration,
    /// Where the clip starts relative to the first event; negative is pre-roll (−60 to 60 s).
    pub activation_signal_offset: SignedDuration,
    /// How long the gate stays open after the latest event.
    pub minimum_activation_time: SignedDuration,
    /// The longest one activation may last.
    pub maximum_activation_time: SignedDuration,
}

/// Defaults when a timing is left out (undocumented upstream): the values every
/// published sample sets.
pub const DEFAULTS: [i64; 4] = [1, 0, 30, 30];

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<SignalGate> {
    // AVA raised the lower bound of both activation times to 10 s.
    let min_activation = if cx.ava() { 10.0 } else { 1.0 };
    let read = |cx: &mut Ctx,
                key: &'static str,
                default: i64,
                lo: f64,
                hi: f64|
     -> Option<(SignedDuration, Option<crate::topology::error::JsonPath>)> {
        match o.scalar::<SignedDuration>(cx, key, Need::Optional) {
            Field::Value(d, p) => check_range(cx, &p, key, d.as_secs_f64(), lo, hi, " s").then_some((d, Some(p))),
            Field::Absent => Some((SignedDuration::from_secs(default), None)),
            Field::Failed => None,
        }
    };
    let window = read(cx, "activationEvaluationWindow", DEFAULTS[0], 0.0, 10.0);
    let offset = read(cx, "activationSignalOffset", DEFAULTS[1], -60.0, 60.0);
    let min = read(cx, "minimumActivationTime", DEFAULTS[2], min_activation, 3600.0);
    let max = read(cx, "maximumActivationTime", DEFAULTS[3], min_activation, 3600.0);
    if let (Some((min_d, _)), Some((max_d, max_p))) = (&min, &max) {
        if min_d > max_d {
            let path = max_p.clone().unwrap_or_else(|| o.path.key("maximumActivationTime"));
            cx.error(
                Code::PropertyValueOutOfRange,
                &path,
                format!("maximumActivationTime ({max_d}) is shorter than minimumActivationTime ({min_d})"),
            );
            return None;
        }
    }
    Some(SignalGate {
        activation_evaluation_window: window?.0,
        activation_signal_offset: offset?.0,
        minimum_activation_time: min?.0,
        maximum_activation_time: max?.0,
    })
}
