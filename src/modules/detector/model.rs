//! The model: an ONNX file with NanoDet-m's layout, loaded and optimised once by tract,
//! shared by every [`Detector`] of the process that names the same file.
//!
//! The layout is recognised by shapes, not names, so a re-exported model with other tensor
//! names works: one float input `[1, 3, H, W]` (H and W taken from the file, 416 when it
//! leaves them open), and for each stride `s` of 8, 16, 32 (and 64 if present) two outputs
//! over the `⌈H/s⌉·⌈W/s⌉` grid cells: class scores `[1, cells, 80]` and box distributions
//! `[1, cells, 4·bins]`.
//!
//! Batching: on first use ([`Detector::batching`]) the same graph is optimised with a
//! symbolic batch dimension (`[B, 3, H, W]`) and checked: a batch of two different pictures
//! must give, picture by picture, what each gives alone (outputs `[B, cells, k]`, or
//! `[1, B·cells, k]` picture after picture). When tract or the graph refuses, or the check
//! fails, batches run one picture after the other and [`Detector::batch_refusal`] says why.
//! NanoDet-m as shipped fails the check: tract accepts the symbolic batch, but the
//! converted graph's reshapes keep a leading 1 and mix the pictures of a batch (see
//! docs/detector.md for the measurements).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::decode::{self, Filter, Level};
use super::input::{preprocess, Picture};
use super::labels::{self, COCO};
use super::nms;
use super::{Detection, DetectorConfig, DetectorError, Timings};

type Plan = Arc<TypedSimplePlan>;

/// Model input size when the file leaves it open.
const DEFAULT_INPUT: usize = 416;
/// Strides a NanoDet head may have.
const STRIDES: [u32; 4] = [8, 16, 32, 64];

/// A loaded, optimised model. Immutable; runs from any number of threads at once.
pub struct Model {
    path: PathBuf,
    plan: Plan,
    /// The parsed model, kept to build the batched plan on first use.
    proto: InferenceModel,
    /// The same graph with a symbolic batch dimension, or why there is none; built once,
    /// on first use.
    batched: std::sync::OnceLock<Result<Plan, String>>,
    input_w: usize,
    input_h: usize,
    /// The head's levels, by stride.
    levels: Vec<Head>,
    classes: usize,
    load_time: Duration,
}

/// One level of the head: its grid and which outputs hold its scores and boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    level: Level,
    scores: usize,
    boxes: usize,
}

/// Models loaded by this process, by canonical path: loading the same file twice returns
/// the same model while anyone holds it.
fn cache() -> &'static Mutex<HashMap<PathBuf, Weak<Model>>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<Model>>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl Model {
    /// The model at `path`, loaded now or shared with an earlier load of the same file.
    pub fn shared(path: &Path) -> Result<Arc<Model>, DetectorError> {
        let key = std::fs::canonicalize(path).map_err(|source| DetectorError::Read { path: path.to_owned(), source })?;
        // Held while loading: two callers asking for the same file at once load it once.
        let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = cache.get(&key).and_then(Weak::upgrade) {
            return Ok(model);
        }
        let model = Arc::new(Model::load(path)?);
        cache.retain(|_, m| m.strong_count() > 0);
        cache.insert(key, Arc::downgrade(&model));
        Ok(model)
    }

    /// Loads, checks and optimises the model at `path` (not shared; see [`Model::shared`]).
    pub fn load(path: &Path) -> Result<Model, DetectorError> {
        let started = Instant::now();
        let bytes = std::fs::read(path).map_err(|source| DetectorError::Read { path: path.to_owned(), source })?;
        let model_err = |e: TractError| DetectorError::Model { path: path.to_owned(), message: format!("{e:#}") };
        let proto = tract_onnx::onnx().model_for_read(&mut &bytes[..]).map_err(model_err)?;
        let (input_h, input_w) = input_size(path, &proto)?;
        let fixed = proto
            .clone()
            .with_input_fact(0, f32::fact([1, 3, input_h, input_w]).into())
            .and_then(|m| m.into_optimized())
            .map_err(model_err)?;
        let shapes = output_shapes(&fixed);
        let (levels, classes) = match_outputs(&shapes, input_w, input_h, 1).map_err(|expected| DetectorError::Outputs {
            path: path.to_owned(),
            expected,
            found: describe(&shapes),
        })?;
        let plan = fixed.into_runnable().map_err(model_err)?;
        let batched = std::sync::OnceLock::new();
        Ok(Model { path: path.to_owned(), plan, proto, batched, input_w, input_h, levels, classes, load_time: started.elapsed() })
    }

    /// The batched plan, built and checked on first call.
    fn batched(&self) -> Result<&Plan, &str> {
        self.batched
            .get_or_init(|| {
                let t = Instant::now();
                let r = batched_plan(self.proto.clone(), self.input_w, self.input_h, &self.plan);
                match &r {
                    Ok(_) => tracing::info!(model = %self.path.display(), "detector: batches run in one model call (checked in {:?})", t.elapsed()),
                    Err(why) => tracing::info!(model = %self.path.display(), "detector: batches run picture by picture: {why}"),
                }
                r
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Candidates (score ≥ `threshold`, class allowed) of each picture, before NMS.
    fn run(
        &self,
        pics: &[Picture],
        batched: bool,
        threshold: f32,
        allowed: Option<&[bool]>,
    ) -> Result<(Vec<Vec<nms::Candidate>>, Timings), DetectorError> {
        let mut candidates = Vec::with_capacity(pics.len());
        let mut timings = Timings::default();
        if pics.is_empty() {
            return Ok((candidates, timings));
        }
        let plane = 3 * self.input_w * self.input_h;
        let run_err = |e: TractError| DetectorError::Run(format!("{e:#}"));
        let batch_plan = if batched && pics.len() > 1 { self.batched().ok() } else { None };
        let groups: Vec<&[Picture]> = if batch_plan.is_some() { vec![pics] } else { pics.chunks(1).collect() };
        for group in groups {
            let t0 = Instant::now();
            let mut tensor = Tensor::zero::<f32>(&[group.len(), 3, self.input_h, self.input_w]).map_err(run_err)?;
            {
                let mut view = tensor.try_as_plain_ram_mut().map_err(run_err)?;
                let data = view.as_slice_mut::<f32>().map_err(run_err)?;
                for (pic, out) in group.iter().zip(data.chunks_exact_mut(plane)) {
                    preprocess(pic, self.input_w, self.input_h, out);
                }
            }
            let t1 = Instant::now();
            let plan = if group.len() > 1 { batch_plan.unwrap_or(&self.plan) } else { &self.plan };
            let outputs = plan.run(tvec!(tensor.into_tvalue())).map_err(run_err)?;
            let t2 = Instant::now();
            let slices: Vec<&[f32]> =
                outputs.iter().map(|o| o.try_as_plain_ram()?.as_slice::<f32>()).collect::<TractResult<_>>().map_err(run_err)?;
            let filter = Filter { threshold, allowed, input_w: self.input_w as f32, input_h: self.input_h as f32 };
            for b in 0..group.len() {
                let mut found = Vec::new();
                for head in &self.levels {
                    let (level, scores, boxes) = (head.level, slices[head.scores], slices[head.boxes]);
                    let (sn, bn) = (scores.len() / group.len(), boxes.len() / group.len());
                    decode::decode_level(
                        &level,
                        &scores[b * sn..(b + 1) * sn],
                        &boxes[b * bn..(b + 1) * bn],
                        self.classes,
                        &filter,
                        &mut found,
                    );
                }
                candidates.push(found);
            }
            timings.preprocess += t1 - t0;
            timings.model += t2 - t1;
            timings.postprocess += t2.elapsed();
        }
        Ok((candidates, timings))
    }
}

/// The model's declared input size (H, W), or why its input is not NanoDet's.
fn input_size(path: &Path, model: &InferenceModel) -> Result<(usize, usize), DetectorError> {
    let inputs = model.input_outlets().map(|i| i.len()).unwrap_or(0);
    let fact = model.input_fact(0).map_err(|e| DetectorError::Model { path: path.to_owned(), message: format!("{e:#}") })?;
    let dims: Option<Vec<Option<i64>>> = fact.shape.concretize().map(|d| d.iter().map(|d| d.to_i64().ok()).collect());
    let found = || format!("{} input(s), the first {}", inputs, fact.format_dt_shape());
    let bad = || DetectorError::Input { path: path.to_owned(), found: found() };
    if inputs != 1 {
        return Err(bad());
    }
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != f32::datum_type() {
            return Err(bad());
        }
    }
    let Some(dims) = dims else { return Ok((DEFAULT_INPUT, DEFAULT_INPUT)) };
    if dims.len() != 4 || dims[0].is_some_and(|b| b != 1) || dims[1].is_some_and(|c| c != 3) {
        return Err(bad());
    }
    let side = |d: Option<i64>| match d {
        None => Ok(DEFAULT_INPUT),
        Some(v) if (32..=4096).contains(&v) => Ok(v as usize),
        Some(_) => Err(bad()),
    };
    Ok((side(dims[2])?, side(dims[3])?))
}

fn output_shapes(model: &TypedModel) -> Vec<Option<Vec<usize>>> {
    (0..model.outputs.len()).map(|i| model.output_fact(i).ok().and_then(|f| f.shape.as_concrete().map(|s| s.to_vec()))).collect()
}

fn describe(shapes: &[Option<Vec<usize>>]) -> String {
    let list: Vec<String> = shapes.iter().map(|s| s.as_ref().map_or("[?]".into(), |s| format!("{s:?}"))).collect();
    format!("{} output(s) {}", shapes.len(), list.join(", "))
}

/// Pairs the outputs into levels: `(levels, classes)`, or what was expected.
fn match_outputs(shapes: &[Option<Vec<usize>>], input_w: usize, input_h: usize, batch: usize) -> Result<(Vec<Head>, usize), String> {
    let level_of = |s: u32| Level { stride: s, cols: input_w.div_ceil(s as usize), rows: input_h.div_ceil(s as usize) };
    let expected = {
        let l: Vec<String> = STRIDES[..3]
            .iter()
            .map(|&s| {
                let n = level_of(s).cells();
                format!("[{batch},{n},{}] + [{batch},{n},44]", COCO.len())
            })
            .collect();
        format!("for a {input_w}x{input_h} input: {}", l.join(", "))
    };
    let mut scores: HashMap<u32, usize> = HashMap::new();
    let mut boxes: HashMap<u32, (usize, usize)> = HashMap::new();
    for (i, shape) in shapes.iter().enumerate() {
        let Some([b, n, k]) = shape.as_deref().and_then(|s| <[usize; 3]>::try_from(s).ok()) else { return Err(expected) };
        let Some(&stride) = STRIDES.iter().find(|&&s| level_of(s).cells() == n) else { return Err(expected) };
        if b != batch {
            return Err(expected);
        }
        let slot_taken = if k == COCO.len() {
            scores.insert(stride, i).is_some()
        } else if k % 4 == 0 && k >= 8 {
            boxes.insert(stride, (i, k / 4)).is_some()
        } else {
            return Err(expected);
        };
        if slot_taken {
            return Err(expected);
        }
    }
    let mut levels = Vec::new();
    let mut bins = None;
    for &s in &STRIDES {
        match (scores.get(&s), boxes.get(&s)) {
            (Some(&si), Some(&(bi, b))) if bins.is_none_or(|x| x == b) => {
                bins = Some(b);
                levels.push(Head { level: level_of(s), scores: si, boxes: bi });
            }
            (None, None) => {}
            _ => return Err(expected),
        }
    }
    if levels.is_empty() {
        return Err(expected);
    }
    Ok((levels, COCO.len()))
}

/// A deterministic test picture (values in the range of normalised pixels).
fn probe_input(batch: usize, input_w: usize, input_h: usize, seed: u32) -> TractResult<Tensor> {
    let mut t = Tensor::zero::<f32>(&[batch, 3, input_h, input_w])?;
    {
        let mut view = t.try_as_plain_ram_mut()?;
        for (i, x) in view.as_slice_mut::<f32>()?.iter_mut().enumerate() {
            let h = (i as u32).wrapping_add(seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(0x85EB_CA6B);
            *x = ((h >> 16) % 512) as f32 / 128.0 - 2.0;
        }
    }
    Ok(t)
}

/// The graph optimised with a symbolic batch dimension, if a batch of two different
/// pictures gives what each gives alone through `single`.
fn batched_plan(proto: InferenceModel, input_w: usize, input_h: usize, single: &Plan) -> Result<Plan, String> {
    fn e(what: &'static str) -> impl Fn(TractError) -> String {
        move |err| format!("{what}: {err:#}")
    }
    let b = proto.symbols.sym("B");
    let fact = f32::fact(&[b.to_dim(), 3.to_dim(), input_h.to_dim(), input_w.to_dim()]);
    let model = proto.with_input_fact(0, fact.into()).and_then(|m| m.into_optimized()).map_err(e("optimising with a symbolic batch"))?;
    let plan = model.into_runnable().map_err(e("planning with a symbolic batch"))?;
    let pics =
        [probe_input(1, input_w, input_h, 1).map_err(e("test input"))?, probe_input(1, input_w, input_h, 2).map_err(e("test input"))?];
    let pair = Tensor::stack_tensors(0, &pics).map_err(e("test input"))?;
    let together = plan.run(tvec!(pair.into_tvalue())).map_err(e("running a batch of two"))?;
    let alone: Vec<TVec<TValue>> =
        pics.iter().map(|p| single.run(tvec!(p.clone().into_tvalue()))).collect::<TractResult<_>>().map_err(e("running one picture"))?;
    for (i, out) in together.iter().enumerate() {
        let (a, b) = (&alone[0][i], &alone[1][i]);
        let shape = out.shape().to_vec();
        let one = a.shape();
        let layout_ok = shape == [&[2][..], &one[1..]].concat() || (one[0] == 1 && shape == [1, 2 * one[1], one[2]]);
        if !layout_ok {
            return Err(format!("a batch of two gave output {i} as {shape:?} for {one:?} alone"));
        }
        let slice = |t: &TValue| t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec)).map_err(e("reading outputs"));
        let (both, a, b) = (slice(out)?, slice(a)?, slice(b)?);
        let (head, tail) = both.split_at(a.len());
        let worst = head.iter().zip(&a).chain(tail.iter().zip(&b)).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let scale = a.iter().chain(&b).fold(1.0f32, |m, v| m.max(v.abs()));
        if worst.is_nan() || worst > 1e-3 * scale {
            return Err(format!(
                "a batch of two pictures does not give what each gives alone (output {i}, {shape:?}: largest difference {worst:.3}): \
                 the graph mixes the pictures of a batch"
            ));
        }
    }
    Ok(plan)
}

/// A loaded model with its post-processing settings. Cheap to clone; clones share the model.
#[derive(Clone)]
pub struct Detector {
    model: Arc<Model>,
    config: DetectorConfig,
    /// `allowed[class]`, or `None` for all classes.
    allowed: Option<Arc<[bool]>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("model", &self.model.path).field("config", &self.config).finish()
    }
}

/// One picture's result.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub detections: Vec<Detection>,
    pub timings: Timings,
}

impl Detector {
    /// Loads the model at `path` (once per process: later loads of the same file share it)
    /// and checks `config`.
    pub fn load(path: impl AsRef<Path>, config: DetectorConfig) -> Result<Detector, DetectorError> {
        let allowed = check_config(&config)?;
        Ok(Detector { model: Model::shared(path.as_ref())?, config, allowed })
    }

    /// The same model with other settings.
    pub fn with_config(&self, config: DetectorConfig) -> Result<Detector, DetectorError> {
        let allowed = check_config(&config)?;
        Ok(Detector { model: self.model.clone(), config, allowed })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    pub fn model_path(&self) -> &Path {
        &self.model.path
    }

    /// The model's input (width, height).
    pub fn input_size(&self) -> (usize, usize) {
        (self.model.input_w, self.model.input_h)
    }

    /// How long loading and optimising took.
    pub fn load_time(&self) -> Duration {
        self.model.load_time
    }

    /// Whether several pictures can run through the model in one call. The first call
    /// builds and checks the batched plan (a second or so); later calls are free.
    pub fn batching(&self) -> bool {
        self.model.batched().is_ok()
    }

    /// Whether batching was checked and how it went, without checking it: `None` before
    /// the first [`Detector::batching`], else `Ok` or why not.
    pub fn batch_status(&self) -> Option<Result<(), &str>> {
        self.model.batched.get().map(|r| r.as_ref().map(|_| ()).map_err(String::as_str))
    }

    /// Why batches run picture by picture, when they do (builds the plan like
    /// [`Detector::batching`]).
    pub fn batch_refusal(&self) -> Option<&str> {
        self.model.batched().err()
    }

    /// Names of the classes reported (all 80 when no filter is set).
    pub fn classes(&self) -> Vec<&'static str> {
        match &self.allowed {
            None => COCO.to_vec(),
            Some(a) => COCO.iter().zip(a.iter()).filter(|(_, &ok)| ok).map(|(c, _)| *c).collect(),
        }
    }

    /// Objects in an RGB picture, most confident first. A failure inside the model (which
    /// the checks at load make unexpected) is logged and gives no detections; see
    /// [`Detector::run`] for the error and the timings.
    pub fn detect(&self, img: &image::RgbImage) -> Vec<Detection> {
        match self.run(Picture::rgb(img)) {
            Ok(out) => out.detections,
            Err(e) => {
                tracing::error!(model = %self.model.path.display(), "detector: {e}");
                Vec::new()
            }
        }
    }

    /// Objects in one picture of any supported layout, with the time of each phase.
    pub fn run(&self, pic: Picture) -> Result<Output, DetectorError> {
        Ok(self.run_batch(&[pic], false)?.pop().unwrap_or_default())
    }

    /// Several pictures at once: in one model call when `batch` and the model allows it,
    /// otherwise one after the other. Each output's timings are the batch's totals divided
    /// evenly among its pictures.
    pub fn run_batch(&self, pics: &[Picture], batch: bool) -> Result<Vec<Output>, DetectorError> {
        let (all, mut timings) = self.model.run(pics, batch, self.config.threshold, self.allowed.as_deref())?;
        let t = Instant::now();
        let detections: Vec<Vec<Detection>> = all.into_iter().map(|c| self.finish(c)).collect();
        timings.postprocess += t.elapsed();
        let n = pics.len().max(1) as u32;
        let each = Timings { preprocess: timings.preprocess / n, model: timings.model / n, postprocess: timings.postprocess / n };
        Ok(detections.into_iter().map(|detections| Output { detections, timings: each }).collect())
    }

    /// NMS, and the public shape (threshold and class filter were applied while decoding).
    fn finish(&self, candidates: Vec<nms::Candidate>) -> Vec<Detection> {
        nms::per_class(candidates, self.config.nms_iou, self.config.max_detections)
            .into_iter()
            .map(|c| Detection {
                label: COCO[c.class_id],
                class_id: c.class_id,
                confidence: c.score,
                left: c.x1,
                top: c.y1,
                width: c.x2 - c.x1,
                height: c.y2 - c.y1,
            })
            .collect()
    }
}

fn check_config(config: &DetectorConfig) -> Result<Option<Arc<[bool]>>, DetectorError> {
    if !(config.threshold > 0.0 && config.threshold <= 1.0) {
        return Err(DetectorError::Config(format!("threshold {} is not in (0, 1]", config.threshold)));
    }
    if !(config.nms_iou > 0.0 && config.nms_iou <= 1.0) {
        return Err(DetectorError::Config(format!("NMS IoU {} is not in (0, 1]", config.nms_iou)));
    }
    if config.max_detections == 0 {
        return Err(DetectorError::Config("max detections must be at least 1".into()));
    }
    if config.classes.is_empty() {
        return Ok(None);
    }
    let mut allowed = vec![false; COCO.len()];
    for name in &config.classes {
        let id = labels::class_id(name).ok_or_else(|| DetectorError::UnknownClass { name: name.clone() })?;
        allowed[id] = true;
    }
    Ok(Some(allowed.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(list: &[[usize; 3]]) -> Vec<Option<Vec<usize>>> {
        list.iter().map(|s| Some(s.to_vec())).collect()
    }

    #[test]
    fn outputs_are_recognised_by_shape_in_any_order() {
        let nanodet = shapes(&[[1, 2704, 80], [1, 2704, 44], [1, 676, 80], [1, 676, 44], [1, 169, 80], [1, 169, 44]]);
        let (levels, classes) = match_outputs(&nanodet, 416, 416, 1).unwrap();
        assert_eq!(classes, 80);
        assert_eq!(
            levels.iter().map(|h| (h.level.stride, h.level.cols, h.scores, h.boxes)).collect::<Vec<_>>(),
            vec![(8, 52, 0, 1), (16, 26, 2, 3), (32, 13, 4, 5)]
        );
        // Shuffled (another exporter's order and names).
        let shuffled = shapes(&[[1, 169, 44], [1, 676, 80], [1, 2704, 44], [1, 169, 80], [1, 2704, 80], [1, 676, 44]]);
        let (levels, _) = match_outputs(&shuffled, 416, 416, 1).unwrap();
        assert_eq!(levels.iter().map(|h| (h.level.stride, h.scores, h.boxes)).collect::<Vec<_>>(), vec![(8, 4, 2), (16, 1, 5), (32, 3, 0)]);
        // A 320x320 NanoDet: 40x40, 20x20, 10x10.
        let small = shapes(&[[1, 1600, 80], [1, 1600, 44], [1, 400, 80], [1, 400, 44], [1, 100, 80], [1, 100, 44]]);
        assert_eq!(match_outputs(&small, 320, 320, 1).unwrap().0.len(), 3);
    }

    #[test]
    fn wrong_outputs_say_what_was_expected() {
        let missing = shapes(&[[1, 2704, 80], [1, 2704, 44], [1, 676, 80], [1, 676, 44], [1, 169, 80]]);
        let e = match_outputs(&missing, 416, 416, 1).unwrap_err();
        assert!(e.contains("[1,169,80] + [1,169,44]"), "{e}");
        let odd = shapes(&[[1, 2704, 80], [1, 2704, 45]]);
        assert!(match_outputs(&odd, 416, 416, 1).is_err());
        let twice = shapes(&[[1, 2704, 80], [1, 2704, 80], [1, 2704, 44]]);
        assert!(match_outputs(&twice, 416, 416, 1).is_err());
        let batch = shapes(&[[2, 169, 80], [2, 169, 44]]);
        assert!(match_outputs(&batch, 416, 416, 1).is_err());
        assert!(match_outputs(&batch, 416, 416, 2).is_ok());
        assert!(match_outputs(&[None], 416, 416, 1).is_err());
        assert!(match_outputs(&[], 416, 416, 1).is_err());
    }

    #[test]
    fn config_is_checked() {
        let ok = DetectorConfig::default();
        assert!(check_config(&ok).unwrap().is_none());
        let people = DetectorConfig { classes: vec!["person".into(), "Car".into()], ..ok.clone() };
        let a = check_config(&people).unwrap().unwrap();
        assert_eq!(a.iter().filter(|&&x| x).count(), 2);
        assert!(a[0] && a[2]);
        let e = check_config(&DetectorConfig { classes: vec!["unicorn".into()], ..ok.clone() }).unwrap_err();
        assert!(e.to_string().contains("unicorn"), "{e}");
        for t in [0.0, -0.1, 1.5, f32::NAN] {
            assert!(check_config(&DetectorConfig { threshold: t, ..ok.clone() }).is_err(), "{t}");
            assert!(check_config(&DetectorConfig { nms_iou: t, ..ok.clone() }).is_err(), "{t}");
        }
    }
}
