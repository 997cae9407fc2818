//! Plane geometry for the analytics: points, boxes and their focus points, directed segments, polygons.
//!
//! Image coordinates throughout: x grows to the right, **y grows downwards** (normalised
//! frames have `[0,0]` at the top-left, SPEC §4.3). Everything that talks about "left",
//! "right" or "clockwise" means as seen on the screen, in these coordinates.
//!
//! Sides of a directed segment `a → b`: [`Segment::side`] is the cross product
//! `(b − a) × (p − a)`. It is **positive when `p` is on the right-hand side** of someone
//! standing at `a` and looking towards `b` on the screen (with y down, the usual
//! "positive = left" of y-up maths flips):
//!
//! ```text
//!   a ───────────► b        left  (side < 0): above the segment
//!                           right (side > 0): below the segment
//! ```
//!
//! Polygons are closed sets: a point exactly on an edge or a corner is inside
//! ([`Polygon::contains`]). The zone rules never depend on that tie, because they work
//! with [`Polygon::depth`], the signed distance to the boundary, and a margin.

use crate::topology::nodes::cognitive_services_vision::Focus;
use std::ops::{Add, Mul, Sub};

/// How far above the bottom edge of a box the `footprint` focus point sits, as a fraction
/// of the box height.
///
/// Spatial Analysis estimated the footprint (the ground point under a person) from a
/// calibrated camera. Without calibration Vela takes the point on the box's vertical
/// centre line 4 % of the height above the bottom edge: a box's bottom edge is the lowest
/// foot (or the toe of the front foot in mid-stride), and the ground point between the
/// feet, under the body, lies slightly higher in the image for the elevated, tilted
/// cameras these operations assume.
pub const FOOTPRINT_RAISE: f64 = 0.04;

/// A point or a vector.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Pt {
    pub x: f64,
    pub y: f64,
}

impl Pt {
    pub const fn new(x: f64, y: f64) -> Self {
        Pt { x, y }
    }

    pub fn dot(self, o: Pt) -> f64 {
        self.x * o.x + self.y * o.y
    }

    /// z of the 3-D cross product; positive when `o` is clockwise from `self` on screen.
    pub fn cross(self, o: Pt) -> f64 {
        self.x * o.y - self.y * o.x
    }

    pub fn norm(self) -> f64 {
        self.x.hypot(self.y)
    }

    pub fn distance(self, o: Pt) -> f64 {
        (self - o).norm()
    }
}

impl From<[f64; 2]> for Pt {
    fn from(p: [f64; 2]) -> Self {
        Pt { x: p[0], y: p[1] }
    }
}

impl Add for Pt {
    type Output = Pt;
    fn add(self, o: Pt) -> Pt {
        Pt::new(self.x + o.x, self.y + o.y)
    }
}

impl Sub for Pt {
    type Output = Pt;
    fn sub(self, o: Pt) -> Pt {
        Pt::new(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f64> for Pt {
    type Output = Pt;
    fn mul(self, k: f64) -> Pt {
        Pt::new(self.x * k, self.y * k)
    }
}

/// A box as SPEC §4.3 writes it: left, top, width, height, normalised to the frame.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct BBox {
    pub l: f64,
    pub t: f64,
    pub w: f64,
    pub h: f64,
}

impl BBox {
    pub const fn new(l: f64, t: f64, w: f64, h: f64) -> Self {
        BBox { l, t, w, h }
    }

    pub fn from_center(c: Pt, w: f64, h: f64) -> Self {
        BBox { l: c.x - w / 2.0, t: c.y - h / 2.0, w, h }
    }

    pub fn center(&self) -> Pt {
        Pt::new(self.l + self.w / 2.0, self.t + self.h / 2.0)
    }

    pub fn right(&self) -> f64 {
        self.l + self.w
    }

    pub fn bottom(&self) -> f64 {
        self.t + self.h
    }

    pub fn area(&self) -> f64 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Finite, with a positive width and height.
    pub fn is_valid(&self) -> bool {
        [self.l, self.t, self.w, self.h].iter().all(|v| v.is_finite()) && self.w > 0.0 && self.h > 0.0
    }

    /// Intersection over union; 0 for disjoint or degenerate boxes.
    pub fn iou(&self, o: &BBox) -> f64 {
        let iw = self.right().min(o.right()) - self.l.max(o.l);
        let ih = self.bottom().min(o.bottom()) - self.t.max(o.t);
        if iw <= 0.0 || ih <= 0.0 {
            return 0.0;
        }
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// The box grown by `mx` on the left and on the right, and `my` above and below (the
    /// "buffered IoU" of C-BIoU: objects that moved further than their own size between
    /// two samples still overlap their prediction).
    pub fn grown(&self, mx: f64, my: f64) -> BBox {
        BBox { l: self.l - mx, t: self.t - my, w: self.w + 2.0 * mx, h: self.h + 2.0 * my }
    }

    /// The part of the box inside the frame; `None` when nothing of it is.
    pub fn clamped(&self) -> Option<BBox> {
        let (l, t) = (self.l.max(0.0), self.t.max(0.0));
        let (r, b) = (self.right().min(1.0), self.bottom().min(1.0));
        (r > l && b > t).then_some(BBox { l, t, w: r - l, h: b - t })
    }

    /// The point of the box that zones and lines test (see [`FOOTPRINT_RAISE`]).
    pub fn focus(&self, f: Focus) -> Pt {
        let cx = self.l + self.w / 2.0;
        match f {
            Focus::Center => Pt::new(cx, self.t + self.h / 2.0),
            Focus::BottomCenter => Pt::new(cx, self.bottom()),
            Focus::Footprint => Pt::new(cx, self.bottom() - FOOTPRINT_RAISE * self.h),
        }
    }
}

/// The pixel size of the frames the normalised coordinates refer to: pixel thresholds and
/// distances are measured in it, so that a margin is the same on both axes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameSize {
    pub width: f64,
    pub height: f64,
}

impl FrameSize {
    pub fn new(width: u32, height: u32) -> Self {
        FrameSize { width: f64::from(width.max(1)), height: f64::from(height.max(1)) }
    }

    pub fn to_px(&self, p: Pt) -> Pt {
        Pt::new(p.x * self.width, p.y * self.height)
    }
}

/// How far past a boundary a point must be before it counts as on the other side.
///
/// Spatial Analysis documented its `threshold` first in pixels ("greater than this number
/// of pixels inside the zone", defaults 16 and 48, which the published topologies use)
/// and later as a ratio of the frame width (0.0253 ≈ 13 px at 512 px wide).
/// [`Margin::from_threshold`] reads values below 1 as ratios and the others as pixels, so
/// both spellings work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Margin {
    Pixels(f64),
    /// A fraction of the frame width.
    WidthRatio(f64),
}

impl Margin {
    pub fn from_threshold(t: f64) -> Margin {
        if t < 1.0 {
            Margin::WidthRatio(t)
        } else {
            Margin::Pixels(t)
        }
    }

    /// In pixels of `frame`; never negative.
    pub fn px(&self, frame: &FrameSize) -> f64 {
        match *self {
            Margin::Pixels(p) => p,
            Margin::WidthRatio(r) => r * frame.width,
        }
        .max(0.0)
    }
}

/// A directed segment `a → b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub a: Pt,
    pub b: Pt,
}

impl Segment {
    pub const fn new(a: Pt, b: Pt) -> Self {
        Segment { a, b }
    }

    pub fn length(&self) -> f64 {
        (self.b - self.a).norm()
    }

    /// `(b − a) × (p − a)`: positive on the right-hand side when looking from `a` to `b`
    /// on screen (y down), negative on the left, 0 on the infinite line.
    pub fn side(&self, p: Pt) -> f64 {
        (self.b - self.a).cross(p - self.a)
    }

    /// Distance from the infinite line through the segment, with the sign of [`Self::side`].
    pub fn signed_distance(&self, p: Pt) -> f64 {
        let len = self.length();
        if len > 0.0 {
            self.side(p) / len
        } else {
            0.0
        }
    }

    /// Where the projection of `p` falls along the segment: 0 at `a`, 1 at `b`.
    pub fn project(&self, p: Pt) -> f64 {
        let d = self.b - self.a;
        let len2 = d.dot(d);
        if len2 > 0.0 {
            (p - self.a).dot(d) / len2
        } else {
            0.0
        }
    }

    /// Distance from `p` to the nearest point of the segment (ends included).
    pub fn distance(&self, p: Pt) -> f64 {
        let s = self.project(p).clamp(0.0, 1.0);
        p.distance(self.a + (self.b - self.a) * s)
    }

    /// Where two segments meet, as the positions along each (`0..=1`, ends included).
    /// Overlapping collinear segments have no single meeting point: `None`.
    pub fn intersection(&self, o: &Segment) -> Option<(f64, f64)> {
        let r = self.b - self.a;
        let s = o.b - o.a;
        let denom = r.cross(s);
        if denom == 0.0 {
            return None;
        }
        let qp = o.a - self.a;
        let t = qp.cross(s) / denom;
        let u = qp.cross(r) / denom;
        ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u)).then_some((t, u))
    }
}

/// A simple polygon (not self-intersecting; either winding).
#[derive(Clone, Debug, PartialEq)]
pub struct Polygon {
    pts: Vec<Pt>,
}

impl Polygon {
    /// `None` with fewer than 3 corners. A closing corner equal to the first is dropped.
    pub fn new(mut pts: Vec<Pt>) -> Option<Self> {
        if pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        (pts.len() >= 3).then_some(Polygon { pts })
    }

    pub fn points(&self) -> &[Pt] {
        &self.pts
    }

    /// Edge `i` joins corner `i` to corner `i + 1` (the last joins back to the first).
    pub fn edge(&self, i: usize) -> Segment {
        Segment::new(self.pts[i], self.pts[(i + 1) % self.pts.len()])
    }

    pub fn edges(&self) -> impl Iterator<Item = Segment> + '_ {
        (0..self.pts.len()).map(|i| self.edge(i))
    }

    /// The same polygon in pixels.
    pub fn to_px(&self, frame: &FrameSize) -> Polygon {
        Polygon { pts: self.pts.iter().map(|&p| frame.to_px(p)).collect() }
    }

    /// Inside or on the boundary (closed polygon).
    pub fn contains(&self, p: Pt) -> bool {
        self.boundary_distance(p) == 0.0 || self.crossings_odd(p)
    }

    /// Even-odd rule with half-open edges (an edge owns its lower end in y), so a ray
    /// through a corner counts once; boundary points are decided by the caller.
    fn crossings_odd(&self, p: Pt) -> bool {
        let mut inside = false;
        for e in self.edges() {
            let (a, b) = (e.a, e.b);
            if (a.y > p.y) != (b.y > p.y) {
                let x = a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x);
                if p.x < x {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Distance to the nearest edge.
    pub fn boundary_distance(&self, p: Pt) -> f64 {
        self.edges().map(|e| e.distance(p)).fold(f64::INFINITY, f64::min)
    }

    /// Signed distance to the boundary: positive inside, negative outside, 0 on it.
    pub fn depth(&self, p: Pt) -> f64 {
        let d = self.boundary_distance(p);
        if d == 0.0 {
            0.0
        } else if self.crossings_odd(p) {
            d
        } else {
            -d
        }
    }

    /// The first edge (nearest to `from`) that the step `from → to` crosses.
    pub fn first_edge_crossed(&self, from: Pt, to: Pt) -> Option<usize> {
        let step = Segment::new(from, to);
        (0..self.pts.len())
            .filter_map(|i| step.intersection(&self.edge(i)).map(|(t, _)| (t, i)))
            .min_by(|x, y| x.0.total_cmp(&y.0))
            .map(|(_, i)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Polygon {
        Polygon::new(vec![Pt::new(0.2, 0.2), Pt::new(0.8, 0.2), Pt::new(0.8, 0.8), Pt::new(0.2, 0.8)]).unwrap()
    }

    #[test]
    fn side_is_positive_on_the_right_when_looking_along_the_segment_with_y_down() {
        // Left to right across the screen: "right" is below on screen.
        let east = Segment::new(Pt::new(0.0, 0.5), Pt::new(1.0, 0.5));
        assert!(east.side(Pt::new(0.5, 0.9)) > 0.0);
        assert!(east.side(Pt::new(0.5, 0.1)) < 0.0);
        // Top to bottom (the published line-crossing default [[0.5,0.1],[0.5,0.9]]): facing
        // down the screen, the right hand points to the screen's left.
        let south = Segment::new(Pt::new(0.5, 0.1), Pt::new(0.5, 0.9));
        assert!(south.side(Pt::new(0.2, 0.5)) > 0.0);
        assert!(south.side(Pt::new(0.8, 0.5)) < 0.0);
        assert_eq!(south.side(Pt::new(0.5, 2.0)), 0.0);
        assert!((south.signed_distance(Pt::new(0.2, 0.5)) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn segment_intersection_includes_the_ends_and_rejects_parallels() {
        let s = Segment::new(Pt::new(0.0, 0.0), Pt::new(1.0, 0.0));
        let (t, u) = s.intersection(&Segment::new(Pt::new(0.25, -1.0), Pt::new(0.25, 1.0))).unwrap();
        assert!((t - 0.25).abs() < 1e-12 && (u - 0.5).abs() < 1e-12);
        assert!(s.intersection(&Segment::new(Pt::new(1.0, -1.0), Pt::new(1.0, 1.0))).is_some(), "touching the end");
        assert!(s.intersection(&Segment::new(Pt::new(1.01, -1.0), Pt::new(1.01, 1.0))).is_none(), "beyond the end");
        assert!(s.intersection(&Segment::new(Pt::new(0.0, 1.0), Pt::new(1.0, 1.0))).is_none(), "parallel");
        assert!(s.intersection(&Segment::new(Pt::new(0.5, 0.0), Pt::new(2.0, 0.0))).is_none(), "collinear overlap");
    }

    #[test]
    fn segment_distance_and_projection() {
        let s = Segment::new(Pt::new(0.0, 0.0), Pt::new(1.0, 0.0));
        assert_eq!(s.project(Pt::new(0.3, 5.0)), 0.3);
        assert_eq!(s.distance(Pt::new(0.3, -0.5)), 0.5);
        assert!((s.distance(Pt::new(2.0, 0.0)) - 1.0).abs() < 1e-12, "past the end: to the end point");
    }

    #[test]
    fn polygon_boundary_is_inside_and_depth_is_signed() {
        let sq = square();
        assert!(sq.contains(Pt::new(0.5, 0.5)));
        assert!(!sq.contains(Pt::new(0.1, 0.5)));
        for p in [Pt::new(0.2, 0.5), Pt::new(0.8, 0.8), Pt::new(0.5, 0.2), Pt::new(0.2, 0.2)] {
            assert!(sq.contains(p), "{p:?} on the boundary counts as inside");
            assert_eq!(sq.depth(p), 0.0);
        }
        assert!((sq.depth(Pt::new(0.5, 0.5)) - 0.3).abs() < 1e-12);
        assert!((sq.depth(Pt::new(0.1, 0.5)) + 0.1).abs() < 1e-12);
        // A ray through a corner's height must not flip twice.
        assert!(!sq.contains(Pt::new(0.1, 0.2)));
        assert!(sq.contains(Pt::new(0.5, 0.2 + 1e-9)));
    }

    #[test]
    fn concave_polygon_and_closing_point() {
        // A "U": the notch between the arms is outside.
        let u = Polygon::new(
            [[0.1, 0.1], [0.3, 0.1], [0.3, 0.6], [0.7, 0.6], [0.7, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9], [0.1, 0.1]]
                .into_iter()
                .map(Pt::from)
                .collect(),
        )
        .unwrap();
        assert_eq!(u.points().len(), 8, "closing point dropped");
        assert!(!u.contains(Pt::new(0.5, 0.3)));
        assert!(u.contains(Pt::new(0.2, 0.3)));
        assert!(u.contains(Pt::new(0.5, 0.8)));
        assert!(Polygon::new(vec![Pt::new(0.0, 0.0), Pt::new(1.0, 1.0), Pt::new(0.0, 0.0)]).is_none());
    }

    #[test]
    fn first_edge_crossed_is_the_nearest_along_the_step() {
        let sq = square();
        // Edges: 0 top, 1 right, 2 bottom, 3 left.
        assert_eq!(sq.first_edge_crossed(Pt::new(0.5, 0.0), Pt::new(0.5, 0.5)), Some(0));
        assert_eq!(sq.first_edge_crossed(Pt::new(1.0, 0.5), Pt::new(0.0, 0.5)), Some(1));
        assert_eq!(sq.first_edge_crossed(Pt::new(0.4, 0.4), Pt::new(0.6, 0.6)), None);
    }

    #[test]
    fn thresholds_below_one_are_width_ratios_and_others_pixels() {
        let f = FrameSize::new(512, 288);
        assert_eq!(Margin::from_threshold(16.0).px(&f), 16.0);
        assert!((Margin::from_threshold(0.0253).px(&f) - 12.95).abs() < 0.01);
        assert_eq!(Margin::from_threshold(0.0).px(&f), 0.0);
        assert_eq!(Margin::Pixels(-3.0).px(&f), 0.0);
    }

    #[test]
    fn iou_buffer_clamp_and_focus_points() {
        let a = BBox::new(0.0, 0.0, 0.2, 0.2);
        assert_eq!(a.iou(&a), 1.0);
        assert!((a.iou(&BBox::new(0.1, 0.0, 0.2, 0.2)) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.iou(&BBox::new(0.3, 0.0, 0.2, 0.2)), 0.0);
        assert_eq!(BBox::new(0.0, 0.0, 0.0, 0.0).iou(&BBox::new(0.0, 0.0, 0.0, 0.0)), 0.0);
        // Shifted by more than their width: no overlap, but the buffered boxes still meet.
        let b = BBox::new(0.25, 0.0, 0.2, 0.2);
        assert!(a.grown(0.06, 0.06).iou(&b.grown(0.06, 0.06)) > 0.0);
        assert_eq!(a.grown(0.1, 0.05), BBox::new(-0.1, -0.05, 0.4, 0.30000000000000004));
        let c = BBox::new(-0.1, 0.9, 0.3, 0.3).clamped().unwrap();
        assert!(c.l == 0.0 && c.t == 0.9 && (c.w - 0.2).abs() < 1e-12 && (c.h - 0.1).abs() < 1e-12, "{c:?}");
        assert_eq!(BBox::new(1.1, 0.5, 0.3, 0.3).clamped(), None);
        let p = BBox::new(0.4, 0.2, 0.2, 0.5);
        assert_eq!(p.focus(Focus::Center), Pt::new(0.5, 0.45));
        assert_eq!(p.focus(Focus::BottomCenter), Pt::new(0.5, 0.7));
        assert!((p.focus(Focus::Footprint).y - 0.68).abs() < 1e-12);
    }
}
