//! The detector over HTTP (actix-web): the LVA/AVA HTTP extension contract (SPEC §5.1, the
//! yolov3 sample's `/score` of §8), the Custom Vision container's `/image`, and `/health`.
//!
//! Handlers never run the model: they read the body (bounded), decode it on actix's
//! blocking pool, and queue the picture for the model threads, which take every picture
//! waiting (up to `max_batch`) in one round and run them as one batch when the model
//! allows it. Admission is bounded: past `queue` waiting pictures a request is answered
//! 503 with `Retry-After: 1`, which LVA honours (SPEC §5.1).
//!
//! The gRPC extension server ([`super::grpc`]) shares the same queue, model threads and
//! counters: one detector serves both contracts.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{json, Value};

use super::body::{self, BodyError, Kind, OwnedPicture, RawSpec};
use super::grpc::{self, Credentials, GrpcServing};
use super::model::Output;
use super::multipart;
use super::{Detection, Detector, DetectorConfig, DetectorError, Timings, DEFAULT_MODEL};

/// Where `vela detect` listens unless told: the samples' extensions listen on port 80 inside
/// their containers; on the appliance's own host a free unprivileged port is needed beside
/// the hub (1883), rtspsim (8554) and playback (8080).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7000";
/// The LVA/AVA samples' extension path (`http://yolov3/score`).
pub const DEFAULT_SCORE_PATH: &str = "/score";
/// Largest request body accepted (a 4K BMP is 24 MiB).
pub const DEFAULT_MAX_BODY: usize = 32 << 20;
/// Pictures that may wait for the model before requests are refused with 503.
pub const DEFAULT_QUEUE: usize = 32;
/// Pictures per model call, at most.
pub const DEFAULT_MAX_BATCH: usize = 4;

/// Everything `vela detect` (or the appliance) can set.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `HOST:PORT`; port 0 picks a free one (see [`Serving::addr`]).
    pub listen: String,
    pub model: PathBuf,
    pub detector: DetectorConfig,
    /// Model threads (1 or 2 on a 2-core box; each runs tract single-threaded).
    pub threads: usize,
    /// Pictures run together at most; 1 disables batching.
    pub max_batch: usize,
    /// Pictures waiting for a model thread before 503.
    pub queue: usize,
    /// Paths of the HTTP extension route (the topology's `endpoint.url` path).
    pub score_paths: Vec<String>,
    pub max_body: usize,
    /// Size and layout of `image/x-raw` bodies that do not say theirs (see [`super::body`]).
    pub raw: RawSpec,
    /// `HOST:PORT` of the gRPC extension server (SPEC §5.2), none when unset; port 0 picks
    /// a free one (see [`GrpcServing::addr`]).
    pub grpc_listen: Option<String>,
    /// Credentials gRPC clients must present (`x-ms-authentication: Basic …`); none = open.
    pub grpc_credentials: Option<Credentials>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            model: DEFAULT_MODEL.into(),
            detector: DetectorConfig::default(),
            threads: 1,
            max_batch: DEFAULT_MAX_BATCH,
            queue: DEFAULT_QUEUE,
            score_paths: vec![DEFAULT_SCORE_PATH.into()],
            max_body: DEFAULT_MAX_BODY,
            raw: RawSpec::default(),
            grpc_listen: None,
            grpc_credentials: None,
        }
    }
}

/// A started server: where it listens, the future that runs it (spawn or await it), and
/// the detector it serves.
pub struct Serving {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: Server,
    pub detector: Detector,
    /// The gRPC extension server when `grpc_listen` was set. It already runs, on the
    /// runtime that called [`serve`], until [`GrpcServing::stop`] or that runtime ends
    /// (stopping `handle` does not stop it).
    pub grpc: Option<GrpcServing>,
}

/// Loads the model (on the blocking pool), starts the model threads, binds `config.listen`
/// and returns the server, not yet running: spawn or await [`Serving::server`]. Signals are
/// left to the caller. Model threads end when the server is dropped. With
/// `config.grpc_listen` the gRPC server is bound too, and started on the caller's runtime.
pub async fn serve(config: ServerConfig) -> io::Result<Serving> {
    let (model, detector_config) = (config.model.clone(), config.detector.clone());
    let max_batch = config.max_batch;
    let detector = actix_web::rt::task::spawn_blocking(move || {
        let d = Detector::load(model, detector_config)?;
        if max_batch > 1 {
            d.batching(); // builds and checks the batched plan now rather than at the first request
        }
        Ok::<_, DetectorError>(d)
    })
    .await
    .map_err(io::Error::other)?
    .map_err(to_io)?;
    let detect = Detect::new(detector, &config)?;
    // gRPC first: a port already taken fails the start before HTTP holds its socket.
    let grpc = match &config.grpc_listen {
        Some(addr) => Some(detect.serve_grpc(addr, config.grpc_credentials.clone()).await?),
        None => None,
    };
    let mut serving = detect.serve(&config.listen)?;
    serving.grpc = grpc;
    Ok(serving)
}

fn to_io(e: DetectorError) -> io::Error {
    let kind = match &e {
        DetectorError::Read { source, .. } => source.kind(),
        _ => io::ErrorKind::InvalidInput,
    };
    io::Error::new(kind, e.to_string())
}

/// The detector service: routes, queue and model threads. Cheap to clone; clones share all.
#[derive(Clone)]
pub struct Detect {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) detector: Detector,
    pool: Pool,
    pub(super) stats: Arc<Stats>,
    score_paths: Vec<String>,
    pub(super) max_body: usize,
    raw: RawSpec,
    threads: usize,
    max_batch: usize,
    queue: usize,
    /// Where the gRPC server listens, once started.
    grpc_addr: std::sync::OnceLock<SocketAddr>,
}

impl Detect {
    /// Starts `config.threads` model threads for `detector`.
    pub fn new(detector: Detector, config: &ServerConfig) -> io::Result<Detect> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if !(1..=16).contains(&config.threads) {
            return Err(invalid(format!("detector threads must be 1 to 16, not {}", config.threads)));
        }
        if !(1..=64).contains(&config.max_batch) {
            return Err(invalid(format!("detector max batch must be 1 to 64, not {}", config.max_batch)));
        }
        if config.queue == 0 {
            return Err(invalid("detector queue must hold at least one picture".into()));
        }
        let mut paths = Vec::new();
        for p in &config.score_paths {
            let p = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
            if p == "/health" || p == "/image" || p.contains(['{', '}', '?', '#']) {
                return Err(invalid(format!("{p:?} cannot be a score path")));
            }
            paths.push(p);
        }
        if paths.is_empty() {
            paths.push(DEFAULT_SCORE_PATH.into());
        }
        let stats = Arc::new(Stats::default());
        let pool = Pool::start(detector.clone(), config.threads, config.max_batch, stats.clone())?;
        Ok(Detect {
            shared: Arc::new(Shared {
                detector,
                pool,
                stats,
                score_paths: paths,
                max_body: config.max_body,
                raw: config.raw,
                threads: config.threads,
                max_batch: config.max_batch,
                queue: config.queue,
                grpc_addr: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Mounts the routes on an app.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::from(self.shared.clone()));
        for p in &self.shared.score_paths {
            cfg.service(web::resource(p.as_str()).route(web::post().to(score)).default_service(web::to(not_allowed)));
        }
        for p in [
            "/image",
            "/image/nostore",
            "/{project}/image",
            "/{project}/image/nostore",
            "/{project}/detect/iterations/{published}/image",
            "/{project}/detect/iterations/{published}/image/nostore",
        ] {
            cfg.service(web::resource(p).route(web::post().to(custom_vision)).default_service(web::to(not_allowed)));
        }
        cfg.service(web::resource("/health").route(web::get().to(health)).default_service(web::to(not_allowed)));
        cfg.service(web::resource("/").route(web::get().to(hello)).default_service(web::to(not_allowed)));
        cfg.default_service(web::to(no_route));
    }

    /// Binds `addr` and returns the server, not yet running.
    pub fn serve(&self, addr: impl ToSocketAddrs) -> io::Result<Serving> {
        let this = self.clone();
        let server = HttpServer::new(move || {
            let detect = this.clone();
            App::new().configure(move |cfg| detect.configure(cfg))
        })
        .disable_signals()
        .bind(addr)?;
        let addr = *server.addrs().first().ok_or_else(|| io::Error::other("bound no address"))?;
        let server = server.run();
        Ok(Serving { addr, handle: server.handle(), server, detector: self.shared.detector.clone(), grpc: None })
    }

    /// Binds `addr` and starts the gRPC extension server on the current Tokio runtime; it
    /// shares this service's queue and model threads.
    pub async fn serve_grpc(&self, addr: &str, credentials: Option<Credentials>) -> io::Result<GrpcServing> {
        let serving = grpc::start(self.shared.clone(), addr, credentials).await?;
        let _ = self.shared.grpc_addr.set(serving.addr);
        Ok(serving)
    }
}

// ---------------------------------------------------------------------------------------
// Model threads

/// A picture waiting for the model and where its answer goes.
struct Job {
    picture: OwnedPicture,
    /// Other settings than the server's (a gRPC stream's `extension_configuration`).
    detector: Option<Arc<Detector>>,
    reply: tokio::sync::oneshot::Sender<Result<Output, String>>,
}

impl Job {
    fn same_settings(&self, other: &Job) -> bool {
        match (&self.detector, &other.detector) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.config() == b.config(),
            _ => false,
        }
    }
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Model threads waiting for work.
    idle: usize,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next round for a model thread: the waiting jobs shared fairly among the idle
    /// threads, at most `max`; `None` once closed and empty.
    fn take(&self, max: usize) -> Option<Vec<Job>> {
        let mut st = self.lock();
        loop {
            if !st.jobs.is_empty() {
                let share = st.jobs.len().div_ceil(st.idle + 1);
                let n = share.clamp(1, max);
                return Some(st.jobs.drain(..n).collect());
            }
            if st.closed {
                return None;
            }
            st.idle += 1;
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
        }
    }
}

/// The model threads; dropping the pool lets them finish what is queued and end.
struct Pool {
    queue: Arc<Queue>,
    /// Requests admitted and not answered yet (decoding, waiting or running).
    admitted: Arc<AtomicUsize>,
}

impl Pool {
    fn start(detector: Detector, threads: usize, max_batch: usize, stats: Arc<Stats>) -> io::Result<Pool> {
        let queue = Arc::new(Queue::default());
        for i in 0..threads {
            let (queue, detector, stats) = (queue.clone(), detector.clone(), stats.clone());
            std::thread::Builder::new().name(format!("detector-{i}")).spawn(move || model_thread(&queue, &detector, &stats, max_batch))?;
        }
        Ok(Pool { queue, admitted: Arc::new(AtomicUsize::new(0)) })
    }

    fn submit(&self, picture: OwnedPicture, detector: Option<Arc<Detector>>) -> tokio::sync::oneshot::Receiver<Result<Output, String>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.queue.lock().jobs.push_back(Job { picture, detector, reply });
        self.queue.ready.notify_one();
        rx
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

fn model_thread(queue: &Queue, detector: &Detector, stats: &Stats, max_batch: usize) {
    // Without a batched plan a round of several pictures would only hold back pictures
    // another thread could run: take one at a time.
    let batching = max_batch > 1 && detector.batching();
    let max_batch = if batching { max_batch } else { 1 };
    while let Some(mut jobs) = queue.take(max_batch) {
        // Nobody waits for these any more (a closed gRPC stream, a dropped connection): the
        // model's time goes to pictures someone still wants.
        let before = jobs.len();
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.len() < before {
            stats.abandoned.fetch_add((before - jobs.len()) as u64, Ordering::Relaxed);
        }
        // Settings are applied inside the model call, so pictures with other settings than
        // their neighbours' make a round of their own.
        while !jobs.is_empty() {
            let n = jobs.iter().take_while(|j| j.same_settings(&jobs[0])).count();
            let round: Vec<Job> = jobs.drain(..n).collect();
            run_round(round, detector, stats, batching);
        }
    }
}

fn run_round(jobs: Vec<Job>, detector: &Detector, stats: &Stats, batching: bool) {
    let detector = jobs[0].detector.as_deref().unwrap_or(detector);
    let pictures: Vec<_> = jobs.iter().map(|j| j.picture.view()).collect();
    // A panic in the model must not take the thread (and every later request) with it.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| detector.run_batch(&pictures, true)));
    stats.record_round(jobs.len(), batching);
    match result {
        Ok(Ok(outputs)) => {
            for (job, out) in jobs.into_iter().zip(outputs) {
                stats.record_timings(&out.timings);
                let _ = job.reply.send(Ok(out));
            }
        }
        Ok(Err(e)) => fail_all(jobs, &e.to_string(), stats),
        Err(_) => fail_all(jobs, "the model panicked", stats),
    }
}

fn fail_all(jobs: Vec<Job>, why: &str, stats: &Stats) {
    tracing::error!("detector: {why}");
    stats.failures.fetch_add(jobs.len() as u64, Ordering::Relaxed);
    for job in jobs {
        let _ = job.reply.send(Err(why.to_owned()));
    }
}

/// Counters for `/health`: how much was done and whether batching happened.
#[derive(Default)]
pub(super) struct Stats {
    requests: AtomicU64,
    pictures: AtomicU64,
    /// Rounds of a model thread (one batch each when the model batches).
    rounds: AtomicU64,
    /// Rounds of more than one picture.
    batched_rounds: AtomicU64,
    /// Model calls with more than one picture in the input tensor.
    batched_calls: AtomicU64,
    largest_batch: AtomicU64,
    busy: AtomicU64,
    bad_requests: AtomicU64,
    failures: AtomicU64,
    /// Pictures dropped before their model call because their requester had gone.
    abandoned: AtomicU64,
    preprocess_ns: AtomicU64,
    model_ns: AtomicU64,
    postprocess_ns: AtomicU64,
    pub(super) grpc: grpc::GrpcStats,
}

impl Stats {
    fn record_round(&self, n: usize, batching: bool) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.pictures.fetch_add(n as u64, Ordering::Relaxed);
        if n > 1 {
            self.batched_rounds.fetch_add(1, Ordering::Relaxed);
            if batching {
                self.batched_calls.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.largest_batch.fetch_max(n as u64, Ordering::Relaxed);
        if n > 1 {
            tracing::debug!(pictures = n, one_call = batching, "detector: batch");
        }
    }

    fn record_timings(&self, t: &Timings) {
        self.preprocess_ns.fetch_add(t.preprocess.as_nanos() as u64, Ordering::Relaxed);
        self.model_ns.fetch_add(t.model.as_nanos() as u64, Ordering::Relaxed);
        self.postprocess_ns.fetch_add(t.postprocess.as_nanos() as u64, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// Errors as `{"error": {"code", "message"}}`.
#[derive(Debug)]
enum ApiError {
    Unsupported(String),
    BadImage(String),
    TooLarge(usize),
    Busy,
    Failed(String),
    NotFound(String),
    NotAllowed(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unsupported(m) | ApiError::BadImage(m) | ApiError::Failed(m) => f.write_str(m),
            ApiError::TooLarge(limit) => write!(f, "the body is larger than {limit} bytes"),
            ApiError::Busy => f.write_str("the detector is busy: retry after 1 s"),
            ApiError::NotFound(p) => write!(f, "no route {p}: POST images to the score path or /image"),
            ApiError::NotAllowed(m) => write!(f, "{m} is not allowed here"),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Unsupported(_) => ApiError::Unsupported(e.to_string()),
            BodyError::Undecodable(m) => ApiError::BadImage(m),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadImage(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            ApiError::Unsupported(_) => "UnsupportedMediaType",
            ApiError::BadImage(_) => "InvalidImage",
            ApiError::TooLarge(_) => "PayloadTooLarge",
            ApiError::Busy => "Busy",
            ApiError::Failed(_) => "InternalError",
            ApiError::NotFound(_) => "NotFound",
            ApiError::NotAllowed(_) => "MethodNotAllowed",
        };
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Busy) {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        res.content_type("application/json").body(json!({"error": {"code": code, "message": self.to_string()}}).to_string())
    }
}

/// Decrements the admitted count when a request ends, however it ends.
pub(super) struct Admission(Arc<AtomicUsize>);

/// The queue is full: the request is turned away (HTTP 503, a gRPC ack without result).
#[derive(Debug)]
pub(super) struct Busy;

/// Why an admitted picture got no detections.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error(transparent)]
    Picture(#[from] BodyError),
    #[error("{0}")]
    Failed(String),
}

impl From<Busy> for ApiError {
    fn from(_: Busy) -> Self {
        ApiError::Busy
    }
}

impl From<Failure> for ApiError {
    fn from(e: Failure) -> Self {
        match e {
            Failure::Picture(e) => e.into(),
            Failure::Failed(m) => ApiError::Failed(m),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// Admits a request (or turns it away): `queue` may wait beyond what the threads are
    /// running.
    pub(super) fn admit(&self) -> Result<Admission, Busy> {
        let limit = self.queue + self.threads * self.max_batch;
        let admitted = &self.pool.admitted;
        let mut now = admitted.load(Ordering::Acquire);
        loop {
            if now >= limit {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                return Err(Busy);
            }
            match admitted.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Admission(admitted.clone())),
                Err(v) => now = v,
            }
        }
    }

    /// Decodes off the async threads, then waits for a model thread.
    async fn detect(&self, kind: Kind, data: Bytes, raw: RawSpec) -> Result<Vec<Detection>, ApiError> {
        let admission = self.admit()?;
        Ok(self.run(admission, move || body::decode(kind, data, &raw), None).await?)
    }

    /// Runs `decode` on the blocking pool (it may read and copy, e.g. from shared memory),
    /// then the model on its picture, with `detector`'s settings when given. Holds the
    /// admission until the answer is in.
    pub(super) async fn run(
        &self,
        admission: Admission,
        decode: impl FnOnce() -> Result<OwnedPicture, BodyError> + Send + 'static,
        detector: Option<Arc<Detector>>,
    ) -> Result<Vec<Detection>, Failure> {
        let _admission = admission;
        let picture =
            tokio::task::spawn_blocking(decode).await.map_err(|e| Failure::Failed(format!("decoding failed: {e}")))?.inspect_err(|_| {
                self.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            })?;
        let rx = self.pool.submit(picture, detector);
        let out = rx.await.map_err(|_| Failure::Failed("the model thread stopped".into()))?.map_err(Failure::Failed)?;
        Ok(out.detections)
    }

    /// The body, refused past `max_body` (before reading it when Content-Length says so).
    async fn read_body(&self, req: &HttpRequest, mut payload: web::Payload) -> Result<Bytes, ApiError> {
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(ApiError::TooLarge(self.max_body));
        }
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadImage(format!("reading the body: {e}")))?;
            if buf.len() + chunk.len() > self.max_body {
                return Err(ApiError::TooLarge(self.max_body));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

/// JSON numbers as the shortest decimal that reads back as the same `f32` (0.83, not
/// 0.8299999833106995).
fn num(x: f32) -> Value {
    x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// `POST /score`: the HTTP extension contract. 200 with inferences, 204 when none.
///
/// Like the yolov3 sample, `?object=person` keeps only that tag and `?confidence=0.6` only
/// detections above that confidence (strictly), on top of the server's settings.
async fn score(shared: web::Data<Shared>, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let ct = content_type(&req);
    let kind = body::kind_of(ct).map_err(|e| count_bad(&shared, e.into()))?;
    if kind == Kind::Multipart {
        return Err(count_bad(&shared, BodyError::Unsupported(ct.unwrap_or_default().to_owned()).into()));
    }
    let query = query_pairs(&req);
    let raw =
        if kind == Kind::Raw { RawSpec::resolve(shared.raw, &query, ct).map_err(|e| count_bad(&shared, e.into()))? } else { shared.raw };
    let data = shared.read_body(&req, payload).await?;
    let mut found = shared.detect(kind, data, raw).await?;
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    if let Some(object) = get("object").filter(|o| !o.is_empty()) {
        found.retain(|d| d.label == object);
    }
    if let Some(c) = get("confidence").and_then(|c| c.parse::<f32>().ok()) {
        found.retain(|d| d.confidence > c);
    }
    if found.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    Ok(json_response(&inferences(&found)))
}

/// The inference metadata of SPEC §4.3, as the yolov3 sample returns it.
pub fn inferences(found: &[Detection]) -> Value {
    let list: Vec<Value> = found
        .iter()
        .map(|d| {
            json!({
                "type": "entity",
                "entity": {
                    "tag": {"value": d.label, "confidence": num(d.confidence)},
                    "box": {"l": num(d.left), "t": num(d.top), "w": num(d.width), "h": num(d.height)},
                },
            })
        })
        .collect();
    json!({ "inferences": list })
}

/// The Custom Vision prediction document (the exported containers' `/image` answer).
pub fn predictions(found: &[Detection], created: SystemTime) -> Value {
    let list: Vec<Value> = found
        .iter()
        .map(|d| {
            json!({
                "probability": num(d.confidence),
                "tagId": d.class_id,
                "tagName": d.label,
                "boundingBox": {"left": num(d.left), "top": num(d.top), "width": num(d.width), "height": num(d.height)},
            })
        })
        .collect();
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "project": "",
        "iteration": "",
        "created": crate::clock::rfc3339_millis(created),
        "predictions": list,
    })
}

fn json_response(v: &Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(v.to_string())
}

fn count_bad(shared: &Shared, e: ApiError) -> ApiError {
    shared.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
    e
}

/// `POST /image` (and the exported containers' longer paths): the body is the picture, or a
/// `multipart/form-data` whose part `imageData` is. Always 200 with the predictions (an
/// empty list when nothing is found), as Custom Vision answers.
async fn custom_vision(shared: web::Data<Shared>, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let ct = content_type(&req).map(str::to_owned);
    let kind = body::kind_of(ct.as_deref()).map_err(|e| count_bad(&shared, e.into()))?;
    let query = query_pairs(&req);
    let data = shared.read_body(&req, payload).await?;
    let (kind, data, raw_ct) = if kind == Kind::Multipart {
        let ct = ct.as_deref().unwrap_or_default();
        let part = multipart::part(ct, &data, "imageData").map_err(|e| count_bad(&shared, ApiError::BadImage(e.to_string())))?;
        // A part's type is often missing or generic; anything but raw is recognised by its
        // signature, as the exported containers (PIL) do.
        let part_kind = match part.content_type.as_deref().map(|c| body::kind_of(Some(c))) {
            Some(Ok(Kind::Raw)) => Kind::Raw,
            _ => Kind::Sniff,
        };
        let bytes = data.slice_ref(part.data);
        (part_kind, bytes, part.content_type.clone())
    } else {
        (kind, data, ct)
    };
    let raw = if kind == Kind::Raw {
        RawSpec::resolve(shared.raw, &query, raw_ct.as_deref()).map_err(|e| count_bad(&shared, e.into()))?
    } else {
        shared.raw
    };
    let found = shared.detect(kind, data, raw).await?;
    Ok(json_response(&predictions(&found, SystemTime::now())))
}

async fn health(shared: web::Data<Shared>) -> HttpResponse {
    let s = &shared.stats;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let pictures = get(&s.pictures).max(1) as f64;
    let ms = |a: &AtomicU64| (get(a) as f64 / pictures / 1e4).round() / 100.0;
    let d = &shared.detector;
    let (w, h) = d.input_size();
    // Never build the batched plan here (it takes a second): report what is known.
    let (batching, refusal) = match (shared.max_batch, d.batch_status()) {
        (1, _) => (Value::Bool(false), Some("max batch is 1")),
        (_, Some(Ok(()))) => (Value::Bool(true), None),
        (_, Some(Err(why))) => (Value::Bool(false), Some(why)),
        (_, None) => (Value::Null, None),
    };
    let v = json!({
        "status": "ok",
        "model": d.model_path().display().to_string(),
        "input": [w, h],
        "classes": d.classes(),
        "threshold": num(d.config().threshold),
        "nmsIou": num(d.config().nms_iou),
        "threads": shared.threads,
        "maxBatch": shared.max_batch,
        "batching": batching,
        "batchRefusal": refusal,
        "queue": {"capacity": shared.queue, "admitted": shared.pool.admitted.load(Ordering::Relaxed)},
        "scorePaths": shared.score_paths,
        "counters": {
            "requests": get(&s.requests),
            "pictures": get(&s.pictures),
            "rounds": get(&s.rounds),
            "batchedRounds": get(&s.batched_rounds),
            "batchedModelCalls": get(&s.batched_calls),
            "largestBatch": get(&s.largest_batch),
            "busy": get(&s.busy),
            "badRequests": get(&s.bad_requests),
            "failures": get(&s.failures),
            "abandoned": get(&s.abandoned),
        },
        "grpc": shared.grpc_addr.get().map(|addr| s.grpc.health(*addr)),
        "meanMsPerPicture": {"preprocess": ms(&s.preprocess_ns), "model": ms(&s.model_ns), "postprocess": ms(&s.postprocess_ns)},
    });
    HttpResponse::Ok().content_type("application/json").insert_header((header::CACHE_CONTROL, "no-cache")).body(v.to_string())
}

async fn hello(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(format!(
        "Vela detector ({}): POST an image to {} (LVA/AVA HTTP extension) or /image (Custom Vision); GET /health\n",
        shared.detector.model_path().display(),
        shared.score_paths.join(", ")
    ))
}

async fn not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotAllowed(format!("{} {}", req.method(), req.path())))
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(req.path().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &'static str, class_id: usize, confidence: f32) -> Detection {
        Detection { label, class_id, confidence, left: 0.25, top: 0.5, width: 0.125, height: 0.3 }
    }

    #[test]
    fn inference_document_is_the_spec_schema() {
        let v = inferences(&[det("person", 0, 0.83)]);
        assert_eq!(
            v,
            json!({"inferences": [{"type": "entity", "entity": {"tag": {"value": "person", "confidence": 0.83}, "box": {"l": 0.25, "t": 0.5, "w": 0.125, "h": 0.3}}}]})
        );
        assert_eq!(
            v.to_string(),
            r#"{"inferences":[{"type":"entity","entity":{"tag":{"value":"person","confidence":0.83},"box":{"l":0.25,"t":0.5,"w":0.125,"h":0.3}}}]}"#
        );
    }

    #[test]
    fn prediction_document_is_custom_vision_shaped() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_714_564_800_123);
        let v = predictions(&[det("car", 2, 0.5)], t);
        assert_eq!(v["created"], "2024-05-01T12:00:00.123Z");
        assert_eq!((v["project"].as_str(), v["iteration"].as_str()), (Some(""), Some("")));
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
        assert_eq!(
            v["predictions"],
            json!([{"probability": 0.5, "tagId": 2, "tagName": "car", "boundingBox": {"left": 0.25, "top": 0.5, "width": 0.125, "height": 0.3}}])
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(0.83).to_string(), "0.83");
        assert_eq!(num(1.0).to_string(), "1.0");
        assert_eq!(num(f32::NAN), Value::Null);
    }

    #[test]
    fn queue_shares_work_among_idle_threads() {
        let q = Queue::default();
        let push = |n: usize| {
            for _ in 0..n {
                let (reply, _) = tokio::sync::oneshot::channel();
                let img = image::RgbImage::new(1, 1);
                q.lock().jobs.push_back(Job { picture: OwnedPicture::from_rgb(img), detector: None, reply });
            }
        };
        push(5);
        assert_eq!(q.take(4).unwrap().len(), 4, "no other thread idle: up to max");
        assert_eq!(q.take(4).unwrap().len(), 1);
        push(6);
        q.lock().idle = 1; // another thread is waiting: take half
        assert_eq!(q.take(8).unwrap().len(), 3);
        q.lock().idle = 0;
        q.lock().closed = true;
        assert_eq!(q.take(8).unwrap().len(), 3, "queued work is finished after close");
        assert!(q.take(8).is_none());
    }
}
