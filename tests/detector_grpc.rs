//! The detector's gRPC extension server (SPEC §5.2) driven by a tonic client as LVA drives it.
//!
//! Embedded JPEG and shared-memory RAW bgr24 (padded rows) streams on labelled vtest frames:
//! every sample acknowledged, people found (the HTTP test's recall bar), timestamps echoed,
//! requests pipelined; samples that cannot be read are acknowledged without result and the
//! stream goes on; a full queue acknowledges without result; a client that goes away stops
//! its work. Refused handshakes carry the sample servers' status codes, and credentials are
//! enforced when configured. Few frames and one model thread: the model is the cost in a
//! debug build.

#[path = "common/detector.rs"]
mod kit;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::RgbImage;
use kit::{encode, fixture, have_ffmpeg, http, score_frame, start, Labelled};
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::{Code, Status, Streaming};
use vela::grpc::pb::media_graph_extension_client::MediaGraphExtensionClient;
use vela::grpc::pb::{self, media_sample, media_stream_descriptor, media_stream_message, video_frame_sample_format as vfsf};
use vela::grpc::shm::{Region, ShmRing};
use vela::grpc::{inference, AUTH_METADATA};
use vela::modules::detector::{Credentials, ServerConfig};

/// Long enough for a few frames through a debug-build model on a busy 2-core CI box.
const PATIENCE: Duration = Duration::from_secs(120);

/// gRPC on a free port; `max_batch` 1 spares each server the batched plan's check (seconds in
/// a debug build; NanoDet-m cannot batch anyway, docs/detector.md).
fn grpc_config() -> ServerConfig {
    ServerConfig { grpc_listen: Some("127.0.0.1:0".into()), max_body: 4 << 20, max_batch: 1, ..ServerConfig::default() }
}

fn health(addr: SocketAddr) -> Value {
    http(addr, "GET", "/health", None, b"").json()
}

// ---------------------------------------------------------------------------------------
// Client

fn descriptor(format: Option<pb::VideoFrameSampleFormat>) -> pb::MediaStreamDescriptor {
    pb::MediaStreamDescriptor {
        stream_identifier: Some(media_stream_descriptor::StreamIdentifier::GraphIdentifier(pb::GraphIdentifier {
            media_services_arm_id: String::new(),
            graph_instance_name: "camera-1".into(),
            graph_node_name: "grpcExtension".into(),
        })),
        extension_configuration: String::new(),
        media_descriptor: Some(pb::MediaDescriptor {
            timescale: 90000,
            media_sample_format: format.map(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat),
        }),
        data_transfer_properties: None,
    }
}

fn jpg() -> pb::VideoFrameSampleFormat {
    pb::VideoFrameSampleFormat { encoding: vfsf::Encoding::Jpg as i32, ..Default::default() }
}

fn raw(pixel_format: i32, width: u32, height: u32, stride_bytes: u32) -> pb::VideoFrameSampleFormat {
    pb::VideoFrameSampleFormat {
        encoding: vfsf::Encoding::Raw as i32,
        pixel_format,
        dimensions: Some(pb::Dimensions { width, height }),
        stride_bytes,
    }
}

fn with_shm(mut d: pb::MediaStreamDescriptor, ring: &str, len: u64) -> pb::MediaStreamDescriptor {
    d.data_transfer_properties = Some(media_stream_descriptor::DataTransferProperties::SharedMemoryBufferTransferProperties(
        pb::SharedMemoryBufferTransferProperties { handle_name: ring.into(), length_bytes: len },
    ));
    d
}

fn sample(seq: u64, timestamp: u64, content: media_sample::Content) -> pb::MediaStreamMessage {
    pb::MediaStreamMessage {
        sequence_number: seq,
        ack_sequence_number: 0,
        payload: Some(media_stream_message::Payload::MediaSample(pb::MediaSample {
            timestamp,
            content: Some(content),
            inferences: vec![],
        })),
    }
}

fn bytes(b: Vec<u8>) -> media_sample::Content {
    media_sample::Content::ContentBytes(pb::ContentBytes { bytes: b })
}

fn reference(r: Region) -> media_sample::Content {
    media_sample::Content::ContentReference(pb::ContentReference { address_offset: r.offset, length_bytes: r.len })
}

fn basic(user_password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password))
}

/// One stream as the module opens it: messages are queued on `tx` (so several can be sent
/// before any answer is read) and answers read from `rx`.
struct Client {
    tx: mpsc::UnboundedSender<pb::MediaStreamMessage>,
    rx: Streaming<pb::MediaStreamMessage>,
}

impl Client {
    /// Sends `first` (normally the descriptor) and opens the call; a refused handshake is the
    /// call's status.
    async fn open(addr: SocketAddr, first: pb::MediaStreamMessage, auth: Option<&str>) -> Result<Client, Status> {
        let mut grpc = MediaGraphExtensionClient::connect(format!("http://{addr}")).await.expect("connect");
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(first).unwrap();
        let outbound = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let mut request = tonic::Request::new(outbound);
        if let Some(a) = auth {
            request.metadata_mut().insert(AUTH_METADATA, a.parse().unwrap());
        }
        let rx = grpc.process_media_stream(request).await?.into_inner();
        Ok(Client { tx, rx })
    }

    async fn descriptor(addr: SocketAddr, d: pb::MediaStreamDescriptor, auth: Option<&str>) -> Result<Client, Status> {
        let first = pb::MediaStreamMessage {
            sequence_number: 1,
            ack_sequence_number: 0,
            payload: Some(media_stream_message::Payload::MediaStreamDescriptor(d)),
        };
        Client::open(addr, first, auth).await
    }

    /// Opens a stream and checks the server's descriptor: seq 1, acks ours, names itself,
    /// inferences only.
    async fn handshake(addr: SocketAddr, d: pb::MediaStreamDescriptor) -> Client {
        let mut c = Client::descriptor(addr, d, None).await.unwrap_or_else(|s| panic!("handshake refused: {s:?}"));
        let m = c.next().await.expect("the server's descriptor");
        assert_eq!((m.sequence_number, m.ack_sequence_number), (1, 1));
        let Some(media_stream_message::Payload::MediaStreamDescriptor(d)) = m.payload else { panic!("{m:?}") };
        assert_eq!(d.stream_identifier, Some(media_stream_descriptor::StreamIdentifier::ExtensionIdentifier("vela-detector".into())));
        assert_eq!(d.media_descriptor, Some(pb::MediaDescriptor { timescale: 90000, media_sample_format: None }));
        assert_eq!(d.data_transfer_properties, None);
        c
    }

    fn send(&self, m: pb::MediaStreamMessage) {
        self.tx.send(m).unwrap();
    }

    async fn next(&mut self) -> Option<pb::MediaStreamMessage> {
        tokio::time::timeout(PATIENCE, self.rx.message()).await.expect("an answer in time").expect("no error on the stream")
    }

    /// The status that ends the stream.
    async fn error(&mut self) -> Status {
        loop {
            match tokio::time::timeout(PATIENCE, self.rx.message()).await.expect("an answer in time") {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without error"),
                Err(s) => return s,
            }
        }
    }

    /// Answers until every one of `seqs` is acknowledged, by request seq. Checks this side's
    /// numbering goes on from `*next` without gaps.
    async fn acks(&mut self, seqs: &[u64], next: &mut u64) -> HashMap<u64, pb::MediaStreamMessage> {
        let mut got = HashMap::new();
        while got.len() < seqs.len() {
            let m = self.next().await.unwrap_or_else(|| panic!("the stream ended; acks so far {:?}", got.keys()));
            assert_eq!(m.sequence_number, *next, "the server numbers its messages from 1 without gaps");
            *next += 1;
            assert!(seqs.contains(&m.ack_sequence_number), "ack of {} unexpected", m.ack_sequence_number);
            assert!(got.insert(m.ack_sequence_number, m).is_none(), "acknowledged twice");
        }
        got
    }
}

/// The refusal of a handshake, whether the call or its first answer carries it.
async fn refusal(addr: SocketAddr, first: pb::MediaStreamMessage, auth: Option<&str>) -> Status {
    match Client::open(addr, first, auth).await {
        Err(s) => s,
        Ok(mut c) => c.error().await,
    }
}

async fn refused_descriptor(addr: SocketAddr, d: pb::MediaStreamDescriptor) -> Status {
    refusal(
        addr,
        pb::MediaStreamMessage {
            sequence_number: 1,
            ack_sequence_number: 0,
            payload: Some(media_stream_message::Payload::MediaStreamDescriptor(d)),
        },
        None,
    )
    .await
}

/// (confidence, tag, [l, t, w, h]) of each inference of an answer.
type Found = Vec<(f32, String, [f32; 4])>;

/// An answer's result: `None` for a bare ack, else its timestamp and inferences, checked
/// against SPEC §4.3 (entity, box within the picture).
fn result(m: &pb::MediaStreamMessage) -> Option<(u64, Found)> {
    let Some(media_stream_message::Payload::MediaSample(s)) = &m.payload else {
        assert!(m.payload.is_none(), "{m:?}");
        return None;
    };
    assert!(s.content.is_none(), "inferences only, no media");
    let list = s
        .inferences
        .iter()
        .map(|i| {
            let json = inference::to_json(i).expect("a value");
            assert_eq!(json["type"], "entity", "{json}");
            assert_eq!(json["entity"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["tag", "box"]);
            let Some(pb::inference::Value::Entity(e)) = &i.value else { unreachable!() };
            let (tag, b) = (e.tag.as_ref().unwrap(), e.r#box.as_ref().unwrap());
            let b = [b.l, b.t, b.w, b.h];
            assert!(b.iter().all(|x| (0.0..=1.0).contains(x)) && b[0] + b[2] <= 1.0 + 1e-6 && b[1] + b[3] <= 1.0 + 1e-6, "{b:?}");
            assert!((0.0..=1.0).contains(&tag.confidence));
            (tag.confidence, tag.value.clone(), b)
        })
        .collect();
    Some((s.timestamp, list))
}

/// People found over `frames` against the labels, at the HTTP test's bar (recall 0.8 at
/// IoU 0.5); prints each frame's tally.
fn assert_people_found(frames: &[&Labelled], found: &[Found], what: &str) {
    let (mut people, mut hits) = (0, 0);
    for (f, list) in frames.iter().zip(found) {
        let scored: Vec<(f32, [f32; 4])> = list.iter().filter(|(_, t, _)| t == "person").map(|(c, _, b)| (*c, *b)).collect();
        let (h, misses, fps, _) = score_frame(f, &scored);
        println!("{what} frame {}: {h}/{} people, missed {misses:?}, false {fps:?}", f.frame, f.people.len());
        people += f.people.len();
        hits += h;
    }
    let recall = hits as f32 / people as f32;
    println!("{what}: recall {recall:.3} ({hits}/{people})");
    assert!(recall >= 0.8, "{what}: recall {recall:.3}");
}

// ---------------------------------------------------------------------------------------
// Streams

#[tokio::test]
async fn embedded_jpeg_pipelined_with_per_stream_classes() {
    if !have_ffmpeg() {
        return;
    }
    let t = Instant::now();
    let started = start(grpc_config());
    let addr = started.grpc.unwrap();
    let mut d = descriptor(Some(jpg()));
    // All 80 classes on the server; this stream wants people only.
    d.extension_configuration = r#"{"classes": ["person"]}"#.into();
    let mut c = Client::handshake(addr, d).await;
    // Eight requests before reading any answer: four frames (one carrying upstream
    // inferences, ignored) and four that cannot be read.
    let frames: Vec<&Labelled> = fixture()[..4].iter().collect();
    let stamp = |seq: u64| seq * 3000 + 123_456_789;
    let mut seqs = vec![];
    for (i, f) in frames.iter().enumerate() {
        let seq = 2 + i as u64;
        let mut m = sample(seq, stamp(seq), bytes(encode(&f.image, image::ImageFormat::Jpeg)));
        if i == 3 {
            if let Some(media_stream_message::Payload::MediaSample(s)) = &mut m.payload {
                s.inferences.push(
                    inference::from_json(
                        &serde_json::json!({"type": "motion", "motion": {"box": {"l": 0.1, "t": 0.1, "w": 0.2, "h": 0.2}}}),
                    )
                    .unwrap(),
                );
            }
        }
        c.send(m);
        seqs.push(seq);
    }
    c.send(sample(6, stamp(6), bytes(b"\xff\xd8\xff not a JPEG".to_vec())));
    c.send(sample(7, stamp(7), bytes(vec![])));
    c.send(sample(8, stamp(8), reference(Region { offset: 0, len: 10 })));
    let mut no_content = sample(9, stamp(9), bytes(vec![]));
    if let Some(media_stream_message::Payload::MediaSample(s)) = &mut no_content.payload {
        s.content = None;
    }
    c.send(no_content);
    seqs.extend([6, 7, 8, 9]);
    let mut next = 2;
    let acks = c.acks(&seqs, &mut next).await;
    assert_eq!(acks.keys().copied().collect::<BTreeSet<_>>(), seqs.iter().copied().collect());
    let mut found = vec![];
    for (i, _) in frames.iter().enumerate() {
        let seq = 2 + i as u64;
        let (ts, list) = result(&acks[&seq]).unwrap_or_else(|| panic!("frame of seq {seq} has no result"));
        assert_eq!(ts, stamp(seq), "timestamp echoed");
        assert!(list.iter().all(|(_, tag, _)| tag == "person"), "the stream's classes: {list:?}");
        for w in list.windows(2) {
            assert!(w[0].0 >= w[1].0, "most confident first");
        }
        found.push(list);
    }
    assert_people_found(&frames, &found, "embedded JPEG");
    for (seq, what) in [(6, "undecodable"), (7, "empty"), (8, "a reference without shared memory"), (9, "no content")] {
        assert_eq!(result(&acks[&seq]), None, "{what}: acknowledged without result");
    }
    // Closing our side ends the stream cleanly once everything is answered.
    drop(c.tx);
    assert!(tokio::time::timeout(PATIENCE, c.rx.message()).await.unwrap().unwrap().is_none());
    let v = health(started.http);
    let g = &v["grpc"];
    println!("health grpc {g}; counters {}; ms per picture {}", v["counters"], v["meanMsPerPicture"]);
    assert_eq!(g["listen"], addr.to_string());
    assert_eq!(
        (g["streams"].as_u64(), g["samples"].as_u64(), g["results"].as_u64(), g["failed"].as_u64()),
        (Some(1), Some(8), Some(4), Some(4))
    );
    assert_eq!(v["counters"]["pictures"], 4, "one queue and one pool for both contracts");
    // The stream's end is seen by the server right after ours.
    let open = wait_for(|| health(started.http)["grpc"]["streamsOpen"].as_u64() == Some(0)).await;
    assert!(open, "the stream is still counted open");
    // Another stream's threshold is its own: nobody is that sure, so nothing is found (an
    // empty result, timestamp echoed).
    let mut d = descriptor(Some(jpg()));
    d.extension_configuration = r#"{"threshold": 0.99}"#.into();
    let mut c = Client::handshake(addr, d).await;
    c.send(sample(2, 42, bytes(encode(&frames[0].image, image::ImageFormat::Jpeg))));
    assert_eq!(result(&c.acks(&[2], &mut 2).await[&2]), Some((42, vec![])));
    println!("took {:?}", t.elapsed());
}

#[tokio::test]
async fn raw_bgr24_over_shared_memory_with_a_bad_reference() {
    if !have_ffmpeg() {
        return;
    }
    let t = Instant::now();
    let started = start(ServerConfig {
        detector: vela::modules::detector::DetectorConfig { classes: vec!["person".into()], ..Default::default() },
        ..grpc_config()
    });
    let addr = started.grpc.unwrap();
    let (w, h, stride) = (416u32, 416u32, 416 * 3 + 32);
    let name = format!("vela_test_detector_{}", std::process::id());
    let size = 4 << 20;
    let mut ring = ShmRing::create(&name, size).unwrap();
    let d = with_shm(descriptor(Some(raw(vfsf::PixelFormat::Bgr24 as i32, w, h, stride))), &name, size);
    let mut c = Client::handshake(addr, d).await;
    // The labelled frames stretched to the model's size, as a topology's `stretch` sends
    // them: normalised boxes stay where they were.
    let frames: Vec<&Labelled> = fixture()[5..8].iter().collect();
    let bgr = |img: &RgbImage| -> Vec<u8> {
        let small = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
        let mut out = Vec::with_capacity(stride as usize * h as usize);
        for row in small.as_raw().chunks_exact(w as usize * 3) {
            out.extend(row.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]));
            out.resize(out.len() + 32, 0xAB); // the padding must not be read as pixels
        }
        out
    };
    let mut regions = HashMap::new();
    let mut frame_seqs = vec![];
    let mut seq = 2;
    for (i, f) in frames.iter().enumerate() {
        let r = ring.put(&bgr(&f.image)).expect("room in the ring");
        c.send(sample(seq, 1000 + seq, reference(r)));
        regions.insert(seq, r);
        frame_seqs.push(seq);
        seq += 1;
        if i == 0 {
            // Past the end of the shared memory: acknowledged without result, stream goes on.
            c.send(sample(seq, 1000 + seq, reference(Region { offset: size - 100, len: 1000 })));
            seq += 1;
        }
    }
    let all: Vec<u64> = (2..seq).collect();
    let mut next = 2;
    let acks = c.acks(&all, &mut next).await;
    for (s, r) in &regions {
        assert!(acks.contains_key(s));
        assert!(ring.free(*r), "each region freed once, on its ack");
    }
    assert_eq!(ring.held(), 0);
    assert_eq!(result(&acks[&3]), None, "the reference outside the shared memory");
    let mut found = vec![];
    for s in &frame_seqs {
        let (ts, list) = result(&acks[s]).unwrap();
        assert_eq!(ts, 1000 + s);
        found.push(list);
    }
    assert_people_found(&frames, &found, "shared-memory RAW");
    // A region is read before it is acked, so a reused one gives the new picture's answer.
    let r = ring.put(&vec![0u8; stride as usize * h as usize]).unwrap();
    c.send(sample(seq, 7, reference(r)));
    let again = c.acks(&[seq], &mut next).await;
    assert_eq!(result(&again[&seq]), Some((7, vec![])), "black: nothing found");
    drop(c);
    println!("took {:?}", t.elapsed());
}

#[tokio::test]
async fn a_full_queue_acknowledges_without_result() {
    // Room for two pictures (one running, one waiting): a burst of eight turns most away.
    let started = start(ServerConfig { threads: 1, queue: 1, ..grpc_config() });
    let addr = started.grpc.unwrap();
    let mut c = Client::handshake(addr, descriptor(Some(raw(vfsf::PixelFormat::Rgb24 as i32, 64, 48, 0)))).await;
    let seqs: Vec<u64> = (2..10).collect();
    for &s in &seqs {
        c.send(sample(s, s, bytes(vec![0u8; 64 * 48 * 3])));
    }
    let acks = c.acks(&seqs, &mut 2).await;
    let answered = acks.values().filter(|m| result(m).is_some()).count();
    println!("burst of 8 with room for 2: {answered} answered");
    assert!((2..8).contains(&answered), "{answered} answered");
    let v = health(started.http);
    assert_eq!(v["grpc"]["busy"].as_u64(), Some(8 - answered as u64), "{v}");
    assert!(v["counters"]["busy"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn a_client_that_goes_away_stops_its_work() {
    let started = start(ServerConfig { threads: 1, ..grpc_config() });
    let addr = started.grpc.unwrap();
    let mut c = Client::handshake(addr, descriptor(Some(raw(vfsf::PixelFormat::Rgb24 as i32, 64, 48, 0)))).await;
    for s in 2..8 {
        c.send(sample(s, s, bytes(vec![0u8; 64 * 48 * 3])));
    }
    // Six queued; the client leaves once the first is answered (whichever: the pictures are
    // prepared on a pool, so they may reach the model in any order).
    let first = c.next().await.expect("an answer");
    assert_eq!(first.sequence_number, 2, "{first:?}");
    assert!((2..8).contains(&first.ack_sequence_number), "{first:?}");
    drop(c);
    assert!(wait_for(|| health(started.http)["grpc"]["streamsOpen"].as_u64() == Some(0)).await, "the stream stays open");
    // Whatever was running finishes; what waits is dropped unrun.
    let skipped = wait_for(|| health(started.http)["counters"]["abandoned"].as_u64() >= Some(1)).await;
    let c = health(started.http)["counters"].clone();
    println!("after the client left: counters {c}");
    assert!(skipped && c["pictures"].as_u64().unwrap() <= 3, "{c}");
}

/// Polls `ok` for up to ten seconds.
async fn wait_for(mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok()
}

// ---------------------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn refused_handshakes_carry_the_sample_servers_status_codes() {
    let started = start(grpc_config());
    let addr = started.grpc.unwrap();
    // A sample first.
    let s = refusal(addr, sample(1, 0, bytes(vec![1, 2, 3])), None).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("MediaStreamDescriptor"), "{s:?}");
    // Unsupported RAW pixel formats: OutOfRange, naming the format.
    let s = refused_descriptor(addr, descriptor(Some(raw(vfsf::PixelFormat::None as i32, 416, 416, 0)))).await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    assert!(s.message().contains("NONE"), "{s:?}");
    let s = refused_descriptor(addr, descriptor(Some(raw(33, 416, 416, 0)))).await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    assert!(s.message().contains("33"), "{s:?}");
    // RAW without dimensions, or with a stride shorter than a row.
    let s = refused_descriptor(addr, descriptor(Some(raw(vfsf::PixelFormat::Bgr24 as i32, 0, 0, 0)))).await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    let s = refused_descriptor(addr, descriptor(Some(raw(vfsf::PixelFormat::Bgr24 as i32, 416, 416, 416)))).await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    // Shared memory that is not there.
    let d = with_shm(descriptor(Some(jpg())), &format!("vela_test_absent_{}", std::process::id()), 1 << 20);
    let s = refused_descriptor(addr, d).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("shared memory"), "{s:?}");
    // Configuration that is not JSON, or names no COCO class.
    for (conf, says) in [("person", "JSON"), (r#"{"classes": ["dragon"]}"#, "dragon"), (r#"{"threshold": 2}"#, "threshold")] {
        let mut d = descriptor(Some(jpg()));
        d.extension_configuration = conf.into();
        let s = refused_descriptor(addr, d).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{conf}: {s:?}");
        assert!(s.message().contains(says), "{conf}: {s:?}");
    }
    // Nothing at all.
    let mut grpc = MediaGraphExtensionClient::connect(format!("http://{addr}")).await.unwrap();
    let s = match grpc.process_media_stream(futures::stream::empty::<pb::MediaStreamMessage>()).await {
        Err(s) => s,
        Ok(r) => r.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // After a good handshake: a reference without shared memory is acknowledged without
    // result (the model never runs); a second descriptor ends the stream.
    let mut c = Client::handshake(addr, descriptor(Some(jpg()))).await;
    c.send(sample(2, 5, reference(Region { offset: 0, len: 10 })));
    let mut next = 2;
    let acks = c.acks(&[2], &mut next).await;
    assert_eq!(result(&acks[&2]), None);
    c.send(pb::MediaStreamMessage {
        sequence_number: 3,
        ack_sequence_number: 0,
        payload: Some(media_stream_message::Payload::MediaStreamDescriptor(descriptor(Some(jpg())))),
    });
    let s = c.error().await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // A message over the size limit (4 MiB here) ends the stream with tonic's status.
    let mut c = Client::handshake(addr, descriptor(Some(jpg()))).await;
    c.send(sample(2, 5, bytes(vec![0xFF; 5 << 20])));
    let s = c.error().await;
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    assert_eq!(health(started.http)["counters"]["pictures"], 0);
}

#[tokio::test]
async fn credentials_are_required_when_configured() {
    let started = start(ServerConfig { grpc_credentials: Some(Credentials::new("lva", "n0t-s3cret")), ..grpc_config() });
    let addr = started.grpc.unwrap();
    let first = || pb::MediaStreamMessage {
        sequence_number: 1,
        ack_sequence_number: 0,
        payload: Some(media_stream_message::Payload::MediaStreamDescriptor(descriptor(Some(jpg())))),
    };
    for auth in [None, Some(basic("lva:wrong")), Some(basic("lva:n0t-s3cret ")), Some("Bearer n0t-s3cret".to_string())] {
        let s = refusal(addr, first(), auth.as_deref()).await;
        assert_eq!(s.code(), Code::Unauthenticated, "{auth:?}: {s:?}");
        assert!(!s.message().contains("n0t-s3cret"), "{s:?}");
    }
    let mut c = Client::open(addr, first(), Some(&basic("lva:n0t-s3cret"))).await.unwrap();
    let m = c.next().await.unwrap();
    assert!(matches!(m.payload, Some(media_stream_message::Payload::MediaStreamDescriptor(_))), "{m:?}");
    assert_eq!(m.ack_sequence_number, 1);
}

#[tokio::test]
async fn stopping_ends_open_streams_with_unavailable() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let config = ServerConfig { model: kit::model_path(), listen: "127.0.0.1:0".into(), ..grpc_config() };
            let serving = vela::modules::detector::serve(config).await.unwrap();
            ready_tx.send(serving.grpc.as_ref().unwrap().addr).unwrap();
            let (handle, grpc) = (serving.handle.clone(), serving.grpc.clone().unwrap());
            let server = actix_rt::spawn(serving.server);
            let _ = stop_rx.await;
            // gRPC first and awaited: the runtime ends with the HTTP server.
            grpc.stop().await;
            handle.stop(true).await;
            let _ = server.await;
        })
    });
    let addr = ready_rx.recv_timeout(PATIENCE).unwrap();
    let mut c = Client::handshake(addr, descriptor(Some(jpg()))).await;
    stop_tx.send(()).unwrap();
    let s = c.error().await;
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
}
