//! The HTTP extension against an independent inference server (Python's standard library): the
//! exact request (headers, credentials, a padded JPEG of the frame), sampling over media time,
//! answers published as Inference events with boxes mapped back from the padding, 204 and
//! 400 handled, and a 503 honoured with its Retry-After.

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{Appliance, Setup};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scripted HTTP server: answers each POST with the next entry of `script` (then 200 with
/// one box for ever), saves each request's headers and body, and logs them as JSON lines.
const SERVER: &str = r#"
import http.server, json, sys, time, os
script = json.loads(sys.argv[2]); out = sys.argv[3]; n = [0]
BOX = {"inferences": [{"type": "entity", "entity": {"tag": {"value": "person", "confidence": 0.9},
       "box": {"l": 0.0, "t": 0.125, "w": 1.0, "h": 0.75}}}]}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        i = n[0]; n[0] += 1
        open(os.path.join(out, "%04d.bin" % i), "wb").write(body)
        step = script[i] if i < len(script) else "200"
        print(json.dumps({"i": i, "t": time.time(), "path": self.path, "answer": step,
                          "headers": {k.lower(): v for k, v in self.headers.items()}, "bytes": len(body)}), flush=True)
        if step == "200":
            data = json.dumps(BOX).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
        elif step.startswith("503"):
            self.send_response(503); self.send_header("Retry-After", step.split(":")[1])
            self.send_header("Content-Length", "0"); self.end_headers()
        else:
            code = int(step); data = b"" if code == 204 else b"cannot read that image"
            self.send_response(code); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

struct Server {
    child: Child,
    dir: PathBuf,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Server {
    fn start(port: u16, script: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("vela-httpext-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let py = dir.join("server.py");
        std::fs::write(&py, SERVER).unwrap();
        let mut child = Command::new("python3")
            .arg(&py)
            .arg(port.to_string())
            .arg(serde_json::to_string(script).unwrap())
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&l).unwrap());
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the test server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, dir, lines }
    }

    fn requests(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) => out.push(v),
                Err(_) => panic!("only {} of {n} requests within {timeout:?}", out.len()),
            }
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn topology(server_port: u16) -> Value {
    json!({
        "@apiVersion": "1.1", "name": "InferenceOverHttp",
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}, {"name": "inferencingPassword", "type": "SecretString", "default": "s3cret"}],
            "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource", "transport": "tcp",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
            "processors": [{"@type": "#Microsoft.VideoAnalyzer.HttpExtension", "name": "httpExtension",
                "inputs": [{"nodeName": "rtspSource", "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}],
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("http://127.0.0.1:{server_port}/score?camera=1"),
                    "credentials": {"@type": "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials", "username": "vela", "password": "${inferencingPassword}"}},
                "image": {"scale": {"mode": "pad", "width": "416", "height": "416"}, "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "90"}},
                "samplingOptions": {"skipSamplesWithoutAnnotation": "false", "maximumSamplesPerSecond": "2"}}],
            "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hubSink",
                "inputs": [{"nodeName": "httpExtension"}], "hubOutputName": "inferenceOutput"}]
        }
    })
}

/// Width, height of an image file, and the mean luma of its top rows (the pad bar).
fn probe_image(path: &Path) -> (u32, u32, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (installed by scripts/test)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.trim().split(',').map(|v| v.parse::<u32>().unwrap());
    let (w, h) = (it.next().unwrap(), it.next().unwrap());
    let gray = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap()
        .stdout;
    let bar = &gray[..(w * 40) as usize];
    (w, h, bar.iter().map(|&v| v as f64).sum::<f64>() / bar.len() as f64)
}

#[test]
fn frames_go_to_an_inference_server_exactly_as_lva_sent_them_and_answers_come_back_as_events() {
    let server_port = appliance::free_port();
    // 0–3: results; 4: nothing; 5: a bad request; 6: busy for 2 s; then results again.
    let server = Server::start(server_port, &["200", "200", "200", "200", "204", "400", "503:2"]);
    let mut app = Appliance::new(&Setup { camera_speed: 1.0, ..Setup::empty() });
    app.start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut events = rt.block_on(async {
        let caller = app.client("caller").await;
        let (s, p) = Appliance::call(&caller, "pipelineTopologySet", topology(server_port)).await;
        assert!(s < 300, "{s} {p:?}");
        let instance = json!({"@apiVersion": "1.1", "name": "cam", "properties": {"topologyName": "InferenceOverHttp",
            "parameters": [{"name": "rtspUrl", "value": format!("rtsp://127.0.0.1:{}/media/vtest.mkv", app.camera_port)}]}});
        let (s, p) = Appliance::call(&caller, "livePipelineSet", instance).await;
        assert!(s < 300, "{s} {p:?}");
        let observer = app.client("observer").await;
        let rx = observer.inputs().await.unwrap();
        std::mem::forget(observer);
        let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": "cam"})).await;
        assert_eq!(s, 200, "{p:?}");
        rx
    });

    let reqs = server.requests(14, Duration::from_secs(30));
    // The request, as SPEC §5.1 has it.
    let h = &reqs[0]["headers"];
    assert_eq!(reqs[0]["path"], "/score?camera=1");
    assert_eq!(h["accept"], "application/json");
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["user-agent"], "Azure Media Services");
    assert_eq!(h["authorization"], "Basic dmVsYTpzM2NyZXQ=", "Basic vela:s3cret");
    assert_eq!(h["content-length"].as_str().unwrap().parse::<u64>().unwrap(), reqs[0]["bytes"].as_u64().unwrap());
    let ids: std::collections::HashSet<&str> = reqs.iter().map(|r| r["headers"]["x-ms-client-request-id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), reqs.len(), "a fresh request id each time");
    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
    // The body: the 768×576 frame padded into 416×416, black bars of 52 px above and below.
    let (w, h, bar) = probe_image(&server.dir.join("0000.bin"));
    assert_eq!((w, h), (416, 416));
    assert!(bar < 20.0, "the top bar is black (mean luma {bar:.1})");

    // Never more than 2 requests a second (exact sampling is checked on media time below,
    // where a loaded machine cannot blur it).
    let t: Vec<f64> = reqs.iter().map(|r| r["t"].as_f64().unwrap()).collect();
    let rate = 6.0 / (t[6] - t[0]);
    assert!(rate <= 2.5, "{rate:.2} requests a second before the 503");
    // The 503 asked for 2 s: nothing was sent in them.
    let gap = t[7] - t[6];
    assert!(gap >= 1.9, "the next request came {gap:.2} s after the 503");

    // Events: one per 200 (not for the 204, 400 or 503), boxes mapped back from the padding.
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let (mut inferences, mut protocol_errors) = (Vec::new(), Vec::new());
        while inferences.len() < 6 {
            let Ok(Some((input, m))) = tokio::time::timeout_at(deadline, events.recv()).await else {
                panic!("{} inference events, {} protocol errors", inferences.len(), protocol_errors.len())
            };
            let ty = m.property("eventType").unwrap_or("").to_string();
            if ty.ends_with("Analytics.Inference") {
                assert_eq!(input, "events");
                assert!(m.property("subject").unwrap().ends_with("/processors/httpExtension"));
                inferences.push(m.body_json().unwrap());
            } else if ty.ends_with("Diagnostics.ProtocolError") {
                protocol_errors.push(m.body_json().unwrap());
            }
        }
        // Sampling, on the frames' media time: the answered samples 0–3 are 0.5 s apart (2 a
        // second of a 10 fps camera), or a multiple of it when a sample found the previous
        // request still in flight; never closer.
        let ts: Vec<f64> = inferences[..4].iter().map(|b| b["timestamp"].as_u64().unwrap() as f64 / 90_000.0).collect();
        for w in ts.windows(2) {
            let gap = w[1] - w[0];
            let k = (gap / 0.5).round();
            assert!(k >= 1.0 && (gap - k * 0.5).abs() <= 0.051, "samples {ts:?}: {gap:.3} s apart");
        }
        let b = &inferences[0];
        assert_eq!(b["inferences"][0]["entity"]["box"], json!({"l": 0.0, "t": 0.0, "w": 1.0, "h": 1.0}));
        assert_eq!(b["inferences"][0]["entity"]["tag"]["value"], "person");
        assert!(b["timestamp"].as_u64().is_some());
        assert_eq!(protocol_errors.len(), 1, "{protocol_errors:?}");
        assert_eq!(protocol_errors[0]["status"], 400);
        assert!(protocol_errors[0]["message"].as_str().unwrap().contains("cannot read that image"));
    });
}
