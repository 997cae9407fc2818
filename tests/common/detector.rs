//! The detector's test kit, shared by tests/detector.rs (model, HTTP) and tests/detector_grpc.rs: the labelled vtest frames, box matching, an in-process server and a minimal HTTP client.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use image::RgbImage;
use serde_json::Value;
use vela::modules::detector::{self, ServerConfig};

pub const W: u32 = 768;
pub const H: u32 = 576;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_path() -> PathBuf {
    root().join(detector::DEFAULT_MODEL)
}

pub fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: ffmpeg not on PATH (apt-get install ffmpeg)");
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Fixture

pub struct Labelled {
    pub frame: u32,
    /// Normalised [l, t, w, h] of each person that must be found, with a note.
    pub people: Vec<([f32; 4], String)>,
    /// People too hidden to require; a detection on one is neither hit nor false.
    pub ignore: Vec<[f32; 4]>,
    pub image: RgbImage,
}

pub fn boxes(v: &Value) -> Vec<([f32; 4], String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let b: Vec<f32> = p["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            ([b[0], b[1], b[2], b[3]], p["note"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// The labelled frames, decoded once by ffmpeg (RGB24 on a pipe).
pub fn fixture() -> &'static [Labelled] {
    static FIXTURE: OnceLock<Vec<Labelled>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let doc: Value = serde_json::from_slice(&std::fs::read(root().join("tests/fixtures/detector/vtest-people.json")).unwrap()).unwrap();
        assert_eq!(doc["size"], serde_json::json!([W, H]));
        let frames = doc["frames"].as_array().unwrap();
        let numbers: Vec<u32> = frames.iter().map(|f| f["frame"].as_u64().unwrap() as u32).collect();
        let select = numbers.iter().map(|n| format!("eq(n\\,{n})")).collect::<Vec<_>>().join("+");
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(root().join(doc["clip"].as_str().unwrap()))
            .args(["-vf", &format!("select={select}"), "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
        let size = (W * H * 3) as usize;
        assert_eq!(out.stdout.len(), size * frames.len(), "ffmpeg gave {} bytes", out.stdout.len());
        frames
            .iter()
            .zip(out.stdout.chunks_exact(size))
            .map(|(f, px)| Labelled {
                frame: f["frame"].as_u64().unwrap() as u32,
                people: boxes(&f["people"]),
                ignore: boxes(&f["ignore"]).into_iter().map(|(b, _)| b).collect(),
                image: RgbImage::from_raw(W, H, px.to_vec()).unwrap(),
            })
            .collect()
    })
}

pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let (ax2, ay2, bx2, by2) = (a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]);
    let w = (ax2.min(bx2) - a[0].max(b[0])).max(0.0);
    let h = (ay2.min(by2) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// Per frame: (hits, misses, false positives, on ignored people) of `found`, each
/// (confidence, normalised [l, t, w, h]), most confident first.
pub fn score_frame(f: &Labelled, found: &[(f32, [f32; 4])]) -> (usize, Vec<String>, Vec<String>, usize) {
    let mut taken = vec![false; f.people.len()];
    let (mut hits, mut fps, mut ignored) = (0, Vec::new(), 0);
    // Most confident first: a second box on a person already found is a false positive.
    for &(confidence, b) in found {
        let best = (0..f.people.len()).filter(|&i| !taken[i]).map(|i| (i, iou(b, f.people[i].0))).max_by(|x, y| x.1.total_cmp(&y.1));
        match best {
            Some((i, v)) if v >= 0.5 => {
                taken[i] = true;
                hits += 1;
            }
            _ => {
                let (cx, cy) = (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
                let on_ignored =
                    f.ignore.iter().any(|g| iou(b, *g) >= 0.5 || (cx >= g[0] && cx <= g[0] + g[2] && cy >= g[1] && cy <= g[1] + g[3]));
                if on_ignored {
                    ignored += 1;
                } else {
                    fps.push(format!("{:.2} at [{:.3}, {:.3}, {:.3}, {:.3}]", confidence, b[0], b[1], b[2], b[3]));
                }
            }
        }
    }
    let misses = (0..f.people.len()).filter(|&i| !taken[i]).map(|i| f.people[i].1.clone()).collect();
    (hits, misses, fps, ignored)
}

// ---------------------------------------------------------------------------------------
// HTTP

/// Where a test server listens.
pub struct Started {
    pub http: SocketAddr,
    /// Set when the config asked for gRPC.
    pub grpc: Option<SocketAddr>,
}

/// Starts a server with `config` (model and HTTP port filled in) on its own thread and
/// system.
pub fn start(mut config: ServerConfig) -> Started {
    config.model = model_path();
    config.listen = "127.0.0.1:0".into();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let serving = detector::serve(config).await.unwrap();
            tx.send(Started { http: serving.addr, grpc: serving.grpc.as_ref().map(|g| g.addr) }).unwrap();
            serving.server.await
        })
    });
    rx.recv_timeout(Duration::from_secs(120)).unwrap()
}

pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"), "status {}", self.status);
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn read_response(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no response head in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    Response { status, headers, body: raw[split + 4..].to_vec() }
}

/// One request per connection.
pub fn http(addr: SocketAddr, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s)
}

pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
    http(addr, "POST", path, Some(content_type), body)
}

pub fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}
