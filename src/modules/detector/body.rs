//! HTTP bodies into pictures: which Content-Types are accepted, the encoded formats (JPEG,
//! PNG, BMP through the `image` crate, with size limits) and `image/x-raw`. Pure.
//!
//! # `image/x-raw`
//!
//! LVA sends raw frames without saying their size or layout (SPEC §5.1 marks this as a
//! gap): the server must know them. Here they come, first found wins, from
//!
//! 1. the request's query: `?width=416&height=416&format=bgr24` (LVA sends the endpoint
//!    URL's path and query verbatim, so a topology's `inferencingUrl` can carry them);
//! 2. Content-Type parameters: `image/x-raw; width=416; height=416; format=bgr24`;
//! 3. the server's defaults (`vela detect --raw-size 416x416 --raw-format bgr24`).
//!
//! Formats are LVA's `pixelFormat` names (`yuv420p`, `rgb565be`, `rgb565le`, `rgb555be`,
//! `rgb555le`, `rgb24`, `bgr24`, `argb`, `rgba`, `abgr`, `bgra`), any case. Rows are tightly
//! packed unless `stride` (bytes per row; packed formats only) says otherwise; yuv420p is
//! the Y plane then the U and V planes of `⌈w/2⌉×⌈h/2⌉`, BT.601 limited range (what the
//! engine sends, see `media/image.rs`). The body's length must be exactly what the size
//! and format need: any other length is refused with both numbers, so a wrong
//! configuration is visible at the first frame rather than as garbage detections.

use bytes::Bytes;

use super::input::{Packed, Picture};
use crate::topology::nodes::common::PixelFormat;
use crate::topology::reader::TextEnum;

/// Largest width or height accepted, encoded or raw.
pub const MAX_SIDE: u32 = 16384;
/// Decoders may allocate at most this much for one picture.
const MAX_DECODE_ALLOC: u64 = 512 << 20;

/// How a body will be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Bmp,
    Raw,
    /// No useful Content-Type (missing or `application/octet-stream`): recognise JPEG, PNG
    /// or BMP by their signature.
    Sniff,
    /// `multipart/form-data` (the Custom Vision route takes a part of it).
    Multipart,
}

/// Why a body was refused: `Unsupported` maps to 415, `Undecodable` to 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("unsupported Content-Type {0:?}: send image/jpeg, image/png, image/bmp or image/x-raw")]
    Unsupported(String),
    #[error("{0}")]
    Undecodable(String),
}

/// Reads a Content-Type (`None` when absent). `multipart/form-data` is recognised; whether a
/// route accepts it is the caller's business.
pub fn kind_of(content_type: Option<&str>) -> Result<Kind, BodyError> {
    let Some(ct) = content_type else { return Ok(Kind::Sniff) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    Ok(match essence.as_str() {
        "" | "application/octet-stream" | "binary/octet-stream" => Kind::Sniff,
        "image/jpeg" | "image/jpg" | "image/pjpeg" => Kind::Jpeg,
        "image/png" => Kind::Png,
        "image/bmp" | "image/x-bmp" | "image/x-ms-bmp" => Kind::Bmp,
        "image/x-raw" => Kind::Raw,
        "multipart/form-data" => Kind::Multipart,
        _ => return Err(BodyError::Unsupported(ct.to_owned())),
    })
}

/// The encoded format of `data` by its signature.
pub fn sniff(data: &[u8]) -> Option<Kind> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if data.starts_with(b"BM") {
        Some(Kind::Bmp)
    } else {
        None
    }
}

/// Size and layout of a raw picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSpec {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes per row (packed formats); `None` = tightly packed.
    pub stride: Option<usize>,
}

impl Default for RawSpec {
    /// 416×416 bgr24: the model's own input size (a topology's `stretch` to it loses
    /// nothing) in OpenCV's channel order, which the one LVA sample sending raw used.
    fn default() -> Self {
        RawSpec { width: 416, height: 416, format: PixelFormat::Bgr24, stride: None }
    }
}

/// A pixel format by its LVA name, in any case.
pub fn pixel_format(name: &str) -> Option<PixelFormat> {
    PixelFormat::VALUES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim())).map(|(_, f)| *f)
}

/// `WxH` → (W, H).
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once(['x', 'X'])?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    ((1..=MAX_SIDE).contains(&w) && (1..=MAX_SIDE).contains(&h)).then_some((w, h))
}

impl RawSpec {
    /// The spec for one request: `width`, `height`, `format` (or `pixelFormat`) and
    /// `stride` from the query pairs, else from the Content-Type's parameters, else the
    /// defaults, each independently.
    pub fn resolve(defaults: RawSpec, query: &[(String, String)], content_type: Option<&str>) -> Result<RawSpec, BodyError> {
        let lookup = |keys: &[&str]| -> Option<String> {
            let from_query = query.iter().find(|(k, _)| keys.iter().any(|w| k.eq_ignore_ascii_case(w))).map(|(_, v)| v.clone());
            from_query.or_else(|| keys.iter().find_map(|k| content_type.and_then(|ct| super::multipart::param(ct, k))))
        };
        let bad = |what: &str, v: &str| BodyError::Undecodable(format!("image/x-raw: invalid {what} {v:?}"));
        let side = |keys: &[&str], default: u32, what: &str| -> Result<u32, BodyError> {
            match lookup(keys) {
                None => Ok(default),
                Some(v) => v.trim().parse().ok().filter(|n| (1..=MAX_SIDE).contains(n)).ok_or_else(|| bad(what, &v)),
            }
        };
        let width = side(&["width"], defaults.width, "width")?;
        let height = side(&["height"], defaults.height, "height")?;
        let format = match lookup(&["format", "pixelFormat"]) {
            None => defaults.format,
            Some(v) => pixel_format(&v).ok_or_else(|| {
                let names: Vec<&str> = PixelFormat::VALUES.iter().map(|(n, _)| *n).collect();
                BodyError::Undecodable(format!("image/x-raw: unknown pixel format {v:?} (one of {})", names.join(", ")))
            })?,
        };
        let stride = match lookup(&["stride"]) {
            None => defaults.stride.filter(|_| width == defaults.width && format == defaults.format),
            Some(v) => Some(v.trim().parse().map_err(|_| bad("stride", &v))?),
        };
        Ok(RawSpec { width, height, format, stride })
    }
}

/// A decoded picture that owns its pixels (a raw body is kept as received when its layout
/// is one the model reads directly).
#[derive(Clone, Debug)]
pub struct OwnedPicture {
    data: Bytes,
    width: u32,
    height: u32,
    stride: usize,
    layout: Packed,
}

impl OwnedPicture {
    pub fn from_rgb(img: image::RgbImage) -> Self {
        let (width, height) = img.dimensions();
        OwnedPicture { data: Bytes::from(img.into_raw()), width, height, stride: width as usize * 3, layout: Packed::Rgb24 }
    }

    pub fn view(&self) -> Picture<'_> {
        Picture::new(&self.data, self.width, self.height, self.stride, self.layout).expect("checked when built")
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }
}

/// Decodes a body of a known kind (`Sniff` looks at its signature; `Multipart` is not a
/// picture and is refused).
pub fn decode(kind: Kind, body: Bytes, raw: &RawSpec) -> Result<OwnedPicture, BodyError> {
    let format = match kind {
        Kind::Raw => return decode_raw(body, raw),
        Kind::Jpeg => image::ImageFormat::Jpeg,
        Kind::Png => image::ImageFormat::Png,
        Kind::Bmp => image::ImageFormat::Bmp,
        Kind::Sniff => match sniff(&body) {
            Some(k) => return decode(k, body, raw),
            None if body.is_empty() => return Err(BodyError::Undecodable("empty body: no picture".into())),
            None => return Err(BodyError::Undecodable("could not decode image: the body is not JPEG, PNG or BMP".into())),
        },
        Kind::Multipart => return Err(BodyError::Unsupported("multipart/form-data".into())),
    };
    if body.is_empty() {
        return Err(BodyError::Undecodable("empty body: no picture".into()));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&body[..]), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let name = format!("{format:?}").to_uppercase();
    let img = reader.decode().map_err(|e| BodyError::Undecodable(format!("could not decode image as {name}: {e}")))?;
    Ok(OwnedPicture::from_rgb(img.into_rgb8()))
}

fn decode_raw(body: Bytes, spec: &RawSpec) -> Result<OwnedPicture, BodyError> {
    use PixelFormat::*;
    let (w, h) = (spec.width as usize, spec.height as usize);
    let fmt = spec.format.as_str();
    let wrong_len = |need: usize, stride: usize| {
        BodyError::Undecodable(format!(
            "image/x-raw: {} bytes, but {w}x{h} {fmt} with {stride} bytes per row is {need} bytes \
             (say the size and format with ?width=&height=&format= on the URL)",
            body.len()
        ))
    };
    let packed = |layout: Packed| -> Result<OwnedPicture, BodyError> {
        let row = w * layout.bytes_per_pixel();
        let stride = spec.stride.unwrap_or(row);
        if stride < row {
            return Err(BodyError::Undecodable(format!(
                "image/x-raw: stride {stride} is shorter than a {w}-pixel {fmt} row ({row} bytes)"
            )));
        }
        let need = stride * h;
        if body.len() != need && body.len() != stride * (h - 1) + row {
            return Err(wrong_len(need, stride));
        }
        Ok(OwnedPicture { data: body.clone(), width: spec.width, height: spec.height, stride, layout })
    };
    match spec.format {
        Rgb24 => packed(Packed::Rgb24),
        Bgr24 => packed(Packed::Bgr24),
        Rgba => packed(Packed::Rgba),
        Bgra => packed(Packed::Bgra),
        Argb => packed(Packed::Argb),
        Abgr => packed(Packed::Abgr),
        Rgb565be | Rgb565le | Rgb555be | Rgb555le => {
            let stride = spec.stride.unwrap_or(w * 2);
            if stride < w * 2 || body.len() != stride * h {
                return Err(wrong_len(stride.max(w * 2) * h, stride));
            }
            let mut out = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for px in body[y * stride..y * stride + w * 2].chunks_exact(2) {
                    let v = match spec.format {
                        Rgb565be | Rgb555be => u16::from_be_bytes([px[0], px[1]]),
                        _ => u16::from_le_bytes([px[0], px[1]]),
                    };
                    let (r, g, b) = match spec.format {
                        Rgb565be | Rgb565le => (expand5(v >> 11), expand6(v >> 5), expand5(v)),
                        _ => (expand5(v >> 10), expand5(v >> 5), expand5(v)),
                    };
                    out.extend_from_slice(&[r, g, b]);
                }
            }
            Ok(OwnedPicture { data: Bytes::from(out), width: spec.width, height: spec.height, stride: w * 3, layout: Packed::Rgb24 })
        }
        Yuv420p => {
            if spec.stride.is_some_and(|s| s != w) {
                return Err(BodyError::Undecodable("image/x-raw: yuv420p must be tightly packed (no stride)".into()));
            }
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let need = w * h + 2 * cw * ch;
            if body.len() != need {
                return Err(wrong_len(need, w));
            }
            let (yp, uv) = body.split_at(w * h);
            let (up, vp) = uv.split_at(cw * ch);
            let mut out = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    let c = (y / 2) * cw + x / 2;
                    out.extend_from_slice(&yuv_to_rgb(yp[y * w + x], up[c], vp[c]));
                }
            }
            Ok(OwnedPicture { data: Bytes::from(out), width: spec.width, height: spec.height, stride: w * 3, layout: Packed::Rgb24 })
        }
    }
}

fn expand5(v: u16) -> u8 {
    let v = (v & 0x1F) as u8;
    (v << 3) | (v >> 2)
}

fn expand6(v: u16) -> u8 {
    let v = (v & 0x3F) as u8;
    (v << 2) | (v >> 4)
}

/// BT.601 limited range to RGB, rounded and clamped.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16);
    let (d, e) = (u as i32 - 128, v as i32 - 128);
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clamp(c + 409 * e), clamp(c - 100 * d - 208 * e), clamp(c + 516 * d)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn content_types() {
        assert_eq!(kind_of(None), Ok(Kind::Sniff));
        assert_eq!(kind_of(Some("application/octet-stream")), Ok(Kind::Sniff));
        assert_eq!(kind_of(Some("IMAGE/JPEG; q=1")), Ok(Kind::Jpeg));
        assert_eq!(kind_of(Some("image/png")), Ok(Kind::Png));
        assert_eq!(kind_of(Some("image/bmp")), Ok(Kind::Bmp));
        assert_eq!(kind_of(Some("image/x-raw; width=2")), Ok(Kind::Raw));
        assert_eq!(kind_of(Some("multipart/form-data; boundary=x")), Ok(Kind::Multipart));
        for ct in ["image/gif", "text/plain", "application/json", "video/mp4"] {
            assert!(matches!(kind_of(Some(ct)), Err(BodyError::Unsupported(_))), "{ct}");
        }
    }

    #[test]
    fn raw_spec_sources_in_order() {
        let d = RawSpec::default();
        assert_eq!(RawSpec::resolve(d, &[], None), Ok(d));
        let r =
            RawSpec::resolve(d, &q(&[("width", "640"), ("height", "360"), ("format", "RGB24")]), Some("image/x-raw; width=2; stride=2000"))
                .unwrap();
        assert_eq!(r, RawSpec { width: 640, height: 360, format: PixelFormat::Rgb24, stride: Some(2000) });
        let r = RawSpec::resolve(d, &[], Some("image/x-raw; width=8; height=4; pixelFormat=yuv420p")).unwrap();
        assert_eq!((r.width, r.height, r.format), (8, 4, PixelFormat::Yuv420p));
        assert!(RawSpec::resolve(d, &q(&[("width", "0")]), None).is_err());
        assert!(RawSpec::resolve(d, &q(&[("height", "x")]), None).is_err());
        let e = RawSpec::resolve(d, &q(&[("format", "nv12")]), None).unwrap_err();
        assert!(e.to_string().contains("bgr24"), "{e}");
        assert_eq!(parse_size("768x576"), Some((768, 576)));
        assert_eq!(parse_size("0x5"), None);
    }

    #[test]
    fn raw_layouts_decode_to_the_same_colours() {
        let (w, h) = (3u32, 2u32);
        let rgb = [10u8, 200, 30];
        let spec = |format| RawSpec { width: w, height: h, format, stride: None };
        let n = (w * h) as usize;
        let check = |pic: OwnedPicture, tol: i32, what: &str| {
            let v = pic.view();
            let px = v.row(1);
            let bpp = v.layout().bytes_per_pixel();
            let want = match v.layout() {
                Packed::Rgb24 => vec![rgb[0], rgb[1], rgb[2]],
                Packed::Bgr24 => vec![rgb[2], rgb[1], rgb[0]],
                Packed::Argb => vec![255, rgb[0], rgb[1], rgb[2]],
                l => panic!("{l:?}"),
            };
            for (a, b) in px[bpp..2 * bpp].iter().zip(&want) {
                assert!((*a as i32 - *b as i32).abs() <= tol, "{what}: {px:?} vs {want:?}");
            }
        };
        check(decode(Kind::Raw, Bytes::from(rgb.repeat(n)), &spec(PixelFormat::Rgb24)).unwrap(), 0, "rgb24");
        check(decode(Kind::Raw, Bytes::from([30u8, 200, 10].repeat(n)), &spec(PixelFormat::Bgr24)).unwrap(), 0, "bgr24");
        check(decode(Kind::Raw, Bytes::from([255u8, 10, 200, 30].repeat(n)), &spec(PixelFormat::Argb)).unwrap(), 0, "argb");
        let v565 = ((10u16 >> 3) << 11) | ((200u16 >> 2) << 5) | (30 >> 3);
        check(decode(Kind::Raw, Bytes::from(v565.to_be_bytes().repeat(n)), &spec(PixelFormat::Rgb565be)).unwrap(), 8, "rgb565be");
        check(decode(Kind::Raw, Bytes::from(v565.to_le_bytes().repeat(n)), &spec(PixelFormat::Rgb565le)).unwrap(), 8, "rgb565le");
        let v555 = ((10u16 >> 3) << 10) | ((200u16 >> 3) << 5) | (30 >> 3);
        check(decode(Kind::Raw, Bytes::from(v555.to_le_bytes().repeat(n)), &spec(PixelFormat::Rgb555le)).unwrap(), 8, "rgb555le");
        // BT.601 limited: (10, 200, 30) ≈ Y 122, U 81, V 57.
        let (y, u, v) = (122u8, 81u8, 57u8);
        let mut yuv = vec![y; n];
        yuv.extend(vec![u; 2]);
        yuv.extend(vec![v; 2]);
        check(decode(Kind::Raw, Bytes::from(yuv), &spec(PixelFormat::Yuv420p)).unwrap(), 4, "yuv420p");
        // Padded rows.
        let mut padded = Vec::new();
        for _ in 0..h {
            padded.extend(rgb.repeat(w as usize));
            padded.extend([0, 0]);
        }
        let s = RawSpec { stride: Some(11), ..spec(PixelFormat::Rgb24) };
        check(decode(Kind::Raw, Bytes::from(padded), &s).unwrap(), 0, "stride");
    }

    #[test]
    fn raw_lengths_must_match() {
        let spec = RawSpec { width: 4, height: 4, format: PixelFormat::Bgr24, stride: None };
        let e = decode(Kind::Raw, Bytes::from(vec![0u8; 47]), &spec).unwrap_err().to_string();
        assert!(e.contains("47 bytes") && e.contains("48 bytes"), "{e}");
        let yuv = RawSpec { format: PixelFormat::Yuv420p, ..spec };
        assert!(decode(Kind::Raw, Bytes::from(vec![0u8; 24]), &yuv).is_ok());
        assert!(decode(Kind::Raw, Bytes::from(vec![0u8; 25]), &yuv).is_err());
    }

    #[test]
    fn encoded_and_sniffed() {
        let img = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
        for (fmt, kind) in
            [(image::ImageFormat::Png, Kind::Png), (image::ImageFormat::Bmp, Kind::Bmp), (image::ImageFormat::Jpeg, Kind::Jpeg)]
        {
            let mut buf = std::io::Cursor::new(Vec::new());
            img.write_to(&mut buf, fmt).unwrap();
            let bytes = Bytes::from(buf.into_inner());
            assert_eq!(sniff(&bytes), Some(kind));
            for k in [kind, Kind::Sniff] {
                let pic = decode(k, bytes.clone(), &RawSpec::default()).unwrap();
                assert_eq!((pic.width(), pic.height()), (5, 4));
            }
        }
        let garbage = Bytes::from_static(b"this is not a picture");
        assert!(matches!(decode(Kind::Sniff, garbage.clone(), &RawSpec::default()), Err(BodyError::Undecodable(_))));
        let e = decode(Kind::Jpeg, garbage, &RawSpec::default()).unwrap_err();
        assert!(e.to_string().contains("JPEG"), "{e}");
        assert!(decode(Kind::Png, Bytes::new(), &RawSpec::default()).is_err());
    }
}
