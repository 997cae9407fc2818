//! Extension throughput benchmark (issue 6): frames per second one graph pushes through the HTTP and the gRPC extension to a trivial server, embedded vs shared memory.
//!
//! A `vela run` process runs one pipeline per case on `vela rtspsim` serving
//! config/media/vtest.mkv (768×576, 10 fps) sped up (`--speed`, default 30: 300 fps offered,
//! more than any case takes). The pipeline is RTSP source → extension (no sampling limit) →
//! hub sink. The trivial servers run in this process and do no inference: the HTTP one
//! answers every POST with one entity inference (JSON, as a model would); the gRPC one
//! answers the descriptor, then acks every sample with one entity inference, reading the
//! shared-memory region (a checksum over it) when that is the transfer. So the numbers are
//! what the extension client in Vela can carry, not a model's speed.
//!
//! Per case: samples the server received per second over `--window` seconds (after a
//! warm-up), the frames Vela dropped meanwhile (DataDropped), and Vela's CPU per sample.
//! LVA's documentation advises fewer than 5 fps through the HTTP extension.
//!
//! Prints, never fails on timing. `cargo bench --bench extension [-- --window SECS] [--speed X]`

mod common;

use anyhow::{bail, Context};
use common::*;
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vela::grpc::pb::media_graph_extension_server::{MediaGraphExtension, MediaGraphExtensionServer};
use vela::grpc::pb::{self, media_sample, media_stream_descriptor, media_stream_message, MediaStreamMessage};
use vela::grpc::shm::ShmView;

const REPRO: &str = "cargo bench --bench extension --";

struct Opts {
    window: Duration,
    speed: f64,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts { window: Duration::from_secs(15), speed: 30.0 };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--bench" => {}
                "--window" => o.window = Duration::from_secs(args.next().and_then(|v| v.parse().ok()).context("--window SECS")?),
                "--speed" => o.speed = args.next().and_then(|v| v.parse().ok()).context("--speed X")?,
                other => bail!("unknown argument {other:?}; usage: {REPRO} [--window SECS] [--speed X]"),
            }
        }
        Ok(o)
    }
}

/// What a trivial server saw.
#[derive(Default)]
struct Counters {
    samples: AtomicU64,
    bytes: AtomicU64,
}

/// One entity, as a detector would answer.
fn entity_json() -> Value {
    json!({"type": "entity", "entity": {"tag": {"value": "person", "confidence": 0.9}, "box": {"l": 0.1, "t": 0.2, "w": 0.3, "h": 0.4}}})
}

/// An HTTP extension server that answers at once; runs on its own thread and System.
fn http_server(counters: Arc<Counters>) -> anyhow::Result<u16> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let port = mqtt::free_port();
    let body = serde_json::to_vec(&json!({"inferences": [entity_json()]}))?;
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let (counters, body) = (counters.clone(), body.clone());
                App::new().app_data(web::PayloadConfig::new(64 << 20)).default_service(web::to(move |b: web::Bytes| {
                    let (counters, body) = (counters.clone(), body.clone());
                    async move {
                        counters.samples.fetch_add(1, Ordering::Relaxed);
                        counters.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                        HttpResponse::Ok().content_type("application/json").body(body)
                    }
                }))
            })
            .workers(1)
            .bind(("127.0.0.1", port))
            .expect("bind")
            .run();
            server.await.ok();
        });
    });
    if !wait_port(port, Duration::from_secs(10)) {
        bail!("the trivial HTTP server did not start");
    }
    Ok(port)
}

struct Trivial {
    counters: Arc<Counters>,
}

type Replies = Pin<Box<dyn futures::Stream<Item = Result<MediaStreamMessage, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl MediaGraphExtension for Trivial {
    type ProcessMediaStreamStream = Replies;

    async fn process_media_stream(
        &self,
        request: tonic::Request<tonic::Streaming<MediaStreamMessage>>,
    ) -> Result<tonic::Response<Replies>, tonic::Status> {
        let mut input = request.into_inner();
        let counters = self.counters.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let inference = vela::grpc::inference::from_json(&entity_json()).expect("entity");
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut shm: Option<ShmView> = None;
            while let Ok(Some(m)) = input.message().await {
                seq += 1;
                let reply = match m.payload {
                    Some(media_stream_message::Payload::MediaStreamDescriptor(d)) => {
                        if let Some(media_stream_descriptor::DataTransferProperties::SharedMemoryBufferTransferProperties(p)) =
                            d.data_transfer_properties
                        {
                            shm = ShmView::open(&p.handle_name, p.length_bytes).ok();
                        }
                        let descriptor = pb::MediaStreamDescriptor {
                            stream_identifier: Some(media_stream_descriptor::StreamIdentifier::ExtensionIdentifier("trivial".into())),
                            media_descriptor: Some(pb::MediaDescriptor { timescale: 90_000, media_sample_format: None }),
                            ..Default::default()
                        };
                        media_stream_message::Payload::MediaStreamDescriptor(descriptor)
                    }
                    Some(media_stream_message::Payload::MediaSample(s)) => {
                        let n = match s.content {
                            Some(media_sample::Content::ContentBytes(b)) => b.bytes.len() as u64,
                            Some(media_sample::Content::ContentReference(r)) => match &shm {
                                // Touch every byte, as a server decoding the image would.
                                Some(v) => v
                                    .read(r.address_offset, r.length_bytes)
                                    .map(|b| {
                                        std::hint::black_box(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)));
                                        b.len() as u64
                                    })
                                    .unwrap_or(0),
                                None => 0,
                            },
                            None => 0,
                        };
                        counters.samples.fetch_add(1, Ordering::Relaxed);
                        counters.bytes.fetch_add(n, Ordering::Relaxed);
                        let sample = pb::MediaSample { timestamp: s.timestamp, inferences: vec![inference.clone()], content: None };
                        media_stream_message::Payload::MediaSample(sample)
                    }
                    None => continue,
                };
                let out = MediaStreamMessage { sequence_number: seq, ack_sequence_number: m.sequence_number, payload: Some(reply) };
                if tx.send(Ok(out)).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream_from(rx))))
    }
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn grpc_server(counters: Arc<Counters>) -> anyhow::Result<u16> {
    let port = mqtt::free_port();
    tokio::spawn(async move {
        let addr = format!("127.0.0.1:{port}").parse().expect("addr");
        tonic::transport::Server::builder()
            .add_service(MediaGraphExtensionServer::new(Trivial { counters }).max_decoding_message_size(64 << 20))
            .serve(addr)
            .await
            .ok();
    });
    Ok(port)
}

#[derive(Clone, Copy)]
enum Case {
    Http,
    GrpcEmbedded,
    GrpcShared,
}

fn processor(case: Case, port: u16, format: &Value) -> Value {
    let image = json!({"scale": {"mode": "pad", "width": "416", "height": "416"}, "format": format});
    let inputs = json!([{"nodeName": "rtspSource", "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}]);
    match case {
        Case::Http => json!({"@type": "#Microsoft.VideoAnalyzer.HttpExtension", "name": "extension",
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("http://127.0.0.1:{port}/score")},
            "image": image, "inputs": inputs}),
        Case::GrpcEmbedded | Case::GrpcShared => {
            let transfer = match case {
                Case::GrpcShared => json!({"mode": "sharedMemory", "SharedMemorySizeMiB": "64"}),
                _ => json!({"mode": "embedded"}),
            };
            json!({"@type": "#Microsoft.VideoAnalyzer.GrpcExtension", "name": "extension",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": format!("tcp://127.0.0.1:{port}")},
                "dataTransfer": transfer, "image": image, "inputs": inputs})
        }
    }
}

async fn run_case(bin: &std::path::Path, name: &str, case: Case, format: Value, o: &Opts, hz: f64) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let port = match case {
        Case::Http => http_server(counters.clone())?,
        _ => grpc_server(counters.clone())?,
    };
    let media = mqtt::scratch_dir("bench-extension-media");
    std::fs::copy(repo().join("config/media/vtest.mkv"), media.join("vtest.mkv"))?;
    let sim = RtspSim::start(bin, media, o.speed)?;
    let mut v = Vela::new(bin, None)?;
    v.start()?;
    let caller = v.client("caller").await?;
    let observer = v.client("observer").await?;
    let mut events = observer.inputs().await?;
    let topology = json!({"@apiVersion": "1.1", "name": "bench", "properties": {
        "parameters": [{"name": "rtspUrl", "type": "string"}],
        "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource", "transport": "tcp",
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
        "processors": [processor(case, port, &format)],
        "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hubSink", "hubOutputName": "inferences",
            "inputs": [{"nodeName": "extension"}]}]}});
    call_ok(&caller, "pipelineTopologySet", topology).await?;
    let instance = json!({"@apiVersion": "1.1", "name": "cam", "properties": {"topologyName": "bench",
        "parameters": [{"name": "rtspUrl", "value": sim.url("vtest.mkv")}]}});
    call_ok(&caller, "livePipelineSet", instance).await?;
    call_ok(&caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": "cam"})).await?;
    if !sim.wait_sessions(1, Duration::from_secs(10)) {
        bail!("the pipeline did not connect to the camera");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    while events.try_recv().is_ok() {}
    let pid = v.pid();
    let (c0, s0, t0) = (proc_ticks(pid).unwrap_or(0), counters.samples.load(Ordering::Relaxed), Instant::now());
    let b0 = counters.bytes.load(Ordering::Relaxed);
    tokio::time::sleep(o.window).await;
    let (c1, s1, secs) = (proc_ticks(pid).unwrap_or(0), counters.samples.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    let b1 = counters.bytes.load(Ordering::Relaxed);
    let (mut inferences, mut dropped) = (0u64, 0u64);
    while let Ok((_, m)) = events.try_recv() {
        let ty = m.property("eventType").unwrap_or("");
        if ty.ends_with("Inference") {
            inferences += 1;
        } else if ty.ends_with("DataDropped") {
            dropped = dropped.max(m.body_json().ok().and_then(|b| b["dropped"].as_u64()).unwrap_or(0));
        }
    }
    let samples = s1.saturating_sub(s0);
    let fps = samples as f64 / secs;
    let cpu = c1.saturating_sub(c0) as f64 / hz;
    println!(
        "{name:<34} {fps:>9.1} {:>12.1} {:>10.0} {:>16.2} {:>9.1}×   (Inference events {inferences}, dropped so far {dropped})",
        o.speed * 10.0,
        (b1 - b0) as f64 / samples.max(1) as f64 / 1024.0,
        cpu * 1e3 / samples.max(1) as f64,
        fps / 5.0,
    );
    caller.disconnect().await;
    observer.disconnect().await;
    v.stop();
    drop(sim);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let o = Opts::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let bin = vela_binary()?;
        let hz = clock_ticks();
        println!(
            "== Extension throughput, vtest.mkv 768x576 at {}x ({REPRO} --window {} --speed {})",
            o.speed,
            o.window.as_secs(),
            o.speed
        );
        println!(
            "{:<34} {:>9} {:>12} {:>10} {:>16} {:>10}",
            "case (416x416 pad)", "samples/s", "offered fps", "KiB/sample", "Vela CPU ms/sample", "vs 5 fps"
        );
        let jpeg = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "90"});
        let raw = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatRaw", "pixelFormat": "bgr24"});
        run_case(&bin, "HTTP, JPEG q90 (one in flight)", Case::Http, jpeg.clone(), &o, hz).await?;
        run_case(&bin, "HTTP, raw bgr24", Case::Http, raw.clone(), &o, hz).await?;
        run_case(&bin, "gRPC embedded, JPEG q90", Case::GrpcEmbedded, jpeg.clone(), &o, hz).await?;
        run_case(&bin, "gRPC shared memory, JPEG q90", Case::GrpcShared, jpeg, &o, hz).await?;
        run_case(&bin, "gRPC embedded, raw bgr24", Case::GrpcEmbedded, raw.clone(), &o, hz).await?;
        run_case(&bin, "gRPC shared memory, raw bgr24", Case::GrpcShared, raw, &o, hz).await?;
        println!("(LVA's guidance: fewer than 5 fps through the HTTP extension.)");
        anyhow::Ok(())
    })
}
