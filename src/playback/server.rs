//! The playback HTTP API on actix-web: routes under /api/videos, optional bearer-token auth, JSON errors, and file-backed bodies streamed under a lease.
//!
//! Handlers are thin: they check names and parameters, then run the catalog lookups and
//! the pure cores ([`super::hls`], [`super::export`]) on the blocking pool, because the
//! catalog reads an index and bodies read files. Media bytes are streamed in chunks read on
//! the blocking pool too, each response holding a [`Lease`] on its segments until the body
//! is finished or dropped.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::{BoxBody, SizedStream};
use actix_web::dev::{Server, ServerHandle, ServiceRequest};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpResponseBuilder, HttpServer, ResponseError};
use bytes::Bytes;
use futures::Stream;
use md5::{Digest as _, Md5};

use crate::clock::{self, Clock, SystemClock};
use crate::recording::{Catalog, Lease, Nanos, Segment, Span};

use super::error::{check_name, ApiError};
use super::export::{self, ExportError, Piece, PieceReader};
use super::hls::{self, LiveSequencer};
use super::range::{self, Ranged};
use super::time::{self, format_time, TimeError, MAX_MEDIA_WINDOW, MAX_RANGES_WINDOW};

/// Bytes read from a file per hop to the blocking pool: large enough that the hop costs
/// nothing next to the copy, small enough to keep memory per download low.
const CHUNK: usize = 256 << 10;
/// Metadata entries per response (about 1.5 MB of JSON at five boxes per picture); a
/// longer window comes in pages (`next`).
const MAX_METADATA_ENTRIES: usize = 5000;

/// The playback API, ready to mount on an actix-web app or to serve on its own.
///
/// Cheap to clone; clones share state. Build one per server and configure every worker's
/// app from it: live playlists number their segments from state that must be shared by all
/// workers (see [`LiveSequencer`]).
#[derive(Clone)]
pub struct Playback {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<dyn Catalog>,
    /// MD5 of the configured token: comparing digests takes the same time whatever the
    /// candidate's length or content.
    token: Option<[u8; 16]>,
    clock: Arc<dyn Clock>,
    live: LiveSequencer,
}

/// A started server: where it listens, and the future that runs it (spawn or await it).
pub struct Serving {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: Server,
}

impl Playback {
    /// `auth`: the bearer token every request must present; `None` (or empty) for none.
    pub fn new(catalog: Arc<dyn Catalog>, auth: Option<String>) -> Self {
        Self::with_clock(catalog, auth, Arc::new(SystemClock))
    }

    /// Like [`Playback::new`] with the clock that says what "in the future" means.
    pub fn with_clock(catalog: Arc<dyn Catalog>, auth: Option<String>, clock: Arc<dyn Clock>) -> Self {
        let token = auth.filter(|t| !t.is_empty()).map(|t| digest(t.as_bytes()));
        Self { inner: Arc::new(Inner { catalog, token, clock, live: LiveSequencer::default() }) }
    }

    /// Mounts the API (everything under `/api/videos`) on an app; leaves other paths,
    /// including `/`, to the caller.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let guard = self.inner.clone();
        let auth = from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
            let inner = guard.clone();
            async move {
                if inner.authorized(req.request()) {
                    next.call(req).await
                } else {
                    Ok(req.into_response(ApiError::Unauthorized.error_response()))
                }
            }
        });
        cfg.service(
            web::scope("/api/videos")
                .app_data(web::Data::from(self.inner.clone()))
                .wrap(auth)
                .service(web::resource("").route(web::get().to(list_videos)).default_service(web::to(not_allowed)))
                .service(web::resource("/{name}/ranges").route(web::get().to(ranges)).default_service(web::to(not_allowed)))
                .service(web::resource("/{name}/metadata").route(web::get().to(metadata)).default_service(web::to(not_allowed)))
                .service(web::resource("/{name}/playlist.m3u8").route(web::get().to(playlist)).default_service(web::to(not_allowed)))
                .service(
                    web::resource("/{name}/segments/{file}")
                        .route(web::get().to(segment))
                        .route(web::head().to(segment))
                        .default_service(web::to(not_allowed)),
                )
                .service(
                    web::resource("/{name}/export.mp4")
                        .route(web::get().to(export_mp4))
                        .route(web::head().to(export_mp4))
                        .default_service(web::to(not_allowed)),
                )
                .default_service(web::to(no_route)),
        );
    }

    /// Binds `addr` (port 0 picks one) and returns the server, not yet running: spawn or
    /// await [`Serving::server`]. Signals are left to the caller (the appliance owns them).
    pub fn serve(&self, addr: impl ToSocketAddrs) -> io::Result<Serving> {
        let this = self.clone();
        let server = HttpServer::new(move || {
            let playback = this.clone();
            App::new().configure(move |cfg| playback.configure(cfg)).configure(super::page::configure)
        })
        .disable_signals()
        .bind(addr)?;
        let addr = *server.addrs().first().ok_or_else(|| io::Error::other("bound no address"))?;
        let server = server.run();
        Ok(Serving { addr, handle: server.handle(), server })
    }
}

/// Serves the API on `addr` on its own (see [`Playback::serve`]).
pub async fn serve(addr: impl ToSocketAddrs, catalog: Arc<dyn Catalog>, auth: Option<String>) -> io::Result<Serving> {
    Playback::new(catalog, auth).serve(addr)
}

fn digest(b: &[u8]) -> [u8; 16] {
    Md5::digest(b).into()
}

/// Compares without an early exit, so timing says nothing about how much matched.
fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Inner {
    fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.token else { return true };
        let from_header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
            let (scheme, credentials) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim().to_owned())
        });
        // RFC 6750 §2.3: for players and links that cannot set headers (HLS in Safari, a
        // download link).
        let candidate = from_header.or_else(|| Query::parse(req.query_string()).get("access_token").map(str::to_owned));
        candidate.is_some_and(|c| constant_time_eq(&digest(c.as_bytes()), token))
    }

    /// The future starts after both the clock and the newest media (see Catalog::newest).
    fn now(&self) -> Result<Nanos, ApiError> {
        Ok(clock::unix_nanos(self.clock.now()).max(self.catalog.newest()?.unwrap_or(Nanos::MIN)))
    }

    fn window(&self, q: &Query, max: Nanos) -> Result<Span, ApiError> {
        let start = time::parse_time("start", q.get("start").ok_or(TimeError::Missing { param: "start" })?)?;
        let end = time::parse_time("end", q.get("end").ok_or(TimeError::Missing { param: "end" })?)?;
        Ok(time::validate_window(start, end, self.now()?, max)?)
    }

    fn segments(&self, video: &str, span: Span) -> Result<Vec<Segment>, ApiError> {
        self.catalog.segments(video, span.start, span.end)?.ok_or_else(|| ApiError::UnknownVideo(video.to_owned()))
    }

    fn no_recording(video: &str, span: Span) -> ApiError {
        ApiError::NoRecording {
            video: video.to_owned(),
            when: format!("between {} and {}", format_time(span.start), format_time(span.end)),
        }
    }

    fn videos_json(&self) -> Result<serde_json::Value, ApiError> {
        let videos: Vec<serde_json::Value> = self
            .catalog
            .videos()?
            .into_iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name,
                    "title": v.title,
                    "description": v.description,
                    "start": v.start.map(format_time),
                    "end": v.end.map(format_time),
                    "bytes": v.bytes,
                    "segments": v.segments,
                    "live": v.live,
                })
            })
            .collect();
        Ok(serde_json::json!({ "videos": videos }))
    }

    fn ranges_json(&self, video: &str, q: &Query) -> Result<serde_json::Value, ApiError> {
        let span = self.window(q, MAX_RANGES_WINDOW)?;
        let ranges = self.catalog.ranges(video, span.start, span.end)?.ok_or_else(|| ApiError::UnknownVideo(video.to_owned()))?;
        let ranges: Vec<_> =
            ranges.iter().map(|r| serde_json::json!({ "start": format_time(r.start), "end": format_time(r.end) })).collect();
        Ok(serde_json::json!({ "ranges": ranges }))
    }

    /// Inference metadata recorded with the video in a window, a page at a time.
    fn metadata_json(&self, video: &str, q: &Query) -> Result<serde_json::Value, ApiError> {
        let span = self.window(q, MAX_RANGES_WINDOW)?;
        let limit = match q.get("limit") {
            None => MAX_METADATA_ENTRIES,
            Some(v) => v.parse::<usize>().ok().filter(|n| (1..=MAX_METADATA_ENTRIES).contains(n)).ok_or_else(|| {
                ApiError::InvalidParameter { param: "limit", value: v.to_owned(), why: "must be a whole number from 1 to 5000" }
            })?,
        };
        let page = self.catalog.metadata(video, span.start, span.end, limit)?.ok_or_else(|| ApiError::UnknownVideo(video.to_owned()))?;
        let entries: Vec<_> = page
            .entries
            .into_iter()
            .map(|e| serde_json::json!({ "time": format_time(e.time), "source": e.source, "inferences": e.inferences }))
            .collect();
        Ok(serde_json::json!({
            "video": video,
            "start": format_time(span.start),
            "end": format_time(span.end),
            "entries": entries,
            "next": page.next.map(time::format_time_nanos),
        }))
    }

    /// A VOD playlist of a window, or the live playlist when the query has no window.
    fn playlist(&self, video: &str, q: &Query) -> Result<String, ApiError> {
        // Segment URIs carry the token when the playlist was fetched with one in the query:
        // a player that cannot set headers cannot set them for segments either.
        let token = q
            .get("access_token")
            .filter(|_| self.token.is_some())
            .map(|t| format!("&access_token={}", encode_query(t)))
            .unwrap_or_default();
        let uri = |s: &Segment| format!("segments/{}?at={}{token}", hls::encode_path_segment(&s.file), s.start);
        match time::parse_window(q.get("start"), q.get("end"))? {
            Some((start, end)) => {
                let span = time::validate_window(start, end, self.now()?, MAX_MEDIA_WINDOW)?;
                let segments = self.segments(video, span)?;
                hls::vod_playlist(&segments, span, &uri).ok_or_else(|| Self::no_recording(video, span))
            }
            None => {
                let summary =
                    self.catalog.videos()?.into_iter().find(|v| v.name == video).ok_or_else(|| ApiError::UnknownVideo(video.to_owned()))?;
                let nothing = || ApiError::NoRecording { video: video.to_owned(), when: "yet".into() };
                let edge = summary.end.ok_or_else(nothing)?;
                let request = self.live.begin(video, edge);
                let segments = self.segments(video, Span { start: request.fetch_from, end: Nanos::MAX })?;
                self.live.playlist(&request, &segments, summary.live, &uri).ok_or_else(nothing)
            }
        }
    }

    /// The segment `file` of `video`, found through the catalog only. `at` (the segment's
    /// start, which playlists put in its URI) finds it with a one-instant query; without it
    /// the whole recorded span is searched.
    fn find_segment(&self, video: &str, file: &str, at: Option<Nanos>) -> Result<Segment, ApiError> {
        if let Some(at) = at {
            let found = self.segments(video, Span { start: at, end: at.saturating_add(1) })?;
            if let Some(s) = found.into_iter().find(|s| s.file == file) {
                return Ok(s);
            }
        }
        let summary =
            self.catalog.videos()?.into_iter().find(|v| v.name == video).ok_or_else(|| ApiError::UnknownVideo(video.to_owned()))?;
        let unknown = || ApiError::UnknownSegment { video: video.to_owned(), file: file.to_owned() };
        let (Some(start), Some(end)) = (summary.start, summary.end) else { return Err(unknown()) };
        let all = self.segments(video, Span { start, end: end.saturating_add(1) })?;
        all.into_iter().find(|s| s.file == file).ok_or_else(unknown)
    }

    fn segment_body(&self, video: &str, file: &str, at: Option<Nanos>) -> Result<FileBody, ApiError> {
        let segment = self.find_segment(video, file, at)?;
        let lease = self.catalog.lease(std::slice::from_ref(&segment));
        let path = self.catalog.segment_path(&segment);
        let pieces: Arc<[Piece]> =
            export::segment_pieces(&segment, path, &mut export::read_prefix).map_err(|e| ApiError::Media(e.to_string()))?.into();
        // What the index vouches for (the file of an open segment may be longer).
        let len = pieces.last().map_or(0, |p| p.at + p.len);
        let etag = export::etag(&pieces);
        Ok(FileBody { pieces, len, etag, lease, open: segment.open })
    }

    fn export_body(&self, video: &str, q: &Query) -> Result<(FileBody, export::Plan), ApiError> {
        let span = self.window(q, MAX_MEDIA_WINDOW)?;
        let segments = self.segments(video, span)?;
        // Leased before the first file is opened, and kept until the body is done.
        let lease = self.catalog.lease(&segments);
        let path_of = |s: &Segment| -> PathBuf { self.catalog.segment_path(s) };
        let plan = export::plan(&segments, span, &path_of, &mut export::read_prefix).map_err(|e| match e {
            ExportError::NoMedia => Self::no_recording(video, span),
            e => ApiError::Media(e.to_string()),
        })?;
        let body = FileBody { pieces: plan.pieces.clone(), len: plan.len, etag: plan.etag(), lease, open: false };
        Ok((body, plan))
    }
}

/// A response body of file pieces, and what protects them.
struct FileBody {
    pieces: Arc<[Piece]>,
    len: u64,
    etag: String,
    lease: Lease,
    /// Still growing: the full body may be longer next time.
    open: bool,
}

/// Query parameters, first occurrence wins; never fails (unknown parameters are ignored, so
/// cache busters and player additions pass).
struct Query(HashMap<String, String>);

impl Query {
    fn parse(s: &str) -> Self {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(s.as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self(map)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

fn encode_query(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Runs catalog and file work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    web::block(f).await.map_err(|_| ApiError::Internal("the blocking thread pool is gone".into()))?
}

async fn list_videos(inner: web::Data<Inner>) -> Result<HttpResponse, ApiError> {
    let json = blocking(move || inner.videos_json()).await?;
    Ok(json_response(&json))
}

async fn ranges(inner: web::Data<Inner>, req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let video = check_name("video", &name)?.to_owned();
    let q = Query::parse(req.query_string());
    let json = blocking(move || inner.ranges_json(&video, &q)).await?;
    Ok(json_response(&json))
}

async fn metadata(inner: web::Data<Inner>, req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let video = check_name("video", &name)?.to_owned();
    let q = Query::parse(req.query_string());
    let json = blocking(move || inner.metadata_json(&video, &q)).await?;
    Ok(json_response(&json))
}

async fn playlist(inner: web::Data<Inner>, req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let video = check_name("video", &name)?.to_owned();
    let q = Query::parse(req.query_string());
    let body = blocking(move || inner.playlist(&video, &q)).await?;
    Ok(HttpResponse::Ok().content_type("application/vnd.apple.mpegurl").insert_header((header::CACHE_CONTROL, "no-cache")).body(body))
}

async fn segment(inner: web::Data<Inner>, req: HttpRequest, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (name, file) = path.into_inner();
    let video = check_name("video", &name)?.to_owned();
    let file = check_name("file", &file)?.to_owned();
    let at = Query::parse(req.query_string()).get("at").and_then(|v| v.parse::<Nanos>().ok());
    let body = blocking(move || inner.segment_body(&video, &file, at)).await?;
    let mut res = HttpResponse::Ok();
    res.content_type("video/mp4");
    // Closed files never change; the indexed part of an open one only grows.
    res.insert_header((header::CACHE_CONTROL, if body.open { "no-cache" } else { "max-age=86400" }));
    respond(&req, res, body)
}

async fn export_mp4(inner: web::Data<Inner>, req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let video = check_name("video", &name)?.to_owned();
    let q = Query::parse(req.query_string());
    let download = video.clone();
    let (body, plan) = blocking(move || inner.export_body(&video, &q)).await?;
    let mut res = HttpResponse::Ok();
    res.content_type("video/mp4")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", export_file_name(&download, plan.span))))
        .insert_header(("X-Export-Start", format_time(plan.span.start)))
        .insert_header(("X-Export-End", format_time(plan.span.end)))
        .insert_header(("X-Export-Fragments", plan.fragments.to_string()));
    if let Some(t) = &plan.truncated {
        let note = format!("stopped at {} (segment {}): {}", format_time(t.at), t.file, t.reason);
        res.insert_header(("X-Export-Truncated", ascii_header(&note)));
    }
    respond(&req, res, body)
}

async fn not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(ascii_header(req.method().as_str())))
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(ascii_header(req.path())))
}

fn json_response(v: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").insert_header((header::CACHE_CONTROL, "no-cache")).body(v.to_string())
}

/// Sends a file body whole or one range of it, with exact lengths.
fn respond(req: &HttpRequest, mut res: HttpResponseBuilder, body: FileBody) -> Result<HttpResponse, ApiError> {
    let h = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    // RFC 9110: Range only applies to GET.
    let range_header = if req.method() == Method::GET { h(header::RANGE) } else { None };
    let range = match range::resolve(range_header, h(header::IF_RANGE), &body.etag, body.len) {
        Ranged::Full => 0..body.len,
        Ranged::Partial(r) => {
            res.status(StatusCode::PARTIAL_CONTENT);
            res.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start, r.end - 1, body.len)));
            r
        }
        Ranged::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len: body.len }),
    };
    res.insert_header((header::ACCEPT_RANGES, "bytes")).insert_header((header::ETAG, body.etag.clone()));
    let len = range.end - range.start;
    Ok(res.body(SizedStream::new(len, stream_pieces(body.pieces, range, body.lease))))
}

/// Streams `range` of a virtual file, reading on the blocking pool; the lease lives as long
/// as the stream (dropped at its end or when the client goes away).
fn stream_pieces(pieces: Arc<[Piece]>, range: std::ops::Range<u64>, lease: Lease) -> impl Stream<Item = Result<Bytes, io::Error>> {
    let reader = PieceReader::new(pieces, range);
    futures::stream::unfold(Some((reader, lease)), |state| async move {
        let (mut reader, lease) = state?;
        match web::block(move || {
            let r = reader.read_chunk(CHUNK);
            (reader, r)
        })
        .await
        {
            Ok((reader, Ok(Some(chunk)))) => Some((Ok(chunk), Some((reader, lease)))),
            Ok((_, Ok(None))) => None,
            Ok((_, Err(e))) => {
                // Headers are gone already: all that is left is to cut the response short,
                // which the exact Content-Length lets the client notice.
                tracing::warn!("playback: aborting a response body: {e}");
                Some((Err(e), None))
            }
            Err(_) => Some((Err(io::Error::other("the blocking thread pool is gone")), None)),
        }
    })
}

/// `cam-1_20240501T120000Z_20240501T130000Z.mp4`: the video and the exported span, with
/// anything but letters, digits, `-`, `_` and `.` replaced.
fn export_file_name(video: &str, span: Span) -> String {
    let safe: String = video.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let t = |ns: Nanos| clock::basic(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0)));
    format!("{safe}_{}Z_{}Z.mp4", t(span.start), t(span.end))
}

/// Header values must be visible ASCII.
fn ascii_header(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::hls::tests::{segment, T0};
    use crate::recording::{Span as S, StoreError, VideoSummary};
    use actix_web::test as web_test;

    const SECOND: Nanos = 1_000_000_000;

    use crate::recording::metadata::{Entry, Page};

    /// An index without files: enough for lists, ranges, playlists and refusals.
    struct Fake {
        segments: Vec<Segment>,
    }

    impl Catalog for Fake {
        fn videos(&self) -> Result<Vec<VideoSummary>, StoreError> {
            Ok(vec![VideoSummary {
                name: "cam".into(),
                title: "Lobby".into(),
                description: String::new(),
                start: self.segments.first().map(|s| s.start),
                end: self.segments.last().map(|s| s.end),
                bytes: 1234,
                segments: self.segments.len() as u64,
                live: false,
            }])
        }
        fn segments(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Segment>>, StoreError> {
            Ok((video == "cam").then(|| self.segments.iter().filter(|s| s.end > start && s.start < end).cloned().collect()))
        }
        fn ranges(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<S>>, StoreError> {
            Ok((video == "cam").then(|| vec![S { start: start.max(T0), end: end.min(T0 + 10 * SECOND) }]))
        }
        /// A box every 100 ms of the first second.
        fn metadata(&self, video: &str, start: Nanos, end: Nanos, limit: usize) -> Result<Option<Page>, StoreError> {
            let all = (0..10).map(|i| Entry {
                time: T0 + i * SECOND / 10 + 1,
                source: "tracker".into(),
                inferences: serde_json::json!([{"type": "entity", "sequenceId": "a1", "entity": {"box": {"l": 0.1, "t": 0.2, "w": 0.3, "h": 0.4}}}]),
            });
            let mut inside = all.filter(|e| e.time >= start && e.time < end);
            let entries: Vec<Entry> = inside.by_ref().take(limit).collect();
            Ok((video == "cam").then(|| Page { entries, next: inside.next().map(|e| e.time) }))
        }
        fn segment_path(&self, segment: &Segment) -> PathBuf {
            PathBuf::from("/nonexistent").join(&segment.file)
        }
        fn lease(&self, _: &[Segment]) -> Lease {
            Lease(Box::new(()))
        }
    }

    fn app_state(auth: Option<&str>) -> Playback {
        let fake = Fake { segments: vec![segment(1, T0, 5, 2 * SECOND)] };
        Playback::new(Arc::new(fake), auth.map(str::to_owned))
    }

    async fn call(p: &Playback, req: web_test::TestRequest) -> (u16, String) {
        let p = p.clone();
        let app = web_test::init_service(App::new().configure(move |c| p.configure(c))).await;
        let res = web_test::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        (status, String::from_utf8_lossy(&web_test::read_body(res).await).into_owned())
    }

    fn get(uri: &str) -> web_test::TestRequest {
        web_test::TestRequest::get().uri(uri)
    }

    #[actix_web::test]
    async fn lists_videos_and_ranges_with_rfc3339_times() {
        let p = app_state(None);
        let (status, body) = call(&p, get("/api/videos")).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["videos"][0]["name"], "cam");
        assert_eq!(v["videos"][0]["start"], "2024-05-01T12:00:00.000Z");
        assert_eq!(v["videos"][0]["end"], "2024-05-01T12:00:10.000Z");
        let (status, body) = call(&p, get("/api/videos/cam/ranges?start=2024-05-01T11:00:00Z&end=2024-05-01T12:00:05%2B00:00")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, r#"{"ranges":[{"start":"2024-05-01T12:00:00.000Z","end":"2024-05-01T12:00:05.000Z"}]}"#);
    }

    #[actix_web::test]
    async fn metadata_comes_as_published_a_page_at_a_time() {
        let p = app_state(None);
        let window = "start=2024-05-01T12:00:00Z&end=2024-05-01T12:00:01Z";
        let (status, body) = call(&p, get(&format!("/api/videos/cam/metadata?{window}&limit=4"))).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["video"].as_str(), v["start"].as_str()), (Some("cam"), Some("2024-05-01T12:00:00.000Z")));
        let entries = v["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[1]["time"], "2024-05-01T12:00:00.100Z");
        assert_eq!(entries[1]["source"], "tracker");
        assert_eq!(entries[1]["inferences"][0]["entity"]["box"]["w"], 0.3);
        // `next` is exact to the nanosecond: resuming from it repeats and skips nothing.
        assert_eq!(v["next"], "2024-05-01T12:00:00.400000001Z");
        let (_, body) = call(&p, get("/api/videos/cam/metadata?start=2024-05-01T12:00:00.400000001Z&end=2024-05-01T12:00:01Z")).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["entries"].as_array().unwrap().len(), &v["next"]), (6, &serde_json::Value::Null));

        for (query, status, code, target) in [
            (format!("{window}&limit=0"), 400, "InvalidParameter", Some("limit")),
            (format!("{window}&limit=5001"), 400, "InvalidParameter", Some("limit")),
            (format!("{window}&limit=ten"), 400, "InvalidParameter", Some("limit")),
            ("start=2024-05-01T12:00:01Z&end=2024-05-01T12:00:00Z".to_string(), 400, "InvalidTime", Some("end")),
            ("start=2024-05-01T12:00:00Z".to_string(), 400, "InvalidTime", Some("end")),
        ] {
            let (s, body) = call(&p, get(&format!("/api/videos/cam/metadata?{query}"))).await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let e = &v["error"];
            assert_eq!((s, e["code"].as_str(), e["target"].as_str()), (status, Some(code), target), "{query}: {body}");
        }
        let (s, _) = call(&p, get(&format!("/api/videos/nope/metadata?{window}"))).await;
        assert_eq!(s, 404);
        let (s, _) = call(&app_state(Some("t")), get(&format!("/api/videos/cam/metadata?{window}"))).await;
        assert_eq!(s, 401);
    }

    #[actix_web::test]
    async fn playlists_link_segments_through_the_catalog() {
        let p = app_state(None);
        let (status, body) = call(&p, get("/api/videos/cam/playlist.m3u8?start=2024-05-01T12:00:00Z&end=2024-05-01T12:00:03Z")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("segments/1.mp4?at={T0}\n")), "{body}");
        assert!(body.ends_with("#EXT-X-ENDLIST\n"));
        // Live: the video is not recording, so the listing of its last minutes ends.
        let (status, body) = call(&p, get("/api/videos/cam/playlist.m3u8")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("#EXT-X-MEDIA-SEQUENCE:") && body.ends_with("#EXT-X-ENDLIST\n"), "{body}");
        assert!(!body.contains("PLAYLIST-TYPE"));
    }

    #[actix_web::test]
    async fn bad_requests_get_json_errors() {
        let p = app_state(None);
        let cases = [
            ("/api/videos/cam/playlist.m3u8?start=2024-05-01T12:00:00Z", 400, "InvalidTime"),
            ("/api/videos/cam/playlist.m3u8?start=yesterday&end=2024-05-01T12:00:00Z", 400, "InvalidTime"),
            ("/api/videos/cam/export.mp4?start=2024-05-01T13:00:00Z&end=2024-05-01T12:00:00Z", 400, "InvalidTime"),
            ("/api/videos/cam/export.mp4?start=2024-05-01T00:00:00Z&end=2024-05-03T00:00:00Z", 400, "InvalidTime"),
            ("/api/videos/cam/export.mp4?start=2999-01-01T00:00:00Z&end=2999-01-01T01:00:00Z", 400, "InvalidTime"),
            ("/api/videos/cam/export.mp4", 400, "InvalidTime"),
            ("/api/videos/cam/ranges?end=2024-05-01T12:00:00Z", 400, "InvalidTime"),
            ("/api/videos/nope/ranges?start=2024-05-01T11:00:00Z&end=2024-05-01T12:00:00Z", 404, "VideoNotFound"),
            ("/api/videos/nope/playlist.m3u8", 404, "VideoNotFound"),
            ("/api/videos/cam/playlist.m3u8?start=2024-04-01T11:00:00Z&end=2024-04-01T12:00:00Z", 404, "NoRecording"),
            ("/api/videos/cam/export.mp4?start=2024-04-01T11:00:00Z&end=2024-04-01T12:00:00Z", 404, "NoRecording"),
            ("/api/videos/cam/segments/2.mp4", 404, "SegmentNotFound"),
            ("/api/videos/cam/segments/..%2F..%2Fetc%2Fpasswd", 400, "InvalidName"),
            ("/api/videos/%2e%2e/ranges?start=2024-05-01T11:00:00Z&end=2024-05-01T12:00:00Z", 400, "InvalidName"),
            ("/api/videos/a%2Fb/export.mp4?start=2024-05-01T11:00:00Z&end=2024-05-01T12:00:00Z", 400, "InvalidName"),
            ("/api/videos/cam/nothing-here", 404, "NotFound"),
        ];
        for (uri, status, code) in cases {
            let (got, body) = call(&p, get(uri)).await;
            check(uri, got, &body, status, code);
        }
        let (got, body) = call(&p, web_test::TestRequest::post().uri("/api/videos")).await;
        check("POST /api/videos", got, &body, 405, "MethodNotAllowed");
        let (got, body) = call(&p, web_test::TestRequest::delete().uri("/api/videos/cam/export.mp4")).await;
        check("DELETE export", got, &body, 405, "MethodNotAllowed");
    }

    fn check(uri: &str, got: u16, body: &str, status: u16, code: &str) {
        assert_eq!(got, status, "{uri}: {body}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}"));
        assert_eq!(v["error"]["code"], code, "{uri}: {body}");
    }

    #[actix_web::test]
    async fn a_configured_token_guards_every_route() {
        let p = app_state(Some("s3cret"));
        for uri in ["/api/videos", "/api/videos/cam/playlist.m3u8", "/api/videos/cam/segments/1.mp4", "/api/videos/x/y"] {
            let (status, body) = call(&p, get(uri)).await;
            assert_eq!(status, 401, "{uri}");
            assert!(body.contains("\"Unauthorized\""));
            let (status, _) = call(&p, get(uri).insert_header(("Authorization", "Bearer wrong"))).await;
            assert_eq!(status, 401, "{uri}");
        }
        assert_eq!(call(&p, get("/api/videos").insert_header(("Authorization", "Bearer s3cret"))).await.0, 200);
        assert_eq!(call(&p, get("/api/videos").insert_header(("authorization", "bearer  s3cret "))).await.0, 200);
        assert_eq!(call(&p, get("/api/videos?access_token=s3cret")).await.0, 200);
        // The token follows into segment URIs when it came in the query.
        let (status, body) = call(&p, get("/api/videos/cam/playlist.m3u8?access_token=s3cret")).await;
        assert_eq!(status, 200);
        assert!(body.contains("&access_token=s3cret\n"), "{body}");
        // Empty means no auth.
        assert_eq!(call(&app_state(Some("")), get("/api/videos")).await.0, 200);
    }

    #[test]
    fn digests_compare_fully() {
        assert!(constant_time_eq(&digest(b"a"), &digest(b"a")));
        assert!(!constant_time_eq(&digest(b"a"), &digest(b"b")));
        assert_eq!(
            export_file_name("lobby/cam 1", S { start: T0, end: T0 + 3600 * SECOND }),
            "lobby_cam_1_20240501T120000Z_20240501T130000Z.mp4"
        );
    }
}
