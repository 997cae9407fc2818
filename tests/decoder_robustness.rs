//! Damaged H.264 over RTSP: the simulator damages a session's packets on request, and the appliance keeps running, counts and reports the decode errors, and recovers.

#[path = "common/appliance.rs"]
mod appliance;
mod common;

#[path = "common/raw_rtsp.rs"]
mod raw_rtsp;
use raw_rtsp::Raw;

use appliance::{probe, Appliance, Setup};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vela::hub::{HubMessage, ModuleClient};
use vela::modules::rtspsim::{self, Config};

// ---------------------------------------------------------------------------------------
// The simulator's damage, on the wire
// ---------------------------------------------------------------------------------------

/// What a run of RTP packets looks like: (packets, numbers missing, packets arriving after a
/// later-numbered one, access units whose last packet ends inside a FU-A).
fn rtp_shape(first_seq: u16, packets: &[Vec<u8>]) -> (usize, usize, usize, usize) {
    let mut seen = std::collections::BTreeSet::new();
    let (mut late, mut cut_fu) = (0, 0);
    let mut highest: Option<u16> = None;
    let ssrc = &packets[0][8..12];
    for p in packets {
        assert_eq!(p[0] >> 6, 2, "RTP version intact");
        assert_eq!(p[1] & 0x7f, 96, "payload type intact");
        assert_eq!(&p[8..12], ssrc, "SSRC intact");
        let seq = u16::from_be_bytes([p[2], p[3]]).wrapping_sub(first_seq);
        seen.insert(seq);
        if highest.is_some_and(|h| seq < h) {
            late += 1;
        }
        highest = highest.max(Some(seq));
        let marker = p[1] & 0x80 != 0;
        // FU-A (type 28) whose fragment header lacks the end bit, yet ends the access unit.
        if marker && p.len() > 13 && p[12] & 0x1f == 28 && p[13] & 0x40 == 0 {
            cut_fu += 1;
        }
    }
    let span = usize::from(highest.unwrap()) + 1;
    (packets.len(), span - seen.len(), late, cut_fu)
}

async fn packets(raw: &mut Raw, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < n {
        let (channel, p) = raw.packet().await;
        if channel == 0 {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_damages_a_session_on_request_and_refuses_bad_specs_with_the_reason() {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap(), appliance::repo().join("config/media"));
    c.speed = 4.0;
    let server = rtspsim::serve(c).await.unwrap();
    let url = server.url("vtest.mkv");

    // Bad specs: 400 with what is wrong, at DESCRIBE and at SETUP alike.
    let mut raw = Raw::connect(server.local_addr()).await;
    for (query, reason) in [
        ("damage=flop:0.1", "unknown damage kind \"flop\" (known: flip, drop, reorder, truncate)"),
        ("damage=drop:2", "damage rate \"2\" of drop is not a probability between 0 and 1"),
        ("damage=drop", "damage item \"drop\" is not KIND:RATE"),
        ("damge=drop:0.1", "unknown query parameter \"damge\""),
        ("damage=drop:0.1&seed=-1", "seed \"-1\" is not an unsigned 64-bit integer"),
    ] {
        let d = raw.request("DESCRIBE", &format!("{url}?{query}"), &[]).await;
        assert_eq!((d.status, d.body.contains(reason)), (400, true), "{query}: {} {}", d.status, d.body);
        let s = raw.request("SETUP", &format!("{url}/trackID=0?{query}"), &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")]).await;
        assert_eq!((s.status, s.body.contains(reason)), (400, true), "{query}: {} {}", s.status, s.body);
    }

    // Two viewers of the same camera: the one that asked for damage gets it (the SETUP URL
    // built from Content-Base has no query: the DESCRIBE's carries over), the other does not.
    let mut clean = Raw::connect(server.local_addr()).await;
    let mut damaged = Raw::connect(server.local_addr()).await;
    let clean_seq = clean.play(&url).await;
    let damaged_seq = damaged.play(&format!("{url}?damage=drop:0.02,reorder:0.02,truncate:0.3,flip:0.02&seed=7")).await;
    let clean_packets = packets(&mut clean, 600).await;
    let damaged_packets = packets(&mut damaged, 600).await;
    let (n, missing, late, cut) = rtp_shape(clean_seq, &clean_packets);
    assert_eq!((n, missing, late, cut), (600, 0, 0, 0), "the clean viewer's stream");
    let (n, missing, late, cut) = rtp_shape(damaged_seq, &damaged_packets);
    println!("damaged viewer: {n} packets, {missing} numbers missing, {late} late, {cut} access units ending inside a FU-A");
    assert!(missing >= 3 && late >= 3 && cut >= 3, "drops, reorders and truncations show: {missing} missing, {late} late, {cut} cut");
    // Timestamps stay on the 10 fps grid of the stream: the damage never touches RTP headers.
    let ts0 = u32::from_be_bytes(damaged_packets[0][4..8].try_into().unwrap());
    for p in &damaged_packets {
        let ts = u32::from_be_bytes(p[4..8].try_into().unwrap());
        assert_eq!(ts.wrapping_sub(ts0) as i32 % 9000, 0, "timestamp {ts} off the grid of {ts0}");
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The appliance under a damaged camera
// ---------------------------------------------------------------------------------------

/// Every event the observer module receives, with its arrival time.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, HubMessage)>>>);

impl Log {
    async fn start(observer: &ModuleClient) -> Log {
        let log = Log::default();
        let mut inputs = observer.inputs().await.unwrap();
        let l = log.clone();
        tokio::spawn(async move {
            while let Some((_, m)) = inputs.recv().await {
                l.0.lock().unwrap().push((Instant::now(), m));
            }
        });
        log
    }

    /// (arrival, body) of events of `ty` (suffix of eventType) from `subject`.
    fn of(&self, ty: &str, subject: &str) -> Vec<(Instant, Value)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m.property("eventType").is_some_and(|t| t.ends_with(ty)) && m.property("subject") == Some(subject))
            .map(|(t, m)| (*t, m.body_json().unwrap_or(Value::Null)))
            .collect()
    }
}

fn source(pipeline: &str) -> String {
    format!("/edgeModules/avaedge/livePipelines/{pipeline}/sources/rtspSource")
}

fn motion(pipeline: &str) -> String {
    format!("/edgeModules/avaedge/livePipelines/{pipeline}/processors/motionDetection")
}

/// A direct method that must be answered: an appliance that crashed answers nothing.
async fn call(c: &ModuleClient, method: &str, payload: Value) -> (u16, Option<Value>) {
    c.invoke_method("vela", "avaedge", method, &payload, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{method} unanswered: is the appliance still alive? {e}"))
}

/// The published motion-recording topology (motion → signal gate → file sink), with its
/// motion events also sent to the hub so that the test sees the analytics work.
fn motion_recording_topology() -> Value {
    let path = common::fixture("reference/ava-topologies/evr-motion-file-sink/topology.json");
    let mut t: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let p = &mut t["properties"];
    p["sinks"][0]["baseDirectoryPath"] = json!("media");
    p["sinks"].as_array_mut().unwrap().push(json!({
        "@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink",
        "name": "hubSink",
        "hubOutputName": "inferenceOutput",
        "inputs": [{ "nodeName": "motionDetection" }]
    }));
    t
}

/// Heavy damage: with 54 packets per keyframe about half the keyframes are hit (retina
/// drops what it cannot depacketize, the decoder fails on the rest), and one access unit in
/// ten is damaged, so the decoder resyncs every other GOP or so.
const HEAVY: &str = "flip:0.005,drop:0.005,reorder:0.005,truncate:0.05";

const RUN: Duration = Duration::from_secs(24);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavily_damaged_camera_is_counted_and_reported_while_a_clean_one_beside_it_is_unaffected() {
    let t0 = Instant::now();
    let mut a = Appliance::new(&Setup::empty());
    a.start();
    let caller = a.client("caller").await;
    let observer = a.client("observer").await;
    let log = Log::start(&observer).await;
    let camera = format!("rtsp://127.0.0.1:{}/media/vtest.mkv", a.camera_port);

    let topology = motion_recording_topology();
    let (status, answer) = call(&caller, "pipelineTopologySet", topology.clone()).await;
    assert_eq!(status, 201, "{answer:?}");
    for (name, url) in [("damaged", format!("{camera}?damage={HEAVY}&seed=7")), ("clean", camera.clone())] {
        let pipeline = json!({ "@apiVersion": "1.1", "name": name, "properties": {
            "topologyName": topology["name"], "parameters": [{ "name": "rtspUrl", "value": url }] } });
        let (status, answer) = call(&caller, "livePipelineSet", pipeline).await;
        assert_eq!(status, 201, "{answer:?}");
        let (status, answer) = call(&caller, "livePipelineActivate", json!({ "@apiVersion": "1.1", "name": name })).await;
        assert_eq!(status, 200, "{answer:?}");
    }
    let running = Instant::now();
    tokio::time::sleep(RUN).await;

    // Still alive and both pipelines still active.
    for name in ["damaged", "clean"] {
        let (status, answer) = call(&caller, "livePipelineGet", json!({ "@apiVersion": "1.1", "name": name })).await;
        assert_eq!(status, 200, "{answer:?}");
        assert_eq!(answer.unwrap()["properties"]["state"], "active", "{name}");
    }

    // The damage is counted and reported: MediaFormatError with running totals, at most
    // once per 10 s from the damaged source, never from the clean one.
    // What arrived, for the record (shown on failure and with --nocapture).
    let mut kinds = std::collections::BTreeMap::new();
    for (_, m) in log.0.lock().unwrap().iter() {
        let key = (m.property("subject").unwrap_or("").to_owned(), m.property("eventType").unwrap_or("").to_owned());
        *kinds.entry(key).or_insert(0) += 1;
    }
    for ((subject, ty), n) in &kinds {
        println!("{n:5} {ty} from {subject}");
    }
    let reports = log.of("Diagnostics.MediaFormatError", &source("damaged"));
    for (_, body) in &reports {
        println!("damaged source reports {body}");
    }
    assert!(!reports.is_empty(), "no MediaFormatError from the damaged source in {RUN:?}");
    assert!(reports.len() <= 1 + RUN.as_secs() as usize / 10, "{} reports in {RUN:?}", reports.len());
    for (_, body) in &reports {
        assert_eq!(body["code"], "VideoDecodeError", "{body}");
        assert!(body["errors"].as_u64().unwrap() > 0 && body["resyncs"].as_u64().is_some(), "{body}");
    }
    for w in reports.windows(2) {
        // Arrival times: the hub may deliver one a little late and the next one on time.
        assert!(w[1].0 - w[0].0 >= Duration::from_millis(9500), "two reports {:?} apart", w[1].0 - w[0].0);
        assert!(w[1].1["errors"].as_u64() > w[0].1["errors"].as_u64(), "running totals grow");
    }
    assert_eq!(log.of("Diagnostics.MediaFormatError", &source("clean")).len(), 0, "the clean source reports no damage");

    // Neither RTSP session was given up: damaged packets are not a network failure.
    for name in ["damaged", "clean"] {
        let sessions = log.of("Diagnostics.MediaSessionEstablished", &source(name)).len();
        let failures = log.of("Diagnostics.NetworkError", &source(name)).len() + log.of("Diagnostics.ProtocolError", &source(name)).len();
        assert_eq!((sessions, failures), (1, 0), "{name}: RTSP sessions opened, failures");
    }

    // The analytics recover: motion from the damaged camera keeps coming through to the end,
    // and the clean camera's flows all along (vtest.mkv has people walking throughout).
    let quarter = RUN / 4;
    for name in ["damaged", "clean"] {
        let motions = log.of("Analytics.Inference", &motion(name));
        let per_quarter: Vec<usize> = (0..4)
            .map(|q| motions.iter().filter(|(t, _)| *t >= running + quarter * q && *t < running + quarter * (q + 1)).count())
            .collect();
        println!("{name}: {} motion events, per quarter of the run {per_quarter:?}", motions.len());
        if name == "clean" {
            assert!(per_quarter.iter().all(|&n| n >= 3), "{name}: motion events per quarter {per_quarter:?}");
        } else {
            assert!(per_quarter[2] + per_quarter[3] > 0, "{name}: no motion events in the second half {per_quarter:?}");
        }
    }

    // Recordings of the damaged stream are still sound containers.
    for name in ["damaged", "clean"] {
        let (status, _) = call(&caller, "livePipelineDeactivate", json!({ "@apiVersion": "1.1", "name": name })).await;
        assert_eq!(status, 200);
    }
    let clips = a.clips();
    for name in ["damaged", "clean"] {
        let mine: Vec<_> = clips.iter().filter(|p| p.to_string_lossy().contains(&format!("-{name}-"))).collect();
        assert!(!mine.is_empty(), "{name}: no clip in {clips:?}");
        for clip in mine {
            let (errors, packets, key_first) = probe(Path::new(clip));
            // ffprobe decodes a few frames to describe the stream: the H.264 decoder's
            // complaints are about the damage the camera sent, not about the file.
            let container: Vec<&str> = errors.lines().filter(|l| !l.starts_with("[h264 @")).collect();
            println!("{name}: {} {packets} packets, {} decoder complaints", clip.display(), errors.lines().count() - container.len());
            assert!(container.is_empty() && key_first && packets > 0, "{}: {container:?} ({packets} packets)", clip.display());
            if name == "clean" {
                assert_eq!(errors, "", "{}", clip.display());
            }
        }
    }
    a.stop();
    println!("wall time {:?}", t0.elapsed());
}
