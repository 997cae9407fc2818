//! The GrpcExtension node against an independent gRPC server (Python's grpcio, tests/fixtures/grpc/server.py): the handshake as SPEC §5.2 has it, samples numbered from 1 without gaps and every one acked, answers in any order published as Inference events with the SPEC envelope and boxes mapped back from the padding, shared-memory regions within the ring and never reused before their ack, sampling, credentials, pipelining, and a new stream after an abort, a rejection or a protocol error.
//!
//! Three live pipelines run side by side on one appliance, each with its own server, so the
//! whole test takes about as long as its slowest scenario.

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{Appliance, Setup};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Python with Debian's grpcio (the PATH one may be a pyenv without it).
const PYTHON: &str = "/usr/bin/python3";
/// The node's bound on unacknowledged requests (src/nodes/processors/grpc_extension_core.rs).
const MAX_IN_FLIGHT: usize = 4;

/// Python modules for the contract, generated from the protos Vela is built from.
fn generate_python(dir: &Path) {
    let protos = appliance::repo().join("src/grpc/protos");
    let files: Vec<PathBuf> = ["extension.proto", "inferencing.proto", "media.proto"].iter().map(|f| protos.join(f)).collect();
    let out = Command::new(PYTHON)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&protos)
        .arg(format!("--python_out={}", dir.display()))
        .arg(format!("--grpc_python_out={}", dir.display()))
        .args(&files)
        .output()
        .expect("python3-grpc-tools (installed by scripts/test)");
    assert!(out.status.success(), "protoc: {}", String::from_utf8_lossy(&out.stderr));
}

/// A scripted server and everything it logged so far.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
    lines: mpsc::Receiver<Value>,
    log: Vec<Value>,
}

impl Server {
    fn start(pydir: &Path, name: &str, script: Value) -> Server {
        let port = appliance::free_port();
        let dir = std::env::temp_dir().join(format!("vela-grpcext-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(PYTHON)
            .arg(appliance::repo().join("tests/fixtures/grpc/server.py"))
            .arg(port.to_string())
            .arg(&dir)
            .arg(pydir)
            .arg(script.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("server line {l:?}: {e}")));
            }
        });
        let mut s = Server { child, dir, port, lines, log: vec![] };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.log.iter().any(|l| l["ev"] == "listening") {
            assert!(Instant::now() < deadline, "the {name} server did not start");
            s.poll(Duration::from_millis(50));
        }
        s
    }

    fn poll(&mut self, wait: Duration) {
        if let Ok(v) = self.lines.recv_timeout(wait) {
            self.log.push(v);
        }
        while let Ok(v) = self.lines.try_recv() {
            self.log.push(v);
        }
    }

    fn of(&self, ev: &str, stream: u64) -> Vec<&Value> {
        self.log.iter().filter(|l| l["ev"] == ev && l["stream"] == stream).collect()
    }

    fn first(&self, ev: &str, stream: u64) -> &Value {
        self.of(ev, stream).into_iter().next().unwrap_or_else(|| panic!("no {ev} on stream {stream}"))
    }

    fn acked(&self, stream: u64) -> HashSet<u64> {
        self.of("ack", stream).iter().map(|a| a["ack"].as_u64().unwrap()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

const RTSP: &str = "#Microsoft.VideoAnalyzer.RtspSource";

fn topology(name: &str, port: u16, extension: Value, motion: bool) -> Value {
    let mut grpc = json!({
        "@type": "#Microsoft.VideoAnalyzer.GrpcExtension", "name": "grpcExtension",
        "inputs": [{"nodeName": if motion { "motionDetection" } else { "rtspSource" }}],
        "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("tcp://127.0.0.1:{port}")},
    });
    grpc.as_object_mut().unwrap().extend(extension.as_object().unwrap().clone());
    let mut processors = vec![grpc];
    if motion {
        processors.insert(0, json!({"@type": "#Microsoft.VideoAnalyzer.MotionDetectionProcessor", "name": "motionDetection",
            "sensitivity": "high", "inputs": [{"nodeName": "rtspSource", "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}]}));
    } else {
        processors[0]["inputs"][0]["outputSelectors"] = json!([{"property": "mediaType", "operator": "is", "value": "video"}]);
    }
    json!({
        "@apiVersion": "1.1", "name": name,
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}, {"name": "grpcPassword", "type": "SecretString", "default": "s3cret"}],
            "sources": [{"@type": RTSP, "name": "rtspSource", "transport": "tcp",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
            "processors": processors,
            "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hubSink",
                "inputs": [{"nodeName": "grpcExtension"}], "hubOutputName": "inferenceOutput"}]
        }
    })
}

/// Width, height and mean luma of the top 40 rows (the pad bar) of a JPEG image.
fn probe_image(path: &Path) -> (u32, u32, f64) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(image::guess_format(&bytes).ok(), Some(image::ImageFormat::Jpeg), "{}", path.display());
    let img = image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_luma8();
    let bar: Vec<f64> = img.rows().take(40).flatten().map(|p| f64::from(p.0[0])).collect();
    (img.width(), img.height(), bar.iter().sum::<f64>() / bar.len() as f64)
}

/// Samples of a stream: numbered 2, 3, … without gaps after the descriptor (1).
fn assert_numbered(server: &Server, stream: u64) -> Vec<u64> {
    let d = server.first("descriptor", stream);
    assert_eq!((d["seq"].as_u64(), d["ack"].as_u64(), d["is_descriptor"].as_bool()), (Some(1), Some(0), Some(true)), "{d}");
    let seqs: Vec<u64> = server.of("sample", stream).iter().map(|s| s["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (2..2 + seqs.len() as u64).collect::<Vec<_>>(), "stream {stream}");
    assert!(server.of("sample", stream).iter().all(|s| s["ack"] == 0 && s["has_sample"] == true));
    seqs
}

/// An event as the test keeps it: type (`Class.Type`), application properties, body.
type Seen = (String, BTreeMap<String, String>, Value);

#[derive(Default)]
struct Events {
    by_pipeline: HashMap<String, Vec<Seen>>,
}

impl Events {
    fn add(&mut self, m: &vela::hub::HubMessage) {
        let subject = m.property("subject").unwrap_or("");
        let Some(pipeline) = subject.split("/livePipelines/").nth(1).and_then(|r| r.split('/').next()) else { return };
        let ty =
            m.property("eventType").unwrap_or("").rsplit('.').take(2).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(".");
        self.by_pipeline.entry(pipeline.to_string()).or_default().push((ty, m.properties.clone(), m.body_json().unwrap_or(Value::Null)));
    }

    fn of(&self, pipeline: &str, ty: &str) -> Vec<&Seen> {
        self.by_pipeline.get(pipeline).map(|v| v.iter().filter(|e| e.0 == ty).collect()).unwrap_or_default()
    }

    fn diagnostics(&self, pipeline: &str, ty: &str, code: &str) -> Vec<&Value> {
        self.of(pipeline, ty).into_iter().map(|e| &e.2).filter(|b| b["errorCode"] == code).collect()
    }
}

#[test]
fn frames_stream_to_a_grpc_extension_as_lva_sent_them_and_its_answers_come_back_as_events() {
    let t0 = Instant::now();
    let pydir = std::env::temp_dir().join(format!("vela-grpcext-py-{}", std::process::id()));
    std::fs::create_dir_all(&pydir).unwrap();
    generate_python(&pydir);

    // Embedded JPEG: results, an ack held back until after the next one's, an ack alone, an
    // empty result; the call fails at the 8th sample and the next stream gets results.
    let mut embedded = Server::start(
        &pydir,
        "embedded",
        json!({"streams": [{"answers": ["result", "hold", "result", "none", "empty", "result"], "abort_after": 8}],
               "default": {"answers": ["result"]}}),
    );
    // Shared memory, raw BGR, every frame, behind a motion detector: three answers held back
    // and a slow fourth fill the pipeline for a second (frames dropped meanwhile), then come in
    // newest first, so the oldest region is freed last; 1 MiB holds four 320×240×3 images.
    let mut shared =
        Server::start(&pydir, "shm", json!({"default": {"answers": ["hold", "hold", "hold", "delay:1000", "none", "result", "empty"]}}));
    // A server that rejects the first stream, opens the second with a sample, then answers
    // with an inference without a value, an unsolicited result and an ack nobody asked for.
    let bad = json!({"answers": ["result", "invalid", "none"], "unsolicited_after": 2, "unknown_ack_after": 3});
    let mut misbehaving =
        Server::start(&pydir, "misbehaving", json!({"streams": [{"reject": "OUT_OF_RANGE"}, {"first": "sample"}, bad], "default": bad}));

    let topologies = [
        topology(
            "GrpcEmbedded",
            embedded.port,
            json!({
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("tcp://127.0.0.1:{}", embedded.port),
                "credentials": {"@type": "#Microsoft.VideoAnalyzer.UsernamePasswordCredentials", "username": "vela", "password": "${grpcPassword}"}},
            "dataTransfer": {"mode": "embedded"},
            "extensionConfiguration": "{\"model\": \"people\"}",
            "image": {"scale": {"mode": "pad", "width": "416", "height": "416"}, "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "90"}},
            "samplingOptions": {"skipSamplesWithoutAnnotation": "false", "maximumSamplesPerSecond": "5"}}),
            false,
        ),
        topology(
            "GrpcSharedMemory",
            shared.port,
            json!({
            "dataTransfer": {"mode": "sharedMemory", "SharedMemorySizeMiB": "1"},
            "image": {"scale": {"mode": "stretch", "width": "320", "height": "240"}, "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatRaw", "pixelFormat": "bgr24"}}}),
            true,
        ),
        topology(
            "GrpcMisbehaving",
            misbehaving.port,
            json!({
            "dataTransfer": {"mode": "embedded"},
            "image": {"scale": {"mode": "preserveAspectRatio", "width": "320"}, "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg"}},
            "samplingOptions": {"maximumSamplesPerSecond": "2"}}),
            false,
        ),
    ];
    let pipelines = [("embeddedCam", "GrpcEmbedded"), ("sharedCam", "GrpcSharedMemory"), ("badCam", "GrpcMisbehaving")];

    let mut app = Appliance::new(&Setup { camera_speed: 1.0, ..Setup::empty() });
    app.start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (_observer, mut rx, caller) = rt.block_on(async {
        let caller = app.client("caller").await;
        let observer = app.client("observer").await;
        let rx = observer.inputs().await.unwrap();
        for t in &topologies {
            let (s, p) = Appliance::call(&caller, "pipelineTopologySet", t.clone()).await;
            assert!(s < 300, "{s} {p:?}");
        }
        for (name, topology) in pipelines {
            let instance = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": topology,
                "parameters": [{"name": "rtspUrl", "value": format!("rtsp://127.0.0.1:{}/media/vtest.mkv", app.camera_port)}]}});
            let (s, p) = Appliance::call(&caller, "livePipelineSet", instance).await;
            assert!(s < 300, "{s} {p:?}");
            let (s, p) = Appliance::call(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": name})).await;
            assert_eq!(s, 200, "{p:?}");
        }
        (observer, rx, caller)
    });

    // Run until every scenario has played out.
    let mut events = Events::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |e: &Server, s: &Server, m: &Server| {
        e.acked(1).len() >= 4 && s.acked(0).len() >= 12 && m.acked(2).len() >= 4 && !m.of("unsolicited", 2).is_empty()
    };
    let mut settled: Option<Instant> = None;
    let started = Instant::now();
    let mut reported = [false; 3];
    loop {
        for (i, met) in [embedded.acked(1).len() >= 4, shared.acked(0).len() >= 12, misbehaving.acked(2).len() >= 4].into_iter().enumerate()
        {
            if met && !reported[i] {
                reported[i] = true;
                eprintln!("scenario {i} done after {:.1?}", started.elapsed());
            }
        }
        embedded.poll(Duration::from_millis(30));
        shared.poll(Duration::ZERO);
        misbehaving.poll(Duration::ZERO);
        rt.block_on(async {
            while let Ok(Some((_, m))) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                events.add(&m);
            }
        });
        // Once done, a moment more for the last answers' events to come through.
        match settled {
            None if done(&embedded, &shared, &misbehaving) => settled = Some(Instant::now()),
            Some(t) if t.elapsed() > Duration::from_millis(1500) => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "scenarios unfinished after 60 s: embedded stream 1 acks {}, shared samples {}, misbehaving stream 2 acks {}\nembedded: {:?}\nmisbehaving: {:?}",
            embedded.acked(1).len(),
            shared.acked(0).len(),
            misbehaving.acked(2).len(),
            embedded.log.iter().filter(|l| l["ev"] != "sample" && l["ev"] != "ack").collect::<Vec<_>>(),
            misbehaving.log.iter().filter(|l| l["ev"] != "sample" && l["ev"] != "ack").collect::<Vec<_>>(),
        );
    }
    let ran = t0.elapsed();
    // The events were read after the servers' logs in the last round: an answer's event can
    // have come before its sample's log line was read. Read the logs once more.
    for s in [&mut embedded, &mut shared, &mut misbehaving] {
        s.poll(Duration::from_millis(300));
    }

    check_embedded(&embedded, &events);
    let rings = check_shared_memory(&shared, &events);
    check_misbehaving(&misbehaving, &events);

    // A deactivated pipeline leaves nothing in /dev/shm.
    rt.block_on(async {
        let (s, p) = Appliance::call(&caller, "livePipelineDeactivate", json!({"@apiVersion": "1.1", "name": "sharedCam"})).await;
        assert_eq!(s, 200, "{p:?}");
    });
    for name in rings {
        assert!(!Path::new("/dev/shm").join(&name).exists(), "{name} was not removed");
    }
    eprintln!("grpc extension scenarios ran in {ran:.1?}, {:.1?} in all", t0.elapsed());
    std::fs::remove_dir_all(&pydir).ok();
}

fn check_embedded(server: &Server, events: &Events) {
    // The handshake (SPEC §5.2): credentials in metadata, who we are, what the frames are.
    let open = server.first("open", 0);
    assert_eq!(open["metadata"]["x-ms-authentication"], "Basic dmVsYTpzM2NyZXQ=", "Basic vela:s3cret");
    let d = server.first("descriptor", 0);
    assert_eq!(d["arm_id"], "", "no ARM id configured");
    assert_eq!((d["instance"].as_str(), d["node"].as_str()), (Some("embeddedCam"), Some("grpcExtension")));
    assert_eq!(d["config"], "{\"model\": \"people\"}");
    assert_eq!(d["timescale"], 90000);
    assert_eq!((d["encoding"].as_str(), d["pixel_format"].as_str()), (Some("JPG"), Some("NONE")));
    assert_eq!((d["width"].as_u64(), d["height"].as_u64(), d["stride"].as_u64()), (Some(416), Some(416), Some(0)));
    assert!(d["shm"].is_null());

    // Stream 0: 8 samples, the last one failed the call; every other one acked once.
    let seqs = assert_numbered(server, 0);
    assert_eq!(seqs.len(), 8, "the server aborted at the 8th sample");
    let acks: Vec<u64> = server.of("ack", 0).iter().map(|a| a["ack"].as_u64().unwrap()).collect();
    assert_eq!(acks, [2, 4, 3, 5, 6, 7, 8], "every request but the aborted one acked once, 3 after 4");
    for s in server.of("sample", 0) {
        assert_eq!(s["kind"], "content_bytes", "{s}");
        assert!(s["size"].as_u64().unwrap() > 1000, "{s}");
    }
    // The image: 768×576 padded into 416×416, black bars of 52 px above and below.
    let (w, h, bar) = probe_image(Path::new(server.first("sample", 0)["file"].as_str().unwrap()));
    assert_eq!((w, h), (416, 416));
    assert!(bar < 20.0, "the top bar is black (mean luma {bar:.1})");
    // Sampling: at most 5 a second of media time (the 10 fps camera's every other frame), on
    // the 90 kHz clock. Samples can be further apart when a loaded machine's decoder sheds
    // frames, never closer.
    let ts: Vec<u64> = server.log.iter().filter(|l| l["ev"] == "sample").map(|s| s["ts"].as_u64().unwrap()).collect();
    let gaps: Vec<u64> = ts.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    assert!(gaps.iter().all(|g| *g >= 18_000 - 90), "{gaps:?}");
    assert!(gaps.contains(&18_000), "{gaps:?}");

    // The abort: a diagnostic with the status, then a new stream after about a second.
    let aborted = events.diagnostics("embeddedCam", "Diagnostics.ProtocolError", "Aborted");
    assert_eq!(aborted.len(), 1, "{:?}", events.of("embeddedCam", "Diagnostics.ProtocolError"));
    assert_eq!(aborted[0]["message"], "scripted abort");
    assert_eq!(aborted[0]["protocol"], "gRPC");
    let ended = server.log.iter().find(|l| l["ev"] == "end" && l["stream"] == 0).unwrap()["t"].as_f64().unwrap();
    let reopened = server.first("open", 1)["t"].as_f64().unwrap();
    // (A second's back-off, then the next sampled frame opens it.)
    assert!((0.9..10.0).contains(&(reopened - ended)), "the new stream came {:.2} s after the abort", reopened - ended);
    let d1 = server.first("descriptor", 1);
    assert_eq!((d1["instance"].as_str(), d1["width"].as_u64()), (Some("embeddedCam"), Some(416)));
    let seqs1 = assert_numbered(server, 1);
    assert!(seqs1.len() >= 4);
    let acked1 = server.acked(1);
    assert!(seqs1.iter().rev().skip(MAX_IN_FLIGHT).all(|s| acked1.contains(s)), "stream 1 requests are acked");

    // Events: one per result (not for the ack alone or the empty result), with SPEC's
    // envelope, the request's timestamp, and the box mapped back from the padding.
    let answered: HashMap<u64, &str> =
        server.log.iter().filter(|l| l["ev"] == "sample").map(|s| (s["ts"].as_u64().unwrap(), s["answer"].as_str().unwrap())).collect();
    let inferences = events.of("embeddedCam", "Analytics.Inference");
    assert!(inferences.len() >= 8, "{} inference events", inferences.len());
    for (_, props, body) in &inferences {
        assert_eq!(props["subject"], "/edgeModules/avaedge/livePipelines/embeddedCam/processors/grpcExtension");
        assert_eq!(props["eventType"], "Microsoft.VideoAnalyzer.Analytics.Inference");
        assert_eq!(props["dataVersion"], "1.0");
        assert!(props["eventTime"].ends_with('Z') && props["eventTime"].len() == 24, "{}", props["eventTime"]);
        assert!(!props["topic"].is_empty());
        let ts = body["timestamp"].as_u64().unwrap();
        let answer = answered.get(&ts).unwrap_or_else(|| panic!("event for timestamp {ts}, which no request had"));
        assert!(*answer == "result" || *answer == "hold", "an event for a '{answer}' answer");
        assert_eq!(body["inferences"].as_array().unwrap().len(), 1);
        let i = &body["inferences"][0];
        assert_eq!((i["type"].as_str(), i["subtype"].as_str()), (Some("entity"), Some("objectDetection")));
        assert_eq!(i["entity"]["tag"], json!({"value": "person", "confidence": 0.875}));
        assert_eq!(i["entity"]["box"], json!({"l": 0.0, "t": 0.0, "w": 1.0, "h": 1.0}));
    }
    // Every result the server sent (up to a second before the test stopped listening) came
    // back as an event.
    let ts_of: HashMap<(u64, u64), u64> = server
        .log
        .iter()
        .filter(|l| l["ev"] == "sample")
        .map(|s| ((s["stream"].as_u64().unwrap(), s["seq"].as_u64().unwrap()), s["ts"].as_u64().unwrap()))
        .collect();
    let cutoff = server.log.last().unwrap()["t"].as_f64().unwrap() - 1.0;
    let published: HashSet<u64> = inferences.iter().map(|e| e.2["timestamp"].as_u64().unwrap()).collect();
    assert_eq!(published.len(), inferences.len(), "one event per result");
    for a in server.log.iter().filter(|l| l["ev"] == "ack" && l["results"] == 1 && l["t"].as_f64().unwrap() < cutoff) {
        let ts = ts_of[&(a["stream"].as_u64().unwrap(), a["ack"].as_u64().unwrap())];
        assert!(published.contains(&ts), "no event for the result of {a}");
    }
}

/// Returns the rings' names.
fn check_shared_memory(server: &Server, events: &Events) -> Vec<String> {
    let d = server.first("descriptor", 0);
    let name = d["shm"].as_str().unwrap();
    assert!(name.starts_with("inference_client_share_memory_"), "{name}");
    assert_eq!(d["shm_len"], 1_048_576, "1 MiB");
    assert_eq!((d["encoding"].as_str(), d["pixel_format"].as_str()), (Some("RAW"), Some("BGR24")));
    assert_eq!((d["width"].as_u64(), d["height"].as_u64(), d["stride"].as_u64()), (Some(320), Some(240), Some(960)));
    assert_eq!(d["instance"], "sharedCam");
    assert!(server.first("open", 0)["metadata"].get("x-ms-authentication").is_none(), "no credentials, no metadata");
    assert!(
        server.log.iter().all(|l| l["ev"] != "open" || l["stream"] == 0),
        "one stream: {:?}",
        server.log.iter().filter(|l| l["ev"] == "end").collect::<Vec<_>>()
    );
    assert_numbered(server, 0);

    // Regions: inside the ring, and never overlapping one the server has not acked yet (acks
    // are logged before they are sent: the client cannot have seen one the log lacks).
    let size = 320 * 240 * 3;
    let mut unacked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let (mut most, mut wrapped, mut out_of_order) = (0, false, false);
    for l in server.log.iter().filter(|l| l["stream"] == 0) {
        if l["ev"] == "sample" {
            let (seq, off, len) = (l["seq"].as_u64().unwrap(), l["offset"].as_u64().unwrap(), l["length"].as_u64().unwrap());
            assert_eq!((l["kind"].as_str(), len, l["size"].as_u64()), (Some("content_reference"), size, Some(size)), "{l}");
            assert!(off + len <= 1_048_576, "{l}");
            for (other, (o, n)) in &unacked {
                assert!(
                    off + len <= *o || o + n <= off,
                    "request {seq} at [{off}, +{len}) overlaps unacked request {other} at [{o}, +{n})"
                );
            }
            assert!(unacked.len() < MAX_IN_FLIGHT, "request {seq} sent with {} unacked", unacked.len());
            wrapped |= off == 0 && seq > 2;
            unacked.insert(seq, (off, len));
            most = most.max(unacked.len());
        } else if l["ev"] == "ack" {
            let seq = l["ack"].as_u64().unwrap();
            out_of_order |= unacked.keys().next().is_some_and(|first| *first < seq);
            assert!(unacked.remove(&seq).is_some(), "ack of {seq}, not pending");
        }
    }
    assert!(wrapped && out_of_order && most == MAX_IN_FLIGHT, "wrapped {wrapped}, out of order {out_of_order}, at most {most} in flight");
    // The pixels came through the ring: a real picture, not zeros.
    let img = std::fs::read(server.first("sample", 0)["file"].as_str().unwrap()).unwrap();
    let rgb = image::RgbImage::from_fn(320, 240, |x, y| {
        let i = ((y * 320 + x) * 3) as usize;
        image::Rgb([img[i + 2], img[i + 1], img[i]])
    });
    let mean = rgb.pixels().map(|p| f64::from(p.0[1])).sum::<f64>() / (320.0 * 240.0);
    assert!((30.0..220.0).contains(&mean), "mean green {mean:.1}");
    // Upstream motion inferences travel with the samples.
    assert!(server.of("sample", 0).iter().any(|s| s["inferences"].as_array().unwrap().iter().any(|t| t == "MOTION")));

    // The full pipeline dropped frames, and said so; results were published unmapped
    // (stretch has no padding).
    let dropped = events.of("sharedCam", "Diagnostics.DataDropped");
    assert!(!dropped.is_empty(), "frames beyond the pipeline bound are reported");
    assert_eq!(dropped[0].2["dataType"], "videoFrame");
    let inferences = events.of("sharedCam", "Analytics.Inference");
    assert!(!inferences.is_empty());
    for (_, _, body) in &inferences {
        let boxes: Vec<&Value> = body["inferences"].as_array().unwrap().iter().filter(|i| i["type"] == "entity").collect();
        assert_eq!(boxes.len(), 1, "{body}");
        assert_eq!(boxes[0]["entity"]["box"], json!({"l": 0.0, "t": 0.125, "w": 1.0, "h": 0.75}));
    }
    server.log.iter().filter_map(|l| l["shm"].as_str()).map(str::to_string).collect()
}

fn check_misbehaving(server: &Server, events: &Events) {
    // The rejection and the bad first message: diagnostics with what the server said, and
    // new streams after 1 s, then 2 s.
    let rejected = events.diagnostics("badCam", "Diagnostics.ProtocolError", "OutOfRange");
    assert_eq!(rejected.len(), 1, "{:?}", events.of("badCam", "Diagnostics.ProtocolError"));
    assert!(rejected[0]["message"].as_str().unwrap().contains("scripted rejection"), "{}", rejected[0]);
    let unexpected = events.diagnostics("badCam", "Diagnostics.ProtocolError", "UnexpectedMessage");
    assert_eq!(unexpected.len(), 1);
    let opened: Vec<f64> = (0..3).map(|k| server.first("open", k)["t"].as_f64().unwrap()).collect();
    assert!((0.9..8.0).contains(&(opened[1] - opened[0])), "{opened:?}");
    assert!((1.9..10.0).contains(&(opened[2] - opened[1])), "the back-off doubles: {opened:?}");
    for k in 0..3 {
        let d = server.first("descriptor", k);
        assert_eq!((d["width"].as_u64(), d["height"].as_u64(), d["encoding"].as_str()), (Some(320), Some(240), Some("JPG")));
    }
    assert!(server.of("sample", 0).is_empty() && server.of("sample", 1).is_empty(), "no sample before the server's descriptor");
    let seqs = assert_numbered(server, 2);
    let acked = server.acked(2);
    assert!(seqs.iter().rev().skip(MAX_IN_FLIGHT).all(|s| acked.contains(s)));
    assert!(server.of("open", 3).is_empty(), "the stream survives the unknown ack and the broken inference");
    let (w, h, _) = probe_image(Path::new(server.first("sample", 2)["file"].as_str().unwrap()));
    assert_eq!((w, h), (320, 240));

    assert_eq!(events.diagnostics("badCam", "Diagnostics.ProtocolError", "UnknownAck").len(), 1);
    // (One every 10 s at most: rate-limited.)
    assert!(!events.diagnostics("badCam", "Diagnostics.ProtocolError", "InvalidInference").is_empty());
    // The unsolicited result is published with its own timestamp; the one with a broken
    // inference keeps only the valid one.
    let inferences = events.of("badCam", "Analytics.Inference");
    assert!(inferences.iter().any(|e| e.2["timestamp"] == 4242), "unsolicited result");
    assert!(inferences.iter().all(|e| e.2["inferences"].as_array().unwrap().len() == 1));
    // 2 s media time ≈ 2/s: the boxes map back from nothing (preserveAspectRatio has no pad).
    assert!(inferences.iter().all(|e| e.2["inferences"][0]["entity"]["box"]["t"] == 0.125));
}
