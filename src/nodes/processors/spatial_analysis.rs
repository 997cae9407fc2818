//! CognitiveServicesVisionProcessor (AVA) / MediaGraphCognitiveServicesVisionExtension (LVA 2.0): the spatial analysis operations, run by Vela itself on its built-in detector and tracker.
//!
//! Microsoft ran these in a GPU container behind the node's endpoint; Vela runs the same
//! typed operations in process: sampled frames (the node's `samplingOptions`) go through
//! the NanoDet-m detector (people only) on a blocking thread, one at a time; every frame
//! goes through the [tracker](crate::analytics::tracker) (detection updates on analysed
//! frames, predictions between them), then through the operation's zones and lines
//! ([`crate::analytics::spatial`]). A frame with events publishes one Inference event with
//! the operation's events and the people they relate to. The endpoint is not contacted.
//!
//! A sampled frame that arrives while the detector is busy is tracked by prediction only
//! (the detector takes ~90 ms per frame on one core, so about 10 samples a second are
//! analysed at most); frames held for their detection go on when it is done.

use super::extension_core::inference_event;
use super::motion_core::pts_90khz;
use super::sampling::FrameSampling;
use crate::analytics::spatial::{person_inference, SpatialAnalysis as Operation};
use crate::analytics::{BBox, Detection, FrameSize, IdGen, TrackedFrame, Tracker, TrackerSettings};
use crate::modules::detector::{Detector, DetectorConfig, Packed, Picture as DetectorPicture};
use crate::runtime::node::{Feeder, Node, NodeCtx, NodeEnv};
use crate::runtime::packet::{Frame, Packet};
use crate::topology::nodes::cognitive_services_vision::{CognitiveServicesVision as Settings, SpatialOperation};
use crate::topology::nodes::common::{ImageFormat, ImageScale, ImageSpec, PixelFormat, ScaleMode};
use crate::topology::nodes::object_tracking::Accuracy;
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

/// What activation prepares once: the model and the operation.
#[derive(Clone)]
pub struct Config {
    detector: Detector,
    operation: SpatialOperation,
    sampling: crate::topology::nodes::common::SamplingOptions,
}

impl Config {
    /// Loads the model (shared by every node of the process) and checks the operation.
    pub fn new(settings: &Settings, model: &Path) -> Result<Config, String> {
        let operation = settings
            .operation
            .clone()
            .ok_or("no operation: LVA 2.0 kept it in the spatial-analysis module's twin; give the node an `operation` (AVA form)")?;
        // The operation's own checks (custom operation, face masks, degenerate zones).
        Operation::new(&operation, FrameSize::new(1920, 1080), IdGen::seeded(0)).map_err(|e| e.to_string())?;
        let config = DetectorConfig { classes: vec!["person".into()], ..DetectorConfig::default() };
        let detector = Detector::load(model, config).map_err(|e| format!("the built-in detector cannot load: {e}"))?;
        Ok(Config { detector, operation, sampling: settings.base.sampling.clone() })
    }
}

struct State {
    tracker: Tracker,
    operation: Option<(Operation, (u32, u32))>,
    busy: bool,
}

pub struct SpatialAnalysis {
    config: Arc<Config>,
    sampling: FrameSampling,
    /// The detector's input: the whole picture stretched to the model's size, RGB.
    spec: ImageSpec,
    state: Rc<RefCell<State>>,
}

impl SpatialAnalysis {
    pub fn new(config: Arc<Config>) -> Self {
        let (w, h) = config.detector.input_size();
        let spec = ImageSpec {
            scale: Some(ImageScale { mode: ScaleMode::Stretch, width: Some(w as u32), height: Some(h as u32) }),
            format: ImageFormat::Raw(PixelFormat::Rgb24),
        };
        let tracker = Tracker::new(TrackerSettings::for_accuracy(Accuracy::Medium), IdGen::from_entropy());
        SpatialAnalysis {
            sampling: FrameSampling::new(&config.sampling),
            config,
            spec,
            state: Rc::new(RefCell::new(State { tracker, operation: None, busy: false })),
        }
    }
}

impl State {
    /// One frame through the tracker and the operation; publishes its events.
    fn advance(&mut self, frame: &Frame, detections: Option<&[Detection]>, config: &Config, env: &NodeEnv) -> Option<Packet> {
        let wall = frame.picture.wall;
        let pts = pts_90khz(wall);
        let tracked: TrackedFrame = self.tracker.update(pts as i64, detections);
        let size = (frame.picture.width as u32, frame.picture.height as u32);
        let fs = FrameSize::new(size.0, size.1);
        let (operation, known) = self
            .operation
            .get_or_insert_with(|| (Operation::new(&config.operation, fs, IdGen::from_entropy()).expect("checked at activation"), size));
        if *known != size {
            operation.set_frame_size(fs);
            *known = size;
        }
        let events = operation.update(&tracked);
        if events.is_empty() {
            return None;
        }
        let mut inferences: Vec<_> = events.iter().map(|e| e.to_inference()).collect();
        inferences.extend(tracked.entities.iter().map(person_inference));
        Some(Packet::Event(Arc::new(inference_event(env, pts, wall, &inferences))))
    }
}

impl Node for SpatialAnalysis {
    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let Packet::Frame(f) = p else {
            ctx.emit(p);
            return;
        };
        let sampled = self.sampling.take(&f);
        let busy = self.state.borrow().busy;
        if !sampled || busy {
            let event = self.state.borrow_mut().advance(&f, None, &self.config, ctx.env);
            if let Some(e) = event {
                ctx.emit(e);
            }
            ctx.emit(Packet::Frame(f));
            return;
        }
        self.state.borrow_mut().busy = true;
        let job = Job {
            config: self.config.clone(),
            spec: self.spec.clone(),
            state: self.state.clone(),
            feeder: ctx.feeder(),
            env: ctx.env.clone(),
        };
        ctx.spawn(job.run(f));
    }
}

struct Job {
    config: Arc<Config>,
    spec: ImageSpec,
    state: Rc<RefCell<State>>,
    feeder: Feeder,
    env: NodeEnv,
}

impl Job {
    async fn run(self, frame: Arc<Frame>) {
        let (picture, spec, detector) = (frame.picture.clone(), self.spec.clone(), self.config.detector.clone());
        let found = actix_rt::task::spawn_blocking(move || -> Result<Vec<Detection>, String> {
            let image = picture.image(&spec).map_err(|e| e.to_string())?;
            let pic = DetectorPicture::new(&image.bytes, image.width, image.height, image.width as usize * 3, Packed::Rgb24)
                .map_err(|e| e.to_string())?;
            let out = detector.run(pic).map_err(|e| e.to_string())?;
            Ok(out
                .detections
                .iter()
                .map(|d| {
                    let b = BBox::new(d.left.into(), d.top.into(), d.width.into(), d.height.into());
                    Detection::new(d.label, d.confidence.into(), b)
                })
                .collect())
        })
        .await;
        let detections = match found {
            Ok(Ok(d)) => Some(d),
            Ok(Err(e)) => {
                self.env.events.emit(
                    &self.env.subject,
                    crate::runtime::events::EventClass::Diagnostics,
                    "RuntimeError",
                    serde_json::json!({ "code": "DetectionFailed", "message": e }),
                );
                None
            }
            Err(e) => {
                tracing::error!(node = self.env.name(), "detector task failed: {e}");
                None
            }
        };
        let mut state = self.state.borrow_mut();
        state.busy = false;
        let event = state.advance(&frame, detections.as_deref(), &self.config, &self.env);
        drop(state);
        if let Some(e) = event {
            self.feeder.produced(e);
        }
        let mut annotated = (*frame).clone();
        annotated.analysed = detections.is_some();
        self.feeder.produced(Packet::Frame(Arc::new(annotated)));
    }
}
