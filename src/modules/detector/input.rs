//! Pictures into the model: a borrowed view of packed RGB-family pixels of any size, and
//! the preprocessing NanoDet-m was trained with — stretch to the input size (bilinear, no
//! letterbox), BGR planes, `(x − mean) / std` per channel. Pure.

use super::DetectorError;

/// Per-channel mean and standard deviation of NanoDet's training pipeline, B, G, R order.
pub const MEAN_BGR: [f32; 3] = [103.53, 116.28, 123.675];
pub const STD_BGR: [f32; 3] = [57.375, 57.12, 58.395];

/// Byte order of a packed pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packed {
    Rgb24,
    Bgr24,
    Rgba,
    Bgra,
    Argb,
    Abgr,
}

impl Packed {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Packed::Rgb24 | Packed::Bgr24 => 3,
            _ => 4,
        }
    }

    /// Offsets of B, G and R within a pixel (the model's channel order).
    fn bgr_offsets(self) -> [usize; 3] {
        match self {
            Packed::Rgb24 | Packed::Rgba => [2, 1, 0],
            Packed::Bgr24 | Packed::Bgra => [0, 1, 2],
            Packed::Argb => [3, 2, 1],
            Packed::Abgr => [1, 2, 3],
        }
    }
}

/// A borrowed picture: `height` rows of `stride` bytes, the first `width` pixels of each used.
#[derive(Clone, Copy, Debug)]
pub struct Picture<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    layout: Packed,
}

impl<'a> Picture<'a> {
    /// Checks that `data` holds the picture (the last row may end right after its pixels).
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: usize, layout: Packed) -> Result<Self, DetectorError> {
        let row = width as usize * layout.bytes_per_pixel();
        if width == 0 || height == 0 {
            return Err(DetectorError::Picture(format!("empty picture {width}x{height}")));
        }
        if stride < row {
            return Err(DetectorError::Picture(format!(
                "stride {stride} is shorter than a row of {width} {layout:?} pixels ({row} bytes)"
            )));
        }
        let need = stride * (height as usize - 1) + row;
        if data.len() < need {
            return Err(DetectorError::Picture(format!(
                "{} bytes cannot hold a {width}x{height} {layout:?} picture with stride {stride} ({need} bytes needed)",
                data.len()
            )));
        }
        Ok(Picture { data, width, height, stride, layout })
    }

    /// A view of an `image` crate RGB buffer.
    pub fn rgb(img: &'a image::RgbImage) -> Self {
        let (width, height) = img.dimensions();
        Picture { data: img.as_raw(), width, height, stride: width as usize * 3, layout: Packed::Rgb24 }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn layout(&self) -> Packed {
        self.layout
    }

    /// The bytes of row `y` (at least `width` pixels).
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.width as usize * self.layout.bytes_per_pixel()]
    }
}

/// Bilinear taps along one axis with half-pixel centres (as OpenCV's `INTER_LINEAR`, which
/// NanoDet's own pipeline uses): output `i` samples source `(i + 0.5)·src/dst − 0.5`,
/// clamped to the edge. `(first index, second index, weight of the second)`.
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|i| {
            let f = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (f.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, if i1 == i0 { 0.0 } else { f - i0 as f32 })
        })
        .collect()
}

/// Stretches `pic` to `dst_w`×`dst_h` and writes the model's input: three planes B, G, R of
/// `dst_w·dst_h` floats each, normalised with [`MEAN_BGR`] and [`STD_BGR`]. `out` must hold
/// exactly `3·dst_w·dst_h` values.
pub fn preprocess(pic: &Picture, dst_w: usize, dst_h: usize, out: &mut [f32]) {
    let plane = dst_w * dst_h;
    assert_eq!(out.len(), 3 * plane, "input tensor size");
    let bpp = pic.layout.bytes_per_pixel();
    let offs = pic.layout.bgr_offsets();
    // Column taps as byte offsets of the pixel, so the inner loop only adds a channel offset.
    let xs: Vec<(usize, usize, f32)> = taps(pic.width as usize, dst_w).into_iter().map(|(a, b, w)| (a * bpp, b * bpp, w)).collect();
    let ys = taps(pic.height as usize, dst_h);
    let scale: [f32; 3] = [1.0 / STD_BGR[0], 1.0 / STD_BGR[1], 1.0 / STD_BGR[2]];
    let bias: [f32; 3] = [-MEAN_BGR[0] * scale[0], -MEAN_BGR[1] * scale[1], -MEAN_BGR[2] * scale[2]];
    let (b_plane, rest) = out.split_at_mut(plane);
    let (g_plane, r_plane) = rest.split_at_mut(plane);
    let planes: [&mut [f32]; 3] = [b_plane, g_plane, r_plane];
    // One horizontally interpolated row per source row needed, reused across output rows
    // (vertical interpolation then blends two of them).
    let mut cache: [(usize, Vec<f32>); 2] = [(usize::MAX, vec![0.0; dst_w * 3]), (usize::MAX, vec![0.0; dst_w * 3])];
    let hrow = |y: usize, buf: &mut Vec<f32>| {
        let src = pic.row(y);
        for (x, &(a, b, w)) in xs.iter().enumerate() {
            for c in 0..3 {
                let p0 = src[a + offs[c]] as f32;
                let p1 = src[b + offs[c]] as f32;
                buf[x * 3 + c] = p0 + (p1 - p0) * w;
            }
        }
    };
    for (y, &(y0, y1, wy)) in ys.iter().enumerate() {
        for (slot, want) in [(0, y0), (1, y1)] {
            if cache[slot].0 != want {
                // Only later slots may give theirs up (at the bottom edge y0 == y1).
                if let Some(other) = (slot + 1..2).find(|&k| cache[k].0 == want) {
                    cache.swap(slot, other);
                } else {
                    hrow(want, &mut cache[slot].1);
                    cache[slot].0 = want;
                }
            }
        }
        let (r0, r1) = (&cache[0].1, &cache[1].1);
        let base = y * dst_w;
        for x in 0..dst_w {
            for c in 0..3 {
                let top = r0[x * 3 + c];
                let v = top + (r1[x * 3 + c] - top) * wy;
                planes[c][base + x] = v * scale[c] + bias[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_are_half_pixel_centred_and_clamped() {
        // Same size: identity.
        assert!(taps(4, 4).iter().enumerate().all(|(i, &(a, _, w))| a == i && w == 0.0));
        // 2x downscale: each output sits between two source pixels, weight 0.5.
        assert_eq!(taps(8, 4), vec![(0, 1, 0.5), (2, 3, 0.5), (4, 5, 0.5), (6, 7, 0.5)]);
        // 2x upscale: the edges clamp.
        let t = taps(2, 4);
        assert_eq!(t[0], (0, 1, 0.0));
        assert_eq!(t[1], (0, 1, 0.25));
        assert_eq!(t[2], (0, 1, 0.75));
        assert_eq!(t[3], (1, 1, 0.0));
    }

    #[test]
    fn channels_order_and_normalisation() {
        // A uniform picture stays uniform; each plane gets its channel's normalisation.
        let (r, g, b) = (200u8, 100u8, 50u8);
        let want = [(b as f32 - MEAN_BGR[0]) / STD_BGR[0], (g as f32 - MEAN_BGR[1]) / STD_BGR[1], (r as f32 - MEAN_BGR[2]) / STD_BGR[2]];
        let layouts: [(Packed, [u8; 4]); 6] = [
            (Packed::Rgb24, [r, g, b, 0]),
            (Packed::Bgr24, [b, g, r, 0]),
            (Packed::Rgba, [r, g, b, 255]),
            (Packed::Bgra, [b, g, r, 255]),
            (Packed::Argb, [255, r, g, b]),
            (Packed::Abgr, [255, b, g, r]),
        ];
        for (layout, px) in layouts {
            let bpp = layout.bytes_per_pixel();
            let (w, h) = (7u32, 5u32);
            let stride = w as usize * bpp + 3; // padded rows
            let mut data = vec![0u8; stride * h as usize];
            for y in 0..h as usize {
                for x in 0..w as usize {
                    data[y * stride + x * bpp..y * stride + (x + 1) * bpp].copy_from_slice(&px[..bpp]);
                }
            }
            let pic = Picture::new(&data, w, h, stride, layout).unwrap();
            let mut out = vec![0.0; 3 * 16 * 12];
            preprocess(&pic, 16, 12, &mut out);
            for c in 0..3 {
                assert!(out[c * 192..(c + 1) * 192].iter().all(|v| (v - want[c]).abs() < 1e-5), "{layout:?} channel {c}");
            }
        }
    }

    #[test]
    fn bilinear_values() {
        // A horizontal ramp 0, 100, 200, 300→255 (one row), shrunk to 2 columns: each output
        // averages a pair (weights 0.5).
        let img = image::RgbImage::from_fn(4, 2, |x, _| image::Rgb([[0u8, 100, 200, 250][x as usize]; 3]));
        let mut out = vec![0.0; 3 * 2 * 2];
        preprocess(&Picture::rgb(&img), 2, 2, &mut out);
        let raw = |v: f32, c: usize| v * STD_BGR[c] + MEAN_BGR[c];
        assert!((raw(out[0], 0) - 50.0).abs() < 1e-3);
        assert!((raw(out[1], 0) - 225.0).abs() < 1e-3);
        assert!((raw(out[8 + 1], 2) - 225.0).abs() < 1e-3);
    }

    #[test]
    fn bad_buffers_are_refused() {
        let data = vec![0u8; 10];
        assert!(Picture::new(&data, 0, 1, 3, Packed::Rgb24).is_err());
        assert!(Picture::new(&data, 2, 2, 5, Packed::Rgb24).is_err(), "stride shorter than a row");
        assert!(Picture::new(&data, 2, 2, 6, Packed::Rgb24).is_err(), "12 bytes needed");
        assert!(Picture::new(&data, 2, 2, 4, Packed::Rgba).is_err() && Picture::new(&data, 1, 2, 6, Packed::Rgba).is_ok());
    }
}
