//! Image preparation for the extension processors: a decoded YUV 4:2:0 picture becomes the
//! bytes an extension receives, as the topology's [`ImageSpec`] asks (SPEC §1.3 "Extension
//! processors" for `image`, §5.1/§5.2 for the wire formats). Pure: no I/O, no threads.
//!
//! # Size rules
//!
//! [`layout`] gives the output size and where the picture sits in it ([`Layout::content`]):
//!
//! - **No `scale`**: the native size (SPEC: inferred).
//! - **`stretch`**: exactly `width`×`height`, distorting.
//! - **`preserveAspectRatio`**: both sides given → the largest size that fits inside
//!   `width`×`height` with the source's aspect ratio ("fit the most constraining dimension"),
//!   so one side equals the request and the other may be smaller. One side given → that side,
//!   the other from the source's aspect ratio. Up- and downscaling alike.
//! - **`pad`**: exactly `width`×`height`; the picture is fitted as for `preserveAspectRatio`
//!   and centred, black bars above and below (letterbox) or left and right (pillarbox). When
//!   the free space is odd the extra pixel goes to the right or bottom bar. [`Layout::content`]
//!   is the rectangle callers need to map boxes on the padded image back to the frame.
//!
//! Where SPEC is silent: a computed side is `round(other × source ratio)` to the nearest
//! pixel (halves up) and at least 1 px; sizes are **not** forced even (yuv420p of an odd size
//! has `⌈w/2⌉×⌈h/2⌉` chroma planes, as ffmpeg lays them out). A computed side above
//! [`MAX_SCALE_SIDE`] (possible only with one-sided `preserveAspectRatio` on an extreme source)
//! is [`ImageError::TooLarge`]. Specs the topology compiler refuses (a zero side; `pad` or
//! `stretch` without both sides; `preserveAspectRatio` with neither) are [`ImageError::Spec`].
//!
//! # Scaling
//!
//! Each plane is resampled once, straight from the decoded YUV to the output size (never
//! through an RGB picture of the source size), with a separable triangle filter whose
//! radius is one source pixel when enlarging (bilinear) and one output pixel when shrinking
//! (a tent over the covered source area: anti-aliased like an area average, for any ratio,
//! not just integer ones). Weights are 16-bit fixed point, precomputed per output row and
//! column and cached while the source size and spec stay the same. Edges replicate.
//!
//! Chroma siting: the source is taken as H.264's default (`chroma_sample_loc_type` 0, MPEG-2
//! style): chroma co-sited with the even luma columns, halfway between luma rows. RGB outputs
//! resample the chroma planes directly to the output size; yuv420p resamples them to half
//! the output size with the same siting (at native size: an exact copy); JPEG resamples them
//! to the siting JFIF decoders assume, centred in each 2×2 block (+3 dB against decoders'
//! RGB on sharp synthetic chroma, nothing visible on camera pictures).
//!
//! # Colour
//!
//! BT.601, limited ("TV") range: Y 16–235, Cb/Cr 16–240, the H.264 default when the VUI says
//! nothing; full-range or BT.709 streams are not told apart (the decoder does not expose the
//! VUI colour description), an assumption that shifts colours slightly on such cameras.
//! RGB = integer arithmetic with 16-bit coefficients, rounded and clamped (within ±1 of the
//! exact formula). Black is RGB 0,0,0, or Y 16 / Cb 128 / Cr 128 in yuv420p.
//!
//! # Formats
//!
//! - **JPEG** (`image/jpeg`): our own baseline encoder (below), 4:2:0, the standard Annex K
//!   tables scaled by quality like libjpeg (quality 0 is treated as 1). It takes the resampled
//!   Y/Cb/Cr planes as they are: the limited→full range expansion JFIF needs is folded into
//!   the quantiser, so there is no RGB step at all. (The `image` crate's encoder wants RGB
//!   and writes 4:4:4; see benches/image.rs for the comparison.)
//! - **PNG** (`image/png`): RGB 8-bit via the `image` crate, fast compression.
//! - **BMP** (`image/bmp`): written here, `BITMAPINFOHEADER`, 24-bit BGR, bottom-up, rows
//!   padded to 4 bytes, 2835 px/m (72 dpi).
//! - **Raw** (`image/x-raw`), rows tightly packed (stride = width × bytes per pixel):
//!   `yuv420p` = the Y, U, V planes one after the other; `rgb24`/`bgr24` 3 bytes;
//!   `argb`/`rgba`/`abgr`/`bgra` 4 bytes in that byte order, alpha 255; `rgb565` as
//!   `rrrrrggg gggbbbbb` and `rgb555` as `0rrrrrgg gggbbbbb` (16-bit words, `be`/`le` their
//!   byte order, channels truncated to 5/6 bits, no dithering).
//!
//! # Use
//!
//! A [`Preparer`] keeps the filter tables of the last source size and spec and its scratch
//! rows and planes, so only the output buffer is new for each frame; [`prepare`] uses one
//! per thread.

use crate::media::decode::Frame;
use crate::topology::nodes::common::{ImageFormat, ImageSpec, PixelFormat, ScaleMode, MAX_SCALE_SIDE};
use bytes::Bytes;

/// A decoded picture, YUV 4:2:0 planar (what openh264 hands out; see [`Frame`]).
#[derive(Clone, Copy, Debug)]
pub struct Yuv420<'a> {
    pub width: u32,
    pub height: u32,
    /// Luma: `height` rows of `y_stride` bytes, the first `width` of each are the picture.
    pub y: &'a [u8],
    pub y_stride: usize,
    /// Chroma: `⌈height/2⌉` rows of `uv_stride` bytes, `⌈width/2⌉` samples each.
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub uv_stride: usize,
}

impl<'a> From<&Frame<'a>> for Yuv420<'a> {
    fn from(f: &Frame<'a>) -> Self {
        Yuv420 { width: f.width as u32, height: f.height as u32, y: f.y, y_stride: f.y_stride, u: f.u, v: f.v, uv_stride: f.uv_stride }
    }
}

impl Yuv420<'_> {
    fn check(&self) -> Result<(), ImageError> {
        let (w, h) = (self.width as usize, self.height as usize);
        if w == 0 || h == 0 {
            return Err(ImageError::Source(format!("empty picture {w}x{h}")));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let need = |len: usize, stride: usize, pw: usize, ph: usize, name: &str| {
            if stride < pw || len < stride * (ph - 1) + pw {
                Err(ImageError::Source(format!(
                    "{name} plane of {len} bytes with stride {stride} cannot hold {ph} rows of {pw} for a {w}x{h} picture"
                )))
            } else {
                Ok(())
            }
        };
        need(self.y.len(), self.y_stride, w, h, "Y")?;
        need(self.u.len(), self.uv_stride, cw, ch, "U")?;
        need(self.v.len(), self.uv_stride, cw, ch, "V")
    }
}

/// A rectangle in output pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The output size and where the (scaled) picture sits in it: all of it except with `pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    pub content: Rect,
}

/// What an extension receives for one frame.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub bytes: Bytes,
    pub width: u32,
    pub height: u32,
    /// Where the picture is in the image (less than all of it only with `pad`).
    pub content: Rect,
    /// `image/jpeg`, `image/png`, `image/bmp` or `image/x-raw`.
    pub content_type: &'static str,
    /// The layout of `image/x-raw` bytes.
    pub pixel_format: Option<PixelFormat>,
}

impl Prepared {
    /// Bytes per row of a raw image (of the Y plane for yuv420p), e.g. the gRPC
    /// `stride_bytes`; `None` for encoded images.
    pub fn stride(&self) -> Option<u32> {
        self.pixel_format.map(|f| self.width * bytes_per_pixel(f) as u32)
    }
}

/// Bytes per pixel of a packed raw format (1 for yuv420p: its Y plane).
pub fn bytes_per_pixel(f: PixelFormat) -> usize {
    match f {
        PixelFormat::Yuv420p => 1,
        PixelFormat::Rgb565be | PixelFormat::Rgb565le | PixelFormat::Rgb555be | PixelFormat::Rgb555le => 2,
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
        PixelFormat::Argb | PixelFormat::Rgba | PixelFormat::Abgr | PixelFormat::Bgra => 4,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("invalid source picture: {0}")]
    Source(String),
    #[error("invalid image scale: {0}")]
    Spec(String),
    #[error("the scaled image would be {width}x{height} px, more than {max} px on a side")]
    TooLarge { width: u64, height: u64, max: u32 },
    #[error("{format} encoding failed: {reason}")]
    Encode { format: &'static str, reason: String },
}

/// `round(a * num / den)`, at least 1 (den > 0).
fn ratio(a: u32, num: u32, den: u32) -> u64 {
    ((u64::from(a) * u64::from(num) + u64::from(den) / 2) / u64::from(den)).max(1)
}

/// The largest size with the source's aspect ratio inside `w`×`h`.
fn fit(sw: u32, sh: u32, w: u32, h: u32) -> (u32, u32) {
    if u64::from(sw) * u64::from(h) <= u64::from(w) * u64::from(sh) {
        (ratio(sw, h, sh).min(u64::from(w)) as u32, h)
    } else {
        (w, ratio(sh, w, sw).min(u64::from(h)) as u32)
    }
}

/// The output size and content rectangle for a source of `src_w`×`src_h` (see the module doc).
pub fn layout(src_w: u32, src_h: u32, spec: &ImageSpec) -> Result<Layout, ImageError> {
    if src_w == 0 || src_h == 0 {
        return Err(ImageError::Source(format!("empty picture {src_w}x{src_h}")));
    }
    let full = |width: u32, height: u32| Layout { width, height, content: Rect { x: 0, y: 0, width, height } };
    let Some(scale) = &spec.scale else {
        return Ok(full(src_w, src_h));
    };
    if scale.width == Some(0) || scale.height == Some(0) {
        return Err(ImageError::Spec(format!("zero size {:?}x{:?}", scale.width, scale.height)));
    }
    let both = |mode: &str| match (scale.width, scale.height) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(ImageError::Spec(format!("scale mode '{mode}' needs both width and height"))),
    };
    match scale.mode {
        ScaleMode::Stretch => {
            let (w, h) = both("stretch")?;
            Ok(full(w, h))
        }
        ScaleMode::Pad => {
            let (w, h) = both("pad")?;
            let (cw, ch) = fit(src_w, src_h, w, h);
            Ok(Layout { width: w, height: h, content: Rect { x: (w - cw) / 2, y: (h - ch) / 2, width: cw, height: ch } })
        }
        ScaleMode::PreserveAspectRatio => {
            let (w, h) = match (scale.width, scale.height) {
                (Some(w), Some(h)) => {
                    let (w, h) = fit(src_w, src_h, w, h);
                    (u64::from(w), u64::from(h))
                }
                (Some(w), None) => (u64::from(w), ratio(src_h, w, src_w)),
                (None, Some(h)) => (ratio(src_w, h, src_h), u64::from(h)),
                (None, None) => return Err(ImageError::Spec("preserveAspectRatio needs a width, a height, or both".into())),
            };
            let max = MAX_SCALE_SIDE;
            if w > u64::from(max) || h > u64::from(max) {
                return Err(ImageError::TooLarge { width: w, height: h, max });
            }
            Ok(full(w as u32, h as u32))
        }
    }
}

/// The output size for a source of `src_w`×`src_h` (for callers that need it before
/// converting, e.g. to describe a gRPC stream).
pub fn target_size(src_w: u32, src_h: u32, spec: &ImageSpec) -> Result<(u32, u32), ImageError> {
    layout(src_w, src_h, spec).map(|l| (l.width, l.height))
}

/// Prepares one picture with this thread's [`Preparer`], so a thread that keeps preparing
/// pictures of the same size and spec reuses the filter tables (about a millisecond to build
/// for 1080p) and scratch buffers.
pub fn prepare(src: &Yuv420<'_>, spec: &ImageSpec) -> Result<Prepared, ImageError> {
    thread_local! {
        static PREPARER: std::cell::RefCell<Preparer> = std::cell::RefCell::new(Preparer::new());
    }
    PREPARER.with(|p| match p.try_borrow_mut() {
        Ok(mut p) => p.prepare(src, spec),
        Err(_) => Preparer::new().prepare(src, spec),
    })
}

/// Reusable state for [`prepare`]: filter tables for the last source size and spec, and
/// scratch rows and planes. One per extension node (it is not shared between threads).
#[derive(Default)]
pub struct Preparer {
    plan: Option<Plan>,
    rows: [RowScaler; 3],
    /// RGB picture for the PNG encoder.
    rgb: Vec<u8>,
    /// Y, U, V planes for the JPEG encoder.
    planes: [Vec<u8>; 3],
}

const CT_RAW: &str = "image/x-raw";

impl Preparer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepares one picture as `spec` asks (see the module doc).
    pub fn prepare(&mut self, src: &Yuv420<'_>, spec: &ImageSpec) -> Result<Prepared, ImageError> {
        src.check()?;
        let lay = layout(src.width, src.height, spec)?;
        let kind = match spec.format {
            ImageFormat::Jpeg { .. } => Kind::Jpeg,
            ImageFormat::Raw(PixelFormat::Yuv420p) => Kind::I420,
            _ => Kind::Rgb,
        };
        let key = PlanKey { src_w: src.width, src_h: src.height, lay, kind };
        let plan = match self.plan.take() {
            Some(p) if p.key == key => p,
            _ => Plan::new(key),
        };
        let out = self.run(&plan, src, spec.format);
        self.plan = Some(plan);
        let (bytes, content_type, pixel_format) = out?;
        Ok(Prepared { bytes: Bytes::from(bytes), width: lay.width, height: lay.height, content: lay.content, content_type, pixel_format })
    }

    fn run(
        &mut self,
        plan: &Plan,
        src: &Yuv420<'_>,
        format: ImageFormat,
    ) -> Result<(Vec<u8>, &'static str, Option<PixelFormat>), ImageError> {
        use PixelFormat::*;
        let rows = &mut self.rows;
        let raw = |pf: PixelFormat, bytes: Vec<u8>| Ok((bytes, CT_RAW, Some(pf)));
        match format {
            ImageFormat::Raw(pf) => match pf {
                Yuv420p => {
                    let (w, h) = plan.size();
                    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                    let mut out = vec![0u8; w * h + 2 * cw * ch];
                    let (y, uv) = out.split_at_mut(w * h);
                    let (u, v) = uv.split_at_mut(cw * ch);
                    i420(plan, rows, src, [y, u, v]);
                    raw(pf, out)
                }
                Rgb24 => raw(pf, packed(plan, rows, src, |[r, g, b]| [r, g, b])),
                Bgr24 => raw(pf, packed(plan, rows, src, |[r, g, b]| [b, g, r])),
                Argb => raw(pf, packed(plan, rows, src, |[r, g, b]| [255, r, g, b])),
                Rgba => raw(pf, packed(plan, rows, src, |[r, g, b]| [r, g, b, 255])),
                Abgr => raw(pf, packed(plan, rows, src, |[r, g, b]| [255, b, g, r])),
                Bgra => raw(pf, packed(plan, rows, src, |[r, g, b]| [b, g, r, 255])),
                Rgb565be => raw(pf, packed(plan, rows, src, |c| rgb565(c).to_be_bytes())),
                Rgb565le => raw(pf, packed(plan, rows, src, |c| rgb565(c).to_le_bytes())),
                Rgb555be => raw(pf, packed(plan, rows, src, |c| rgb555(c).to_be_bytes())),
                Rgb555le => raw(pf, packed(plan, rows, src, |c| rgb555(c).to_le_bytes())),
            },
            ImageFormat::Bmp => Ok((bmp(plan, rows, src), "image/bmp", None)),
            ImageFormat::Png => {
                let (w, h) = plan.size();
                self.rgb.clear();
                self.rgb.resize(w * h * 3, 0);
                rgb_rows(plan, rows, src, &mut self.rgb, |r| r * w * 3, |c| c);
                let mut out = Vec::with_capacity(w * h);
                let enc = ::image::codecs::png::PngEncoder::new_with_quality(
                    &mut out,
                    ::image::codecs::png::CompressionType::Fast,
                    ::image::codecs::png::FilterType::Paeth,
                );
                ::image::ImageEncoder::write_image(enc, &self.rgb, w as u32, h as u32, ::image::ExtendedColorType::Rgb8)
                    .map_err(|e| ImageError::Encode { format: "PNG", reason: e.to_string() })?;
                Ok((out, "image/png", None))
            }
            ImageFormat::Jpeg { quality } => {
                let (w, h) = plan.size();
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                let [y, u, v] = &mut self.planes;
                y.resize(w * h, 0);
                u.resize(cw * ch, 0);
                v.resize(cw * ch, 0);
                i420(plan, rows, src, [y, u, v]);
                let mut out = Vec::with_capacity(w * h / 4 + 1024);
                jpeg::encode(&mut out, w, h, [y, u, v], quality);
                Ok((out, "image/jpeg", None))
            }
        }
    }
}

/// BT.601 limited-range YCbCr to RGB, rounded and clamped (16-bit fixed point).
#[inline(always)]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    // 255/219, then 2(1-Kr), 2(1-Kb)Kb/Kg, 2(1-Kr)Kr/Kg, 2(1-Kb) times 255/224, all × 2^16.
    const CY: i32 = 76_309;
    const CRV: i32 = 104_597;
    const CGU: i32 = 25_675;
    const CGV: i32 = 53_279;
    const CBU: i32 = 132_201;
    let c = (i32::from(y) - 16) * CY + (1 << 15);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let px = |x: i32| (x >> 16).clamp(0, 255) as u8;
    [px(c + CRV * e), px(c - CGU * d - CGV * e), px(c + CBU * d)]
}

fn rgb565([r, g, b]: [u8; 3]) -> u16 {
    (u16::from(r & 0xF8) << 8) | (u16::from(g & 0xFC) << 3) | u16::from(b >> 3)
}

fn rgb555([r, g, b]: [u8; 3]) -> u16 {
    (u16::from(r & 0xF8) << 7) | (u16::from(g & 0xF8) << 2) | u16::from(b >> 3)
}

/// A packed raw picture, bars in `put`'s black.
fn packed<const N: usize>(plan: &Plan, rows: &mut [RowScaler; 3], src: &Yuv420<'_>, put: impl Fn([u8; 3]) -> [u8; N]) -> Vec<u8> {
    let (w, h) = plan.size();
    let mut out = vec![0u8; w * h * N];
    let black = put([0, 0, 0]);
    if plan.bars() && black != [0; N] {
        for px in out.chunks_exact_mut(N) {
            px.copy_from_slice(&black);
        }
    }
    rgb_rows(plan, rows, src, &mut out, |r| r * w * N, put);
    out
}

/// A 24-bit bottom-up BMP (BITMAPFILEHEADER + BITMAPINFOHEADER, rows padded to 4 bytes).
fn bmp(plan: &Plan, rows: &mut [RowScaler; 3], src: &Yuv420<'_>) -> Vec<u8> {
    const HEADER: usize = 14 + 40;
    let (w, h) = plan.size();
    let stride = (w * 3).next_multiple_of(4);
    let mut out = vec![0u8; HEADER + stride * h];
    let le32 = |v: usize| (v as u32).to_le_bytes();
    let mut hd = Vec::with_capacity(HEADER);
    hd.extend_from_slice(b"BM");
    hd.extend_from_slice(&le32(out.len()));
    hd.extend_from_slice(&[0; 4]);
    hd.extend_from_slice(&le32(HEADER));
    hd.extend_from_slice(&le32(40));
    hd.extend_from_slice(&le32(w));
    hd.extend_from_slice(&le32(h)); // positive: bottom-up
    hd.extend_from_slice(&1u16.to_le_bytes());
    hd.extend_from_slice(&24u16.to_le_bytes());
    hd.extend_from_slice(&le32(0)); // BI_RGB
    hd.extend_from_slice(&le32(stride * h));
    hd.extend_from_slice(&le32(2835)); // 72 dpi
    hd.extend_from_slice(&le32(2835));
    hd.extend_from_slice(&[0; 8]);
    out[..HEADER].copy_from_slice(&hd);
    rgb_rows(plan, rows, src, &mut out[HEADER..], |r| (h - 1 - r) * stride, |[r, g, b]| [b, g, r]);
    out
}

/// Converts the content rows of an RGB-kind plan: output row `r` starts at byte `offset(r)` of
/// `out`, each pixel is `put(rgb)`. Bars are left as they are.
fn rgb_rows<const N: usize>(
    plan: &Plan,
    rows: &mut [RowScaler; 3],
    src: &Yuv420<'_>,
    out: &mut [u8],
    offset: impl Fn(usize) -> usize,
    put: impl Fn([u8; 3]) -> [u8; N],
) {
    let [ys, us, vs] = rows;
    let (p, c) = (&plan.y, &plan.c);
    for r in 0..p.v.n {
        let yl = ys.row(p, src.y, src.y_stride, r);
        let ul = us.row(c, src.u, src.uv_stride, r);
        let vl = vs.row(c, src.v, src.uv_stride, r);
        let at = offset(p.v.first + r) + p.h.first * N;
        let o = &mut out[at..at + p.h.n * N];
        for (((o, &y), &u), &v) in o.chunks_exact_mut(N).zip(yl).zip(ul).zip(vl) {
            o.copy_from_slice(&put(yuv_to_rgb(y, u, v)));
        }
    }
}

/// Resamples the three planes of an I420-kind plan into tight output planes, bars black.
fn i420(plan: &Plan, rows: &mut [RowScaler; 3], src: &Yuv420<'_>, out: [&mut [u8]; 3]) {
    let [yo, uo, vo] = out;
    if plan.bars() {
        yo.fill(16);
        uo.fill(128);
        vo.fill(128);
    }
    let [ys, us, vs] = rows;
    plane(&plan.y, ys, src.y, src.y_stride, yo);
    plane(&plan.c, us, src.u, src.uv_stride, uo);
    plane(&plan.c, vs, src.v, src.uv_stride, vo);
}

fn plane(p: &PlanePlan, rs: &mut RowScaler, src: &[u8], stride: usize, out: &mut [u8]) {
    for r in 0..p.v.n {
        let line = rs.row(p, src, stride, r);
        let at = (p.v.first + r) * p.out_w + p.h.first;
        out[at..at + p.h.n].copy_from_slice(line);
    }
}

/// Which planes a format is made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Y, U and V each resampled to the output size, then converted to RGB per pixel.
    Rgb,
    /// Y at the output size, U and V at half of it, sited like the source (yuv420p).
    I420,
    /// As `I420` with chroma centred between luma columns, as JFIF decoders assume.
    Jpeg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlanKey {
    src_w: u32,
    src_h: u32,
    lay: Layout,
    kind: Kind,
}

/// The filter tables of one prepared size.
struct Plan {
    key: PlanKey,
    y: PlanePlan,
    /// U and V.
    c: PlanePlan,
}

struct PlanePlan {
    /// Output plane width (its stride in tight planes).
    out_w: usize,
    h: Taps,
    v: Taps,
}

/// One axis as the layout maps it, in luma pixels: output length, content `[o, o + c)`,
/// source length.
#[derive(Clone, Copy)]
struct Axis {
    out: u32,
    o: u32,
    c: u32,
    src: u32,
}

/// How a plane samples an axis: sample `j` sits at luma coordinate `sub * j + at` (pixel
/// edges at integers, so luma pixel `i` is centred at `i + 0.5`).
#[derive(Clone, Copy)]
struct Siting {
    sub: u32,
    at: f64,
}

const LUMA: Siting = Siting { sub: 1, at: 0.5 };
/// H.264 chroma_sample_loc_type 0: co-sited with even luma columns, between luma rows.
const CHROMA_H: Siting = Siting { sub: 2, at: 0.5 };
const CHROMA_V: Siting = Siting { sub: 2, at: 1.0 };
/// JFIF: chroma centred in each 2×2 block.
const JFIF_CHROMA_H: Siting = Siting { sub: 2, at: 1.0 };

impl Plan {
    fn new(key: PlanKey) -> Plan {
        let l = key.lay;
        let ax = Axis { out: l.width, o: l.content.x, c: l.content.width, src: key.src_w };
        let ay = Axis { out: l.height, o: l.content.y, c: l.content.height, src: key.src_h };
        let y = PlanePlan { out_w: l.width as usize, h: Taps::new(ax, LUMA, LUMA), v: Taps::new(ay, LUMA, LUMA) };
        let c = match key.kind {
            Kind::Rgb => PlanePlan { out_w: l.width as usize, h: Taps::new(ax, LUMA, CHROMA_H), v: Taps::new(ay, LUMA, CHROMA_V) },
            Kind::I420 => PlanePlan {
                out_w: l.width.div_ceil(2) as usize,
                h: Taps::new(ax, CHROMA_H, CHROMA_H),
                v: Taps::new(ay, CHROMA_V, CHROMA_V),
            },
            Kind::Jpeg => PlanePlan {
                out_w: l.width.div_ceil(2) as usize,
                h: Taps::new(ax, JFIF_CHROMA_H, CHROMA_H),
                v: Taps::new(ay, CHROMA_V, CHROMA_V),
            },
        };
        Plan { key, y, c }
    }

    fn size(&self) -> (usize, usize) {
        (self.key.lay.width as usize, self.key.lay.height as usize)
    }

    fn bars(&self) -> bool {
        let l = &self.key.lay;
        l.content != Rect { x: 0, y: 0, width: l.width, height: l.height }
    }
}

/// Vertical filter weights are fractions of 2^16 (a lone weight of 1 is stored as 65535:
/// the result is the same after rounding); horizontal ones fractions of 2^14, as `i16` so
/// that the dot products become `pmaddwd`.
const ONE: i64 = 1 << 16;
const H_ONE: i64 = 1 << 14;

/// Filter taps of one axis of one plane: output samples `first..first + n` show the picture
/// (the others are bars); output `first + i` is the weighted sum of `k` source samples from
/// `lo + starts[i]` with `weights[i * k..][..k]` (non-negative, sum [`ONE`]). The same
/// filter for the horizontal pass: `hk` (a power of two when that fits, zero-padded) samples
/// from `lo + hstarts[i]` with `hweights` (sum [`H_ONE`]).
#[derive(Debug)]
struct Taps {
    first: usize,
    n: usize,
    k: usize,
    starts: Vec<usize>,
    weights: Vec<u16>,
    hk: usize,
    hstarts: Vec<usize>,
    hweights: Vec<i16>,
    /// Output sample `i` is source sample `i`.
    identity: bool,
    /// Source samples `lo..hi` are all any tap reads.
    lo: usize,
    hi: usize,
}

/// Quantises the filters `spans` (first source sample, real weights) to `k` taps each (a
/// start that keeps `start + k <= src_len`) and integer weights summing to exactly `one`.
fn quantise(spans: &[(usize, Vec<f64>)], src_len: usize, k: usize, one: i64) -> (Vec<usize>, Vec<i64>) {
    let mut starts = Vec::with_capacity(spans.len());
    let mut weights = vec![0i64; spans.len() * k];
    for ((lo, w), dst) in spans.iter().zip(weights.chunks_exact_mut(k)) {
        let start = (*lo).min(src_len - k);
        let sum: f64 = w.iter().sum();
        let q = &mut dst[lo - start..lo - start + w.len()];
        for (q, &x) in q.iter_mut().zip(w) {
            *q = (x / sum * one as f64).round() as i64;
        }
        // The rounding error goes to the largest weight.
        let best = (0..q.len()).max_by_key(|&j| q[j]).unwrap_or(0);
        q[best] += one - q.iter().sum::<i64>();
        starts.push(start);
    }
    (starts, weights)
}

impl Taps {
    /// Triangle filter of radius max(1, source samples per output sample), edges replicated.
    fn new(a: Axis, out: Siting, src: Siting) -> Taps {
        let n_out = a.out.div_ceil(out.sub) as usize;
        let src_len = a.src.div_ceil(src.sub) as usize;
        // An output sample shows the picture when all the luma pixels it covers do.
        let inside = |i: usize| {
            let from = i as u64 * u64::from(out.sub);
            let to = (from + u64::from(out.sub)).min(u64::from(a.out));
            from >= u64::from(a.o) && to <= u64::from(a.o) + u64::from(a.c)
        };
        let first = (0..n_out).find(|&i| inside(i)).unwrap_or(n_out);
        let n = (first..n_out).take_while(|&i| inside(i)).count();
        let scale = f64::from(a.src) / f64::from(a.c);
        let step = f64::from(out.sub) * scale / f64::from(src.sub);
        let s0 = ((f64::from(out.sub) * first as f64 + out.at - f64::from(a.o)) * scale - src.at) / f64::from(src.sub);
        let identity = n == src_len && s0 == 0.0 && step == 1.0;
        let radius = step.max(1.0);
        let last = src_len as i64 - 1;
        let mut spans: Vec<(usize, Vec<f64>)> = Vec::with_capacity(n);
        let mut k = 1;
        for i in 0..n {
            let s = s0 + i as f64 * step;
            let (from, to) = ((s - radius).floor() as i64 + 1, (s + radius).ceil() as i64 - 1);
            let lo = from.clamp(0, last);
            let mut w = vec![0f64; (to.clamp(0, last) - lo + 1) as usize];
            for j in from..=to {
                let x = 1.0 - (j as f64 - s).abs() / radius;
                if x > 0.0 {
                    w[(j.clamp(0, last) - lo) as usize] += x;
                }
            }
            if w.iter().all(|&x| x <= 0.0) {
                // Unreachable with radius >= 1 (some sample is nearer than 1), kept for safety.
                let nearest = ((s.round() as i64).clamp(0, last) - lo).clamp(0, w.len() as i64 - 1);
                w[nearest as usize] = 1.0;
            }
            k = k.max(w.len());
            spans.push((lo as usize, w));
        }
        let (mut starts, weights) = quantise(&spans, src_len, k, ONE);
        let weights = weights.iter().map(|&w| w.clamp(0, 65535) as u16).collect();
        let hk = match k {
            3..=4 => 4,
            5..=8 => 8,
            9..=16 => 16,
            _ => k,
        };
        let hk = if hk <= src_len { hk } else { k };
        let (mut hstarts, hweights) = quantise(&spans, src_len, hk, H_ONE);
        let hweights = hweights.iter().map(|&w| w as i16).collect();
        let lo = starts.iter().chain(&hstarts).copied().min().unwrap_or(0);
        let hi = starts.iter().map(|&s| s + k).chain(hstarts.iter().map(|&s| s + hk)).max().unwrap_or(0);
        for s in starts.iter_mut().chain(hstarts.iter_mut()) {
            *s -= lo;
        }
        Taps { first, n, k, starts, weights, hk, hstarts, hweights, identity, lo, hi }
    }
}

/// Scratch for resampling one plane row by row.
#[derive(Default)]
struct RowScaler {
    acc: Vec<u16>,
    tmp: Vec<u8>,
    line: Vec<u8>,
}

impl RowScaler {
    /// Content row `r` of a plane resampled to the output (`p.h.n` samples): the vertical
    /// filter over whole source rows (vectorises), then the horizontal one.
    fn row<'a>(&'a mut self, p: &PlanePlan, src: &'a [u8], stride: usize, r: usize) -> &'a [u8] {
        let (h, v) = (&p.h, &p.v);
        let row0 = v.lo + v.starts[r];
        let vrow: &[u8] = if v.identity {
            &src[row0 * stride + h.lo..row0 * stride + h.hi]
        } else {
            vertical(src, stride, row0, &v.weights[r * v.k..(r + 1) * v.k], h.lo, h.hi, &mut self.acc, &mut self.tmp);
            &self.tmp
        };
        if h.identity {
            return vrow;
        }
        horizontal(vrow, h, &mut self.line);
        &self.line
    }
}

/// `out[x - lo] = Σ_j w[j] · src[row0 + j][x]` for `x` in `lo..hi`.
///
/// The sum is kept in 1/256 steps in 16-bit lanes (8 per SSE2 register); it cannot overflow
/// (Σ w = 2^16, p ≤ 255) and truncating each term costs under k/256 of a level.
#[allow(clippy::too_many_arguments)]
fn vertical(src: &[u8], stride: usize, row0: usize, w: &[u16], lo: usize, hi: usize, acc: &mut Vec<u16>, out: &mut Vec<u8>) {
    let n = hi - lo;
    acc.clear();
    acc.resize(n, 128);
    for (j, &wj) in w.iter().enumerate() {
        if wj != 0 {
            let at = (row0 + j) * stride + lo;
            add_weighted(acc, &src[at..at + n], wj);
        }
    }
    out.clear();
    out.extend(acc.iter().map(|&a| (a >> 8) as u8));
}

/// `acc[x] += (p · w) >> 8` for the pixels `p` of `row`, in 16-bit lanes only: with
/// `w = 256·hi + lo` that is `p·hi + (p·lo >> 8)` (two `pmullw`, a shift and two adds per 8
/// pixels). A 32-bit product would be exact to the same 1/256 but LLVM then emits 32-bit
/// multiplies (`pmuludq` and shuffles on SSE2): 2–3× slower.
fn add_weighted(acc: &mut [u16], row: &[u8], w: u16) {
    let (hi, lo) = (w >> 8, w & 0xFF);
    for (a, &p) in acc.iter_mut().zip(row) {
        let p = u16::from(p);
        *a = a.wrapping_add(p * hi).wrapping_add((p * lo) >> 8);
    }
}

fn horizontal(row: &[u8], h: &Taps, out: &mut Vec<u8>) {
    out.clear();
    match h.hk {
        1 => horizontal_k::<1>(row, h, out),
        2 => horizontal_k::<2>(row, h, out),
        4 => horizontal_k::<4>(row, h, out),
        8 => horizontal_k::<8>(row, h, out),
        16 => horizontal_k::<16>(row, h, out),
        k => out.extend(h.hstarts.iter().zip(h.hweights.chunks_exact(k)).map(|(&s, w)| {
            let a: i32 = row[s..s + k].iter().zip(w).map(|(&p, &w)| i32::from(p) * i32::from(w)).sum();
            ((a + (1 << 13)) >> 14).clamp(0, 255) as u8
        })),
    }
}

/// [`horizontal`] with the tap count known to the compiler: one bounds check, and the
/// i16 × i16 → i32 dot product is what `pmaddwd` does.
fn horizontal_k<const K: usize>(row: &[u8], h: &Taps, out: &mut Vec<u8>) {
    out.extend(h.hstarts.iter().zip(h.hweights.chunks_exact(K)).map(|(&s, w)| {
        let px: &[u8; K] = row[s..s + K].try_into().expect("K taps");
        let w: &[i16; K] = w.try_into().expect("K weights");
        let mut a = 1 << 13;
        for j in 0..K {
            a += i32::from(i16::from(px[j])) * i32::from(w[j]);
        }
        // Non-negative weights summing to 2^14: no clamping needed.
        (a >> 14) as u8
    }));
}

/// A baseline JPEG encoder (JFIF, 4:2:0, Annex K tables) fed with limited-range YCbCr planes.
mod jpeg {
    /// Natural (row-major) index of each zig-zag position.
    const ZIGZAG: [usize; 64] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49,
        56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];

    // Tables K.1 and K.2 (natural order).
    #[rustfmt::skip]
    const LUMA_Q: [u8; 64] = [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ];
    #[rustfmt::skip]
    const CHROMA_Q: [u8; 64] = [
        17, 18, 24, 47, 99, 99, 99, 99,
        18, 21, 26, 66, 99, 99, 99, 99,
        24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
    ];

    // Tables K.3 to K.6: code counts per length 1..16, then the symbols.
    const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
    const AC_LUMA_VALUES: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91,
        0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A,
        0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53,
        0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79,
        0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
        0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9,
        0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2,
        0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_CHROMA_VALUES: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14,
        0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17,
        0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A,
        0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
        0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3,
        0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7,
        0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2,
        0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];

    /// AAN DCT output scale per frequency (jfdctflt.c).
    const AAN: [f32; 8] = [1.0, 1.387_039_8, 1.306_563, 1.175_875_6, 1.0, 0.785_694_96, 0.541_196_1, 0.275_899_38];

    /// A canonical Huffman code (Annex C) indexed by symbol.
    struct Huff {
        code: [u32; 256],
        len: [u32; 256],
    }

    impl Huff {
        fn new(bits: &[u8; 16], values: &[u8]) -> Huff {
            let mut h = Huff { code: [0; 256], len: [0; 256] };
            let (mut code, mut k) = (0u32, 0);
            for (len, &count) in (1..=16).zip(bits) {
                for _ in 0..count {
                    h.code[usize::from(values[k])] = code;
                    h.len[usize::from(values[k])] = len;
                    code += 1;
                    k += 1;
                }
                code <<= 1;
            }
            h
        }
    }

    /// Quantiser of one component: reciprocal divisors in the DCT's output layout (transposed:
    /// index `u * 8 + v` for horizontal frequency `u`, vertical `v`) with the AAN scale and the
    /// limited→full range gain folded in, and the DC offset the range change adds.
    struct Quant {
        div: [f32; 64],
        dc_add: f32,
    }

    impl Quant {
        /// `table` natural order; full = gain · (limited − 128) + 128 + offset.
        fn new(table: &[u8; 64], gain: f32, offset: f32) -> Quant {
            let mut div = [0f32; 64];
            for (i, d) in div.iter_mut().enumerate() {
                let (u, v) = (i / 8, i % 8);
                *d = gain / (f32::from(table[v * 8 + u]) * AAN[u] * AAN[v] * 8.0);
            }
            // A constant block c has DC 64c in the AAN output: 8c / q after quantising.
            Quant { div, dc_add: offset * 8.0 / f32::from(table[0]) }
        }
    }

    /// For each zig-zag position, the index of its coefficient in the DCT's output layout.
    const ZIGZAG_OUT: [usize; 64] = {
        let mut t = [0; 64];
        let mut k = 0;
        while k < 64 {
            t[k] = (ZIGZAG[k] % 8) * 8 + ZIGZAG[k] / 8;
            k += 1;
        }
        t
    };

    /// Rounds to the nearest integer (ties to even) for |x| < 2^22 by adding 1.5 · 2^23, whose
    /// float has an ulp of exactly 1: no float-to-int conversion, so it vectorises.
    #[inline(always)]
    fn round(x: f32) -> i32 {
        const MAGIC: f32 = 12_582_912.0;
        (x + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
    }

    fn scaled(base: &[u8; 64], quality: u8) -> [u8; 64] {
        let q = u32::from(quality.clamp(1, 100));
        let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
        base.map(|b| ((u32::from(b) * scale + 50) / 100).clamp(1, 255) as u8)
    }

    struct Bits<'a> {
        out: &'a mut Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Bits<'_> {
        /// Appends the low `len` bits of `bits` (`len` ≤ 32).
        #[inline(always)]
        fn put(&mut self, bits: u32, len: u32) {
            self.acc = (self.acc << len) | u64::from(bits);
            self.n += len;
            if self.n >= 32 {
                self.n -= 32;
                let w = (self.acc >> self.n) as u32;
                let b = w.to_be_bytes();
                if b.contains(&0xFF) {
                    for x in b {
                        self.out.push(x);
                        if x == 0xFF {
                            self.out.push(0);
                        }
                    }
                } else {
                    self.out.extend_from_slice(&b);
                }
            }
        }

        /// Pads the last byte with ones and writes what is left.
        fn finish(&mut self) {
            let pad = (8 - self.n % 8) % 8;
            self.put((1 << pad) - 1, pad);
            while self.n >= 8 {
                self.n -= 8;
                let x = (self.acc >> self.n) as u8;
                self.out.push(x);
                if x == 0xFF {
                    self.out.push(0);
                }
            }
        }
    }

    /// Size category and bits of a coefficient (Annex F.1.2).
    #[inline(always)]
    fn magnitude(v: i32) -> (u32, u32) {
        let n = 32 - v.unsigned_abs().leading_zeros();
        let bits = if v < 0 { (v - 1) as u32 & ((1u32 << n) - 1) } else { v as u32 };
        (n, bits)
    }

    /// One 1-D AAN pass down the columns of `d` (row-major 8×8), eight columns at a time.
    #[inline(always)]
    fn pass(d: &mut [f32; 64]) {
        for x in 0..8 {
            let p = |r: usize| d[r * 8 + x];
            let (tmp0, tmp7) = (p(0) + p(7), p(0) - p(7));
            let (tmp1, tmp6) = (p(1) + p(6), p(1) - p(6));
            let (tmp2, tmp5) = (p(2) + p(5), p(2) - p(5));
            let (tmp3, tmp4) = (p(3) + p(4), p(3) - p(4));
            let (tmp10, tmp13) = (tmp0 + tmp3, tmp0 - tmp3);
            let (tmp11, tmp12) = (tmp1 + tmp2, tmp1 - tmp2);
            d[x] = tmp10 + tmp11;
            d[4 * 8 + x] = tmp10 - tmp11;
            let z1 = (tmp12 + tmp13) * 0.707_106_77;
            d[2 * 8 + x] = tmp13 + z1;
            d[6 * 8 + x] = tmp13 - z1;
            let tmp10 = tmp4 + tmp5;
            let tmp11 = tmp5 + tmp6;
            let tmp12 = tmp6 + tmp7;
            let z5 = (tmp10 - tmp12) * 0.382_683_43;
            let z2 = 0.541_196_1 * tmp10 + z5;
            let z4 = 1.306_563 * tmp12 + z5;
            let z3 = tmp11 * 0.707_106_77;
            let (z11, z13) = (tmp7 + z3, tmp7 - z3);
            d[5 * 8 + x] = z13 + z2;
            d[3 * 8 + x] = z13 - z2;
            d[8 + x] = z11 + z4;
            d[7 * 8 + x] = z11 - z4;
        }
    }

    fn transpose(d: &mut [f32; 64]) {
        for r in 0..8 {
            for c in r + 1..8 {
                d.swap(r * 8 + c, c * 8 + r);
            }
        }
    }

    /// One component: its plane, and a band of its rows as floats minus 128 for the current
    /// MCU row, padded to whole blocks by repeating the last row and column.
    struct Component<'a> {
        plane: &'a [u8],
        w: usize,
        h: usize,
        /// Band width: `w` rounded up to whole MCUs.
        bw: usize,
        band: Vec<f32>,
        quant: Quant,
        dc: &'a Huff,
        ac: &'a Huff,
        pred: i32,
    }

    impl Component<'_> {
        /// Loads rows `y0..y0 + rows` into the band (a plain loop per row, so it vectorises).
        fn load(&mut self, y0: usize, rows: usize) {
            let (w, bw) = (self.w, self.bw);
            self.band.resize(bw * rows, 0.0);
            for (r, dst) in self.band.chunks_exact_mut(bw).enumerate() {
                let y = (y0 + r).min(self.h - 1);
                let src = &self.plane[y * w..(y + 1) * w];
                for (o, &v) in dst[..w].iter_mut().zip(src) {
                    *o = f32::from(v) - 128.0;
                }
                let last = dst[w - 1];
                dst[w..].fill(last);
            }
        }

        /// Copies the 8×8 block at column `x0` of the band (rows `y0..y0 + 8`) into `d`.
        fn fetch(&self, x0: usize, y0: usize, d: &mut [f32; 64]) {
            for (r, row) in d.chunks_exact_mut(8).enumerate() {
                row.copy_from_slice(&self.band[(y0 + r) * self.bw + x0..][..8]);
            }
        }

        /// Encodes the block at column `x0`, band row `y0`.
        fn block(&mut self, bits: &mut Bits<'_>, x0: usize, y0: usize, d: &mut [f32; 64]) {
            self.fetch(x0, y0, d);
            pass(d);
            transpose(d);
            pass(d);
            // d is now transposed: d[u * 8 + v] holds horizontal frequency u, vertical v.
            // Quantise in that order (vectorises), then read out in zig-zag order. Clamping to
            // ±1023 keeps every value within baseline's categories (DC differences ≤ 11 bits).
            let mut qd = [0i32; 64];
            d[0] += self.quant.dc_add / self.quant.div[0];
            for ((q, &c), &div) in qd.iter_mut().zip(d.iter()).zip(&self.quant.div) {
                *q = round((c * div).clamp(-1023.0, 1023.0));
            }
            let mut q = [0i32; 64];
            for (q, &i) in q.iter_mut().zip(&ZIGZAG_OUT) {
                *q = qd[i];
            }
            // Bit k set when coefficient k is not zero: eight 0/1 bytes at a time, gathered
            // into one byte by a multiply (each byte's bit lands in a distinct top bit).
            let mut nz = [0u8; 64];
            for (b, &v) in nz.iter_mut().zip(&q) {
                *b = u8::from(v != 0);
            }
            let mut mask = 0u64;
            for (c, b) in nz.chunks_exact(8).enumerate() {
                let x = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                mask |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * c);
            }
            let diff = q[0] - self.pred;
            self.pred = q[0];
            let (n, b) = magnitude(diff);
            let n_ = n as usize;
            bits.put((self.dc.code[n_] << n) | b, self.dc.len[n_] + n);
            let mut m = mask >> 1;
            let mut pos = 1;
            while m != 0 {
                let z = m.trailing_zeros();
                let mut run = z;
                pos += z as usize;
                while run >= 16 {
                    bits.put(self.ac.code[0xF0], self.ac.len[0xF0]);
                    run -= 16;
                }
                let (n, b) = magnitude(q[pos]);
                let sym = ((run << 4) | n) as usize;
                bits.put((self.ac.code[sym] << n) | b, self.ac.len[sym] + n);
                pos += 1;
                m >>= z + 1;
            }
            if pos < 64 {
                bits.put(self.ac.code[0], self.ac.len[0]);
            }
        }
    }

    fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(body);
    }

    /// Encodes `w`×`h` limited-range planes (Y `w`×`h`, Cb and Cr `⌈w/2⌉`×`⌈h/2⌉`, tight).
    pub(super) fn encode(out: &mut Vec<u8>, w: usize, h: usize, planes: [&[u8]; 3], quality: u8) {
        let (lq, cq) = (scaled(&LUMA_Q, quality), scaled(&CHROMA_Q, quality));
        out.extend_from_slice(&[0xFF, 0xD8]);
        segment(out, 0xE0, &[b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
        let mut dqt = Vec::with_capacity(130);
        for (id, t) in [(0u8, &lq), (1, &cq)] {
            dqt.push(id);
            dqt.extend(ZIGZAG.iter().map(|&n| t[n]));
        }
        segment(out, 0xDB, &dqt);
        let (wb, hb) = ((w as u16).to_be_bytes(), (h as u16).to_be_bytes());
        segment(out, 0xC0, &[8, hb[0], hb[1], wb[0], wb[1], 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        let tables: [(u8, &[u8; 16], &[u8]); 4] = [
            (0x00, &DC_LUMA_BITS, &DC_VALUES),
            (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
            (0x01, &DC_CHROMA_BITS, &DC_VALUES),
            (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
        ];
        let mut dht = Vec::with_capacity(420);
        for (class_id, bits, values) in tables {
            dht.push(class_id);
            dht.extend_from_slice(bits);
            dht.extend_from_slice(values);
        }
        segment(out, 0xC4, &dht);
        segment(out, 0xDA, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);

        let (dcl, acl) = (Huff::new(&DC_LUMA_BITS, &DC_VALUES), Huff::new(&AC_LUMA_BITS, &AC_LUMA_VALUES));
        let (dcc, acc) = (Huff::new(&DC_CHROMA_BITS, &DC_VALUES), Huff::new(&AC_CHROMA_BITS, &AC_CHROMA_VALUES));
        // JFIF is full range: Y' = (Y − 16)·255/219 = 255/219·(Y − 128) + 128 + (112·255/219 − 128);
        // C' = (C − 128)·255/224 + 128.
        let (gy, gc) = (255.0 / 219.0, 255.0 / 224.0);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let [yp, up, vp] = planes;
        let mcus = w.div_ceil(16);
        let component = |plane, w, h, bw, quant, dc, ac| Component { plane, w, h, bw, band: Vec::new(), quant, dc, ac, pred: 0 };
        let mut y = component(yp, w, h, mcus * 16, Quant::new(&lq, gy, 112.0 * gy - 128.0), &dcl, &acl);
        let mut u = component(up, cw, ch, mcus * 8, Quant::new(&cq, gc, 0.0), &dcc, &acc);
        let mut v = component(vp, cw, ch, mcus * 8, Quant::new(&cq, gc, 0.0), &dcc, &acc);
        let mut bits = Bits { out, acc: 0, n: 0 };
        let mut d = [0f32; 64];
        for my in 0..h.div_ceil(16) {
            y.load(my * 16, 16);
            u.load(my * 8, 8);
            v.load(my * 8, 8);
            for mx in 0..mcus {
                for (bx, by) in [(0, 0), (8, 0), (0, 8), (8, 8)] {
                    y.block(&mut bits, mx * 16 + bx, by, &mut d);
                }
                u.block(&mut bits, mx * 8, 0, &mut d);
                v.block(&mut bits, mx * 8, 0, &mut d);
            }
        }
        bits.finish();
        out.extend_from_slice(&[0xFF, 0xD9]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::nodes::common::ImageScale;

    /// An owned test picture; strides are padded with garbage to catch stride mistakes.
    struct Pic {
        w: u32,
        h: u32,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        ys: usize,
        cs: usize,
    }

    impl Pic {
        /// `fy(x, y)` per luma pixel, `fc(x, y) -> (u, v)` per chroma sample.
        fn new(w: u32, h: u32, fy: impl Fn(usize, usize) -> u8, fc: impl Fn(usize, usize) -> (u8, u8)) -> Pic {
            let (wu, hu) = (w as usize, h as usize);
            let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
            let (ys, cs) = (wu + 5, cw + 3);
            let mut p = Pic { w, h, y: vec![0xEE; ys * hu], u: vec![0xEE; cs * ch], v: vec![0xEE; cs * ch], ys, cs };
            for r in 0..hu {
                for c in 0..wu {
                    p.y[r * ys + c] = fy(c, r);
                }
            }
            for r in 0..ch {
                for c in 0..cw {
                    let (u, v) = fc(c, r);
                    p.u[r * cs + c] = u;
                    p.v[r * cs + c] = v;
                }
            }
            p
        }

        fn solid(w: u32, h: u32, y: u8, u: u8, v: u8) -> Pic {
            Pic::new(w, h, |_, _| y, |_, _| (u, v))
        }

        fn yuv(&self) -> Yuv420<'_> {
            Yuv420 { width: self.w, height: self.h, y: &self.y, y_stride: self.ys, u: &self.u, v: &self.v, uv_stride: self.cs }
        }
    }

    fn spec(scale: Option<(ScaleMode, Option<u32>, Option<u32>)>, format: ImageFormat) -> ImageSpec {
        ImageSpec { scale: scale.map(|(mode, width, height)| ImageScale { mode, width, height }), format }
    }

    fn sized(mode: ScaleMode, w: u32, h: u32) -> Option<(ScaleMode, Option<u32>, Option<u32>)> {
        Some((mode, Some(w), Some(h)))
    }

    fn lay(sw: u32, sh: u32, scale: Option<(ScaleMode, Option<u32>, Option<u32>)>) -> Result<Layout, ImageError> {
        layout(sw, sh, &spec(scale, ImageFormat::Png))
    }

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect { x, y, width, height }
    }

    const RGB24: ImageFormat = ImageFormat::Raw(PixelFormat::Rgb24);
    const I420: ImageFormat = ImageFormat::Raw(PixelFormat::Yuv420p);
    const ALL_RAW: [PixelFormat; 11] = [
        PixelFormat::Yuv420p,
        PixelFormat::Rgb565be,
        PixelFormat::Rgb565le,
        PixelFormat::Rgb555be,
        PixelFormat::Rgb555le,
        PixelFormat::Rgb24,
        PixelFormat::Bgr24,
        PixelFormat::Argb,
        PixelFormat::Rgba,
        PixelFormat::Abgr,
        PixelFormat::Bgra,
    ];

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let mse = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>() / a.len() as f64;
        if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / mse).log10()
        }
    }

    fn decode(p: &Prepared) -> Vec<u8> {
        let fmt = match p.content_type {
            "image/jpeg" => ::image::ImageFormat::Jpeg,
            "image/png" => ::image::ImageFormat::Png,
            "image/bmp" => ::image::ImageFormat::Bmp,
            other => panic!("not encoded: {other}"),
        };
        let img = ::image::load_from_memory_with_format(&p.bytes, fmt).expect("decodes").to_rgb8();
        assert_eq!((img.width(), img.height()), (p.width, p.height), "{}", p.content_type);
        img.into_raw()
    }

    /// Exact BT.601 limited range → RGB, clamped.
    fn reference_rgb(y: u8, u: u8, v: u8) -> [f64; 3] {
        let (y, u, v) = (f64::from(y) - 16.0, f64::from(u) - 128.0, f64::from(v) - 128.0);
        let c = 255.0 / 219.0 * y;
        let k = 255.0 / 224.0;
        let (kr, kb) = (0.299, 0.114);
        let kg = 1.0 - kr - kb;
        let r = c + 2.0 * (1.0 - kr) * k * v;
        let g = c - 2.0 * (1.0 - kb) * kb / kg * k * u - 2.0 * (1.0 - kr) * kr / kg * k * v;
        let b = c + 2.0 * (1.0 - kb) * k * u;
        [r, g, b].map(|x| x.clamp(0.0, 255.0))
    }

    /// A picture with structure at every scale: colour bars, a gradient, fine detail.
    fn busy(w: u32, h: u32) -> Pic {
        Pic::new(
            w,
            h,
            |x, y| (16 + (x * 7 + y * 3) % 200 + if (x / 3 + y / 5) % 2 == 0 { 10 } else { 0 }) as u8,
            |x, y| ((40 + x * 5 % 180) as u8, (60 + (x + y * 2) * 3 % 160) as u8),
        )
    }

    /// Camera-like: busy luma (edges, texture, a ramp) and smooth chroma.
    fn natural(w: u32, h: u32) -> Pic {
        Pic::new(
            w,
            h,
            |x, y| (16 + (x * 7 + y * 3) % 200 + if (x / 3 + y / 5) % 2 == 0 { 10 } else { 0 }) as u8,
            |x, y| ((64 + (x * 96 / w as usize) + y % 16) as u8, (200 - (y * 120 / h as usize) - x % 8) as u8),
        )
    }

    #[test]
    fn sizes_for_every_mode() {
        use ScaleMode::*;
        // No scale: native, odd sizes included.
        assert_eq!(lay(1280, 720, None), Ok(Layout { width: 1280, height: 720, content: rect(0, 0, 1280, 720) }));
        assert_eq!(lay(7, 5, None).unwrap().content, rect(0, 0, 7, 5));
        // Stretch: exactly what was asked, up or down.
        assert_eq!(target_size(1920, 1080, &spec(sized(Stretch, 416, 416), RGB24)), Ok((416, 416)));
        assert_eq!(target_size(7, 5, &spec(sized(Stretch, 1001, 3), RGB24)), Ok((1001, 3)));
        // preserveAspectRatio with both: fits inside, one side equal.
        assert_eq!(target_size(1920, 1080, &spec(sized(PreserveAspectRatio, 416, 416), RGB24)), Ok((416, 234)));
        assert_eq!(target_size(1080, 1920, &spec(sized(PreserveAspectRatio, 416, 416), RGB24)), Ok((234, 416)));
        assert_eq!(target_size(1280, 720, &spec(sized(PreserveAspectRatio, 640, 480), RGB24)), Ok((640, 360)));
        assert_eq!(target_size(1280, 720, &spec(sized(PreserveAspectRatio, 1000, 360), RGB24)), Ok((640, 360)));
        // Upscaling, and a source with exactly the requested ratio.
        assert_eq!(target_size(160, 90, &spec(sized(PreserveAspectRatio, 1920, 1920), RGB24)), Ok((1920, 1080)));
        assert_eq!(target_size(640, 480, &spec(sized(PreserveAspectRatio, 320, 240), RGB24)), Ok((320, 240)));
        // Rounding to the nearest pixel, not to even: 768x576 into 333 wide → 249.75 → 250;
        // 7x5 into 3 high → 4.2 → 4.
        assert_eq!(target_size(768, 576, &spec(sized(PreserveAspectRatio, 333, 1000), RGB24)), Ok((333, 250)));
        assert_eq!(target_size(7, 5, &spec(sized(PreserveAspectRatio, 100, 3), RGB24)), Ok((4, 3)));
        // Pad: exactly the size, content centred, the odd pixel to the right/bottom.
        assert_eq!(lay(1920, 1080, sized(Pad, 416, 416)), Ok(Layout { width: 416, height: 416, content: rect(0, 91, 416, 234) }));
        assert_eq!(lay(1080, 1920, sized(Pad, 416, 416)).unwrap().content, rect(91, 0, 234, 416));
        assert_eq!(lay(100, 50, sized(Pad, 41, 41)).unwrap().content, rect(0, 10, 41, 21)); // 20.5 → 21
        assert_eq!(lay(100, 50, sized(Pad, 41, 40)).unwrap().content, rect(0, 9, 41, 21)); // bars 9 + 10
        assert_eq!(lay(640, 480, sized(Pad, 320, 240)).unwrap().content, rect(0, 0, 320, 240));
        assert_eq!(lay(1408, 786, sized(Pad, 1408, 786)).unwrap().content, rect(0, 0, 1408, 786));
        // 1x1 sources and outputs.
        assert_eq!(target_size(1, 1, &spec(sized(PreserveAspectRatio, 416, 416), RGB24)), Ok((416, 416)));
        assert_eq!(lay(1, 1, sized(Pad, 416, 200)).unwrap().content, rect(108, 0, 200, 200));
        assert_eq!(target_size(1920, 1080, &spec(sized(Stretch, 1, 1), RGB24)), Ok((1, 1)));
        assert_eq!(lay(1920, 1080, sized(Pad, 1, 1)).unwrap().content, rect(0, 0, 1, 1));
    }

    #[test]
    fn one_sided_and_extreme_aspect_ratios() {
        use ScaleMode::*;
        let one = |sw, sh, w, h| target_size(sw, sh, &spec(Some((PreserveAspectRatio, w, h)), RGB24));
        assert_eq!(one(1920, 1080, Some(640), None), Ok((640, 360)));
        assert_eq!(one(1920, 1080, None, Some(416)), Ok((740, 416))); // 739.56
        assert_eq!(one(768, 576, Some(333), None), Ok((333, 250)));
        assert_eq!(one(7, 5, None, Some(9)), Ok((13, 9))); // 12.6, upscaled
                                                           // Extreme ratios keep at least one pixel.
        assert_eq!(one(4000, 2, Some(100), None), Ok((100, 1)));
        assert_eq!(one(2, 4000, Some(100), Some(100)), Ok((1, 100)));
        assert_eq!(lay(4000, 2, sized(Pad, 100, 100)).unwrap().content, rect(0, 49, 100, 1));
        assert_eq!(lay(2, 4000, sized(Pad, 100, 100)).unwrap().content, rect(49, 0, 1, 100));
        // The computed side may not exceed the compiler's limit.
        assert_eq!(one(2, 4000, Some(8192), None), Err(ImageError::TooLarge { width: 8192, height: 16_384_000, max: 8192 }));
        assert_eq!(one(4000, 2, None, Some(10)), Err(ImageError::TooLarge { width: 20_000, height: 10, max: 8192 }));
        assert_eq!(one(1, 1, Some(8192), None), Ok((8192, 8192)));
    }

    #[test]
    fn impossible_specs_are_typed_errors() {
        use ScaleMode::*;
        let spec_err = |r: Result<Layout, ImageError>| matches!(r, Err(ImageError::Spec(_)));
        assert!(spec_err(lay(640, 480, sized(Stretch, 0, 10))));
        assert!(spec_err(lay(640, 480, sized(Pad, 10, 0))));
        assert!(spec_err(lay(640, 480, Some((PreserveAspectRatio, Some(0), None)))));
        assert!(spec_err(lay(640, 480, Some((PreserveAspectRatio, None, None)))));
        assert!(spec_err(lay(640, 480, Some((Pad, Some(10), None)))));
        assert!(spec_err(lay(640, 480, Some((Stretch, None, Some(10))))));
        assert!(matches!(lay(0, 480, None), Err(ImageError::Source(_))));
        // Through prepare too, for every format.
        let pic = Pic::solid(8, 8, 100, 128, 128);
        for f in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Jpeg { quality: 90 }, I420, RGB24] {
            assert!(matches!(prepare(&pic.yuv(), &spec(sized(Pad, 0, 0), f)), Err(ImageError::Spec(_))));
        }
    }

    #[test]
    fn bad_sources_are_typed_errors() {
        let pic = Pic::solid(8, 6, 100, 128, 128);
        let ok = pic.yuv();
        let s = spec(None, RGB24);
        assert!(prepare(&ok, &s).is_ok());
        let bad = [
            Yuv420 { width: 0, ..ok },
            Yuv420 { height: 0, ..ok },
            Yuv420 { y: &pic.y[..pic.y.len() - 6], ..ok },
            Yuv420 { y_stride: 7, ..ok },
            Yuv420 { u: &pic.u[..5], ..ok },
            Yuv420 { v: &[], ..ok },
            Yuv420 { uv_stride: 3, ..ok },
            Yuv420 { width: 9, ..ok },
        ];
        for (i, b) in bad.iter().enumerate().take(7) {
            assert!(matches!(prepare(b, &s), Err(ImageError::Source(_))), "case {i}");
        }
        // The last one is valid: 9 wide fits the padded strides (13 and 7).
        assert!(prepare(&bad[7], &s).is_ok());
    }

    #[test]
    fn prepared_sizes_for_every_format() {
        use ScaleMode::*;
        let sources = [(1, 1), (2, 2), (7, 5), (5, 7), (33, 17), (64, 36)];
        let scales = [
            None,
            sized(Stretch, 13, 7),
            sized(Stretch, 1, 1),
            sized(Pad, 16, 16),
            sized(Pad, 9, 11),
            sized(PreserveAspectRatio, 20, 20),
            Some((PreserveAspectRatio, Some(3), None)),
            Some((PreserveAspectRatio, None, Some(70))),
        ];
        let mut formats: Vec<ImageFormat> = ALL_RAW.iter().map(|&p| ImageFormat::Raw(p)).collect();
        formats.extend([ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Jpeg { quality: 75 }]);
        let mut pr = Preparer::new();
        for (sw, sh) in sources {
            let pic = busy(sw, sh);
            for scale in scales {
                for f in &formats {
                    let sp = spec(scale, *f);
                    let (w, h) = target_size(sw, sh, &sp).unwrap();
                    let p = pr.prepare(&pic.yuv(), &sp).unwrap_or_else(|e| panic!("{sw}x{sh} {scale:?} {f:?}: {e}"));
                    assert_eq!((p.width, p.height), (w, h));
                    let (wu, hu) = (w as usize, h as usize);
                    match f {
                        ImageFormat::Raw(PixelFormat::Yuv420p) => {
                            assert_eq!(p.bytes.len(), wu * hu + 2 * wu.div_ceil(2) * hu.div_ceil(2));
                            assert_eq!(p.stride(), Some(w));
                        }
                        ImageFormat::Raw(pf) => {
                            assert_eq!(p.bytes.len(), wu * hu * bytes_per_pixel(*pf));
                            assert_eq!(p.content_type, "image/x-raw");
                            assert_eq!(p.pixel_format, Some(*pf));
                            assert_eq!(p.stride(), Some(w * bytes_per_pixel(*pf) as u32));
                        }
                        _ => {
                            assert_eq!(decode(&p).len(), wu * hu * 3);
                            assert_eq!((p.pixel_format, p.stride()), (None, None));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn colour_conversion_within_one_of_exact() {
        let mut worst = 0.0f64;
        for y in (0..=255u8).step_by(3) {
            for u in (0..=255u8).step_by(5) {
                for v in (0..=255u8).step_by(5) {
                    let got = yuv_to_rgb(y, u, v);
                    for (g, e) in got.iter().zip(reference_rgb(y, u, v)) {
                        worst = worst.max((f64::from(*g) - e).abs());
                    }
                }
            }
        }
        assert!(worst <= 1.0, "worst error {worst}");
        // Known points: limited-range black, white, and the 75 % bars.
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(126, 128, 128), [128, 128, 128]);
    }

    /// ITU-R BT.601 75 % colour bars (Y, Cb, Cr) and their RGB.
    const BARS: [([u8; 3], [u8; 3]); 8] = [
        ([180, 128, 128], [191, 191, 191]),
        ([162, 44, 142], [191, 191, 0]),
        ([131, 156, 44], [0, 191, 191]),
        ([112, 72, 58], [0, 191, 0]),
        ([84, 184, 198], [191, 0, 191]),
        ([65, 100, 212], [191, 0, 0]),
        ([35, 212, 114], [0, 0, 191]),
        ([16, 128, 128], [0, 0, 0]),
    ];

    #[test]
    fn colour_bars_survive_scaling_within_two() {
        // 8 bars of 40 px (chroma 20 samples) across 320x48; check the middle of every bar at
        // native size, shrunk 2.5x, enlarged 1.5x and padded, in rgb24, bgr24 and PNG.
        let pic = Pic::new(320, 48, |x, _| BARS[x / 40].0[0], |x, _| (BARS[x / 20].0[1], BARS[x / 20].0[2]));
        for (scale, w) in [(None, 320), (sized(ScaleMode::Stretch, 128, 20), 128), (sized(ScaleMode::Stretch, 480, 72), 480)] {
            let p = prepare(&pic.yuv(), &spec(scale, RGB24)).unwrap();
            let bgr = prepare(&pic.yuv(), &spec(scale, ImageFormat::Raw(PixelFormat::Bgr24))).unwrap();
            let png = decode(&prepare(&pic.yuv(), &spec(scale, ImageFormat::Png)).unwrap());
            let row = (p.height as usize / 2) * w * 3;
            for (i, (_, rgb)) in BARS.iter().enumerate() {
                let x = (i * w + w / 2) / 8;
                let got = &p.bytes[row + x * 3..row + x * 3 + 3];
                for c in 0..3 {
                    assert!((i32::from(got[c]) - i32::from(rgb[c])).abs() <= 2, "bar {i} at {x}/{w}: {got:?} vs {rgb:?}");
                    assert_eq!(bgr.bytes[row + x * 3 + 2 - c], got[c]);
                    assert_eq!(png[row + x * 3 + c], got[c]);
                }
            }
        }
    }

    #[test]
    fn pad_bars_are_black_and_the_picture_centred() {
        use ScaleMode::Pad;
        let (yc, uc, vc) = (145, 54, 34); // a green
        let colour = yuv_to_rgb(yc, uc, vc);
        // Letterbox: 64x32 into 40x40 → 40x20 at y = 10.
        let wide = Pic::solid(64, 32, yc, uc, vc);
        // Pillarbox: 32x64 into 40x40 → 20x40 at x = 10.
        let tall = Pic::solid(32, 64, yc, uc, vc);
        for (pic, content) in [(&wide, rect(0, 10, 40, 20)), (&tall, rect(10, 0, 20, 40))] {
            for pf in ALL_RAW.iter().filter(|&&p| p != PixelFormat::Yuv420p) {
                let p = prepare(&pic.yuv(), &spec(sized(Pad, 40, 40), ImageFormat::Raw(*pf))).unwrap();
                assert_eq!(p.content, content);
                let n = bytes_per_pixel(*pf);
                let rgb24 = prepare(&pic.yuv(), &spec(sized(Pad, 40, 40), RGB24)).unwrap();
                for y in 0..40u32 {
                    for x in 0..40u32 {
                        let inside = x >= content.x && x < content.x + content.width && y >= content.y && y < content.y + content.height;
                        let i = (y * 40 + x) as usize;
                        let got = &rgb24.bytes[i * 3..i * 3 + 3];
                        assert_eq!(got, if inside { &colour[..] } else { &[0, 0, 0][..] }, "{x},{y}");
                        let px = &p.bytes[i * n..(i + 1) * n];
                        if !inside {
                            let black: &[u8] = match pf {
                                PixelFormat::Argb | PixelFormat::Abgr => &[255, 0, 0, 0],
                                PixelFormat::Rgba | PixelFormat::Bgra => &[0, 0, 0, 255],
                                _ => &[0, 0, 0][..n],
                            };
                            assert_eq!(px, black, "{pf:?} bar at {x},{y}");
                        }
                    }
                }
            }
            // yuv420p: Y 16, U and V 128 in the bars; the colour inside.
            let p = prepare(&pic.yuv(), &spec(sized(Pad, 40, 40), I420)).unwrap();
            let (y, uv) = p.bytes.split_at(1600);
            let (u, v) = uv.split_at(400);
            for r in 0..40u32 {
                for c in 0..40u32 {
                    let inside = c >= content.x && c < content.x + content.width && r >= content.y && r < content.y + content.height;
                    assert_eq!(y[(r * 40 + c) as usize], if inside { yc } else { 16 });
                    let ci = ((r / 2) * 20 + c / 2) as usize;
                    assert_eq!((u[ci], v[ci]), if inside { (uc, vc) } else { (128, 128) }, "chroma at {c},{r}");
                }
            }
            // Encoded: black bars within JPEG error, exact in PNG and BMP.
            for f in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Jpeg { quality: 90 }] {
                let px = decode(&prepare(&pic.yuv(), &spec(sized(Pad, 40, 40), f)).unwrap());
                let tol = if matches!(f, ImageFormat::Jpeg { .. }) { 6 } else { 0 };
                // Corners and the middle of each bar are black; the centre is the colour.
                let corners = [(0, 0), (39, 0), (0, 39), (39, 39)];
                for (x, y) in corners {
                    let i = (y * 40 + x) * 3;
                    assert!(px[i..i + 3].iter().all(|&c| c <= tol), "{f:?} corner {x},{y}: {:?}", &px[i..i + 3]);
                }
                let i = (20 * 40 + 20) * 3;
                for c in 0..3 {
                    assert!((i32::from(px[i + c]) - i32::from(colour[c])).abs() <= tol as i32 + 2, "{f:?} centre {:?}", &px[i..i + 3]);
                }
            }
        }
        // Odd free space: 100x50 into 41x40 → 41x21 at y = 9: rows 0..9 black, 9..30 picture.
        let pic = Pic::solid(100, 50, 235, 128, 128);
        let p = prepare(&pic.yuv(), &spec(sized(Pad, 41, 40), RGB24)).unwrap();
        let at = |x: usize, y: usize| p.bytes[(y * 41 + x) * 3];
        assert_eq!((at(0, 8), at(0, 9), at(40, 29), at(40, 30), at(20, 39)), (0, 255, 255, 0, 0));
    }

    #[test]
    fn raw_layouts_on_2x2_pictures() {
        // Find YUV values that convert to exactly the colour wanted.
        let mut found = std::collections::HashMap::new();
        let mut find = |want: [u8; 3]| -> (u8, u8, u8) {
            *found.entry(want).or_insert_with(|| {
                let all = (0..=255u8).flat_map(|y| (0..=255u8).flat_map(move |u| (0..=255u8).map(move |v| (y, u, v))));
                all.into_iter().find(|&(y, u, v)| yuv_to_rgb(y, u, v) == want).expect("some YUV gives the colour")
            })
        };
        let layouts: [(PixelFormat, [u8; 3], &[u8]); 22] = [
            (PixelFormat::Rgb565le, [255, 0, 0], &[0x00, 0xF8]),
            (PixelFormat::Rgb565be, [255, 0, 0], &[0xF8, 0x00]),
            (PixelFormat::Rgb565le, [0, 255, 0], &[0xE0, 0x07]),
            (PixelFormat::Rgb565be, [0, 0, 255], &[0x00, 0x1F]),
            (PixelFormat::Rgb555le, [255, 0, 0], &[0x00, 0x7C]),
            (PixelFormat::Rgb555be, [255, 0, 0], &[0x7C, 0x00]),
            (PixelFormat::Rgb555le, [0, 255, 0], &[0xE0, 0x03]),
            (PixelFormat::Rgb555be, [0, 0, 255], &[0x00, 0x1F]),
            (PixelFormat::Rgb555le, [255, 255, 255], &[0xFF, 0x7F]),
            (PixelFormat::Rgb565be, [255, 255, 255], &[0xFF, 0xFF]),
            (PixelFormat::Rgb24, [255, 0, 0], &[255, 0, 0]),
            (PixelFormat::Bgr24, [255, 0, 0], &[0, 0, 255]),
            (PixelFormat::Rgb24, [0, 0, 255], &[0, 0, 255]),
            (PixelFormat::Bgr24, [0, 0, 255], &[255, 0, 0]),
            (PixelFormat::Argb, [255, 0, 0], &[255, 255, 0, 0]),
            (PixelFormat::Rgba, [255, 0, 0], &[255, 0, 0, 255]),
            (PixelFormat::Abgr, [255, 0, 0], &[255, 0, 0, 255]),
            (PixelFormat::Bgra, [255, 0, 0], &[0, 0, 255, 255]),
            (PixelFormat::Argb, [0, 0, 255], &[255, 0, 0, 255]),
            (PixelFormat::Rgba, [0, 0, 255], &[0, 0, 255, 255]),
            (PixelFormat::Abgr, [0, 0, 255], &[255, 255, 0, 0]),
            (PixelFormat::Bgra, [0, 0, 255], &[255, 0, 0, 255]),
        ];
        for (pf, colour, bytes) in layouts {
            let (y, u, v) = find(colour);
            let pic = Pic::solid(2, 2, y, u, v);
            let p = prepare(&pic.yuv(), &spec(None, ImageFormat::Raw(pf))).unwrap();
            assert_eq!(&p.bytes[..], bytes.repeat(4), "{pf:?} of {colour:?}");
        }
        // Pixel order: four greys (chroma is shared by a 2x2 block), row-major, top row first.
        let greys = [16u8, 235, 126, 81];
        let pic = Pic::new(2, 2, |x, y| greys[y * 2 + x], |_, _| (128, 128));
        let g: Vec<u8> = greys.iter().map(|&y| yuv_to_rgb(y, 128, 128)[0]).collect();
        assert_eq!(g, [0, 255, 128, 76]);
        let raw = |pf| prepare(&pic.yuv(), &spec(None, ImageFormat::Raw(pf))).unwrap().bytes.to_vec();
        assert_eq!(raw(PixelFormat::Rgb24), [0, 0, 0, 255, 255, 255, 128, 128, 128, 76, 76, 76]);
        assert_eq!(raw(PixelFormat::Bgra), [0, 0, 0, 255, 255, 255, 255, 255, 128, 128, 128, 255, 76, 76, 76, 255]);
        // 128 grey: r=g=b=0x80 → 565 0x8410, 555 0x4210; 76 = 0x4C → 565 0x4A69, 555 0x2529.
        assert_eq!(raw(PixelFormat::Rgb565le), [0, 0, 0xFF, 0xFF, 0x10, 0x84, 0x69, 0x4A]);
        assert_eq!(raw(PixelFormat::Rgb555be), [0, 0, 0x7F, 0xFF, 0x42, 0x10, 0x25, 0x29]);
        assert_eq!(raw(PixelFormat::Yuv420p), [16, 235, 126, 81, 128, 128]);
    }

    #[test]
    fn native_yuv420p_is_an_exact_copy_of_odd_planes() {
        let pic = busy(7, 5);
        let p = prepare(&pic.yuv(), &spec(None, I420)).unwrap();
        let mut want = Vec::new();
        for r in 0..5 {
            want.extend_from_slice(&pic.y[r * pic.ys..r * pic.ys + 7]);
        }
        for plane in [&pic.u, &pic.v] {
            for r in 0..3 {
                want.extend_from_slice(&plane[r * pic.cs..r * pic.cs + 4]);
            }
        }
        assert_eq!(&p.bytes[..], &want[..]);
        // And a native RGB picture uses each luma sample as it is.
        let grey = Pic::new(7, 5, |x, y| (16 + x * 30 + y) as u8, |_, _| (128, 128));
        let p = prepare(&grey.yuv(), &spec(None, RGB24)).unwrap();
        for y in 0..5 {
            for x in 0..7 {
                assert_eq!(p.bytes[(y * 7 + x) * 3], yuv_to_rgb((16 + x * 30 + y) as u8, 128, 128)[0]);
            }
        }
    }

    #[test]
    fn gradients_scale_linearly_and_fine_detail_does_not_alias() {
        use ScaleMode::Stretch;
        let luma = |p: &Prepared| p.bytes[..(p.width * p.height) as usize].to_vec();
        // A horizontal ramp of 1 per pixel, 256 wide: shrink 4x → the ramp every 4 px.
        let ramp = Pic::new(256, 8, |x, _| x as u8, |_, _| (128, 128));
        let p = prepare(&ramp.yuv(), &spec(sized(Stretch, 64, 8), I420)).unwrap();
        let y = luma(&p);
        for (x, &v) in y.iter().enumerate().take(62).skip(2) {
            // Output pixel x covers source 4x..4x+4, centre 4x + 1.5.
            assert!((f64::from(v) - (4.0 * x as f64 + 1.5)).abs() <= 1.0, "shrunk ramp at {x}: {v}");
        }
        // Enlarge 64 → 256: linear interpolation between samples.
        let ramp = Pic::new(64, 4, |x, _| (x * 4) as u8, |_, _| (128, 128));
        let p = prepare(&ramp.yuv(), &spec(sized(Stretch, 256, 4), I420)).unwrap();
        let y = luma(&p);
        for (x, &v) in y.iter().enumerate().take(254).skip(2) {
            // Output centre x + 0.5 is source position (x + 0.5) / 4 - 0.5.
            let want = ((x as f64 + 0.5) / 4.0 - 0.5) * 4.0;
            assert!((f64::from(v) - want).abs() <= 1.0, "enlarged ramp at {x}: {v} vs {want}");
        }
        // Also vertically, through RGB.
        let ramp = Pic::new(4, 256, |_, y| (16 + y * 219 / 255) as u8, |_, _| (128, 128));
        let p = prepare(&ramp.yuv(), &spec(sized(Stretch, 4, 50), RGB24)).unwrap();
        let col: Vec<u8> = (0..50).map(|r| p.bytes[r * 12]).collect();
        assert!(col.windows(2).all(|w| w[0] < w[1]), "{col:?}");
        assert!(col[0] <= 5 && col[49] >= 248, "{col:?}");
        // A 1-px checkerboard of black and white shrunk 4.6x is an even grey, not moiré.
        let check = Pic::new(1920, 1080, |x, y| if (x + y) % 2 == 0 { 16 } else { 235 }, |_, _| (128, 128));
        for (w, h) in [(416, 234), (960, 540), (640, 360)] {
            let p = prepare(&check.yuv(), &spec(sized(Stretch, w, h), I420)).unwrap();
            let y = luma(&p);
            let (lo, hi) = (y.iter().min().unwrap(), y.iter().max().unwrap());
            assert!(*lo >= 115 && *hi <= 136, "{w}x{h}: {lo}..{hi}");
        }
    }

    #[test]
    fn encoded_images_decode_to_the_raw_rgb() {
        use ScaleMode::*;
        let pic = natural(333, 211);
        let grad = Pic::new(320, 240, |x, y| (16 + (x + y) * 219 / 560) as u8, |x, y| ((64 + x / 2) as u8, (64 + y / 2) as u8));
        for (pic, scale) in [(&pic, None), (&pic, sized(Pad, 200, 200)), (&grad, None), (&grad, sized(Stretch, 416, 416))] {
            let rgb = prepare(&pic.yuv(), &spec(scale, RGB24)).unwrap().bytes;
            let png = prepare(&pic.yuv(), &spec(scale, ImageFormat::Png)).unwrap();
            assert_eq!(png.content_type, "image/png");
            assert!(decode(&png) == rgb[..], "PNG differs");
            let bmp = prepare(&pic.yuv(), &spec(scale, ImageFormat::Bmp)).unwrap();
            assert_eq!(bmp.content_type, "image/bmp");
            assert!(decode(&bmp) == rgb[..], "BMP differs");
            for (q, min) in [(90, 35.0), (100, 38.0), (50, 28.0)] {
                let jpg = prepare(&pic.yuv(), &spec(scale, ImageFormat::Jpeg { quality: q })).unwrap();
                assert_eq!(jpg.content_type, "image/jpeg");
                let db = psnr(&decode(&jpg), &rgb);
                eprintln!("JPEG q{q} {scale:?}: {db:.1} dB");
                assert!(db > min, "JPEG q{q} {scale:?}: {db:.1} dB");
            }
        }
        // Smooth content at q90 is far above the bar; low qualities still decode.
        let jpg = prepare(&grad.yuv(), &spec(None, ImageFormat::Jpeg { quality: 90 })).unwrap();
        let rgb = prepare(&grad.yuv(), &spec(None, RGB24)).unwrap().bytes;
        assert!(psnr(&decode(&jpg), &rgb) > 40.0);
        for q in [0, 1, 10] {
            let jpg = prepare(&grad.yuv(), &spec(None, ImageFormat::Jpeg { quality: q })).unwrap();
            assert!(psnr(&decode(&jpg), &rgb) > 15.0, "q{q}");
        }
        // Extremes of the range (super-white, super-black, saturated chroma) stay decodable.
        let wild = Pic::new(40, 24, |x, y| if (x + y) % 2 == 0 { 0 } else { 255 }, |x, _| if x % 2 == 0 { (0, 255) } else { (255, 0) });
        for q in [1, 90, 100] {
            let jpg = prepare(&wild.yuv(), &spec(None, ImageFormat::Jpeg { quality: q })).unwrap();
            decode(&jpg);
        }
    }

    #[test]
    fn jpeg_structure() {
        let pic = busy(17, 9);
        let p = prepare(&pic.yuv(), &spec(None, ImageFormat::Jpeg { quality: 90 })).unwrap();
        let b = &p.bytes;
        assert_eq!(&b[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert_eq!(&b[6..11], b"JFIF\0");
        assert_eq!(&b[b.len() - 2..], &[0xFF, 0xD9]);
        // SOF0: 8 bits, 9 high, 17 wide, Y 2x2, Cb and Cr 1x1.
        let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(&b[sof + 4..sof + 19], &[8, 0, 9, 0, 17, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        // q50 writes the Annex K tables unscaled (zig-zag order).
        let p = prepare(&pic.yuv(), &spec(None, ImageFormat::Jpeg { quality: 50 })).unwrap();
        let dqt = p.bytes.windows(2).position(|w| w == [0xFF, 0xDB]).unwrap();
        assert_eq!(&p.bytes[dqt + 4..dqt + 9], &[0, 16, 11, 12, 14]);
    }

    #[test]
    fn bmp_header() {
        // 3 px wide: rows of 9 bytes padded to 12.
        let pic = Pic::new(3, 2, |x, y| [[16, 235, 126], [81, 145, 41]][y][x], |_, _| (128, 128));
        let p = prepare(&pic.yuv(), &spec(None, ImageFormat::Bmp)).unwrap();
        let b = &p.bytes;
        let u32le = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let u16le = |at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
        assert_eq!(&b[..2], b"BM");
        assert_eq!(u32le(2) as usize, b.len());
        assert_eq!(b.len(), 54 + 12 * 2);
        assert_eq!(u32le(6), 0);
        assert_eq!(u32le(10), 54); // pixel data offset
        assert_eq!(u32le(14), 40); // BITMAPINFOHEADER
        assert_eq!((u32le(18), u32le(22)), (3, 2)); // positive height: bottom-up
        assert_eq!((u16le(26), u16le(28)), (1, 24));
        assert_eq!(u32le(30), 0); // BI_RGB
        assert_eq!(u32le(34), 24);
        assert_eq!((u32le(38), u32le(42), u32le(46), u32le(50)), (2835, 2835, 0, 0));
        // Bottom row first, BGR, zero padding.
        let g = |y: u8| yuv_to_rgb(y, 128, 128)[0];
        let row = |ys: [u8; 3]| -> Vec<u8> {
            let mut r: Vec<u8> = ys.iter().flat_map(|&y| [g(y); 3]).collect();
            r.extend([0, 0, 0]);
            r
        };
        assert_eq!(&b[54..66], &row([81, 145, 41])[..]);
        assert_eq!(&b[66..78], &row([16, 235, 126])[..]);
    }

    #[test]
    fn a_preparer_gives_the_same_bytes_as_a_fresh_one() {
        use ScaleMode::*;
        let a = busy(64, 48);
        let b = busy(33, 17);
        let mut pr = Preparer::new();
        let cases = [
            (&a, spec(sized(Pad, 40, 40), ImageFormat::Jpeg { quality: 80 })),
            (&b, spec(sized(Pad, 40, 40), ImageFormat::Jpeg { quality: 80 })),
            (&a, spec(sized(Pad, 40, 40), RGB24)),
            (&a, spec(sized(Stretch, 40, 40), RGB24)),
            (&a, spec(sized(Stretch, 40, 40), I420)),
            (&b, spec(None, ImageFormat::Png)),
            (&a, spec(sized(Pad, 40, 40), ImageFormat::Jpeg { quality: 80 })),
        ];
        for (pic, sp) in cases.iter().chain(cases.iter()) {
            let reused = pr.prepare(&pic.yuv(), sp).unwrap();
            let fresh = Preparer::new().prepare(&pic.yuv(), sp).unwrap();
            assert_eq!(reused.bytes, fresh.bytes, "{sp:?}");
        }
    }

    /// The first picture of config/media/vtest.mkv through our decoder and `prepare`, against
    /// ffmpeg's own decode, scale and RGB conversion of the same frame.
    #[test]
    fn real_frame_matches_ffmpeg() {
        use crate::media::decode::Decoder;
        use crate::media::mkv::read_h264_file;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media/vtest.mkv");
        let track = read_h264_file(&path).expect("demux vtest.mkv");
        let mut d = Decoder::new();
        // The first picture, owned: (width, height, planes, strides).
        type Owned = (u32, u32, [Vec<u8>; 3], usize, usize);
        let mut first: Option<Owned> = None;
        let mut keep = |f: &Frame<'_>| {
            if first.is_none() {
                first = Some((f.width as u32, f.height as u32, [f.y.to_vec(), f.u.to_vec(), f.v.to_vec()], f.y_stride, f.uv_stride));
            }
        };
        d.set_avcc(&track.avcc, &mut keep).expect("avcC");
        for s in track.frames.iter().take(10) {
            let _ = d.decode(&s.data, s.pts_90k, s.keyframe, &mut keep);
        }
        d.flush(&mut keep);
        let (width, height, [y, u, v], y_stride, uv_stride) = first.expect("a decoded frame");
        assert_eq!((width, height), (768, 576));
        let src = Yuv420 { width, height, y: &y, y_stride, u: &u, v: &v, uv_stride };

        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-vf", "select=eq(n\\,0),scale=416:416", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .expect("ffmpeg is installed by scripts/test");
        assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout.len(), 416 * 416 * 3);

        let stretch = sized(ScaleMode::Stretch, 416, 416);
        let jpg = prepare(&src, &spec(stretch, ImageFormat::Jpeg { quality: 90 })).unwrap();
        let db_jpeg = psnr(&decode(&jpg), &out.stdout);
        let rgb = prepare(&src, &spec(stretch, RGB24)).unwrap();
        let db_raw = psnr(&rgb.bytes, &out.stdout);
        eprintln!("vtest frame 0 → 416x416 vs ffmpeg: JPEG q90 {db_jpeg:.1} dB ({} bytes), rgb24 {db_raw:.1} dB", jpg.bytes.len());
        assert!(db_jpeg > 30.0, "JPEG {db_jpeg:.1} dB");
        assert!(db_raw > 30.0, "rgb24 {db_raw:.1} dB");
    }
}
