//! CognitiveServicesVisionProcessor (AVA) / MediaGraphCognitiveServicesVisionExtension (LVA 2.0): spatial analysis operations.

use super::common::{named_line, named_polygon, unique_names, EndpointUse, NamedLine, NamedPolygon};
use super::extension::{base, ExtensionBase};
use crate::topology::error::{Code, JsonPath};
use crate::topology::model::{ApiVersion, TypeName};
use crate::topology::reader::{check_range, text_enum, Ctx, Field, Need, Obj};
use serde::Serialize;
use serde_json::Value;

text_enum! {
    pub enum Trigger { Event = "event", Interval = "interval" }
}

text_enum! {
    /// Which point of a person's box is tested against zones and lines.
    pub enum Focus { Center = "center", BottomCenter = "bottomCenter", Footprint = "footprint" }
}

text_enum! {
    pub enum ZoneEventType { ZoneCrossing = "zoneCrossing", ZoneDwellTime = "zoneDwellTime" }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CognitiveServicesVision {
    #[serde(flatten)]
    pub base: ExtensionBase,
    /// Required in AVA; LVA 2.0 kept the operation in the spatial-analysis module's twin.
    pub operation: Option<SpatialOperation>,
}

/// Options every typed operation may carry; kept as the JSON text the topology gave.
#[derive(Clone, Debug, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOptions {
    pub debug: Option<String>,
    pub calibration_configuration: Option<String>,
    pub camera_configuration: Option<String>,
    pub camera_calibrator_node_configuration: Option<String>,
    pub detector_node_configuration: Option<String>,
    pub tracker_node_configuration: Option<String>,
    pub enable_face_mask_classifier: bool,
}

/// One event definition of a zone or line. Fields an operation does not use stay `None`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationEvent {
    pub trigger: Option<Trigger>,
    pub output_frequency: Option<f64>,
    pub threshold: Option<f64>,
    pub focus: Option<Focus>,
    pub event_type: Option<ZoneEventType>,
    pub minimum_distance_threshold: Option<f64>,
    pub maximum_distance_threshold: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneEvents {
    pub zone: NamedPolygon,
    pub events: Vec<OperationEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineEvents {
    pub line: NamedLine,
    pub events: Vec<OperationEvent>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum SpatialOperation {
    /// A raw spatial-analysis configuration (must be JSON).
    Custom {
        extension_configuration: Value,
    },
    PersonCount {
        options: OperationOptions,
        zones: Vec<ZoneEvents>,
    },
    PersonZoneCrossing {
        options: OperationOptions,
        zones: Vec<ZoneEvents>,
    },
    PersonDistance {
        options: OperationOptions,
        zones: Vec<ZoneEvents>,
    },
    PersonLineCrossing {
        options: OperationOptions,
        lines: Vec<LineEvents>,
    },
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<CognitiveServicesVision> {
    let image_need = if cx.ava() { Need::Optional } else { Need::Required };
    let base = base(o, cx, EndpointUse::Grpc, image_need);
    let operation = if cx.ava() {
        use TypeName::*;
        let allowed = [
            SpatialAnalysisCustomOperation,
            SpatialAnalysisPersonCountOperation,
            SpatialAnalysisPersonZoneCrossingOperation,
            SpatialAnalysisPersonDistanceOperation,
            SpatialAnalysisPersonLineCrossingOperation,
        ];
        match o.typed(cx, "operation", Need::Required, &allowed, "spatial analysis operation") {
            Some(Some((ty, op))) => {
                let r = operation(ty, &op, cx);
                op.finish(cx);
                r.map(Some)
            }
            _ => None,
        }
    } else {
        o.gate(cx, "operation", "AVA 1.0 (LVA 2.0 configured operations in the spatial analysis module's twin)");
        Some(None)
    };
    Some(CognitiveServicesVision { base: base?, operation: operation? })
}

fn operation(ty: TypeName, o: &Obj, cx: &mut Ctx) -> Option<SpatialOperation> {
    o.skip(cx, "@type");
    if ty == TypeName::SpatialAnalysisCustomOperation {
        let Field::Value(text, path) = o.scalar::<crate::topology::reader::Text>(cx, "extensionConfiguration", Need::Required) else {
            return None;
        };
        return match serde_json::from_str::<Value>(&text.value) {
            Ok(v) => Some(SpatialOperation::Custom { extension_configuration: v }),
            Err(e) => {
                cx.error(Code::PropertyValueInvalid, &path, format!("extensionConfiguration is not valid JSON: {e}"));
                None
            }
        };
    }
    let options = options(o, cx);
    let op = match ty {
        TypeName::SpatialAnalysisPersonLineCrossingOperation => {
            let lines = list(o, cx, "lines", |v, p, cx| {
                let e = Obj::new(v, p, cx, "a line entry")?;
                let line = e.need(cx, "line", Need::Required).ok()?.and_then(|(v, p)| named_line(v, p, cx));
                let events = events(&e, cx, ty);
                e.finish(cx);
                Some(LineEvents { line: line?, events: events? })
            });
            if let Some(ls) = &lines {
                unique_names(cx, ls.iter().enumerate().map(|(i, l)| (l.line.name.as_str(), o.path.key("lines").index(i))), "line");
            }
            SpatialOperation::PersonLineCrossing { options: options?, lines: lines? }
        }
        _ => {
            let zones = list(o, cx, "zones", |v, p, cx| {
                let e = Obj::new(v, p, cx, "a zone entry")?;
                let zone = e.need(cx, "zone", Need::Required).ok()?.and_then(|(v, p)| named_polygon(v, p, cx));
                let events = events(&e, cx, ty);
                e.finish(cx);
                Some(ZoneEvents { zone: zone?, events: events? })
            });
            if let Some(zs) = &zones {
                unique_names(cx, zs.iter().enumerate().map(|(i, z)| (z.zone.name.as_str(), o.path.key("zones").index(i))), "zone");
            }
            let (options, zones) = (options?, zones?);
            match ty {
                TypeName::SpatialAnalysisPersonCountOperation => SpatialOperation::PersonCount { options, zones },
                TypeName::SpatialAnalysisPersonZoneCrossingOperation => SpatialOperation::PersonZoneCrossing { options, zones },
                _ => SpatialOperation::PersonDistance { options, zones },
            }
        }
    };
    Some(op)
}

/// A required, non-empty array, every element parsed (all errors reported).
fn list<T>(o: &Obj, cx: &mut Ctx, key: &'static str, mut f: impl FnMut(&Value, JsonPath, &mut Ctx) -> Option<T>) -> Option<Vec<T>> {
    let items = o.array(cx, key, Need::Required)?;
    if items.is_empty() {
        cx.error(Code::PropertyRequired, &o.path.key(key), format!("'{key}' needs at least one entry"));
        return None;
    }
    let parsed: Vec<Option<T>> = items.into_iter().map(|(v, p)| f(v, p, cx)).collect();
    parsed.into_iter().collect()
}

fn options(o: &Obj, cx: &mut Ctx) -> Option<OperationOptions> {
    let mut ok = true;
    let mut text = |cx: &mut Ctx, key: &'static str| match o.opt::<String>(cx, key) {
        Some(v) => v,
        None => {
            ok = false;
            None
        }
    };
    let debug = text(cx, "debug");
    let camera_configuration = text(cx, "cameraConfiguration");
    let detector_node_configuration = text(cx, "detectorNodeConfiguration");
    let (calibration_configuration, camera_calibrator_node_configuration, tracker_node_configuration) = if cx.api == ApiVersion::Ava11 {
        (text(cx, "calibrationConfiguration"), text(cx, "cameraCalibratorNodeConfiguration"), text(cx, "trackerNodeConfiguration"))
    } else {
        for k in ["calibrationConfiguration", "cameraCalibratorNodeConfiguration", "trackerNodeConfiguration"] {
            o.gate(cx, k, "AVA 1.1");
        }
        (None, None, None)
    };
    let face = o.opt_or(cx, "enableFaceMaskClassifier", false);
    if !ok {
        return None;
    }
    Some(OperationOptions {
        debug,
        calibration_configuration,
        camera_configuration,
        camera_calibrator_node_configuration,
        detector_node_configuration,
        tracker_node_configuration,
        enable_face_mask_classifier: face?,
    })
}

fn events(o: &Obj, cx: &mut Ctx, ty: TypeName) -> Option<Vec<OperationEvent>> {
    let items = o.array(cx, "events", Need::Optional)?;
    let parsed: Vec<Option<OperationEvent>> = items
        .into_iter()
        .map(|(v, p)| {
            let e = Obj::new(v, p, cx, "an event")?;
            let r = event(&e, cx, ty);
            e.finish(cx);
            r
        })
        .collect();
    parsed.into_iter().collect()
}

fn event(e: &Obj, cx: &mut Ctx, ty: TypeName) -> Option<OperationEvent> {
    use TypeName::*;
    let num = |cx: &mut Ctx, key: &'static str, lo: f64, hi: f64| -> Option<Option<f64>> {
        match e.scalar::<f64>(cx, key, Need::Optional) {
            Field::Value(v, p) => check_range(cx, &p, key, v, lo, hi, "").then_some(Some(v)),
            Field::Absent => Some(None),
            Field::Failed => None,
        }
    };
    let threshold = num(cx, "threshold", 0.0, 1e6);
    let focus = e.opt::<Focus>(cx, "focus");
    let counting = matches!(ty, SpatialAnalysisPersonCountOperation | SpatialAnalysisPersonDistanceOperation);
    let (trigger, frequency) =
        if counting { (e.opt::<Trigger>(cx, "trigger"), num(cx, "outputFrequency", 0.0, 1e6)) } else { (Some(None), Some(None)) };
    let event_type = if ty == SpatialAnalysisPersonZoneCrossingOperation { e.opt::<ZoneEventType>(cx, "eventType") } else { Some(None) };
    let (min_d, max_d) = if ty == SpatialAnalysisPersonDistanceOperation {
        (num(cx, "minimumDistanceThreshold", 0.0, 1e6), num(cx, "maximumDistanceThreshold", 0.0, 1e6))
    } else {
        (Some(None), Some(None))
    };
    if let (Some(Some(lo)), Some(Some(hi))) = (min_d, max_d) {
        if lo > hi {
            cx.error(
                Code::PropertyValueOutOfRange,
                &e.path.key("maximumDistanceThreshold"),
                format!("maximumDistanceThreshold ({hi}) is below minimumDistanceThreshold ({lo})"),
            );
            return None;
        }
    }
    Some(OperationEvent {
        trigger: trigger?,
        output_frequency: frequency?,
        threshold: threshold?,
        focus: focus?,
        event_type: event_type?,
        minimum_distance_threshold: min_d?,
        maximum_distance_threshold: max_d?,
    })
}
