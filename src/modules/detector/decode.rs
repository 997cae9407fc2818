//! NanoDet's head output → candidate boxes: the distribution focal loss (DFL) decode of
//! each grid cell's four side distances, and the score threshold. Pure.
//!
//! For one stride `s` the model gives, per grid cell in row-major order (cell `i` = column,
//! `j` = row, centre `((i + 0.5)·s, (j + 0.5)·s)` in model-input pixels), `C` class scores
//! (already sigmoid'ed) and `4 × B` logits: for each side (left, top, right, bottom) a
//! distribution over the distances `0, 1, …, B−1` strides. The distance to a side is the
//! expectation of its softmax times `s`.

use super::nms::Candidate;

/// One output level of the head, as laid out in the model's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub stride: u32,
    /// Grid columns and rows: `⌈input width / stride⌉` × `⌈input height / stride⌉`.
    pub cols: usize,
    pub rows: usize,
}

impl Level {
    pub fn cells(&self) -> usize {
        self.cols * self.rows
    }
}

/// The expected value of the softmax over `logits`, in bins (0 ..= len − 1).
pub fn dfl_distance(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    if sum > 0.0 && sum.is_finite() {
        weighted / sum
    } else {
        0.0
    }
}

/// Pixel corners `(x1, y1, x2, y2)` in model-input coordinates of the box of cell `cell`
/// from its `4 × bins` distance logits.
pub fn cell_box(level: &Level, cell: usize, dists: &[f32]) -> [f32; 4] {
    let bins = dists.len() / 4;
    let s = level.stride as f32;
    let cx = ((cell % level.cols) as f32 + 0.5) * s;
    let cy = ((cell / level.cols) as f32 + 0.5) * s;
    let d = |side: usize| dfl_distance(&dists[side * bins..(side + 1) * bins]) * s;
    [cx - d(0), cy - d(1), cx + d(2), cy + d(3)]
}

/// What turns scores into candidates.
#[derive(Clone, Copy, Debug)]
pub struct Filter<'a> {
    /// A score must be at least this.
    pub threshold: f32,
    /// `allowed[class]`: whether that class is reported; `None` = all.
    pub allowed: Option<&'a [bool]>,
    /// Model input size, to normalise boxes (the picture was stretched to it).
    pub input_w: f32,
    pub input_h: f32,
}

/// Appends every (cell, class) of one level whose score passes `filter` as a candidate,
/// its box normalised to [0, 1] of the picture and clamped. `scores` holds
/// `level.cells() × classes` values, `dists` `level.cells() × 4·bins`.
pub fn decode_level(level: &Level, scores: &[f32], dists: &[f32], classes: usize, filter: &Filter, out: &mut Vec<Candidate>) {
    let per_cell = dists.len() / level.cells().max(1);
    for cell in 0..level.cells() {
        let row = &scores[cell * classes..(cell + 1) * classes];
        let mut corners: Option<[f32; 4]> = None;
        for (class_id, &score) in row.iter().enumerate() {
            if score.is_nan() || score < filter.threshold || filter.allowed.is_some_and(|a| !a[class_id]) {
                continue;
            }
            let [x1, y1, x2, y2] = *corners.get_or_insert_with(|| {
                let [x1, y1, x2, y2] = cell_box(level, cell, &dists[cell * per_cell..(cell + 1) * per_cell]);
                let (nx, ny) = (|v: f32| (v / filter.input_w).clamp(0.0, 1.0), |v: f32| (v / filter.input_h).clamp(0.0, 1.0));
                [nx(x1), ny(y1), nx(x2), ny(y2)]
            });
            out.push(Candidate { class_id, score, x1, y1, x2, y2 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfl_expectation() {
        // A one-hot-ish distribution picks its bin.
        let mut l = [-50.0f32; 11];
        l[3] = 50.0;
        assert!((dfl_distance(&l) - 3.0).abs() < 1e-4);
        // Uniform logits: the mean bin, 5 of 0..=10.
        assert!((dfl_distance(&[0.7; 11]) - 5.0).abs() < 1e-5);
        // Two equal peaks at 2 and 4: 3.
        let mut l = [-100.0f32; 11];
        l[2] = 10.0;
        l[4] = 10.0;
        assert!((dfl_distance(&l) - 3.0).abs() < 1e-4);
        // Softmax is shift-invariant and stable for large logits.
        let a: Vec<f32> = (0..11).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = a.iter().map(|v| v + 1000.0).collect();
        assert!((dfl_distance(&a) - dfl_distance(&b)).abs() < 1e-4);
        // Against the formula, by hand for three bins: p = softmax([0, ln 2, ln 3]) = [1,2,3]/6.
        let l = [0.0, 2f32.ln(), 3f32.ln()];
        assert!((dfl_distance(&l) - (2.0 + 6.0) / 6.0).abs() < 1e-5);
    }

    fn one_hot_sides(bins: [usize; 4]) -> Vec<f32> {
        let mut d = vec![-30.0f32; 44];
        for (side, b) in bins.iter().enumerate() {
            d[side * 11 + b] = 30.0;
        }
        d
    }

    #[test]
    fn cell_centres_and_sides() {
        let level = Level { stride: 8, cols: 52, rows: 52 };
        // Cell 0: centre (4, 4); distances 1, 2, 3, 4 bins = 8, 16, 24, 32 px.
        let b = cell_box(&level, 0, &one_hot_sides([1, 2, 3, 4]));
        let want = [4.0 - 8.0, 4.0 - 16.0, 4.0 + 24.0, 4.0 + 32.0];
        b.iter().zip(want).for_each(|(g, w)| assert!((g - w).abs() < 1e-3, "{b:?} vs {want:?}"));
        // Column 3, row 2 of a stride-32 13x13 grid: centre (112, 80).
        let level = Level { stride: 32, cols: 13, rows: 13 };
        let b = cell_box(&level, 2 * 13 + 3, &one_hot_sides([0, 0, 0, 0]));
        b.iter().zip([112.0, 80.0, 112.0, 80.0]).for_each(|(g, w)| assert!((g - w).abs() < 1e-3, "{b:?}"));
    }

    #[test]
    fn level_to_normalised_candidates() {
        // A 2x2 grid at stride 32 on a 64x64 input, 3 classes.
        let level = Level { stride: 32, cols: 2, rows: 2 };
        let mut scores = vec![0.0f32; 4 * 3];
        scores[3 + 1] = 0.8; // cell 1 (column 1, row 0), class 1
        scores[3 + 2] = 0.5; // cell 1, class 2 (below the threshold)
        scores[9] = 0.9; // cell 3 (column 1, row 1), class 0
        let mut dists = Vec::new();
        for _ in 0..4 {
            dists.extend(one_hot_sides([1, 1, 1, 1])); // 32 px each way
        }
        let filter = Filter { threshold: 0.6, allowed: None, input_w: 64.0, input_h: 64.0 };
        let mut out = Vec::new();
        decode_level(&level, &scores, &dists, 3, &filter, &mut out);
        assert_eq!(out.len(), 2);
        // Cell 1: centre (48, 16) ± 32 → x 16..80, y −16..48 → clamped, /64.
        let a = out[0];
        assert_eq!((a.class_id, a.score), (1, 0.8));
        for (g, w) in [a.x1, a.y1, a.x2, a.y2].iter().zip([0.25, 0.0, 1.0, 0.75]) {
            assert!((g - w).abs() < 1e-4, "{a:?}");
        }
        assert_eq!((out[1].class_id, out[1].score), (0, 0.9));
        // The class filter drops class 1.
        let allowed = [true, false, true];
        let mut out = Vec::new();
        decode_level(&level, &scores, &dists, 3, &Filter { allowed: Some(&allowed), ..filter }, &mut out);
        assert_eq!(out.iter().map(|c| c.class_id).collect::<Vec<_>>(), vec![0]);
        // A score equal to the threshold passes; NaN never does.
        scores[9] = 0.6;
        scores[0] = f32::NAN;
        let mut out = Vec::new();
        decode_level(&level, &scores, &dists, 3, &filter, &mut out);
        assert_eq!(out.len(), 2);
    }
}
