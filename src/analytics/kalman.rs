//! Constant-velocity Kalman filter for a box (centre and size, each with a velocity) over media time.
//!
//! The state is ByteTrack's (position and size with their velocities) with two changes:
//! time steps are seconds of media time, not frames, so one filter serves detections every
//! frame and every 15th frame alike; and the process noise is the continuous white-noise
//! acceleration model, whose discretisation composes exactly (predicting 0.1 s five times
//! gives what predicting 0.5 s once gives), so frames without detections may advance
//! the filter without changing what the next detection sees.
//!
//! With diagonal measurement and process noise the four coordinates are independent, so the
//! 8×8 filter is four 2×2 filters: the same estimates for a fraction of the arithmetic.
//! Noise scales with the box height (a tall, near person moves more pixels than a far one);
//! for the x coordinates the height is converted to x units with the frame's aspect ratio.

use super::geometry::{BBox, Pt};

/// Noise of the motion model. Units are box heights (and seconds), so one setting fits
/// objects of every size and distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionNoise {
    /// Standard deviation of a detection's centre and size, in box heights (ByteTrack: 1/20).
    pub measurement: f64,
    /// Standard deviation of the acceleration, in box heights per second².
    pub acceleration: f64,
    /// Standard deviation of a new track's velocity, in box heights per second.
    pub initial_velocity: f64,
    /// Frame width over height: a box height in x units is `h / aspect`.
    pub aspect: f64,
}

impl Default for MotionNoise {
    fn default() -> Self {
        // A walking person covers about 0.8 of their height per second; changes of pace
        // and direction within a second are of that order too.
        MotionNoise { measurement: 0.05, acceleration: 0.5, initial_velocity: 1.0, aspect: 16.0 / 9.0 }
    }
}

/// One coordinate and its velocity, with their covariance.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Axis {
    x: f64,
    v: f64,
    pxx: f64,
    pxv: f64,
    pvv: f64,
}

impl Axis {
    fn new(x: f64, sd_x: f64, sd_v: f64) -> Self {
        Axis { x, v: 0.0, pxx: sd_x * sd_x, pxv: 0.0, pvv: sd_v * sd_v }
    }

    /// `q` is the acceleration's spectral density (variance per second).
    fn predict(&mut self, dt: f64, q: f64) {
        let (dt2, dt3) = (dt * dt, dt * dt * dt);
        let pxx = self.pxx + 2.0 * dt * self.pxv + dt2 * self.pvv + q * dt3 / 3.0;
        let pxv = self.pxv + dt * self.pvv + q * dt2 / 2.0;
        let pvv = self.pvv + q * dt;
        self.x += self.v * dt;
        (self.pxx, self.pxv, self.pvv) = (pxx, pxv, pvv);
    }

    fn update(&mut self, z: f64, r: f64) {
        let s = self.pxx + r;
        if s <= 0.0 || !s.is_finite() {
            return;
        }
        let (kx, kv) = (self.pxx / s, self.pxv / s);
        let y = z - self.x;
        self.x += kx * y;
        self.v += kv * y;
        (self.pxx, self.pxv, self.pvv) = ((1.0 - kx) * self.pxx, (1.0 - kx) * self.pxv, self.pvv - kv * self.pxv);
    }
}

/// The smallest width or height a filtered box may shrink to (normalised).
const MIN_SIZE: f64 = 1e-4;

/// A box's motion state: centre x/y and width/height, each with a velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxFilter {
    cx: Axis,
    cy: Axis,
    w: Axis,
    h: Axis,
}

impl BoxFilter {
    pub fn new(b: &BBox, n: &MotionNoise) -> Self {
        let (sx, sy) = scales(b.h, n);
        // Twice the measurement noise for position (ByteTrack), as a first detection is no better than any.
        let (px, py) = (2.0 * n.measurement, 2.0 * n.measurement);
        let c = b.center();
        BoxFilter {
            cx: Axis::new(c.x, px * sx, n.initial_velocity * sx),
            cy: Axis::new(c.y, py * sy, n.initial_velocity * sy),
            w: Axis::new(b.w, px * sx, n.initial_velocity * sx),
            h: Axis::new(b.h, py * sy, n.initial_velocity * sy),
        }
    }

    /// Advances the state by `dt` seconds (nothing for `dt <= 0`).
    pub fn predict(&mut self, dt: f64, n: &MotionNoise) {
        if dt <= 0.0 || !dt.is_finite() {
            return;
        }
        let (sx, sy) = scales(self.h.x, n);
        let (qx, qy) = ((n.acceleration * sx).powi(2), (n.acceleration * sy).powi(2));
        self.cx.predict(dt, qx);
        self.w.predict(dt, qx);
        self.cy.predict(dt, qy);
        self.h.predict(dt, qy);
    }

    /// Corrects the state with a detected box (taken at the state's current time).
    pub fn update(&mut self, b: &BBox, n: &MotionNoise) {
        let (sx, sy) = scales(b.h, n);
        let (rx, ry) = ((n.measurement * sx).powi(2), (n.measurement * sy).powi(2));
        let c = b.center();
        self.cx.update(c.x, rx);
        self.w.update(b.w, rx);
        self.cy.update(c.y, ry);
        self.h.update(b.h, ry);
    }

    /// The estimated box now.
    pub fn bbox(&self) -> BBox {
        BBox::from_center(Pt::new(self.cx.x, self.cy.x), self.w.x.max(MIN_SIZE), self.h.x.max(MIN_SIZE))
    }

    /// Standard deviation of the estimated centre, in x and in y.
    pub fn center_sd(&self) -> (f64, f64) {
        (self.cx.pxx.max(0.0).sqrt(), self.cy.pxx.max(0.0).sqrt())
    }

    /// Velocity of the centre, per second.
    pub fn velocity(&self) -> Pt {
        Pt::new(self.cx.v, self.cy.v)
    }
}

/// A box height in x and in y units.
fn scales(h: f64, n: &MotionNoise) -> (f64, f64) {
    let h = h.max(1e-3);
    (h / n.aspect.max(1e-3), h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_and_extrapolates_it() {
        let n = MotionNoise::default();
        let mut f = BoxFilter::new(&BBox::new(0.1, 0.4, 0.05, 0.2), &n);
        // 0.2 of the frame width per second, detections every 0.5 s.
        for k in 1..=6 {
            f.predict(0.5, &n);
            f.update(&BBox::new(0.1 + 0.1 * k as f64, 0.4, 0.05, 0.2), &n);
        }
        assert!((f.velocity().x - 0.2).abs() < 0.02, "{:?}", f.velocity());
        assert!(f.velocity().y.abs() < 1e-9);
        f.predict(0.25, &n);
        let b = f.bbox();
        assert!((b.l - 0.75).abs() < 0.01, "{b:?}");
        assert!((b.h - 0.2).abs() < 1e-9);
    }

    #[test]
    fn predicting_in_steps_equals_predicting_at_once() {
        let n = MotionNoise::default();
        let mut a = BoxFilter::new(&BBox::new(0.1, 0.4, 0.05, 0.2), &n);
        a.predict(0.5, &n);
        a.update(&BBox::new(0.2, 0.42, 0.05, 0.2), &n);
        let mut b = a;
        a.predict(0.5, &n);
        for _ in 0..5 {
            b.predict(0.1, &n);
        }
        let (ba, bb) = (a.bbox(), b.bbox());
        assert!((ba.l - bb.l).abs() < 1e-12 && (ba.t - bb.t).abs() < 1e-12);
        assert!((a.cx.pxx - b.cx.pxx).abs() < 1e-12 && (a.cy.pvv - b.cy.pvv).abs() < 1e-12);
        a.update(&BBox::new(0.3, 0.44, 0.05, 0.2), &n);
        b.update(&BBox::new(0.3, 0.44, 0.05, 0.2), &n);
        assert!((a.bbox().l - b.bbox().l).abs() < 1e-12);
    }

    #[test]
    fn no_time_no_change_and_sizes_stay_positive() {
        let n = MotionNoise::default();
        let mut f = BoxFilter::new(&BBox::new(0.1, 0.4, 0.05, 0.2), &n);
        let before = f;
        f.predict(0.0, &n);
        f.predict(-1.0, &n);
        f.predict(f64::NAN, &n);
        assert_eq!(f, before);
        // Shrinking fast, then coasting for a long time: never a negative size.
        f.predict(0.1, &n);
        f.update(&BBox::new(0.1, 0.4, 0.01, 0.05), &n);
        f.predict(100.0, &n);
        assert!(f.bbox().w > 0.0 && f.bbox().h > 0.0);
    }
}
