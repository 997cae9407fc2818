//! Non-maximum suppression, per class: of boxes of one class overlapping by more than an IoU
//! threshold, only the most confident survives. Pure.

/// A box before suppression: normalised corners (`x1 <= x2`, `y1 <= y2`, all in [0, 1]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub score: f32,
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl Candidate {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }
}

/// Intersection over union of two boxes; 0 when either is empty.
///
/// Invariant under scaling either axis, so it does not matter that boxes are normalised to
/// a picture that was stretched on its way into the model.
pub fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    let union = a.area() + b.area() - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy NMS within each class: in descending score order, a box is kept unless it
/// overlaps an already kept box of its class with IoU **above** `iou_threshold`. Returns the
/// kept boxes, most confident first (ties: lower class, then input order), at most `max`.
pub fn per_class(mut candidates: Vec<Candidate>, iou_threshold: f32, max: usize) -> Vec<Candidate> {
    // Stable: equal scores keep their input order, so the result is deterministic.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.class_id.cmp(&b.class_id)));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|k| k.class_id != c.class_id || iou(k, &c) <= iou_threshold) {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(class_id: usize, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Candidate {
        Candidate { class_id, score, x1, y1, x2, y2 }
    }

    #[test]
    fn iou_values() {
        let a = c(0, 1.0, 0.0, 0.0, 0.2, 0.2);
        assert_eq!(iou(&a, &a), 1.0);
        // Half overlap along x: inter 0.1*0.2, union 0.04+0.04-0.02.
        let b = c(0, 1.0, 0.1, 0.0, 0.3, 0.2);
        assert!((iou(&a, &b) - 0.02 / 0.06).abs() < 1e-6);
        assert_eq!(iou(&a, &c(0, 1.0, 0.5, 0.5, 0.6, 0.6)), 0.0, "disjoint");
        assert_eq!(iou(&a, &c(0, 1.0, 0.2, 0.0, 0.4, 0.2)), 0.0, "touching");
        assert_eq!(iou(&c(0, 1.0, 0.1, 0.1, 0.1, 0.1), &c(0, 1.0, 0.1, 0.1, 0.1, 0.1)), 0.0, "empty boxes");
        // Scaling one axis leaves IoU unchanged.
        let sx = |k: &Candidate| c(0, 1.0, k.x1 * 0.5, k.y1, k.x2 * 0.5, k.y2);
        assert!((iou(&sx(&a), &sx(&b)) - iou(&a, &b)).abs() < 1e-6);
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        let boxes = vec![
            c(0, 0.7, 0.10, 0.10, 0.30, 0.50), // overlaps the 0.9 person heavily: dropped
            c(0, 0.9, 0.11, 0.10, 0.31, 0.50),
            c(2, 0.8, 0.11, 0.10, 0.31, 0.50), // same place, another class: kept
            c(0, 0.6, 0.60, 0.10, 0.80, 0.50), // another person elsewhere: kept
            c(0, 0.5, 0.20, 0.10, 0.40, 0.50), // IoU with 0.9 box = 0.11/0.29 < 0.6: kept
        ];
        let kept = per_class(boxes, 0.6, 100);
        let scores: Vec<f32> = kept.iter().map(|k| k.score).collect();
        assert_eq!(scores, vec![0.9, 0.8, 0.6, 0.5]);
        assert_eq!(kept[1].class_id, 2);
    }

    #[test]
    fn threshold_is_exclusive_and_max_caps() {
        // IoU exactly 0.5: kept at threshold 0.5 (only strictly above suppresses).
        // (Binary fractions, so the IoU is exactly 0.5.)
        let a = c(0, 0.9, 0.0, 0.0, 0.375, 1.0);
        let b = c(0, 0.8, 0.125, 0.0, 0.5, 1.0);
        assert_eq!(iou(&a, &b), 0.5);
        assert_eq!(per_class(vec![a, b], 0.5, 10).len(), 2);
        assert_eq!(per_class(vec![a, b], 0.49, 10).len(), 1);
        let many: Vec<Candidate> = (0..10).map(|i| c(0, i as f32 / 10.0, i as f32 / 10.0, 0.0, i as f32 / 10.0 + 0.05, 0.1)).collect();
        let kept = per_class(many, 0.6, 3);
        assert_eq!(kept.iter().map(|k| k.score).collect::<Vec<_>>(), vec![0.9, 0.8, 0.7]);
        assert!(per_class(Vec::new(), 0.6, 3).is_empty());
    }
}
