//! RtspSource: pulls H.264 from a camera with retina, reconnecting with capped backoff; never decodes.

use crate::clock::unix_nanos;
use crate::runtime::backoff::Backoff;
use crate::runtime::events::{EventClass, Events, Subject};
use crate::runtime::node::{Feeder, Node, NodeCtx};
use crate::runtime::packet::{Packet, VideoParams, VideoSample};
use crate::topology::nodes::common::Credentials;
use crate::topology::nodes::rtsp_source::{RtspSource as Settings, Transport};
use bytes::Bytes;
use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, UdpTransportOptions};
use retina::codec::{CodecItem, ParametersRef};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long DESCRIBE, SETUP and PLAY may take before the camera counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// With no frame for this long the session is considered dead and reopened.
const STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Damaged packets are logged at most this often per session (with running totals).
const LOG_DAMAGE_EVERY: Duration = Duration::from_secs(10);
/// Packet errors in a row, with no frame between them, after which the session is given up:
/// a camera that changed its SSRC, say, fails every packet and would otherwise only be
/// noticed by the stall timeout.
const MAX_ERRORS_WITHOUT_FRAME: u32 = 100;
/// A session that streamed this long resets the reconnect backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

pub struct RtspSource {
    settings: Settings,
}

impl RtspSource {
    pub fn new(settings: Settings) -> Self {
        RtspSource { settings }
    }
}

impl Node for RtspSource {
    fn start(&mut self, ctx: &mut NodeCtx<'_>) {
        let settings = self.settings.clone();
        let feeder = ctx.feeder();
        let events = ctx.env.events.clone();
        let subject = ctx.env.subject.clone();
        ctx.spawn(run(settings, feeder, events, subject));
    }

    fn on_packet(&mut self, _p: Packet, _ctx: &mut NodeCtx<'_>) {}
}

/// Connects, streams, and reconnects forever: an unreachable camera leaves the
/// instance active and retrying (SPEC §1.2).
async fn run(settings: Settings, feeder: Feeder, events: Events, subject: Subject) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let started = tokio::time::Instant::now();
        let result = session(&settings, &feeder, &events, &subject).await;
        if !feeder.is_connected() {
            return;
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        let (ty, body) = match &result {
            Err(SourceError::Rtsp { status: Some(status), message }) => (
                "ProtocolError",
                json!({ "protocol": "rtsp", "errorCode": status.to_string(), "message": message, "retryInSeconds": delay.as_secs_f64() }),
            ),
            Err(SourceError::Rtsp { status: None, message }) | Err(SourceError::Network(message)) => {
                ("NetworkError", json!({ "errorCode": "ConnectionFailed", "message": message, "retryInSeconds": delay.as_secs_f64() }))
            }
            Err(SourceError::Media(message)) => {
                ("MediaFormatError", json!({ "code": "UnsupportedStream", "message": message, "retryInSeconds": delay.as_secs_f64() }))
            }
            Ok(()) => (
                "NetworkError",
                json!({ "errorCode": "SessionEnded", "message": "the camera ended the session", "retryInSeconds": delay.as_secs_f64() }),
            ),
        };
        tracing::warn!(instance = %subject.instance, node = ?subject.node.as_ref().map(|n| &n.1), event = ty, retry_in = ?delay, "rtsp source disconnected");
        events.emit(&subject, EventClass::Diagnostics, ty, body);
        tokio::time::sleep(delay).await;
    }
}

#[derive(Debug)]
enum SourceError {
    Rtsp { status: Option<u16>, message: String },
    Network(String),
    Media(String),
}

impl From<retina::Error> for SourceError {
    fn from(e: retina::Error) -> Self {
        SourceError::Rtsp { status: e.status_code(), message: e.to_string() }
    }
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, retina::Error>>) -> Result<T, SourceError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SourceError::Network(format!("{what} timed out after {} s", REQUEST_TIMEOUT.as_secs()))),
    }
}

/// One RTSP session, until it ends or fails.
async fn session(settings: &Settings, feeder: &Feeder, events: &Events, subject: &Subject) -> Result<(), SourceError> {
    let mut url = settings.endpoint.url.clone();
    // Credentials come from the endpoint; user info in the URL is used when it has none.
    let creds = match &settings.endpoint.credentials {
        Some(Credentials::UsernamePassword { username, password }) => {
            Some(retina::client::Credentials { username: username.as_str().to_string(), password: password.expose().to_string() })
        }
        _ if !url.username().is_empty() => Some(retina::client::Credentials {
            username: percent_decode(url.username()),
            password: percent_decode(url.password().unwrap_or("")),
        }),
        _ => None,
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let options = SessionOptions::default().creds(creds).user_agent(format!("vela/{}", env!("CARGO_PKG_VERSION")));
    let mut described = timed("DESCRIBE", Session::describe(url, options)).await?;
    let sdp = String::from_utf8_lossy(described.sdp()).into_owned();
    let video = described
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
        .ok_or_else(|| SourceError::Media("the camera offers no H.264 video stream (Vela records H.264)".into()))?;
    let transport = match settings.transport {
        Transport::Tcp | Transport::Http => retina::client::Transport::Tcp(TcpTransportOptions::default()),
        Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
    };
    timed("SETUP", described.setup(video, SetupOptions::default().transport(transport))).await?;
    let playing = timed("PLAY", described.play(PlayOptions::default())).await?;
    let mut demuxed = playing.demuxed()?;
    events.emit(subject, EventClass::Diagnostics, "MediaSessionEstablished", json!({ "sdp": format!("SDP:\n{sdp}") }));
    tracing::info!(instance = %subject.instance, "rtsp session established");

    let mut params: Option<Arc<VideoParams>> = None;
    // The first frame's RTP time is pinned to the wall clock; later frames follow
    // the camera's media clock, so the timeline has no arrival jitter.
    let mut origin: Option<(i64, i64)> = None;
    // The stall deadline counts from the last frame, not the last item: a camera whose
    // every packet is damaged (or that sends only RTCP) is as dead as a silent one.
    let mut last_frame = tokio::time::Instant::now();
    let mut damage = PacketErrors::default();
    loop {
        let item = match tokio::time::timeout_at(last_frame + STALL_TIMEOUT, demuxed.next()).await {
            Err(_) => return Err(SourceError::Network(format!("no media for {} s", STALL_TIMEOUT.as_secs()))),
            Ok(None) => return Ok(()),
            // A damaged packet costs its access unit, not the session: retina drops what it
            // could not depacketize and goes on with the next packet, and the decoder
            // resyncs at the next keyframe. Reconnecting instead (with backoff) turned every
            // corrupt or out-of-order packet into seconds without any video.
            Ok(Some(Err(e))) if is_packet_error(&e) && damage.tolerate(&e, subject) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(item))) => item,
        };
        let CodecItem::VideoFrame(frame) = item else { continue };
        last_frame = tokio::time::Instant::now();
        damage.since_frame = 0;
        if params.is_none() || frame.has_new_parameters() {
            if let Some(ParametersRef::Video(v)) = demuxed.streams()[frame.stream_id()].parameters() {
                let (width, height) = v.pixel_dimensions();
                params = Some(Arc::new(VideoParams {
                    width,
                    height,
                    avcc: Bytes::copy_from_slice(v.extra_data()),
                    codec: v.rfc6381_codec().to_string(),
                }));
            }
        }
        let Some(p) = params.clone() else { continue };
        let ts = frame.timestamp();
        let pts = ts.timestamp();
        let (pts0, wall0) = *origin.get_or_insert((pts, unix_nanos(SystemTime::now())));
        let wall = wall0 + (pts - pts0) * 1_000_000_000 / 90_000;
        let keyframe = frame.is_random_access_point();
        let sample = VideoSample { pts_90k: pts, wall, keyframe, data: Bytes::from(frame.into_data()), params: p };
        feeder.produced(Packet::Video(Arc::new(sample)));
        if !feeder.is_connected() {
            return Ok(());
        }
    }
}

/// Whether retina failed on one packet (bad RTP header, sequence going back on TCP, an
/// access unit it cannot depacketize) rather than on the connection. retina's errors are
/// opaque; its per-packet errors are the ones that name the packet (`pkt: …`), and retina
/// restores its state after them so that the stream can be polled on.
fn is_packet_error(e: &retina::Error) -> bool {
    e.status_code().is_none() && e.to_string().contains("\npkt: ")
}

/// Damaged packets of one session, logged with running totals at most every [`LOG_DAMAGE_EVERY`].
#[derive(Default)]
struct PacketErrors {
    count: u64,
    /// Since the last frame.
    since_frame: u32,
    last_log: Option<tokio::time::Instant>,
}

impl PacketErrors {
    /// Counts a packet error; false when there were too many in a row to go on.
    fn tolerate(&mut self, e: &retina::Error, subject: &Subject) -> bool {
        self.count += 1;
        self.since_frame += 1;
        if self.since_frame > MAX_ERRORS_WITHOUT_FRAME {
            return false;
        }
        if self.last_log.is_none_or(|t| t.elapsed() >= LOG_DAMAGE_EVERY) {
            self.last_log = Some(tokio::time::Instant::now());
            let first_line = e.to_string().lines().next().unwrap_or_default().to_owned();
            tracing::warn!(instance = %subject.instance, packets = self.count, last = %first_line, "damaged RTP packets skipped");
        }
        true
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
