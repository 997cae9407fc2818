//! The built-in detector (NanoDet-m via tract) on real footage and over HTTP.
//!
//! Accuracy: 10 frames of vtest.mkv with every person labelled by hand
//! (`tests/fixtures/detector/vtest-people.json`): recall at IoU 0.5 over the people that
//! must be found, false positives per frame (a detection on an `ignore` person is neither).
//! HTTP: the LVA/AVA extension contract (`/score`: JPEG, PNG, BMP, raw, 204, 400, 413, 415),
//! Custom Vision's `/image` (raw and multipart), `/health`, concurrency, batching, 503.
//!
//! `cargo test --test detector -- --ignored --nocapture speed` prints ms per frame with
//! one and two model threads, split into preprocessing, model and postprocessing.

#[path = "common/detector.rs"]
mod kit;

use std::io::Write;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image::RgbImage;
use kit::{encode, fixture, have_ffmpeg, http, model_path, post, read_response, root, score_frame, Response, H, W};
use vela::modules::detector::{self, Detection, Detector, DetectorConfig, DetectorError, Packed, Picture, ServerConfig};

fn start(config: ServerConfig) -> std::net::SocketAddr {
    kit::start(config).http
}

fn people_detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| Detector::load(model_path(), DetectorConfig { classes: vec!["person".into()], ..DetectorConfig::default() }).unwrap())
}

fn ltwh(d: &Detection) -> [f32; 4] {
    [d.left, d.top, d.width, d.height]
}

#[test]
fn finds_the_people_of_vtest() {
    if !have_ffmpeg() {
        return;
    }
    let det = people_detector();
    let (mut people, mut hits, mut fps) = (0, 0, 0);
    for f in fixture() {
        let found = det.detect(&f.image);
        let scored: Vec<(f32, [f32; 4])> = found.iter().map(|d| (d.confidence, ltwh(d))).collect();
        let (h, misses, fp, ignored) = score_frame(f, &scored);
        people += f.people.len();
        hits += h;
        fps += fp.len();
        println!(
            "frame {:>3}: {}/{} people found, {} false positive(s), {} on ignored people; missed: {:?}; false: {:?}",
            f.frame,
            h,
            f.people.len(),
            fp.len(),
            ignored,
            misses,
            fp
        );
    }
    let recall = hits as f32 / people as f32;
    let fp_per_frame = fps as f32 / fixture().len() as f32;
    println!("recall {recall:.3} ({hits}/{people}) at IoU 0.5, {fp_per_frame:.2} false positives per frame");
    assert!(recall >= 0.8, "recall {recall:.3}");
    assert!(fp_per_frame <= 1.0, "{fp_per_frame:.2} false positives per frame");
}

#[test]
fn detections_are_well_formed_and_layout_independent() {
    if !have_ffmpeg() {
        return;
    }
    let f = &fixture()[1];
    let det = people_detector();
    let out = det.run(Picture::rgb(&f.image)).unwrap();
    assert!(!out.detections.is_empty());
    assert!(out.timings.model > Duration::ZERO && out.timings.preprocess > Duration::ZERO && out.timings.postprocess > Duration::ZERO);
    for w in out.detections.windows(2) {
        assert!(w[0].confidence >= w[1].confidence, "most confident first");
    }
    for d in &out.detections {
        assert_eq!((d.label, d.class_id), ("person", 0));
        assert!(d.confidence >= 0.45 && d.confidence <= 1.0);
        assert!(d.left >= 0.0 && d.top >= 0.0 && d.width > 0.0 && d.height > 0.0);
        assert!(d.left + d.width <= 1.0 + 1e-6 && d.top + d.height <= 1.0 + 1e-6);
    }
    // The same pixels in other byte orders (and padded rows) give the same detections.
    let rgb = f.image.as_raw();
    let reorder = |layout: Packed, pad: usize| -> Vec<u8> {
        let bpp = layout.bytes_per_pixel();
        let mut v = Vec::with_capacity((W as usize * bpp + pad) * H as usize);
        for row in rgb.chunks_exact(W as usize * 3) {
            for p in row.chunks_exact(3) {
                let (r, g, b) = (p[0], p[1], p[2]);
                match layout {
                    Packed::Rgb24 => v.extend([r, g, b]),
                    Packed::Bgr24 => v.extend([b, g, r]),
                    Packed::Rgba => v.extend([r, g, b, 255]),
                    Packed::Bgra => v.extend([b, g, r, 255]),
                    Packed::Argb => v.extend([255, r, g, b]),
                    Packed::Abgr => v.extend([255, b, g, r]),
                }
            }
            v.extend(std::iter::repeat_n(0u8, pad));
        }
        v
    };
    for (layout, pad) in [(Packed::Bgr24, 0), (Packed::Rgba, 0), (Packed::Abgr, 16), (Packed::Rgb24, 5)] {
        let data = reorder(layout, pad);
        let stride = W as usize * layout.bytes_per_pixel() + pad;
        let pic = Picture::new(&data, W, H, stride, layout).unwrap();
        assert_eq!(det.run(pic).unwrap().detections, out.detections, "{layout:?}");
    }
    // A batch gives each picture what it gets alone.
    let pics: Vec<Picture> = fixture()[..3].iter().map(|f| Picture::rgb(&f.image)).collect();
    let batch = det.run_batch(&pics, true).unwrap();
    for (pic, got) in pics.iter().zip(&batch) {
        let alone = det.run(*pic).unwrap().detections;
        assert_eq!(got.detections.len(), alone.len());
        for (a, b) in got.detections.iter().zip(&alone) {
            assert!((a.confidence - b.confidence).abs() < 1e-4 && (a.left - b.left).abs() < 1e-4 && (a.top - b.top).abs() < 1e-4);
        }
    }
    // The class filter changes nothing else: all classes, then keep the people.
    let all = det.with_config(DetectorConfig::default()).unwrap();
    let people: Vec<Detection> = all.detect(&f.image).into_iter().filter(|d| d.label == "person").collect();
    assert_eq!(people, out.detections);
    // A black picture has nothing in it.
    assert!(all.detect(&RgbImage::new(640, 480)).is_empty());
}

#[test]
fn the_model_is_loaded_once_per_process() {
    let a = Detector::load(model_path(), DetectorConfig::default()).unwrap();
    let t = Instant::now();
    let b = Detector::load(root().join("config/models/nanodet-m/../nanodet-m/nanodet-m.onnx"), DetectorConfig::default()).unwrap();
    assert!(t.elapsed() < Duration::from_millis(50), "second load took {:?}", t.elapsed());
    assert_eq!(a.load_time(), b.load_time(), "the same loaded model");
    assert_eq!(a.input_size(), (416, 416));
    println!("load {:?}; batching: {} {:?}", a.load_time(), a.batching(), a.batch_refusal());
}

// ---------------------------------------------------------------------------------------
// Loader errors, on hand-built ONNX files

/// Protocol-buffer writer for the few ONNX messages a test model needs.
fn field(out: &mut Vec<u8>, num: u32, wire: u8, payload: &[u8]) {
    varint(out, ((num as u64) << 3) | wire as u64);
    if wire == 2 {
        varint(out, payload.len() as u64);
    }
    out.extend_from_slice(payload);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn int_field(out: &mut Vec<u8>, num: u32, v: u64) {
    let mut b = Vec::new();
    varint(&mut b, v);
    field(out, num, 0, &b);
}

fn value_info(name: &str, shape: &[u64]) -> Vec<u8> {
    let mut dims = Vec::new();
    for &d in shape {
        let mut dim = Vec::new();
        int_field(&mut dim, 1, d); // dim_value
        field(&mut dims, 1, 2, &dim);
    }
    let mut tensor = Vec::new();
    int_field(&mut tensor, 1, 1); // elem_type FLOAT
    field(&mut tensor, 2, 2, &dims); // shape
    let mut ty = Vec::new();
    field(&mut ty, 1, 2, &tensor); // tensor_type
    let mut vi = Vec::new();
    field(&mut vi, 1, 2, name.as_bytes());
    field(&mut vi, 2, 2, &ty);
    vi
}

/// An ONNX model whose single input `x` of `shape` is returned as output `y` (Identity).
fn identity_model(shape: &[u64]) -> Vec<u8> {
    let mut node = Vec::new();
    field(&mut node, 1, 2, b"x");
    field(&mut node, 2, 2, b"y");
    field(&mut node, 4, 2, b"Identity");
    let mut graph = Vec::new();
    field(&mut graph, 1, 2, &node);
    field(&mut graph, 2, 2, b"g");
    field(&mut graph, 11, 2, &value_info("x", shape));
    field(&mut graph, 12, 2, &value_info("y", shape));
    let mut opset = Vec::new();
    int_field(&mut opset, 2, 13);
    let mut model = Vec::new();
    int_field(&mut model, 1, 7); // ir_version
    field(&mut model, 7, 2, &graph);
    field(&mut model, 8, 2, &opset);
    model
}

#[test]
fn bad_models_are_refused_with_what_was_expected() {
    let dir = std::env::temp_dir().join(format!("vela-detector-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let load = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        Detector::load(&p, DetectorConfig::default()).unwrap_err()
    };
    let missing = Detector::load(dir.join("absent.onnx"), DetectorConfig::default()).unwrap_err();
    assert!(matches!(missing, DetectorError::Read { .. }) && missing.to_string().contains("absent.onnx"), "{missing}");
    let garbage = load("garbage.onnx", b"not a model at all");
    assert!(matches!(garbage, DetectorError::Model { .. }) && garbage.to_string().contains("garbage.onnx"), "{garbage}");
    // Right input, wrong outputs: the message gives the expected and the found shapes.
    let e = load("identity.onnx", &identity_model(&[1, 3, 416, 416]));
    let msg = e.to_string();
    assert!(matches!(e, DetectorError::Outputs { .. }), "{msg}");
    assert!(msg.contains("identity.onnx") && msg.contains("[1,2704,80] + [1,2704,44]") && msg.contains("[1, 3, 416, 416]"), "{msg}");
    // NHWC input.
    let e = load("nhwc.onnx", &identity_model(&[1, 416, 416, 3]));
    assert!(matches!(e, DetectorError::Input { .. }) && e.to_string().contains("1,416,416,3"), "{e}");
    let e = Detector::load(model_path(), DetectorConfig { classes: vec!["dragon".into()], ..DetectorConfig::default() }).unwrap_err();
    assert!(e.to_string().contains("dragon"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// HTTP

/// Checks a 200 against SPEC §4.3 (exactly the yolov3 sample's fields) and returns the
/// (tag, confidence, box) of each inference.
fn inferences(r: &Response) -> Vec<(String, f64, [f64; 4])> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["inferences"]);
    let list = v["inferences"].as_array().unwrap();
    assert!(!list.is_empty(), "minItems 1");
    list.iter()
        .map(|i| {
            assert_eq!(i.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["type", "entity"]);
            assert_eq!(i["type"], "entity");
            let e = &i["entity"];
            assert_eq!(e.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["tag", "box"]);
            assert_eq!(e["tag"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["value", "confidence"]);
            assert_eq!(e["box"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["l", "t", "w", "h"]);
            let b = ["l", "t", "w", "h"].map(|k| e["box"][k].as_f64().unwrap());
            assert!(b.iter().all(|x| (0.0..=1.0).contains(x)) && b[0] + b[2] <= 1.0 + 1e-6 && b[1] + b[3] <= 1.0 + 1e-6, "{b:?}");
            let c = e["tag"]["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&c));
            (e["tag"]["value"].as_str().unwrap().to_owned(), c, b)
        })
        .collect()
}

fn people(list: &[(String, f64, [f64; 4])]) -> usize {
    list.iter().filter(|(t, _, _)| t == "person").count()
}

fn server_config() -> ServerConfig {
    ServerConfig { max_body: 4 << 20, ..ServerConfig::default() }
}

#[test]
fn extension_contract_over_http() {
    if !have_ffmpeg() {
        return;
    }
    let addr = start(server_config());
    let f = &fixture()[1]; // frame 180: seven people
    let expected = people_detector().detect(&f.image);
    assert!(expected.len() >= 5);

    // Lossless formats give exactly what the detector gives in-process.
    for (ct, body) in [
        ("image/png", encode(&f.image, image::ImageFormat::Png)),
        ("image/bmp", encode(&f.image, image::ImageFormat::Bmp)),
        ("image/x-raw", f.image.as_raw().clone()),
    ] {
        let path = if ct == "image/x-raw" { "/score?width=768&height=576&format=rgb24" } else { "/score" };
        let got = inferences(&post(addr, path, ct, &body));
        let persons: Vec<_> = got.iter().filter(|(t, _, _)| t == "person").collect();
        assert_eq!(persons.len(), expected.len(), "{ct}");
        for ((_, c, b), d) in persons.iter().zip(&expected) {
            assert!((c - d.confidence as f64).abs() < 1e-5 && (b[0] - d.left as f64).abs() < 1e-5, "{ct}: {b:?} vs {d:?}");
        }
        println!("{ct}: {} inferences, {} people", got.len(), persons.len());
    }
    // JPEG (lossy): people found all the same.
    let jpeg = encode(&f.image, image::ImageFormat::Jpeg);
    let got = inferences(&post(addr, "/score", "image/jpeg", &jpeg));
    assert!(people(&got) >= expected.len() - 1, "{got:?}");
    // The yolov3 sample's filters.
    let only = inferences(&post(addr, "/score?object=person&confidence=0.6", "image/jpeg", &jpeg));
    assert!(only.iter().all(|(t, c, _)| t == "person" && *c > 0.6) && !only.is_empty());
    // Raw in BGR, its size in Content-Type parameters; and the default raw size (416x416).
    let bgr: Vec<u8> = f.image.as_raw().chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let got = inferences(&post(addr, "/score", "image/x-raw; width=768; height=576; format=bgr24", &bgr));
    assert_eq!(people(&got), expected.len());
    let small = image::imageops::resize(&f.image, 416, 416, image::imageops::FilterType::Triangle);
    let small_bgr: Vec<u8> = small.as_raw().chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    assert!(people(&inferences(&post(addr, "/score", "image/x-raw", &small_bgr))) >= expected.len() - 1);
    // A raw body of the wrong length says what it expected.
    let r = post(addr, "/score", "image/x-raw", &bgr);
    assert_eq!(r.status, 400);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("1327104 bytes") && msg.contains("519168 bytes"), "{msg}");

    // Nothing found: 204 and no body.
    let black = encode(&RgbImage::new(W, H), image::ImageFormat::Jpeg);
    let r = post(addr, "/score", "image/jpeg", &black);
    assert_eq!((r.status, r.body.len()), (204, 0));
    // Undecodable: 400 with a JSON error.
    let r = post(addr, "/score", "image/jpeg", b"\xff\xd8\xff garbage, not a JPEG");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "InvalidImage");
    let r = post(addr, "/score", "application/octet-stream", b"garbage");
    assert_eq!(r.status, 400);
    // Unsupported types: 415.
    for ct in ["text/plain", "image/gif", "multipart/form-data; boundary=x"] {
        let r = post(addr, "/score", ct, b"x");
        assert_eq!(r.status, 415, "{ct}");
        assert_eq!(r.json()["error"]["code"], "UnsupportedMediaType");
    }
    // No Content-Type: recognised by signature, as the yolov3 sample (PIL) does.
    assert!(people(&inferences(&http(addr, "POST", "/score", None, &jpeg))) >= expected.len() - 1);
    // Too large: refused on its Content-Length, before the body is read.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", 5 << 20).unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "PayloadTooLarge");
    // Routes.
    assert_eq!(http(addr, "GET", "/score", None, b"").status, 405);
    assert_eq!(http(addr, "POST", "/nothing-here", Some("image/jpeg"), &jpeg).status, 404);
}

#[test]
fn extra_score_paths_and_health() {
    let addr = start(ServerConfig {
        score_paths: vec!["/score".into(), "detect/people".into()],
        detector: DetectorConfig { classes: vec!["person".into(), "car".into()], threshold: 0.5, ..DetectorConfig::default() },
        ..server_config()
    });
    let black = encode(&RgbImage::new(64, 48), image::ImageFormat::Png);
    assert_eq!(post(addr, "/detect/people?id=1", "image/png", &black).status, 204);
    let h = http(addr, "GET", "/health", None, b"");
    assert_eq!(h.status, 200);
    let v = h.json();
    assert_eq!(v["status"], "ok");
    assert!(v["model"].as_str().unwrap().ends_with("nanodet-m.onnx"));
    assert_eq!(v["classes"], serde_json::json!(["person", "car"]));
    assert_eq!(v["threshold"], 0.5);
    assert_eq!(v["scorePaths"], serde_json::json!(["/score", "/detect/people"]));
    assert_eq!(v["counters"]["requests"], 1);
    assert_eq!(v["counters"]["pictures"], 1);
    println!("{v:#}");
}

fn multipart(name: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----velaTestBoundary0123";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n").as_bytes());
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"frame\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Checks a Custom Vision answer and returns its (tagName, probability) pairs.
fn predictions(r: &Response) -> Vec<(String, f64)> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["id", "project", "iteration", "created", "predictions"]);
    assert!(vela::clock::parse_rfc3339(v["created"].as_str().unwrap()).is_some());
    v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["probability", "tagId", "tagName", "boundingBox"]);
            assert_eq!(p["boundingBox"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["left", "top", "width", "height"]);
            let tag = p["tagName"].as_str().unwrap().to_owned();
            if tag == "person" {
                assert_eq!(p["tagId"], 0);
            }
            (tag, p["probability"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn custom_vision_contract_over_http() {
    if !have_ffmpeg() {
        return;
    }
    let addr = start(server_config());
    let f = &fixture()[3];
    let png = encode(&f.image, image::ImageFormat::Png);
    let raw = predictions(&post(addr, "/image", "application/octet-stream", &png));
    assert!(raw.iter().filter(|(t, _)| t == "person").count() >= 4, "{raw:?}");
    let (ct, form) = multipart("imageData", "image/png", &png);
    let from_form = predictions(&post(addr, "/image", &ct, &form));
    assert_eq!(from_form, raw);
    // The exported containers' long routes; a part without a useful type.
    let (ct, form) = multipart("imageData", "application/octet-stream", &png);
    assert_eq!(predictions(&post(addr, "/proj/detect/iterations/Iteration1/image/nostore", &ct, &form)), raw);
    // Nothing found is still 200, with no predictions.
    let black = encode(&RgbImage::new(320, 240), image::ImageFormat::Bmp);
    assert!(predictions(&post(addr, "/image", "image/bmp", &black)).is_empty());
    // A form without imageData, or garbage in it: 400.
    let (ct, form) = multipart("file", "image/png", &png);
    let r = post(addr, "/image", &ct, &form);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("imageData"));
    let (ct, form) = multipart("imageData", "image/png", b"garbage");
    assert_eq!(post(addr, "/image", &ct, &form).status, 400);
}

#[test]
fn concurrent_requests_are_all_answered_and_batched() {
    if !have_ffmpeg() {
        return;
    }
    let addr = start(ServerConfig { threads: 1, max_batch: 4, ..server_config() });
    let bodies: Vec<Vec<u8>> = fixture()[..8].iter().map(|f| encode(&f.image, image::ImageFormat::Jpeg)).collect();
    let t = Instant::now();
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies.iter().map(|b| s.spawn(move || post(addr, "/score", "image/jpeg", b))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = t.elapsed();
    for (r, f) in answers.iter().zip(fixture()) {
        let n = people(&inferences(r));
        assert!(n * 10 >= f.people.len() * 6, "frame {}: {n} of {} people", f.frame, f.people.len());
    }
    let v = http(addr, "GET", "/health", None, b"").json();
    let c = &v["counters"];
    println!("8 concurrent requests in {took:?}; counters {c}; batching {} {}", v["batching"], v["batchRefusal"]);
    assert_eq!(c["pictures"], 8);
    if v["batching"] == true {
        // Requests that waited together ran together.
        assert!(c["largestBatch"].as_u64().unwrap() >= 2, "{c}");
        assert!(c["batchedModelCalls"].as_u64().unwrap() >= 1, "{c}");
    } else {
        // The model cannot batch (NanoDet-m as shipped: docs/detector.md): pictures run one
        // per round, and /health says why.
        assert!(v["batchRefusal"].as_str().unwrap().contains("batch"), "{v}");
        assert_eq!(c["largestBatch"], 1);
        assert_eq!(c["rounds"], 8);
    }
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    if !have_ffmpeg() {
        return;
    }
    // One picture may run and one wait; the rest of a burst of eight is turned away.
    let addr = start(ServerConfig { threads: 1, max_batch: 1, queue: 1, ..server_config() });
    let body = f_jpeg();
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| post(addr, "/score", "image/jpeg", &body))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    println!("burst of 8 with room for 2: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 2);
    let busy: Vec<&Response> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "{statuses:?}");
    for r in busy {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["error"]["code"], "Busy");
    }
    // Once the burst is over the server answers again.
    assert_eq!(post(addr, "/score", "image/jpeg", &body).status, 200);
    let v = http(addr, "GET", "/health", None, b"").json();
    assert_eq!((v["batching"].as_bool(), v["batchRefusal"].as_str()), (Some(false), Some("max batch is 1")));
    assert!(v["counters"]["busy"].as_u64().unwrap() >= 1);
}

fn f_jpeg() -> Vec<u8> {
    encode(&fixture()[1].image, image::ImageFormat::Jpeg)
}

// ---------------------------------------------------------------------------------------
// Speed (not a benchmark: numbers for the docs)

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "timing: run with --ignored --nocapture on a quiet machine"]
fn speed() {
    if !have_ffmpeg() {
        return;
    }
    let det = people_detector();
    let frames = fixture();
    let pics: Vec<Picture> = frames.iter().map(|f| Picture::rgb(&f.image)).collect();
    let _ = det.run(pics[0]).unwrap(); // warm up
    let rounds = 3;
    // One thread.
    let mut sum = detector::Timings::default();
    let mut totals = Vec::new();
    let t = Instant::now();
    for _ in 0..rounds {
        for p in &pics {
            let o = det.run(*p).unwrap();
            sum.preprocess += o.timings.preprocess;
            sum.model += o.timings.model;
            sum.postprocess += o.timings.postprocess;
            totals.push(ms(o.timings.total()));
        }
    }
    let n = (rounds * pics.len()) as f64;
    totals.sort_by(f64::total_cmp);
    println!(
        "1 thread: {:.1} ms/frame (preprocess {:.2}, model {:.1}, postprocess {:.2}); per call min {:.1}, median {:.1}",
        ms(t.elapsed()) / n,
        ms(sum.preprocess) / n,
        ms(sum.model) / n,
        ms(sum.postprocess) / n,
        totals[0],
        totals[totals.len() / 2]
    );
    // Two threads, each its own frames: throughput.
    let t = Instant::now();
    let per_thread: Vec<detector::Timings> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut sum = detector::Timings::default();
                    for _ in 0..rounds {
                        for p in &pics {
                            let o = det.run(*p).unwrap();
                            sum.model += o.timings.model;
                            sum.preprocess += o.timings.preprocess;
                            sum.postprocess += o.timings.postprocess;
                        }
                    }
                    sum
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = t.elapsed();
    let model: Duration = per_thread.iter().map(|t| t.model).sum();
    println!(
        "2 threads: {:.1} ms/frame of wall time ({} frames in {:.0} ms), each call's model phase {:.1} ms",
        ms(wall) / (2.0 * n),
        2.0 * n,
        ms(wall),
        ms(model) / (2.0 * n)
    );
    // Batches of 4 in one model call against 4 single calls.
    if det.batching() {
        let four = &pics[..4];
        let t = Instant::now();
        for _ in 0..rounds {
            det.run_batch(four, true).unwrap();
        }
        let batched = ms(t.elapsed()) / (rounds * 4) as f64;
        let t = Instant::now();
        for _ in 0..rounds {
            det.run_batch(four, false).unwrap();
        }
        let single = ms(t.elapsed()) / (rounds * 4) as f64;
        println!("batch of 4: {batched:.1} ms/frame in one call, {single:.1} ms/frame one by one");
    } else {
        println!("no batching: {:?}", det.batch_refusal());
    }
    // Preprocessing: ours (bilinear, fused with normalisation) against image's resize.
    let img = &frames[0].image;
    let mut out = vec![0.0f32; 3 * 416 * 416];
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        detector::input::preprocess(&Picture::rgb(img), 416, 416, &mut out);
    }
    let ours = ms(t.elapsed()) / reps as f64;
    let t = Instant::now();
    for _ in 0..reps {
        let small = image::imageops::resize(img, 416, 416, image::imageops::FilterType::Triangle);
        let plane = 416 * 416;
        for (i, p) in small.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (p.0[2 - c] as f32 - detector::input::MEAN_BGR[c]) / detector::input::STD_BGR[c];
            }
        }
    }
    let theirs = ms(t.elapsed()) / reps as f64;
    println!("preprocess 768x576 → 416x416: ours {ours:.2} ms, image::imageops::resize (Triangle) + normalise {theirs:.2} ms");
}
