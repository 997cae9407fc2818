//! GrpcExtension: streams sampled frames to an inference server over the LVA/AVA gRPC contract (SPEC §5.2), publishes its answers as Inference events and attaches them to the frames.
//!
//! One task per node owns the stream. It opens `ProcessMediaStream` when the first sampled
//! frame arrives (the descriptor needs the image size, which a source's size decides),
//! sends the descriptor (sequence 1) and waits for the server's before any sample; samples
//! follow as 2, 3, … with their media time on the 90 kHz clock. Up to
//! [`MAX_IN_FLIGHT`](super::grpc_extension_core::MAX_IN_FLIGHT) requests await their acks;
//! acks may come in any order. A sampled frame goes on when its ack comes, annotated with
//! the results (and an Inference event published), or after
//! [`ACK_TIMEOUT`](super::grpc_extension_core::ACK_TIMEOUT) without them. Sampled frames
//! that find the pipeline full, the shared memory full or no stream go on un-annotated at
//! once and are counted (Diagnostics.DataDropped, rate-limited). Frames not sampled go on
//! at once.
//!
//! With `sharedMemory` each stream has its own ring in `/dev/shm`, reserved in full when the
//! stream opens, named `inference_client_share_memory_<uuid>` and removed with the stream; a
//! region is given back only when its request is acked.
//!
//! When the stream fails or ends (or the server breaks the protocol), frames still waiting
//! go on un-annotated and a new stream, with a new descriptor and a new ring, opens after a
//! back-off ([`BACKOFF_INITIAL`] doubling to [`BACKOFF_MAX`], from the start again once a
//! server has accepted a stream). docs/grpc-extension.md lists every choice made where
//! SPEC is silent.
//!
//! A TlsEndpoint's `tcp://host:port` is reached over TLS (HTTP/2 by ALPN), its certificate
//! checked by the rules of [`extension_tls`](super::extension_tls), strictly: SPEC refuses
//! the ignore options for gRPC.

use super::extension_core::{inference_event, sample_to_send, Content, Reporter};
use super::extension_tls::{tls_failure, Tls, TlsError};
use super::grpc_extension_core::{self as core, Acked, Incoming, Pipeline, SampleContent, StreamIdentity, ACK_TIMEOUT, MAX_IN_FLIGHT};
use super::motion_core::pts_90khz;
use super::sampling::FrameSampling;
use crate::grpc::pb::media_graph_extension_client::MediaGraphExtensionClient;
use crate::grpc::shm::{ShmRing, SHM_DIR};
use crate::grpc::{pb, AUTH_METADATA};
use crate::media::image::Prepared;
use crate::runtime::backoff::Backoff;
use crate::runtime::events::EventClass;
use crate::runtime::node::{Feeder, Node, NodeCtx, NodeEnv};
use crate::runtime::packet::{Frame, Nanos, Packet};
use crate::topology::nodes::common::{Credentials, ImageSpec};
use crate::topology::nodes::grpc_extension::{GrpcExtension as Settings, TransferMode};
use base64::Engine as _;
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to answer the descriptor with its own.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before a new stream after a failure; it doubles with each failure…
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// …up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The shared-memory file's name before its unique part (the name LVA gave it, SPEC §5.2).
pub const SHM_PREFIX: &str = "inference_client_share_memory_";

/// Why a GrpcExtension cannot be activated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The compiler refuses these already (SPEC §1.1); kept so no path weakens gRPC's TLS.
    #[error("gRPC over TLS does not support ignoreHostname or ignoreSignature: the server certificate must match the host in the URL")]
    TlsValidation,
    #[error("the endpoint URL needs a host and a port (tcp://host:port)")]
    Address,
    /// Never carries the secret itself.
    #[error("the credentials cannot travel as gRPC metadata: {0}")]
    Credentials(String),
}

/// What the node needs to open streams; built once at activation.
pub struct Config {
    /// `http://host:port`: cleartext HTTP/2; `https://host:port` with `tls`.
    uri: String,
    tls: Option<Tls>,
    /// Request metadata: credentials (never logged).
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    image: ImageSpec,
    /// Ring size in bytes with `sharedMemory`.
    shared_memory: Option<u64>,
    extension_configuration: String,
}

impl Config {
    pub fn from_settings(s: &Settings) -> Result<Config, ConfigError> {
        let e = &s.base.endpoint;
        let tls = match &e.tls {
            Some(o) if o.ignore_hostname || o.ignore_signature => return Err(ConfigError::TlsValidation),
            Some(o) => Some(Tls::from_options(Some(o))?),
            None => None,
        };
        let (Some(host), Some(port)) = (e.url.host_str(), e.url.port()) else { return Err(ConfigError::Address) };
        let metadata = match &e.credentials {
            None => vec![],
            Some(Credentials::UsernamePassword { username, password }) => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", username.as_str(), password.expose()));
                let mut value = AsciiMetadataValue::try_from(format!("Basic {token}")).expect("base64 is ASCII");
                value.set_sensitive(true);
                vec![(AsciiMetadataKey::from_static(AUTH_METADATA), value)]
            }
            // SPEC names only Basic credentials for gRPC; a header is what a user of
            // HttpHeaderCredentials expects, so it travels as metadata of that name.
            Some(Credentials::HttpHeader { header_name, header_value }) => {
                let name = header_name.to_ascii_lowercase();
                if name.starts_with("grpc-") || name == "content-type" || name == "te" {
                    return Err(ConfigError::Credentials(format!("'{header_name}' is reserved by gRPC")));
                }
                let key = AsciiMetadataKey::from_bytes(name.as_bytes())
                    .map_err(|_| ConfigError::Credentials(format!("'{header_name}' is not a valid metadata name")))?;
                let mut value = AsciiMetadataValue::try_from(header_value.expose())
                    .map_err(|_| ConfigError::Credentials(format!("the value of '{header_name}' is not printable ASCII")))?;
                value.set_sensitive(true);
                vec![(key, value)]
            }
        };
        Ok(Config {
            uri: format!("{}://{host}:{port}", if tls.is_some() { "https" } else { "http" }),
            tls,
            metadata,
            image: s.base.image.clone(),
            shared_memory: (s.mode == TransferMode::SharedMemory).then(|| {
                u64::from(s.shared_memory_size_mib.unwrap_or(crate::topology::nodes::grpc_extension::DEFAULT_SHARED_MEMORY_MIB)) << 20
            }),
            extension_configuration: s.extension_configuration.as_ref().map(|c| c.as_str().to_string()).unwrap_or_default(),
        })
    }
}

pub struct GrpcExtension {
    config: Arc<Config>,
    sampling: FrameSampling,
    /// Sampled frames, to the stream's task.
    to_stream: Option<mpsc::UnboundedSender<Arc<Frame>>>,
}

impl GrpcExtension {
    pub fn new(config: Arc<Config>, settings: &Settings) -> Self {
        GrpcExtension { config, sampling: FrameSampling::new(&settings.base.sampling), to_stream: None }
    }
}

impl Node for GrpcExtension {
    fn start(&mut self, ctx: &mut NodeCtx<'_>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.to_stream = Some(tx);
        let driver = Driver::new(self.config.clone(), ctx.env.clone(), ctx.feeder());
        ctx.spawn(driver.run(rx));
    }

    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let Some(f) = sample_to_send(&mut self.sampling, p, ctx) else { return };
        // The task decides at once whether the frame can be sent (it runs on this thread), so
        // this channel never holds more than the frames of one turn of the loop.
        match &self.to_stream {
            Some(tx) => {
                if let Err(e) = tx.send(f) {
                    ctx.emit(Packet::Frame(e.0));
                }
            }
            None => ctx.emit(Packet::Frame(f)),
        }
    }
}

type Rx = mpsc::UnboundedReceiver<Arc<Frame>>;
type Preparation = Pin<Box<dyn Future<Output = (Arc<Frame>, Result<Arc<Prepared>, (&'static str, String)>)>>>;
/// A diagnostic: its type and body.
type Problem = (&'static str, Value);

/// How a stream ended.
enum End {
    /// The node is gone.
    Closed,
    /// The stream failed or ended; `accepted`: the server had answered its descriptor.
    Failed { accepted: bool },
    /// Frames changed size: a new stream opens at once, with this frame.
    Resized(Arc<Frame>),
    /// The opening frame's image could not be prepared; no stream was opened.
    NoImage,
}

/// One open stream.
struct Stream {
    pipeline: Pipeline<Arc<Frame>>,
    ring: Option<ShmRing>,
    out: futures::channel::mpsc::UnboundedSender<pb::MediaStreamMessage>,
    /// Where the picture sits in the images sent, to map boxes back.
    content: Content,
    size: (u32, u32),
    /// Images being prepared, in arrival order (sequence numbers follow it).
    preparing: FuturesOrdered<Preparation>,
}

/// The node's stream task.
struct Driver {
    config: Arc<Config>,
    env: NodeEnv,
    feeder: Feeder,
    reporter: Reporter,
    identity: StreamIdentity,
}

impl Driver {
    fn new(config: Arc<Config>, env: NodeEnv, feeder: Feeder) -> Self {
        // The module's ARM id is the events' topic when the twin names one; Vela's own
        // identifier is not an ARM id and is not passed off as one.
        let topic = env.events.envelope(&env.subject, EventClass::Diagnostics, "", std::time::UNIX_EPOCH).remove("topic");
        let arm_id = topic.filter(|t| t.starts_with("/subscriptions/")).unwrap_or_default();
        let identity = StreamIdentity {
            arm_id,
            instance: env.subject.instance.clone(),
            node: env.name().to_string(),
            extension_configuration: config.extension_configuration.clone(),
        };
        Driver { config, env, feeder, reporter: Reporter::default(), identity }
    }

    async fn run(mut self, mut rx: Rx) {
        let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
        let mut opener = None;
        loop {
            let first = match opener.take() {
                Some(f) => f,
                None => match rx.recv().await {
                    Some(f) => f,
                    None => return,
                },
            };
            match self.session(first, &mut rx).await {
                End::Closed => return,
                End::Resized(f) => opener = Some(f),
                End::NoImage => {}
                End::Failed { accepted } => {
                    if accepted {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tracing::info!(node = self.env.name(), retry_in = ?delay, "gRPC extension stream closed; a new one after a back-off");
                    if self.while_dropping(&mut rx, "the extension is not connected", tokio::time::sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
    }

    /// Opens a stream with `first` as its first sample and serves it until it ends.
    async fn session(&mut self, first: Arc<Frame>, rx: &mut Rx) -> End {
        const CONNECTING: &str = "the extension is not connected yet";
        let Some((first, prepared)) = self.while_dropping(rx, CONNECTING, prepare(first, self.config.image.clone())).await else {
            return End::Closed;
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.image_failed(e);
                self.emit(first);
                return End::NoImage;
            }
        };
        let size = (prepared.width, prepared.height);
        let content = Content::centred(prepared.content.width, prepared.content.height, size.0, size.1);
        let ring = match self.config.shared_memory.map(create_ring).transpose() {
            Ok(r) => r,
            Err(message) => {
                self.reporter.error(&self.env, "RuntimeError", json!({ "code": "SharedMemoryUnavailable", "message": message }));
                self.drop_frame(first, CONNECTING);
                return End::Failed { accepted: false };
            }
        };
        let format = core::sample_format(self.config.image.format, size.0, size.1);
        let hello = core::descriptor(&self.identity, format, ring.as_ref().map(|r| (r.name(), r.size())));
        let (out, out_rx) = futures::channel::mpsc::unbounded();
        out.unbounded_send(hello).expect("the receiver is held");
        let inbound = match self.while_dropping(rx, CONNECTING, open(self.config.clone(), out_rx)).await {
            None => return End::Closed,
            Some(Ok(inbound)) => inbound,
            Some(Err((ty, body))) => {
                self.reporter.error(&self.env, ty, body);
                self.drop_frame(first, CONNECTING);
                return End::Failed { accepted: false };
            }
        };
        tracing::info!(node = self.env.name(), ring = ring.as_ref().map(|r| r.name()), "gRPC extension stream open");
        let mut s = Stream { pipeline: Pipeline::new(ACK_TIMEOUT), ring, out, content, size, preparing: FuturesOrdered::new() };
        let end = match self.send(&mut s, first, Ok(prepared)) {
            Some(end) => end,
            None => self.serve(&mut s, inbound, rx).await,
        };
        // The frames still waiting go on without answers; the ring goes with the stream (the
        // server's mapping stays valid: only the name is removed).
        for f in s.pipeline.drain() {
            self.emit(f);
        }
        while let Some((f, _)) = s.preparing.next().await {
            self.emit(f);
        }
        end
    }

    /// Until the stream ends: frames in, requests out, answers back.
    async fn serve(&mut self, s: &mut Stream, mut inbound: tonic::Streaming<pb::MediaStreamMessage>, rx: &mut Rx) -> End {
        loop {
            let deadline = s.pipeline.next_deadline();
            let timer = tokio::time::sleep_until(deadline.map(tokio::time::Instant::from_std).unwrap_or_else(far_future));
            tokio::select! {
                m = inbound.message() => match m {
                    Ok(Some(m)) => {
                        if let Some(end) = self.answer(s, m) {
                            return end;
                        }
                    }
                    Ok(None) => {
                        self.reporter.error(&self.env, "ProtocolError", protocol("StreamEnded", "the extension ended the stream".into()).1);
                        return End::Failed { accepted: true };
                    }
                    Err(status) => {
                        let (ty, body) = status_problem(&status);
                        self.reporter.error(&self.env, ty, body);
                        return End::Failed { accepted: true };
                    }
                },
                f = rx.recv() => match f {
                    None => return End::Closed,
                    Some(f) if s.pipeline.live() + s.preparing.len() >= MAX_IN_FLIGHT => {
                        self.drop_frame(f, "the extension has not answered the previous requests yet");
                    }
                    Some(f) => s.preparing.push_back(prepare(f, self.config.image.clone())),
                },
                Some((f, p)) = s.preparing.next(), if !s.preparing.is_empty() => {
                    if let Some(end) = self.send(s, f, p) {
                        return end;
                    }
                }
                _ = timer, if deadline.is_some() => {
                    for (seq, f) in s.pipeline.expire(Instant::now()) {
                        let message = format!("no answer to request {seq} within {} s; its frame went on without one", ACK_TIMEOUT.as_secs());
                        self.reporter.error(&self.env, "ProtocolError", protocol("AckTimeout", message).1);
                        self.emit(f);
                    }
                    if s.pipeline.timed_out() >= MAX_IN_FLIGHT {
                        let message = format!("{} requests unanswered for {} s: opening a new stream", s.pipeline.timed_out(), ACK_TIMEOUT.as_secs());
                        self.reporter.error(&self.env, "ProtocolError", protocol("StreamStalled", message).1);
                        return End::Failed { accepted: true };
                    }
                }
            }
        }
    }

    /// Sends a prepared frame as the next sample (or passes it on when it cannot go).
    fn send(&mut self, s: &mut Stream, f: Arc<Frame>, p: Result<Arc<Prepared>, (&'static str, String)>) -> Option<End> {
        let p = match p {
            Ok(p) => p,
            Err(e) => {
                self.image_failed(e);
                self.emit(f);
                return None;
            }
        };
        if (p.width, p.height) != s.size {
            // The descriptor announced another size: a new camera session needs a new stream.
            tracing::info!(node = self.env.name(), from = ?s.size, to = ?(p.width, p.height), "image size changed: new gRPC stream");
            return Some(End::Resized(f));
        }
        let (content, region) = match s.ring.as_mut() {
            Some(ring) => match ring.put(&p.bytes) {
                Some(r) => (SampleContent::Shared(r), Some(r)),
                None if p.bytes.len() as u64 > ring.size() => {
                    let why = format!("an image of {} bytes does not fit the shared memory ({} bytes)", p.bytes.len(), ring.size());
                    self.drop_frame(f, &why);
                    return None;
                }
                None => {
                    self.drop_frame(f, "the shared memory is full of images the extension has not acknowledged");
                    return None;
                }
            },
            None => (SampleContent::Embedded(p.bytes.to_vec()), None),
        };
        let timestamp = pts_90khz(f.picture.wall);
        let seq = s.pipeline.sent(f.clone(), region, Instant::now());
        let (msg, _skipped) = core::sample(seq, timestamp, content, &f.inferences);
        // A closed request stream shows on the response side, which ends the session.
        let _ = s.out.unbounded_send(msg);
        None
    }

    /// Acts on a server message; `Some` ends the stream.
    fn answer(&mut self, s: &mut Stream, m: pb::MediaStreamMessage) -> Option<End> {
        match core::classify(m) {
            Incoming::Empty => None,
            Incoming::Descriptor => {
                let body = protocol("UnexpectedMessage", "a second MediaStreamDescriptor from the extension".into()).1;
                self.reporter.error(&self.env, "ProtocolError", body);
                Some(End::Failed { accepted: true })
            }
            Incoming::Unsolicited { timestamp, inferences } => {
                let results = self.results(&inferences, s.content);
                if !results.is_empty() {
                    self.publish(timestamp, from_90khz(timestamp), &results);
                }
                None
            }
            Incoming::Ack { ack, inferences } => {
                let (frame, region, answered) = match s.pipeline.ack(ack) {
                    Acked::Answered { item, region } => (item, region, true),
                    Acked::Late { item, region } => (item, region, false),
                    Acked::Unknown => {
                        let body = protocol("UnknownAck", format!("the extension acknowledged {ack}, which is not awaiting an answer")).1;
                        self.reporter.error(&self.env, "ProtocolError", body);
                        return None;
                    }
                };
                if let (Some(ring), Some(r)) = (s.ring.as_mut(), region) {
                    ring.free(r);
                }
                let results = self.results(&inferences, s.content);
                let wall = frame.picture.wall;
                if !results.is_empty() {
                    // A late answer still counts as an event; its frame went on already.
                    self.publish(pts_90khz(wall), wall, &results);
                }
                if answered {
                    let mut annotated = (*frame).clone();
                    annotated.inferences.extend(results);
                    annotated.analysed = true;
                    self.emit(Arc::new(annotated));
                }
                None
            }
        }
    }

    fn results(&mut self, inferences: &[pb::Inference], content: Content) -> Vec<Value> {
        let (results, skipped) = core::results(inferences, content);
        if skipped > 0 {
            let message = format!("{skipped} inferences without a value were ignored");
            self.reporter.error(&self.env, "ProtocolError", protocol("InvalidInference", message).1);
        }
        results
    }

    fn publish(&self, timestamp: u64, wall: Nanos, results: &[Value]) {
        self.feeder.produced(Packet::Event(Arc::new(inference_event(&self.env, timestamp, wall, results))));
    }

    fn emit(&self, f: Arc<Frame>) {
        self.feeder.produced(Packet::Frame(f));
    }

    fn drop_frame(&mut self, f: Arc<Frame>, why: &str) {
        self.reporter.dropped(&self.env, why);
        self.emit(f);
    }

    fn image_failed(&mut self, (ty, message): (&'static str, String)) {
        self.reporter.error(&self.env, ty, json!({ "code": "ImagePreparationFailed", "message": message }));
    }

    /// Awaits `fut`; sampled frames arriving meanwhile go on at once, counted as dropped.
    /// `None` when the node is gone.
    async fn while_dropping<T>(&mut self, rx: &mut Rx, why: &str, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                f = rx.recv() => match f {
                    Some(f) => self.drop_frame(f, why),
                    None => return None,
                },
            }
        }
    }
}

/// Connects, starts the call and waits for the server's descriptor.
async fn open(
    config: Arc<Config>,
    requests: futures::channel::mpsc::UnboundedReceiver<pb::MediaStreamMessage>,
) -> Result<tonic::Streaming<pb::MediaStreamMessage>, Problem> {
    let network = |e: &(dyn std::error::Error + 'static)| match tls_failure(e) {
        Some(t) => ("NetworkError", json!({ "errorCode": "TlsHandshakeFailed", "message": format!("TLS with the extension failed: {t}") })),
        None => ("NetworkError", json!({ "errorCode": "ConnectionFailed", "message": chain(e) })),
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(config.uri.clone()).map_err(|e| network(&e))?;
    if let Some(tls) = &config.tls {
        // tonic names the server from the URI's host and offers h2 by ALPN.
        let tls_config = tonic::transport::ClientTlsConfig::new();
        endpoint = endpoint.tls_config_with_verifier(tls_config, tls.verifier()).map_err(|e| network(&e))?;
    }
    // No HTTP/2 keep-alive pings: gRPC servers answer pings more often than every 5
    // minutes on an idle stream (motion-gated frames) with GOAWAY; TCP keep-alive
    // notices a dead peer instead.
    let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true).tcp_keepalive(Some(Duration::from_secs(60)));
    let handshake = async {
        let channel = endpoint.connect().await.map_err(|e| network(&e))?;
        let mut client = MediaGraphExtensionClient::new(channel);
        let mut request = tonic::Request::new(requests);
        for (k, v) in &config.metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        let mut inbound = client.process_media_stream(request).await.map_err(|s| status_problem(&s))?.into_inner();
        match inbound.message().await {
            Ok(Some(m)) if core::is_handshake(&m) => Ok(inbound),
            Ok(Some(m)) => Err(protocol(
                "UnexpectedMessage",
                format!("the extension's first message (sequence {}) is not a MediaStreamDescriptor", m.sequence_number),
            )),
            Ok(None) => Err(protocol("StreamEnded", "the extension ended the stream before sending its descriptor".into())),
            Err(s) => Err(status_problem(&s)),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT, handshake).await {
        Ok(r) => r,
        Err(_) => Err(protocol("HandshakeTimeout", "the extension did not answer the descriptor".into())),
    }
}

/// The image of a frame, prepared off the instance's thread (once per picture and spec for
/// every node that asks).
fn prepare(frame: Arc<Frame>, spec: ImageSpec) -> Preparation {
    Box::pin(async move {
        let picture = frame.picture.clone();
        let r = match actix_rt::task::spawn_blocking(move || picture.image(&spec)).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(("MediaFormatError", e.to_string())),
            Err(e) => Err(("RuntimeError", e.to_string())),
        };
        (frame, r)
    })
}

/// A new ring in `/dev/shm` with its pages reserved: a sparse file would let a full
/// `/dev/shm` surface as SIGBUS on a write into the mapping, killing the process.
fn create_ring(len: u64) -> Result<ShmRing, String> {
    use std::os::fd::AsRawFd;
    let name = format!("{SHM_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let ring = ShmRing::create(&name, len).map_err(|e| e.to_string())?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(std::path::Path::new(SHM_DIR).join(&name))
        .map_err(|e| format!("shared memory {name}: {e}"))?;
    let len_off = libc::off_t::try_from(len).map_err(|_| format!("{len} bytes of shared memory is too large"))?;
    // SAFETY: a valid open descriptor and a range within off_t; no memory is touched.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_off) };
    if rc != 0 {
        return Err(format!("cannot reserve {len} bytes in {SHM_DIR}: {}", std::io::Error::from_raw_os_error(rc)));
    }
    Ok(ring)
}

fn protocol(code: &str, message: String) -> Problem {
    ("ProtocolError", json!({ "protocol": "gRPC", "errorCode": code, "message": message }))
}

/// A failed call: SPEC's servers reject a stream with a status (OutOfRange, InvalidArgument).
fn status_problem(s: &tonic::Status) -> Problem {
    let (ty, code) = match s.code() {
        tonic::Code::Unauthenticated => ("AuthenticationError", "Unauthenticated".to_string()),
        tonic::Code::PermissionDenied => ("AuthorizationError", "PermissionDenied".to_string()),
        c => ("ProtocolError", format!("{c:?}")),
    };
    (ty, json!({ "protocol": "gRPC", "errorCode": code, "message": s.message() }))
}

/// An error and its causes on one line (tonic's transport errors say little at the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A media time on the 90 kHz clock as wall nanoseconds (rounded up, so that it reads back
/// as the same tick).
fn from_90khz(ts: u64) -> Nanos {
    ((i128::from(ts) * 1_000_000_000 + 89_999) / 90_000).min(i128::from(i64::MAX)) as Nanos
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::nodes::common::{Endpoint, MaybeSecret, SamplingOptions, Secret, TlsOptions};
    use crate::topology::nodes::extension::ExtensionBase;

    fn settings(url: &str, credentials: Option<Credentials>, tls: bool) -> Settings {
        Settings {
            base: ExtensionBase {
                endpoint: Endpoint {
                    url: url.parse().unwrap(),
                    url_is_secret: false,
                    credentials,
                    tls: tls.then_some(TlsOptions { trusted_certificates: None, ignore_hostname: false, ignore_signature: false }),
                },
                image: ImageSpec::default(),
                sampling: SamplingOptions { maximum_samples_per_second: None, skip_samples_without_annotation: false },
            },
            mode: TransferMode::SharedMemory,
            shared_memory_size_mib: Some(20),
            extension_configuration: Some(MaybeSecret::new("{\"a\":1}", false)),
        }
    }

    #[test]
    fn settings_become_a_cleartext_uri_basic_metadata_and_a_ring_size() {
        let creds = Credentials::UsernamePassword { username: MaybeSecret::new("vela", false), password: Secret::new("s3cret") };
        let c = Config::from_settings(&settings("tcp://extension:44000", Some(creds), false)).unwrap();
        assert_eq!(c.uri, "http://extension:44000");
        assert_eq!(c.metadata.len(), 1);
        assert_eq!(c.metadata[0].0.as_str(), "x-ms-authentication");
        assert_eq!(c.metadata[0].1.to_str().unwrap(), "Basic dmVsYTpzM2NyZXQ=");
        assert!(c.metadata[0].1.is_sensitive());
        assert_eq!(format!("{:?}", c.metadata[0].1), "Sensitive", "never printed");
        assert_eq!(c.shared_memory, Some(20 * 1_048_576));
        assert_eq!(c.extension_configuration, "{\"a\":1}");
    }

    #[test]
    fn a_tls_endpoint_is_reached_over_https_and_strictly() {
        let c = Config::from_settings(&settings("tcp://extension:44000", None, true)).unwrap();
        assert_eq!(c.uri, "https://extension:44000");
        assert!(c.tls.as_ref().is_some_and(|t| t.weakened().is_none()));
        let with = |tls: TlsOptions| {
            let mut s = settings("tcp://extension:44000", None, true);
            s.base.endpoint.tls = Some(tls);
            Config::from_settings(&s)
        };
        let lax = TlsOptions { trusted_certificates: None, ignore_hostname: true, ignore_signature: false };
        assert!(matches!(with(lax), Err(ConfigError::TlsValidation)));
        let bad = TlsOptions {
            trusted_certificates: Some(vec!["-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----".into()]),
            ignore_hostname: false,
            ignore_signature: false,
        };
        let e = with(bad).err().unwrap().to_string();
        assert!(e.starts_with("endpoint.trustedCertificates.certificates[0]"), "{e}");
    }

    #[test]
    fn unusable_header_credentials_are_refused() {
        let header = |name: &str, value: &str| Credentials::HttpHeader { header_name: name.into(), header_value: Secret::new(value) };
        let c = Config::from_settings(&settings("tcp://x:1", Some(header("X-Api-Key", "k")), false)).unwrap();
        assert_eq!(c.metadata[0].0.as_str(), "x-api-key");
        let e = Config::from_settings(&settings("tcp://x:1", Some(header("grpc-timeout", "k")), false)).err().unwrap();
        assert!(e.to_string().contains("reserved"), "{e}");
        let e = Config::from_settings(&settings("tcp://x:1", Some(header("X-Key", "sécret\n")), false)).err().unwrap();
        assert!(!e.to_string().contains("sécret"), "the secret is never shown: {e}");
    }

    #[test]
    fn media_time_round_trips_through_the_90khz_clock() {
        for ts in [0u64, 1, 89_999, 90_000, 158_000_000_000_000] {
            assert_eq!(pts_90khz(from_90khz(ts)), ts);
        }
    }
}
