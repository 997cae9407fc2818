//! One client connection: the RTSP state machine (DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, keep-alives) and the RTP/RTCP pump of its session.
//!
//! A connection owns at most one session, and the session lives as long as the connection
//! (plus the 60 s inactivity timeout). That is what ffmpeg, retina, VLC, GStreamer and
//! cameras' own clients do; RTSP's sessions that migrate between connections are not
//! supported. One task per connection multiplexes requests, live frames, RTCP and timers,
//! so responses and interleaved RTP can never interleave mid-message on the socket.

use super::auth::Authenticator;
use super::camera::{Cameras, LiveFrame, Timing};
use super::damage::{Damage, Damager};
use super::library::{Clip, Library};
use super::packetize::{ntp_timestamp, put_interleaved_header, sender_report, RtpHeader, SenderReport, PAYLOAD_TYPE, RTP_HEADER_LEN};
use super::rtsp::{self, parse_media_url, parse_transport, Incoming, Method, Request, Response, TransportRequest};
use super::sdp::{self, SdpInfo};
use bytes::{BufMut, BytesMut};
use rand::Rng;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{broadcast, watch};
use tokio::time::{timeout, Instant};

/// RTCP sender report period. RFC 3550's 5 s minimum interval is for RTCP as a whole
/// across all participants; one sender with one receiver reporting a little more often
/// keeps clients' wall-clock mapping fresh at negligible cost.
const SR_INTERVAL: Duration = Duration::from_secs(4);

/// A client that does not take a frame (or response) within this time is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Server-side UDP ports are picked from below Linux's ephemeral range so that they do not
/// collide with the kernel's own choices for client sockets on the same host.
const UDP_PORT_RANGE: std::ops::Range<u16> = 16384..32768;

/// What every connection shares.
pub(crate) struct Shared {
    pub library: Library,
    pub cameras: Arc<Cameras>,
    pub auth: Option<Authenticator>,
    pub session_timeout: Duration,
}

enum Transport {
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    Udp(UdpTransport),
}

struct UdpTransport {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    client_rtp: SocketAddr,
    client_rtcp: SocketAddr,
}

struct Playing {
    timing: Arc<Mutex<Timing>>,
    /// A client that joins mid-GOP (or lagged) gets nothing until the next keyframe: frames
    /// it could not decode would only produce decoder errors on its side.
    waiting_for_keyframe: bool,
    /// RTP time announced in RTP-Info, repeated if PLAY is sent again while playing.
    rtptime: u32,
}

struct Session {
    id: String,
    clip: Arc<Clip>,
    /// The URL the client used in SETUP; RTP-Info must name the stream the same way
    /// (ffmpeg matches it verbatim).
    control_url: String,
    transport: Transport,
    ssrc: u32,
    /// Sequence number of the next packet.
    seq: u16,
    /// Random RTP time of the first frame of the first PLAY.
    initial_rtptime: u32,
    /// Added to the camera's pts to get this client's RTP timestamp.
    ts_offset: u32,
    last_rtp_ts: Option<u32>,
    playing: Option<Playing>,
    /// What this session's packets suffer on the way out, if the client asked for it.
    damage: Option<Damager>,
    packet_count: u32,
    octet_count: u32,
    next_sr: Option<Instant>,
}

impl Session {
    fn header(&self, timeout: Duration) -> String {
        format!("{};timeout={}", self.id, timeout.as_secs())
    }

    fn cname(&self) -> String {
        format!("rtspsim-{:08x}@vela", self.ssrc)
    }
}

struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    local: SocketAddr,
    writer: OwnedWriteHalf,
    session: Option<Session>,
    /// The damage asked for in the last DESCRIBE (file, spec). Clients SETUP the control URL
    /// built from Content-Base, which has no query, so the DESCRIBE's query carries over.
    described_damage: Option<(String, Damage)>,
    rx: Option<broadcast::Receiver<Arc<LiveFrame>>>,
    /// The session's server RTCP socket, to notice receiver reports (they keep it alive).
    udp_rtcp: Option<Arc<UdpSocket>>,
    last_activity: Instant,
    out: BytesMut,
}

/// Serves one accepted connection until the client leaves, times out, or the server shuts down.
pub(crate) async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else { return };
    // Interleaved RTP goes out as whole frames; Nagle would only delay the last packet.
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut conn = Connection {
        shared,
        peer: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
        local: SocketAddr::new(local.ip().to_canonical(), local.port()),
        writer,
        session: None,
        described_damage: None,
        rx: None,
        udp_rtcp: None,
        last_activity: Instant::now(),
        out: BytesMut::with_capacity(64 * 1024),
    };
    tracing::debug!(peer = %conn.peer, "rtsp connection opened");
    let mut inbuf = BytesMut::with_capacity(4096);
    let mut udp_buf = vec![0u8; 2048];
    let reason = loop {
        let deadline = conn.next_deadline();
        tokio::select! {
            r = reader.read_buf(&mut inbuf) => match r {
                Ok(0) => break "client closed the connection",
                Ok(_) => {
                    conn.last_activity = Instant::now();
                    match conn.process_input(&mut inbuf).await {
                        Ok(true) => {}
                        Ok(false) => break "protocol error",
                        Err(_) => break "write failed",
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break "client reset the connection",
                Err(_) => break "read failed",
            },
            f = recv_frame(&mut conn.rx) => match f {
                Ok(frame) => {
                    if conn.on_frame(&frame).await.is_err() {
                        break "write failed";
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(peer = %conn.peer, skipped = n, "client fell behind; resuming at the next keyframe");
                    if let Some(p) = conn.session.as_mut().and_then(|s| s.playing.as_mut()) {
                        p.waiting_for_keyframe = true;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break "camera stopped",
            },
            r = recv_udp(conn.udp_rtcp.as_deref(), &mut udp_buf) => match r {
                Ok((_, from)) => {
                    if from.ip().to_canonical() == conn.peer.ip() {
                        conn.last_activity = Instant::now();
                    }
                }
                Err(e) => {
                    // Stop listening rather than spin on a socket that keeps failing; the
                    // session then lives on RTSP keep-alives alone.
                    tracing::debug!(peer = %conn.peer, error = %e, "udp rtcp receive failed");
                    conn.udp_rtcp = None;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if now >= conn.last_activity + conn.shared.session_timeout {
                    break "session timed out";
                }
                if conn.send_sender_report_if_due(now).await.is_err() {
                    break "write failed";
                }
            },
            _ = shutdown.changed() => break "server shutting down",
        }
    };
    match &conn.session {
        Some(s) => {
            tracing::info!(peer = %conn.peer, session = %s.id, file = %s.clip.name, packets = s.packet_count, reason, "rtsp session ended")
        }
        None => tracing::debug!(peer = %conn.peer, reason, "rtsp connection closed"),
    }
}

async fn recv_frame(rx: &mut Option<broadcast::Receiver<Arc<LiveFrame>>>) -> Result<Arc<LiveFrame>, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_udp(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Binds an even/odd UDP port pair (RTP on the even port, RFC 3550 section 11) on `ip`.
fn bind_udp_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut rng = rand::thread_rng();
    for _ in 0..64 {
        let port = rng.gen_range(UDP_PORT_RANGE) & !1;
        let Ok(rtp) = std::net::UdpSocket::bind((ip, port)) else { continue };
        let Ok(rtcp) = std::net::UdpSocket::bind((ip, port + 1)) else { continue };
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        return Ok((UdpSocket::from_std(rtp)?, UdpSocket::from_std(rtcp)?));
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no free even/odd UDP port pair"))
}

fn error(status: u16, message: impl Into<String>) -> Response {
    let mut m: String = message.into();
    m.push_str("\r\n");
    Response::new(status).body("text/plain", m.into_bytes())
}

impl Connection {
    fn next_deadline(&self) -> Instant {
        let idle = self.last_activity + self.shared.session_timeout;
        match self.session.as_ref().and_then(|s| s.next_sr) {
            Some(sr) => sr.min(idle),
            None => idle,
        }
    }

    /// Handles every complete message in `inbuf`. `Ok(false)` closes the connection.
    async fn process_input(&mut self, inbuf: &mut BytesMut) -> io::Result<bool> {
        loop {
            match rtsp::parse_message(inbuf) {
                Ok(None) => return Ok(true),
                Ok(Some((msg, used))) => {
                    let _ = inbuf.split_to(used);
                    if let Incoming::Request(req) = msg {
                        let response = self.handle(&req).await;
                        tracing::debug!(peer = %self.peer, method = req.method.as_str(), cseq = req.cseq().unwrap_or(""), status = response.status, "rtsp request");
                        self.out.clear();
                        response.write(req.cseq(), &mut self.out);
                        self.write_out().await?;
                    }
                    // Interleaved data from the client is RTCP receiver reports: their arrival
                    // already counted as activity; the content is not needed.
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "unparseable rtsp input");
                    self.out.clear();
                    Response::new(400).write(None, &mut self.out);
                    self.write_out().await?;
                    return Ok(false);
                }
            }
        }
    }

    async fn write_out(&mut self) -> io::Result<()> {
        match timeout(WRITE_TIMEOUT, self.writer.write_all(&self.out)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client is not reading")),
        }
    }

    async fn handle(&mut self, req: &Request) -> Response {
        if req.rtsp_2 {
            return error(505, "this server speaks RTSP/1.0");
        }
        if req.cseq().is_none() {
            return error(400, "missing CSeq header");
        }
        // OPTIONS stays open: clients probe with it before they know the realm, and it
        // reveals nothing about the media.
        if req.method != Method::Options {
            if let Some(auth) = &self.shared.auth {
                if let Err(e) = auth.check(req.method.as_str(), req.header("Authorization")) {
                    if e != super::auth::AuthError::Missing {
                        tracing::warn!(peer = %self.peer, method = req.method.as_str(), reason = e.kind(), "rtsp authentication failed");
                    }
                    let mut r = Response::new(401);
                    for c in auth.challenges() {
                        r = r.header("WWW-Authenticate", c);
                    }
                    return r;
                }
            }
        }
        if let Some(req_opts) = req.header("Require") {
            return Response::new(551).header("Unsupported", req_opts.to_owned());
        }
        match req.method {
            Method::Options => Response::ok().header("Public", rtsp::PUBLIC_METHODS),
            Method::Describe => self.describe(req).await,
            Method::Setup => self.setup(req).await,
            Method::Play => self.play(req),
            Method::Pause => self.pause(req),
            Method::Teardown => self.teardown(req),
            Method::GetParameter | Method::SetParameter => self.keep_alive(req),
            Method::Other(ref m) if matches!(m.as_str(), "ANNOUNCE" | "RECORD" | "REDIRECT" | "PLAY_NOTIFY") => {
                Response::new(405).header("Allow", rtsp::PUBLIC_METHODS)
            }
            Method::Other(_) => error(501, "method not implemented"),
        }
    }

    async fn describe(&mut self, req: &Request) -> Response {
        let url = match parse_media_url(req.uri.as_ref()) {
            Ok(u) if u.track.is_none() => u,
            Ok(_) => return error(404, "DESCRIBE the presentation URL, not a track"),
            Err(e) => return error(404, e.to_string()),
        };
        let damage = match Damage::from_url(req.uri.as_ref().expect("parse_media_url checked the URL")) {
            Ok(d) => d,
            Err(e) => return error(400, e.to_string()),
        };
        self.described_damage = damage.map(|d| (url.file.clone(), d));
        let clip = match self.shared.library.load(&url.file).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(peer = %self.peer, file = %url.file, status = e.status(), error = %e, "cannot describe");
                return error(e.status(), e.to_string());
            }
        };
        let info = SdpInfo {
            name: &clip.name,
            width: clip.width,
            height: clip.height,
            fps: clip.clock.fps(),
            sps: &clip.sps,
            pps: &clip.pps,
            kbps: clip.kbps,
        };
        let session_id = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let body = sdp::describe(&info, self.local.ip(), session_id);
        let base = rtsp::content_base(req.uri.as_ref().expect("parse_media_url checked the URL"));
        Response::ok().header("Content-Base", base).body("application/sdp", body.into_bytes())
    }

    async fn setup(&mut self, req: &Request) -> Response {
        let url = match parse_media_url(req.uri.as_ref()) {
            Ok(u) => u,
            Err(e) => return error(404, e.to_string()),
        };
        // The aggregate URL is accepted too: RFC 2326 section 14.3 asks servers to forgive
        // clients that SETUP a single-stream presentation by its own URL.
        if !matches!(url.track, None | Some(0)) {
            return error(404, format!("{} has one track: trackID=0", url.file));
        }
        let damage = match Damage::from_url(req.uri.as_ref().expect("parse_media_url checked the URL")) {
            Ok(Some(d)) => Some(d),
            Ok(None) => self.described_damage.as_ref().filter(|(file, _)| *file == url.file).map(|(_, d)| *d),
            Err(e) => return error(400, e.to_string()),
        };
        if let Some(s) = &self.session {
            return match req.session_id() {
                Some(id) if id == s.id => error(455, "the stream is already set up in this session"),
                Some(_) => error(454, "unknown session"),
                None => error(455, "one session per connection"),
            };
        }
        if req.session_id().is_some() {
            return error(454, "unknown session");
        }
        let wanted = match parse_transport(req.header("Transport")) {
            Ok(t) => t,
            Err(e) => return error(461, e.to_string()),
        };
        let clip = match self.shared.library.load(&url.file).await {
            Ok(c) => c,
            Err(e) => return error(e.status(), e.to_string()),
        };
        let mut rng = rand::thread_rng();
        let ssrc: u32 = rng.gen();
        let (transport, transport_header) = match wanted {
            TransportRequest::Tcp { rtp_channel, rtcp_channel } => (
                Transport::Tcp { rtp_channel, rtcp_channel },
                format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X};mode=play"),
            ),
            TransportRequest::Udp { client_rtp, client_rtcp } => {
                let (rtp, rtcp) = match bind_udp_pair(self.local.ip()) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, error = %e, "cannot bind UDP ports");
                        return error(503, "no UDP ports available");
                    }
                };
                let server_rtp = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
                // RTP goes to the address the RTSP connection comes from, never to a
                // `destination=` of the client's choosing: no reflecting streams at third parties.
                let udp = UdpTransport {
                    rtp: Arc::new(rtp),
                    rtcp: Arc::new(rtcp),
                    client_rtp: SocketAddr::new(self.peer.ip(), client_rtp),
                    client_rtcp: SocketAddr::new(self.peer.ip(), client_rtcp),
                };
                self.udp_rtcp = Some(udp.rtcp.clone());
                let h = format!(
                    "RTP/AVP;unicast;client_port={client_rtp}-{client_rtcp};server_port={server_rtp}-{};ssrc={ssrc:08X};mode=play",
                    server_rtp + 1
                );
                (Transport::Udp(udp), h)
            }
        };
        let control_url = req.uri.as_ref().map(|u| rtsp::public_url(u).to_string()).unwrap_or_default();
        let session = Session {
            id: format!("{:016X}", rng.gen::<u64>()),
            clip,
            control_url,
            transport,
            ssrc,
            seq: rng.gen(),
            initial_rtptime: rng.gen(),
            ts_offset: 0,
            last_rtp_ts: None,
            playing: None,
            damage: damage.map(Damager::new),
            packet_count: 0,
            octet_count: 0,
            next_sr: None,
        };
        tracing::info!(peer = %self.peer, session = %session.id, file = %session.clip.name, transport = %transport_header, "rtsp session set up");
        if let Some(d) = &damage {
            tracing::info!(peer = %self.peer, session = %session.id, damage = %d, "the session's stream is damaged on request");
        }
        let session_header = session.header(self.shared.session_timeout);
        self.session = Some(session);
        Response::ok().header("Transport", transport_header).header("Session", session_header)
    }

    /// The session named by the request, or the error response (RFC 2326 section 12.37).
    fn own_session(&mut self, req: &Request) -> Result<&mut Session, Response> {
        match (&mut self.session, req.session_id()) {
            (Some(s), Some(id)) if id == s.id => Ok(s),
            (None, _) => Err(error(455, "SETUP first")),
            _ => Err(error(454, "unknown session")),
        }
    }

    fn play(&mut self, req: &Request) -> Response {
        let timeout = self.shared.session_timeout;
        let cameras = self.shared.cameras.clone();
        let peer = self.peer;
        let s = match self.own_session(req) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if let Ok(url) = parse_media_url(req.uri.as_ref()) {
            if url.file != s.clip.name {
                return error(404, "the session plays another file");
            }
        }
        let mut new_rx = None;
        let rtptime = match &s.playing {
            Some(p) => p.rtptime,
            None => {
                let sub = cameras.subscribe(&s.clip);
                // First PLAY: the random initial timestamp. After a PAUSE: continue one frame
                // after the last sent timestamp, so the client's timeline never goes back even
                // if the camera restarted from the top of the file meanwhile.
                let rtptime = match s.last_rtp_ts {
                    Some(last) => last.wrapping_add(s.clip.clock.frame_duration() as u32),
                    None => s.initial_rtptime,
                };
                s.ts_offset = rtptime.wrapping_sub(sub.start_pts as u32);
                s.playing = Some(Playing { timing: sub.timing, waiting_for_keyframe: true, rtptime });
                new_rx = Some(sub.rx);
                tracing::info!(peer = %peer, session = %s.id, file = %s.clip.name, seq = s.seq, rtptime, "rtsp play");
                rtptime
            }
        };
        let response = Response::ok()
            .header("Range", "npt=0.000-")
            .header("RTP-Info", format!("url={};seq={};rtptime={rtptime}", s.control_url, s.seq))
            .header("Session", s.header(timeout));
        if new_rx.is_some() {
            self.rx = new_rx;
        }
        response
    }

    fn pause(&mut self, req: &Request) -> Response {
        let timeout = self.shared.session_timeout;
        let s = match self.own_session(req) {
            Ok(s) => s,
            Err(r) => return r,
        };
        s.playing = None;
        s.next_sr = None;
        if let Some(d) = s.damage.as_mut() {
            d.reset();
        }
        let header = s.header(timeout);
        self.rx = None;
        Response::ok().header("Session", header)
    }

    fn teardown(&mut self, req: &Request) -> Response {
        if let Err(r) = self.own_session(req) {
            return r;
        }
        if let Some(s) = self.session.take() {
            tracing::info!(peer = %self.peer, session = %s.id, file = %s.clip.name, packets = s.packet_count, "rtsp teardown");
            if let Some(d) = &s.damage {
                tracing::info!(peer = %self.peer, session = %s.id, stats = ?d.stats(), "damage done");
            }
        }
        self.rx = None;
        self.udp_rtcp = None;
        Response::ok()
    }

    fn keep_alive(&mut self, req: &Request) -> Response {
        if req.method == Method::SetParameter && !req.body.is_empty() {
            return error(451, "no parameters can be set");
        }
        let timeout = self.shared.session_timeout;
        match (&self.session, req.session_id()) {
            (Some(s), Some(id)) if id == s.id => Response::ok().header("Session", s.header(timeout)),
            (_, Some(_)) => error(454, "unknown session"),
            (_, None) => Response::ok(),
        }
    }

    /// Sends one live frame to the client as RTP packets (the last one with the marker bit).
    async fn on_frame(&mut self, frame: &LiveFrame) -> io::Result<()> {
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        let Some(playing) = s.playing.as_mut() else { return Ok(()) };
        if playing.waiting_for_keyframe {
            if !frame.keyframe {
                return Ok(());
            }
            playing.waiting_for_keyframe = false;
        }
        let timestamp = s.ts_offset.wrapping_add(frame.pts as u32);
        let mut count = frame.payloads.len();
        let mut payload_bytes = 0usize;
        if let Some(d) = s.damage.as_mut() {
            let first = RtpHeader { marker: false, payload_type: PAYLOAD_TYPE, sequence: s.seq, timestamp, ssrc: s.ssrc };
            let (packets, used) = d.access_unit(&frame.payloads, first);
            s.seq = s.seq.wrapping_add(used);
            // The sender report counts what the sender numbered: losses happen "on the network".
            count = usize::from(used);
            payload_bytes = packets.iter().map(|p| p.len() - RTP_HEADER_LEN).sum();
            match &s.transport {
                Transport::Tcp { rtp_channel, .. } => {
                    self.out.clear();
                    for p in &packets {
                        put_interleaved_header(&mut self.out, *rtp_channel, p.len());
                        self.out.put_slice(p);
                    }
                    match timeout(WRITE_TIMEOUT, self.writer.write_all(&self.out)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "client is not reading")),
                    }
                }
                Transport::Udp(u) => {
                    for p in &packets {
                        if let Err(e) = u.rtp.send_to(p, u.client_rtp).await {
                            tracing::debug!(peer = %self.peer, error = %e, "udp send failed");
                        }
                    }
                }
            }
        } else {
            match &s.transport {
                Transport::Tcp { rtp_channel, .. } => {
                    self.out.clear();
                    for (i, p) in frame.payloads.iter().enumerate() {
                        put_interleaved_header(&mut self.out, *rtp_channel, RTP_HEADER_LEN + p.len());
                        RtpHeader { marker: i + 1 == count, payload_type: PAYLOAD_TYPE, sequence: s.seq, timestamp, ssrc: s.ssrc }
                            .write(&mut self.out);
                        self.out.put_slice(p);
                        s.seq = s.seq.wrapping_add(1);
                        payload_bytes += p.len();
                    }
                    // One write per frame: a keyframe is tens of packets.
                    match timeout(WRITE_TIMEOUT, self.writer.write_all(&self.out)).await {
                        Ok(r) => r?,
                        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "client is not reading")),
                    }
                }
                Transport::Udp(u) => {
                    for (i, p) in frame.payloads.iter().enumerate() {
                        self.out.clear();
                        RtpHeader { marker: i + 1 == count, payload_type: PAYLOAD_TYPE, sequence: s.seq, timestamp, ssrc: s.ssrc }
                            .write(&mut self.out);
                        self.out.put_slice(p);
                        s.seq = s.seq.wrapping_add(1);
                        payload_bytes += p.len();
                        // UDP is fire-and-forget: a vanished client shows up as an RTCP/RTSP
                        // timeout, not as a send error (ICMP errors are not reported on unconnected sockets).
                        if let Err(e) = u.rtp.send_to(&self.out, u.client_rtp).await {
                            tracing::debug!(peer = %self.peer, error = %e, "udp send failed");
                        }
                    }
                }
            }
        }
        s.packet_count = s.packet_count.wrapping_add(count as u32);
        s.octet_count = s.octet_count.wrapping_add(payload_bytes as u32);
        s.last_rtp_ts = Some(timestamp);
        if s.next_sr.is_none() {
            // First report right after the first packets: clients get the wall-clock mapping at once.
            s.next_sr = Some(Instant::now());
        }
        Ok(())
    }

    async fn send_sender_report_if_due(&mut self, now: Instant) -> io::Result<()> {
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        let (Some(due), Some(playing)) = (s.next_sr, s.playing.as_ref()) else { return Ok(()) };
        if now < due {
            return Ok(());
        }
        s.next_sr = Some(now + SR_INTERVAL);
        let pts = playing.timing.lock().unwrap_or_else(|p| p.into_inner()).pts_at(now);
        let sr = SenderReport {
            ssrc: s.ssrc,
            ntp: ntp_timestamp(SystemTime::now()),
            rtp_timestamp: s.ts_offset.wrapping_add(pts as u32),
            packet_count: s.packet_count,
            octet_count: s.octet_count,
        };
        let packet = sender_report(&sr, &s.cname());
        let udp = match &s.transport {
            Transport::Tcp { rtcp_channel, .. } => {
                self.out.clear();
                put_interleaved_header(&mut self.out, *rtcp_channel, packet.len());
                self.out.put_slice(&packet);
                None
            }
            Transport::Udp(u) => Some((u.rtcp.clone(), u.client_rtcp)),
        };
        match udp {
            None => self.write_out().await,
            Some((sock, to)) => {
                if let Err(e) = sock.send_to(&packet, to).await {
                    tracing::debug!(peer = %self.peer, error = %e, "udp rtcp send failed");
                }
                Ok(())
            }
        }
    }
}
