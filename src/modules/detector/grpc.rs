//! The detector as an LVA/AVA gRPC extension server (SPEC §5.2): `ProcessMediaStream` with embedded or shared-memory frames, on the HTTP server's queue and model threads.
//!
//! One stream per camera session. The first message must be the client's
//! `MediaStreamDescriptor`: its format (JPG, PNG, BMP or RAW with a pixel format, size and
//! stride), its shared memory (opened read-only here) and its `extension_configuration`
//! (optional per-stream `{"threshold", "classes"}`) are checked before anything is
//! answered, and a refusal fails the call with the status the sample servers use
//! (`OutOfRange` for a format, `InvalidArgument` for the rest). The answer is this
//! server's descriptor: inferences only, no media.
//!
//! Samples are pipelined: each is admitted to the shared queue (a full queue acks it at
//! once with no result, as HTTP answers 503), decoded on the blocking pool (copied out of
//! shared memory there) and run by the model threads; its ack carries the inferences and
//! leaves when it is done, so acks may overtake each other. A sample that cannot be read
//! (a reference outside the shared memory, an undecodable picture) is acked without result
//! and the stream goes on. The ack is only sent once the picture no longer needs the
//! client's region, which the client then reuses.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use super::body::{self, BodyError, Kind, RawSpec, MAX_SIDE};
use super::server::{self, Shared};
use super::{Detection, Detector, DetectorConfig};
use crate::grpc::pb::media_graph_extension_server::{MediaGraphExtension, MediaGraphExtensionServer};
use crate::grpc::pb::{self, media_sample, media_stream_descriptor, media_stream_message, video_frame_sample_format as vfsf};
use crate::grpc::shm::ShmView;
use crate::grpc::{inference, AUTH_METADATA};
use crate::topology::nodes::common::PixelFormat;
use crate::topology::reader::TextEnum;

/// How this server names itself in its descriptor.
pub const EXTENSION_IDENTIFIER: &str = "vela-detector";
/// The media clock of the answers: LVA's 90 kHz, whose timestamps are echoed.
const TIMESCALE: u32 = 90_000;
/// Answers waiting for a slow reader before the stream stops reading requests (and so
/// stops taking more work from that client).
const OUTBOX: usize = 16;
/// A message may carry a picture of the HTTP body limit plus the envelope around it.
const ENVELOPE: usize = 64 << 10;

/// The user name and password gRPC clients must present. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials { user: user.into(), password: password.into() }
    }

    /// Whether `value` is `Basic base64(user:password)` for these credentials (the scheme in
    /// any case, as HTTP has it).
    pub fn accepts(&self, value: Option<&MetadataValue<Ascii>>) -> bool {
        let Some(v) = value.and_then(|v| v.to_str().ok()) else { return false };
        let Some((scheme, token)) = v.trim().split_once(' ') else { return false };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else { return false };
        let expected = format!("{}:{}", self.user, self.password);
        // Compared in full whatever differs first, so timing does not tell how much matched.
        given.len() == expected.len() && given.iter().zip(expected.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Counters of the gRPC side for `/health`.
#[derive(Default)]
pub(super) struct GrpcStats {
    streams_open: AtomicU64,
    streams: AtomicU64,
    samples: AtomicU64,
    /// Acks that carried inferences.
    results: AtomicU64,
    /// Acks without result because the sample could not be read or decoded, or failed.
    failed: AtomicU64,
    /// Acks without result because the queue was full.
    busy: AtomicU64,
}

impl GrpcStats {
    pub(super) fn health(&self, addr: SocketAddr) -> Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "listen": addr.to_string(),
            "streamsOpen": get(&self.streams_open),
            "streams": get(&self.streams),
            "samples": get(&self.samples),
            "results": get(&self.results),
            "failed": get(&self.failed),
            "busy": get(&self.busy),
        })
    }
}

/// Why a stream's descriptor was refused; each maps to the status the sample servers use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DescriptorError {
    /// A media format this server does not take (`OutOfRange`).
    #[error("{0}")]
    Format(String),
    /// Anything else wrong with the handshake (`InvalidArgument`).
    #[error("{0}")]
    Invalid(String),
}

impl From<DescriptorError> for Status {
    fn from(e: DescriptorError) -> Self {
        match e {
            DescriptorError::Format(m) => Status::out_of_range(m),
            DescriptorError::Invalid(m) => Status::invalid_argument(m),
        }
    }
}

/// How a stream's samples are read: the `body` kind and, for RAW, the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleFormat {
    pub kind: Kind,
    pub raw: RawSpec,
}

/// The format announced by a client's media descriptor. Without a sample format, JPEG, PNG
/// and BMP are recognised by their signature (the contract always sends one; a hand-made
/// client may not).
pub fn sample_format(md: Option<&pb::MediaDescriptor>) -> Result<SampleFormat, DescriptorError> {
    let Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(f)) = md.and_then(|m| m.media_sample_format.as_ref()) else {
        return Ok(SampleFormat { kind: Kind::Sniff, raw: RawSpec::default() });
    };
    let kind = match vfsf::Encoding::try_from(f.encoding) {
        Ok(vfsf::Encoding::Jpg) => Kind::Jpeg,
        Ok(vfsf::Encoding::Png) => Kind::Png,
        Ok(vfsf::Encoding::Bmp) => Kind::Bmp,
        Ok(vfsf::Encoding::Raw) => Kind::Raw,
        Err(_) => return Err(DescriptorError::Format(format!("encoding {} is not supported: use JPG, PNG, BMP or RAW", f.encoding))),
    };
    if kind != Kind::Raw {
        return Ok(SampleFormat { kind, raw: RawSpec::default() });
    }
    let format = raw_pixel_format(f.pixel_format)?;
    let (width, height) = f.dimensions.as_ref().map_or((0, 0), |d| (d.width, d.height));
    if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
        return Err(DescriptorError::Format(format!(
            "RAW frames of {width}x{height}: dimensions must be given, 1 to {MAX_SIDE} pixels a side"
        )));
    }
    let stride = f.stride_bytes as usize;
    let row = match format {
        PixelFormat::Yuv420p => {
            // The Y plane's rows; the chroma planes follow at half width.
            if stride != 0 && stride != width as usize {
                return Err(DescriptorError::Format(format!(
                    "RAW yuv420p with stride {stride}: only tightly packed planes are supported (stride 0 or {width})"
                )));
            }
            return Ok(SampleFormat { kind, raw: RawSpec { width, height, format, stride: None } });
        }
        PixelFormat::Rgb565be | PixelFormat::Rgb565le | PixelFormat::Rgb555be | PixelFormat::Rgb555le => 2,
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
        PixelFormat::Argb | PixelFormat::Rgba | PixelFormat::Abgr | PixelFormat::Bgra => 4,
    } * width as usize;
    if stride != 0 && stride < row {
        return Err(DescriptorError::Format(format!(
            "RAW {} of width {width} with stride {stride}: a row is {row} bytes",
            format.as_str()
        )));
    }
    Ok(SampleFormat { kind, raw: RawSpec { width, height, format, stride: (stride != 0).then_some(stride) } })
}

/// A RAW pixel format the detector reads (every one of the contract but NONE).
fn raw_pixel_format(value: i32) -> Result<PixelFormat, DescriptorError> {
    let name = vfsf::PixelFormat::try_from(value).map(|p| p.as_str_name().to_owned()).unwrap_or_else(|_| value.to_string());
    body::pixel_format(&name).ok_or_else(|| {
        let names: Vec<String> = PixelFormat::VALUES.iter().map(|(n, _)| n.to_ascii_uppercase()).collect();
        DescriptorError::Format(format!("RAW pixel format {name} is not supported: use one of {}", names.join(", ")))
    })
}

/// Per-stream settings from `extension_configuration` (JSON). Absent fields keep the
/// server's; `classes: []` reports all 80.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    pub threshold: Option<f32>,
    pub classes: Option<Vec<String>>,
}

impl StreamSettings {
    /// Reads `extension_configuration`: empty (or blank) is no settings, else a JSON object.
    pub fn parse(text: &str) -> Result<StreamSettings, DescriptorError> {
        if text.trim().is_empty() {
            return Ok(StreamSettings::default());
        }
        serde_json::from_str(text).map_err(|e| {
            DescriptorError::Invalid(format!(
                "extension_configuration must be empty or a JSON object such as {{\"threshold\": 0.5, \"classes\": [\"person\"]}}: {e}"
            ))
        })
    }

    /// The settings applied over `base`; `None` when they change nothing.
    pub fn apply(&self, base: &DetectorConfig) -> Option<DetectorConfig> {
        if self.threshold.is_none() && self.classes.is_none() {
            return None;
        }
        Some(DetectorConfig {
            threshold: self.threshold.unwrap_or(base.threshold),
            classes: self.classes.clone().unwrap_or_else(|| base.classes.clone()),
            ..base.clone()
        })
    }
}

/// The running gRPC server. Dropping this does not stop it; [`GrpcServing::stop`] (on any
/// clone) does, as does the end of the runtime it runs on.
#[derive(Clone)]
pub struct GrpcServing {
    pub addr: SocketAddr,
    shutdown: Arc<watch::Sender<bool>>,
    /// Set when the server has ended.
    done: watch::Receiver<bool>,
}

impl GrpcServing {
    /// Stops accepting, ends open streams once their samples are answered (with
    /// `Unavailable`), and returns when the server has ended: the runtime may then go
    /// without cutting a stream short.
    pub async fn stop(&self) {
        self.shutdown.send_replace(true);
        let mut done = self.done.clone();
        // An error means the server's task is gone already.
        let _ = done.wait_for(|d| *d).await;
    }
}

/// Binds `addr` and spawns the server on the current Tokio runtime.
pub(super) async fn start(shared: Arc<Shared>, addr: &str, credentials: Option<Credentials>) -> std::io::Result<GrpcServing> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let shutdown = Arc::new(watch::channel(false).0);
    let max_message = shared.max_body + ENVELOPE;
    let service = Service { shared, credentials: credentials.map(Arc::new), shutdown: shutdown.clone() };
    let svc = MediaGraphExtensionServer::new(service).max_decoding_message_size(max_message);
    let mut stopped = shutdown.subscribe();
    let (done_tx, done) = watch::channel(false);
    tokio::spawn(async move {
        let signal = async move {
            if stopped.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        if let Err(e) = tonic::transport::Server::builder().add_service(svc).serve_with_incoming_shutdown(incoming, signal).await {
            tracing::error!(addr = %local, "detector gRPC server: {e}");
        }
        done_tx.send_replace(true);
    });
    tracing::info!(addr = %local, "detector: gRPC extension server listening");
    Ok(GrpcServing { addr: local, shutdown, done })
}

struct Service {
    shared: Arc<Shared>,
    credentials: Option<Arc<Credentials>>,
    shutdown: Arc<watch::Sender<bool>>,
}

type Outbound = Pin<Box<dyn Stream<Item = Result<pb::MediaStreamMessage, Status>> + Send>>;

#[tonic::async_trait]
impl MediaGraphExtension for Service {
    type ProcessMediaStreamStream = Outbound;

    async fn process_media_stream(&self, request: Request<Streaming<pb::MediaStreamMessage>>) -> Result<Response<Outbound>, Status> {
        let peer = request.remote_addr().map_or_else(|| "?".into(), |a| a.to_string());
        if let Some(c) = &self.credentials {
            if !c.accepts(request.metadata().get(AUTH_METADATA)) {
                // The value is a secret (or a guess at one): only whether it was there.
                let present = request.metadata().contains_key(AUTH_METADATA);
                tracing::warn!(%peer, credentials_sent = present, "detector gRPC: stream refused, wrong or missing credentials");
                return Err(Status::unauthenticated(format!("{AUTH_METADATA}: Basic credentials for this extension are required")));
            }
        }
        let mut inbound = request.into_inner();
        let first =
            inbound.message().await?.ok_or_else(|| Status::invalid_argument("the stream ended before its MediaStreamDescriptor"))?;
        let session = Session::open(&self.shared, first).inspect_err(|e| tracing::warn!(%peer, "detector gRPC: stream refused: {e}"))?;
        tracing::info!(
            %peer,
            pipeline = %session.pipeline,
            format = ?session.format.kind,
            shared_memory = session.shm.is_some(),
            settings = ?session.detector.as_ref().map(|d| d.config()),
            "detector gRPC: stream open"
        );
        let (tx, rx) = mpsc::channel(OUTBOX);
        let reply = session.descriptor_reply();
        tx.try_send(Ok(reply)).expect("an empty outbox has room");
        let (shared, shutdown) = (self.shared.clone(), self.shutdown.subscribe());
        tokio::spawn(run_stream(shared, session, inbound, tx, shutdown));
        Ok(Response::new(Box::pin(numbered(rx))))
    }
}

/// The answers in the order they leave, numbered as they leave: acks finish out of order,
/// but this side's sequence numbers must grow from 1.
fn numbered(rx: mpsc::Receiver<Result<pb::MediaStreamMessage, Status>>) -> impl Stream<Item = Result<pb::MediaStreamMessage, Status>> {
    futures::stream::unfold((rx, 1u64), |(mut rx, next)| async move {
        match rx.recv().await? {
            Ok(mut m) => {
                m.sequence_number = next;
                Some((Ok(m), (rx, next + 1)))
            }
            Err(status) => Some((Err(status), (rx, next))),
        }
    })
}

/// What a stream's descriptor established.
struct Session {
    /// The client descriptor's sequence number, acknowledged by ours.
    descriptor_seq: u64,
    format: SampleFormat,
    shm: Option<Arc<ShmView>>,
    /// The stream's own settings, when its configuration changes the server's.
    detector: Option<Arc<Detector>>,
    /// Pipeline and node names (or the peer's identifier) for logs.
    pipeline: String,
}

impl Session {
    fn open(shared: &Shared, first: pb::MediaStreamMessage) -> Result<Session, DescriptorError> {
        let descriptor_seq = first.sequence_number;
        let Some(media_stream_message::Payload::MediaStreamDescriptor(d)) = first.payload else {
            return Err(DescriptorError::Invalid("the first message of a stream must be a MediaStreamDescriptor".into()));
        };
        let pipeline = match &d.stream_identifier {
            Some(media_stream_descriptor::StreamIdentifier::GraphIdentifier(g)) => {
                format!("{}/{}", g.graph_instance_name, g.graph_node_name)
            }
            Some(media_stream_descriptor::StreamIdentifier::ExtensionIdentifier(e)) => e.clone(),
            None => String::new(),
        };
        let format = sample_format(d.media_descriptor.as_ref())?;
        let settings = StreamSettings::parse(&d.extension_configuration)?;
        let detector = match settings.apply(shared.detector.config()) {
            Some(config) => Some(Arc::new(
                shared.detector.with_config(config).map_err(|e| DescriptorError::Invalid(format!("extension_configuration: {e}")))?,
            )),
            None => None,
        };
        let shm = match &d.data_transfer_properties {
            Some(media_stream_descriptor::DataTransferProperties::SharedMemoryBufferTransferProperties(p)) => {
                let view = ShmView::open(&p.handle_name, p.length_bytes)
                    .map_err(|e| DescriptorError::Invalid(format!("cannot open the shared memory: {e}")))?;
                Some(Arc::new(view))
            }
            None => None,
        };
        Ok(Session { descriptor_seq, format, shm, detector, pipeline })
    }

    fn descriptor_reply(&self) -> pb::MediaStreamMessage {
        pb::MediaStreamMessage {
            sequence_number: 0,
            ack_sequence_number: self.descriptor_seq,
            payload: Some(media_stream_message::Payload::MediaStreamDescriptor(pb::MediaStreamDescriptor {
                stream_identifier: Some(media_stream_descriptor::StreamIdentifier::ExtensionIdentifier(EXTENSION_IDENTIFIER.into())),
                extension_configuration: String::new(),
                // No sample format: this server answers with inferences, never media.
                media_descriptor: Some(pb::MediaDescriptor { timescale: TIMESCALE, media_sample_format: None }),
                data_transfer_properties: None,
            })),
        }
    }

    /// Where a sample's picture is, checked (a reference against the mapping).
    fn content(&self, sample: &mut pb::MediaSample) -> Result<Content, String> {
        match sample.content.take() {
            Some(media_sample::Content::ContentBytes(b)) => Ok(Content::Bytes(Bytes::from(b.bytes))),
            Some(media_sample::Content::ContentReference(r)) => {
                let Some(view) = &self.shm else {
                    return Err("a content reference on a stream without shared memory".into());
                };
                view.read(r.address_offset, r.length_bytes).map_err(|e| e.to_string())?;
                Ok(Content::Shm(view.clone(), r.address_offset, r.length_bytes))
            }
            None => Err("a sample without content".into()),
        }
    }
}

/// A sample's bytes: its own, or a region of the client's shared memory.
enum Content {
    Bytes(Bytes),
    Shm(Arc<ShmView>, u64, u64),
}

impl Content {
    /// The bytes, copied out of shared memory: once this returns the region is not read
    /// again and may be acknowledged.
    fn into_bytes(self) -> Result<Bytes, BodyError> {
        match self {
            Content::Bytes(b) => Ok(b),
            Content::Shm(view, offset, len) => {
                view.read(offset, len).map(Bytes::copy_from_slice).map_err(|e| BodyError::Undecodable(e.to_string()))
            }
        }
    }
}

/// An ack of request `ack` that carries no result.
fn ack_only(ack: u64) -> pb::MediaStreamMessage {
    pb::MediaStreamMessage { sequence_number: 0, ack_sequence_number: ack, payload: None }
}

/// The ack of request `ack` with what was found; inferences are built from the same JSON
/// as `/score`'s, so both contracts say the same.
fn result_message(ack: u64, timestamp: u64, found: &[Detection]) -> pb::MediaStreamMessage {
    let doc = server::inferences(found);
    let inferences = doc["inferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| inference::from_json(i).inspect_err(|e| tracing::error!("detector gRPC: inference {i}: {e}")).ok())
        .collect();
    pb::MediaStreamMessage {
        sequence_number: 0,
        ack_sequence_number: ack,
        payload: Some(media_stream_message::Payload::MediaSample(pb::MediaSample { timestamp, content: None, inferences })),
    }
}

/// Closes the stream's place in `/health` however the stream ends.
struct OpenStream(Arc<Shared>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stats.grpc.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads a stream's samples and answers them until the client closes its side (then every
/// sample still running is answered first), goes away (work in progress is dropped) or the
/// server stops.
async fn run_stream(
    shared: Arc<Shared>,
    session: Session,
    mut inbound: Streaming<pb::MediaStreamMessage>,
    tx: mpsc::Sender<Result<pb::MediaStreamMessage, Status>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stats = &shared.stats.grpc;
    stats.streams.fetch_add(1, Ordering::Relaxed);
    stats.streams_open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenStream(shared.clone());
    let session = Arc::new(session);
    // Dropping the set (the client went away) aborts what is still running; the model
    // threads then skip the pictures nobody waits for.
    let mut work: JoinSet<pb::MediaStreamMessage> = JoinSet::new();
    // A stream that slipped in as the server was stopping ends at once.
    let stopping = *shutdown.borrow_and_update();
    let (mut reading, mut watching) = (!stopping, !stopping);
    let mut ending = stopping.then(|| Status::unavailable("the detector is shutting down"));
    loop {
        if !reading && work.is_empty() {
            if let Some(status) = ending {
                let _ = tx.send(Err(status)).await;
            }
            tracing::info!(pipeline = %session.pipeline, "detector gRPC: stream closed");
            return;
        }
        let answer = tokio::select! {
            msg = inbound.message(), if reading => match msg {
                Ok(Some(m)) => match accept(&shared, &session, m, &mut work) {
                    Ok(ack) => ack,
                    Err(status) => {
                        tracing::warn!(pipeline = %session.pipeline, "detector gRPC: {}", status.message());
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                },
                Ok(None) => {
                    reading = false;
                    None
                }
                Err(status) => {
                    // The client went away, or sent what could not be read (a message over
                    // the size limit): its work is dropped, and the status goes back in case
                    // it still listens.
                    tracing::info!(pipeline = %session.pipeline, in_flight = work.len(), "detector gRPC: stream ended: {}", status.message());
                    drop(work);
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            },
            Some(done) = work.join_next() => match done {
                Ok(ack) => Some(ack),
                Err(e) => {
                    // The tasks do not panic (decoding and the model are guarded); should
                    // one, its sample stays unacknowledged and the client's timeout applies.
                    tracing::error!(pipeline = %session.pipeline, "detector gRPC: a sample's task failed: {e}");
                    None
                }
            },
            _ = tx.closed() => {
                tracing::info!(pipeline = %session.pipeline, in_flight = work.len(), "detector gRPC: the client stopped reading; stream closed");
                return;
            }
            changed = shutdown.changed(), if watching => {
                let stopping = changed.is_ok() && *shutdown.borrow_and_update();
                if stopping {
                    reading = false;
                    ending = Some(Status::unavailable("the detector is shutting down"));
                }
                // A dropped sender never sends again: stop watching it.
                watching = changed.is_ok() && !stopping;
                None
            }
        };
        if let Some(ack) = answer {
            if tx.send(Ok(ack)).await.is_err() {
                return;
            }
        }
    }
}

/// Takes one client message: a sample is queued (its ack comes from `work`) or, when it
/// cannot be, acked at once; a second descriptor ends the stream.
fn accept(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    msg: pb::MediaStreamMessage,
    work: &mut JoinSet<pb::MediaStreamMessage>,
) -> Result<Option<pb::MediaStreamMessage>, Status> {
    let seq = msg.sequence_number;
    let stats = &shared.stats.grpc;
    let mut sample = match msg.payload {
        Some(media_stream_message::Payload::MediaSample(s)) => s,
        Some(media_stream_message::Payload::MediaStreamDescriptor(_)) => {
            return Err(Status::invalid_argument(format!("message {seq}: a stream has one MediaStreamDescriptor, its first message")));
        }
        // Acknowledgements of our answers carry nothing to do.
        None => return Ok(None),
    };
    stats.samples.fetch_add(1, Ordering::Relaxed);
    let Ok(admission) = shared.admit() else {
        stats.busy.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pipeline = %session.pipeline, seq, "detector gRPC: queue full, sample acknowledged without result");
        return Ok(Some(ack_only(seq)));
    };
    let content = match session.content(&mut sample) {
        Ok(c) => c,
        Err(why) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(pipeline = %session.pipeline, seq, "detector gRPC: sample skipped: {why}");
            return Ok(Some(ack_only(seq)));
        }
    };
    // Upstream inferences riding on the sample are not this detector's input.
    let timestamp = sample.timestamp;
    let (shared, session) = (shared.clone(), session.clone());
    work.spawn(async move {
        let SampleFormat { kind, raw } = session.format;
        let decode = move || body::decode(kind, content.into_bytes()?, &raw);
        let stats = &shared.stats.grpc;
        match shared.run(admission, decode, session.detector.clone()).await {
            Ok(found) => {
                if !found.is_empty() {
                    stats.results.fetch_add(1, Ordering::Relaxed);
                }
                result_message(seq, timestamp, &found)
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(pipeline = %session.pipeline, seq, "detector gRPC: sample skipped: {e}");
                ack_only(seq)
            }
        }
    });
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pixel_format: vfsf::PixelFormat, w: u32, h: u32, stride: u32) -> pb::MediaDescriptor {
        pb::MediaDescriptor {
            timescale: 90000,
            media_sample_format: Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(pb::VideoFrameSampleFormat {
                encoding: vfsf::Encoding::Raw as i32,
                pixel_format: pixel_format as i32,
                dimensions: Some(pb::Dimensions { width: w, height: h }),
                stride_bytes: stride,
            })),
        }
    }

    fn encoded(encoding: i32) -> pb::MediaDescriptor {
        pb::MediaDescriptor {
            timescale: 90000,
            media_sample_format: Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(pb::VideoFrameSampleFormat {
                encoding,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn formats_from_the_descriptor() {
        assert_eq!(sample_format(Some(&encoded(vfsf::Encoding::Jpg as i32))).unwrap().kind, Kind::Jpeg);
        assert_eq!(sample_format(Some(&encoded(vfsf::Encoding::Png as i32))).unwrap().kind, Kind::Png);
        assert_eq!(sample_format(Some(&encoded(vfsf::Encoding::Bmp as i32))).unwrap().kind, Kind::Bmp);
        assert_eq!(sample_format(None).unwrap().kind, Kind::Sniff);
        assert!(matches!(sample_format(Some(&encoded(7))), Err(DescriptorError::Format(m)) if m.contains("encoding 7")));
        let f = sample_format(Some(&raw(vfsf::PixelFormat::Bgr24, 416, 416, 1280))).unwrap();
        assert_eq!(
            f,
            SampleFormat { kind: Kind::Raw, raw: RawSpec { width: 416, height: 416, format: PixelFormat::Bgr24, stride: Some(1280) } }
        );
        assert_eq!(sample_format(Some(&raw(vfsf::PixelFormat::Rgba, 10, 2, 0))).unwrap().raw.stride, None);
        assert_eq!(sample_format(Some(&raw(vfsf::PixelFormat::Yuv420p, 10, 2, 10))).unwrap().raw.format, PixelFormat::Yuv420p);
        assert_eq!(sample_format(Some(&raw(vfsf::PixelFormat::Rgb565le, 10, 2, 20))).unwrap().raw.stride, Some(20));
    }

    #[test]
    fn unsupported_raw_layouts_are_out_of_range_and_named() {
        let format_err = |md: pb::MediaDescriptor| match sample_format(Some(&md)) {
            Err(DescriptorError::Format(m)) => m,
            other => panic!("{other:?}"),
        };
        let m = format_err(raw(vfsf::PixelFormat::None, 416, 416, 0));
        assert!(m.contains("NONE") && m.contains("BGR24"), "{m}");
        let mut md = raw(vfsf::PixelFormat::Bgr24, 416, 416, 0);
        if let Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(f)) = &mut md.media_sample_format {
            f.pixel_format = 99;
        }
        assert!(format_err(md).contains("pixel format 99"));
        assert!(format_err(raw(vfsf::PixelFormat::Bgr24, 0, 416, 0)).contains("dimensions"));
        assert!(format_err(raw(vfsf::PixelFormat::Bgr24, 416, 416, 1000)).contains("1248"));
        assert!(format_err(raw(vfsf::PixelFormat::Yuv420p, 416, 416, 420)).contains("yuv420p"));
        assert_eq!(Status::from(DescriptorError::Format("x".into())).code(), tonic::Code::OutOfRange);
        assert_eq!(Status::from(DescriptorError::Invalid("x".into())).code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn extension_configuration_is_json_or_nothing() {
        assert_eq!(StreamSettings::parse("").unwrap(), StreamSettings::default());
        assert_eq!(StreamSettings::parse("  ").unwrap(), StreamSettings::default());
        let s = StreamSettings::parse(r#"{"threshold": 0.6, "classes": ["person"]}"#).unwrap();
        assert_eq!(s, StreamSettings { threshold: Some(0.6), classes: Some(vec!["person".into()]) });
        let base = DetectorConfig { classes: vec!["car".into()], ..DetectorConfig::default() };
        let c = s.apply(&base).unwrap();
        assert_eq!((c.threshold, c.classes.as_slice(), c.nms_iou), (0.6, &["person".to_string()][..], base.nms_iou));
        let only_threshold = StreamSettings::parse(r#"{"threshold": 0.3}"#).unwrap().apply(&base).unwrap();
        assert_eq!(only_threshold.classes, base.classes);
        assert_eq!(StreamSettings::default().apply(&base), None);
        for bad in ["person", "{\"threshold\": \"high\"}", "{\"treshold\": 0.5}", "[1]"] {
            match StreamSettings::parse(bad) {
                Err(DescriptorError::Invalid(m)) => assert!(m.contains("extension_configuration"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn basic_credentials() {
        let c = Credentials::new("lva", "s3cret:x");
        let header = |v: &str| MetadataValue::try_from(v).unwrap();
        let basic = |s: &str| header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s)));
        assert!(c.accepts(Some(&basic("lva:s3cret:x"))));
        assert!(c.accepts(Some(&header(&format!("basic  {}", base64::engine::general_purpose::STANDARD.encode("lva:s3cret:x"))))));
        assert!(!c.accepts(Some(&basic("lva:s3cret"))));
        assert!(!c.accepts(Some(&basic("LVA:s3cret:x"))));
        assert!(!c.accepts(Some(&header("Bearer abc"))));
        assert!(!c.accepts(Some(&header("Basic !!!"))));
        assert!(!c.accepts(None));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn answers_carry_the_score_inferences() {
        let d = Detection { label: "person", class_id: 0, confidence: 0.83, left: 0.25, top: 0.5, width: 0.125, height: 0.3 };
        let m = result_message(7, 90_000, &[d]);
        assert_eq!((m.sequence_number, m.ack_sequence_number), (0, 7));
        let Some(media_stream_message::Payload::MediaSample(s)) = &m.payload else { panic!("{m:?}") };
        assert_eq!(s.timestamp, 90_000);
        let json: Vec<Value> = s.inferences.iter().map(|i| inference::to_json(i).unwrap()).collect();
        assert_eq!(Value::Array(json), server::inferences(&[d])["inferences"]);
        let empty = result_message(8, 1, &[]);
        assert!(matches!(&empty.payload, Some(media_stream_message::Payload::MediaSample(s)) if s.inferences.is_empty()));
        assert_eq!(ack_only(9).payload, None);
    }
}
