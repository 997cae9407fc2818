//! Image preparation benchmark (issue 6): milliseconds per frame of
//! `vela::media::image::Preparer` for the specs extension processors use, from 1280×720 and
//! 1920×1080 pictures.
//!
//! Sources: the first frame of config/media/vtest.mkv scaled to each size by ffmpeg (real
//! content matters to the encoders); without ffmpeg, a synthetic picture (said in the output).
//! Cases: → 416×416 pad JPEG q90, → 416×416 stretch raw bgr24, → native PNG, → 640×360
//! preserveAspectRatio BMP. For reference, the `image` crate's JPEG encoder on the same
//! 416×416 picture (our RGB output of the same spec, so scaling is not counted for it).
//!
//! Each case runs for `--seconds` (default 1) after a warm-up; prints the median and the
//! fastest frame. Prints, never fails on timing.
//! `cargo bench --bench image [-- --seconds S]`

use std::process::Command;
use std::time::{Duration, Instant};
use vela::media::image::{Preparer, Yuv420};
use vela::topology::nodes::common::{ImageFormat, ImageScale, ImageSpec, PixelFormat, ScaleMode};

/// A tight I420 picture of `w`×`h` and where it came from.
fn source(w: u32, h: u32) -> (Vec<u8>, &'static str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(root.join("config/media/vtest.mkv"))
        .args(["-vf", &format!("select=eq(n\\,0),scale={w}:{h}"), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output();
    let (wu, hu) = (w as usize, h as usize);
    let size = wu * hu + 2 * wu.div_ceil(2) * hu.div_ceil(2);
    match out {
        Ok(o) if o.status.success() && o.stdout.len() == size => (o.stdout, "vtest.mkv frame 0 scaled by ffmpeg"),
        _ => {
            let mut data = vec![128u8; size];
            for (i, p) in data[..wu * hu].iter_mut().enumerate() {
                let (x, y) = (i % wu, i / wu);
                *p = (16 + (x * 3 + y * 5 + (x * y) % 7) % 220) as u8;
            }
            (data, "synthetic (ffmpeg not found)")
        }
    }
}

fn spec(mode: Option<(ScaleMode, Option<u32>, Option<u32>)>, format: ImageFormat) -> ImageSpec {
    ImageSpec { scale: mode.map(|(mode, width, height)| ImageScale { mode, width, height }), format }
}

/// Median and fastest duration of `f` over about `window`.
fn measure(window: Duration, mut f: impl FnMut() -> usize) -> (f64, f64, usize) {
    let mut bytes = 0;
    for _ in 0..3 {
        bytes = f();
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < window || times.len() < 5 {
        let t = Instant::now();
        bytes = f();
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[times.len() / 2]), ms(times[0]), bytes)
}

fn run(window: Duration) {
    let sizes = [(1280u32, 720u32), (1920, 1080)];
    let cases: [(&str, ImageSpec); 4] = [
        ("416x416 pad JPEG q90", spec(Some((ScaleMode::Pad, Some(416), Some(416))), ImageFormat::Jpeg { quality: 90 })),
        ("416x416 stretch raw bgr24", spec(Some((ScaleMode::Stretch, Some(416), Some(416))), ImageFormat::Raw(PixelFormat::Bgr24))),
        ("native PNG", spec(None, ImageFormat::Png)),
        ("640x360 preserveAspectRatio BMP", spec(Some((ScaleMode::PreserveAspectRatio, Some(640), Some(360))), ImageFormat::Bmp)),
    ];
    println!("{:<10} {:<34} {:>10} {:>10} {:>10}", "source", "case", "median ms", "min ms", "bytes");
    for (w, h) in sizes {
        let (data, origin) = source(w, h);
        let (wu, hu) = (w as usize, h as usize);
        let (y, uv) = data.split_at(wu * hu);
        let (u, v) = uv.split_at(wu.div_ceil(2) * hu.div_ceil(2));
        let pic = Yuv420 { width: w, height: h, y, y_stride: wu, u, v, uv_stride: wu.div_ceil(2) };
        let mut pr = Preparer::new();
        for (name, sp) in &cases {
            let (med, min, bytes) = measure(window, || pr.prepare(&pic, sp).expect("prepare").bytes.len());
            println!("{:<10} {name:<34} {med:>10.2} {min:>10.2} {bytes:>10}", format!("{w}x{h}"));
        }
        // Reference: the image crate's JPEG encoder (4:4:4) on our 416x416 padded RGB.
        let padded = ImageSpec { scale: cases[0].1.scale.clone(), format: ImageFormat::Raw(PixelFormat::Rgb24) };
        let rgb = pr.prepare(&pic, &padded).expect("rgb");
        let (med, min, bytes) = measure(window, || {
            let mut out = Vec::new();
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            image::ImageEncoder::write_image(enc, &rgb.bytes, 416, 416, image::ExtendedColorType::Rgb8).expect("jpeg");
            out.len()
        });
        println!("{:<10} {:<34} {med:>10.2} {min:>10.2} {bytes:>10}", format!("{w}x{h}"), "  ref: image crate JPEG of 416 RGB");
        println!("{:<10} ({origin})", "");
    }
}

fn window() -> Duration {
    let mut args = std::env::args().skip(1);
    let mut secs = 1.0;
    while let Some(a) = args.next() {
        if a == "--seconds" {
            secs = args.next().and_then(|v| v.parse().ok()).unwrap_or(secs);
        }
    }
    Duration::from_secs_f64(secs)
}

fn main() {
    run(window());
}
