//! RTSP/1.0 (RFC 2326) wire format: framing incoming requests and interleaved data, writing responses, and the Transport and URL grammar.
//!
//! Incoming messages are framed by `rtsp-types` (requests with bodies and `$`-framed
//! interleaved data share one byte stream). Responses are written here rather than with
//! `rtsp-types` because its header map folds repeated headers into one comma-joined line,
//! and a 401 must send Basic and Digest challenges on separate `WWW-Authenticate` lines
//! (clients such as ffmpeg read only one challenge per line).

use bytes::{BufMut, BytesMut};
use std::fmt::Write as _;
use thiserror::Error;
use url::Url;

/// Requests larger than this are refused: no legitimate RTSP request comes close.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// An RTSP method the server dispatches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Options,
    Describe,
    Setup,
    Play,
    Pause,
    Teardown,
    GetParameter,
    SetParameter,
    /// Methods we recognise but do not serve (ANNOUNCE, RECORD, REDIRECT…).
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Other(s) => s,
        }
    }
}

/// The methods listed in `Public` (OPTIONS) and `Allow` (405).
pub const PUBLIC_METHODS: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// An RTSP request, detached from the parser's types.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// `None` for `*` (OPTIONS).
    pub uri: Option<Url>,
    pub rtsp_2: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn cseq(&self) -> Option<&str> {
        self.header("CSeq").map(str::trim)
    }

    /// The session id of the `Session` header, without `;timeout=`.
    pub fn session_id(&self) -> Option<&str> {
        self.header("Session").map(|v| v.split(';').next().unwrap_or("").trim())
    }
}

/// One message read from a client connection.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    /// Interleaved data (`$`, channel, length): RTCP receiver reports on TCP sessions.
    Data {
        channel: u8,
        len: usize,
    },
    /// A client-sent response (answer to nothing we asked): ignored.
    Response,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("malformed RTSP message")]
    Malformed,
    #[error("RTSP message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
}

/// Parses one message from the front of `buf`. `Ok(None)` means more bytes are needed.
pub fn parse_message(buf: &[u8]) -> Result<Option<(Incoming, usize)>, FramingError> {
    use rtsp_types::{Message, ParseError};
    if buf.is_empty() {
        return Ok(None);
    }
    match Message::<Vec<u8>>::parse(buf) {
        Ok((Message::Request(r), used)) => {
            let method = match r.method() {
                rtsp_types::Method::Options => Method::Options,
                rtsp_types::Method::Describe => Method::Describe,
                rtsp_types::Method::Setup => Method::Setup,
                rtsp_types::Method::Play => Method::Play,
                rtsp_types::Method::Pause => Method::Pause,
                rtsp_types::Method::Teardown => Method::Teardown,
                rtsp_types::Method::GetParameter => Method::GetParameter,
                rtsp_types::Method::SetParameter => Method::SetParameter,
                other => Method::Other(<&str>::from(other).to_owned()),
            };
            let headers = r.headers().map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned())).collect();
            let req = Request {
                method,
                uri: r.request_uri().cloned(),
                rtsp_2: r.version() == rtsp_types::Version::V2_0,
                headers,
                body: r.body().clone(),
            };
            Ok(Some((Incoming::Request(req), used)))
        }
        Ok((Message::Data(d), used)) => Ok(Some((Incoming::Data { channel: d.channel_id(), len: d.len() }, used))),
        Ok((Message::Response(_), used)) => Ok(Some((Incoming::Response, used))),
        Err(ParseError::Incomplete(_)) if buf.len() > MAX_MESSAGE + 4 => Err(FramingError::TooLarge),
        Err(ParseError::Incomplete(_)) => Ok(None),
        Err(ParseError::Error) => Err(FramingError::Malformed),
    }
}

/// An RTSP response under construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn ok() -> Self {
        Response::new(200)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.headers.push(("Content-Type", content_type.to_owned()));
        self.body = body;
        self
    }

    /// Serializes the response, echoing the request's `CSeq` (RFC 2326 section 12.17).
    pub fn write(&self, cseq: Option<&str>, out: &mut BytesMut) {
        let mut head = String::with_capacity(256);
        let _ = write!(head, "RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(c) = cseq {
            let _ = write!(head, "CSeq: {c}\r\n");
        }
        let _ = write!(head, "Server: Vela rtspsim/{}\r\n", env!("CARGO_PKG_VERSION"));
        for (k, v) in &self.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        head.push_str("\r\n");
        out.put_slice(head.as_bytes());
        out.put_slice(&self.body);
    }
}

/// Reason phrases of RFC 2326 section 7.1.1 for the codes this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

/// The transport a client asked for in SETUP, after picking the first alternative we support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportRequest {
    /// `RTP/AVP/TCP;unicast;interleaved=a-b`; channels default to 0-1 when absent.
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    /// `RTP/AVP[/UDP];unicast;client_port=a-b`.
    Udp { client_rtp: u16, client_rtcp: u16 },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TransportError {
    #[error("no Transport header")]
    Missing,
    #[error("no supported transport in {0:?} (supported: RTP/AVP/TCP with interleaved channels, RTP/AVP unicast UDP with client_port)")]
    Unsupported(String),
}

/// Picks the first transport alternative (comma-separated, RFC 2326 section 12.39) we can serve.
pub fn parse_transport(value: Option<&str>) -> Result<TransportRequest, TransportError> {
    let value = value.ok_or(TransportError::Missing)?;
    value.split(',').find_map(parse_transport_spec).ok_or_else(|| TransportError::Unsupported(value.to_owned()))
}

fn parse_transport_spec(spec: &str) -> Option<TransportRequest> {
    let mut parts = spec.split(';').map(str::trim);
    let proto = parts.next()?.to_ascii_uppercase();
    let tcp = match proto.as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return None,
    };
    let (mut interleaved, mut client_port) = (None, None);
    for p in parts {
        let (k, v) = p.split_once('=').map(|(k, v)| (k.trim(), v.trim())).unwrap_or((p, ""));
        match k.to_ascii_lowercase().as_str() {
            // Multicast is not offered: the simulator serves unicast sessions only.
            "multicast" => return None,
            "interleaved" => interleaved = Some(parse_pair::<u8>(v)?),
            "client_port" => client_port = Some(parse_pair::<u16>(v)?),
            "mode" if !v.trim_matches('"').eq_ignore_ascii_case("play") => return None,
            _ => {}
        }
    }
    if tcp {
        let (rtp_channel, rtcp_channel) = interleaved.unwrap_or((0, 1));
        Some(TransportRequest::Tcp { rtp_channel, rtcp_channel })
    } else {
        let (client_rtp, client_rtcp) = client_port?;
        if client_rtp == 0 {
            return None;
        }
        Some(TransportRequest::Udp { client_rtp, client_rtcp })
    }
}

/// `a-b` or `a` (then `b = a + 1`).
fn parse_pair<T: std::str::FromStr + Copy + TryFrom<u32> + Into<u32>>(v: &str) -> Option<(T, T)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = v.parse().ok()?;
            let b = T::try_from(a.into() + 1).ok()?;
            Some((a, b))
        }
    }
}

/// What a request URL points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaUrl {
    /// File name in the media folder, percent-decoded.
    pub file: String,
    /// `Some(n)` for a `…/trackID=n` control URL, `None` for the presentation (aggregate) URL.
    pub track: Option<u32>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("no request URL")]
    Missing,
    #[error("path {0:?} is not /media/FILENAME")]
    NotMedia(String),
    #[error("file name {0:?} is not allowed")]
    BadName(String),
}

/// Maps `rtsp://host/media/FILE[/][trackID=N]` to the file and track. File names are single
/// path segments: anything that could climb out of the media folder is refused.
pub fn parse_media_url(url: Option<&Url>) -> Result<MediaUrl, UrlError> {
    let url = url.ok_or(UrlError::Missing)?;
    let path = url.path();
    let not_media = || UrlError::NotMedia(path.to_owned());
    let segs: Vec<&str> = path.split('/').collect();
    // "/media/x" splits into ["", "media", "x", ...].
    if segs.len() < 3 || !segs[0].is_empty() || segs[1] != "media" {
        return Err(not_media());
    }
    let file = percent_decode(segs[2]).ok_or_else(|| UrlError::BadName(segs[2].to_owned()))?;
    if file.is_empty() || file.starts_with('.') || file.contains(['/', '\\', '\0']) || file.chars().any(char::is_control) {
        return Err(UrlError::BadName(file));
    }
    let track = match &segs[3..] {
        [] | [""] => None,
        [t] | [t, ""] => {
            let n = t.strip_prefix("trackID=").or_else(|| t.strip_prefix("trackid=")).ok_or_else(not_media)?;
            Some(n.parse().map_err(|_| not_media())?)
        }
        _ => return Err(not_media()),
    };
    Ok(MediaUrl { file, track })
}

/// Decodes `%XX` escapes; `None` for a broken escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `url` without user info, query or fragment: what the server may echo back (some clients
/// put credentials in the request URL; they must not come back in headers).
pub fn public_url(url: &Url) -> Url {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// The presentation URL with a trailing slash, for `Content-Base`: relative control URLs
/// (`trackID=0`) then resolve under the file name instead of replacing it.
pub fn content_base(url: &Url) -> String {
    let s = public_url(url).to_string();
    if s.ends_with('/') {
        s
    } else {
        s + "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Request {
        match parse_message(text.as_bytes()).unwrap().unwrap().0 {
            Incoming::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_requests_and_headers() {
        let r = req("SETUP rtsp://127.0.0.1:8554/media/vtest.mkv/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nsession: abc;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
        assert_eq!(r.method, Method::Setup);
        assert_eq!(r.cseq(), Some("3"));
        assert_eq!(r.session_id(), Some("abc"));
        assert_eq!(r.header("TRANSPORT"), Some("RTP/AVP/TCP;unicast;interleaved=0-1"));
        assert_eq!(r.uri.unwrap().path(), "/media/vtest.mkv/trackID=0");
        assert!(!r.rtsp_2);
        let o = req("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(o.method, Method::Options);
        assert!(o.uri.is_none());
    }

    #[test]
    fn framing_handles_partial_pipelined_and_interleaved() {
        let one = b"GET_PARAMETER rtsp://h/media/a.mkv RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nabcd";
        for cut in 0..one.len() {
            assert!(parse_message(&one[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let mut buf = vec![b'$', 1, 0, 3, 9, 9, 9];
        buf.extend_from_slice(one);
        let (m, used) = parse_message(&buf).unwrap().unwrap();
        assert!(matches!(m, Incoming::Data { channel: 1, len: 3 }));
        assert_eq!(used, 7);
        let (m, used2) = parse_message(&buf[used..]).unwrap().unwrap();
        match m {
            Incoming::Request(r) => {
                assert_eq!(r.method, Method::GetParameter);
                assert_eq!(r.body, b"abcd");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(used + used2, buf.len());
        assert_eq!(parse_message(b"\x00\x01garbage\r\n\r\n").unwrap_err(), FramingError::Malformed);
    }

    #[test]
    fn oversized_requests_are_refused() {
        let mut big = b"DESCRIBE rtsp://h/media/a RTSP/1.0\r\nX: ".to_vec();
        big.resize(MAX_MESSAGE + 100, b'a');
        assert_eq!(parse_message(&big).unwrap_err(), FramingError::TooLarge);
    }

    #[test]
    fn response_serialization_keeps_repeated_headers() {
        let r = Response::new(401).header("WWW-Authenticate", "Digest realm=\"r\"").header("WWW-Authenticate", "Basic realm=\"r\"");
        let mut b = BytesMut::new();
        r.write(Some("4"), &mut b);
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.starts_with("RTSP/1.0 401 Unauthorized\r\nCSeq: 4\r\nServer: Vela rtspsim/"), "{s}");
        assert!(s.contains("\r\nWWW-Authenticate: Digest realm=\"r\"\r\nWWW-Authenticate: Basic realm=\"r\"\r\n\r\n"), "{s}");
        // And a client-side parser reads it back.
        let (m, used): (rtsp_types::Message<Vec<u8>>, _) = rtsp_types::Message::parse(&b[..]).unwrap();
        assert_eq!(used, b.len());
        assert!(matches!(m, rtsp_types::Message::Response(_)));
    }

    #[test]
    fn response_with_body_has_length() {
        let mut b = BytesMut::new();
        Response::ok().body("application/sdp", b"v=0\r\n".to_vec()).write(Some("2"), &mut b);
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"), "{s}");
    }

    #[test]
    fn transport_alternatives() {
        use TransportRequest::*;
        let t = |s: &str| parse_transport(Some(s));
        assert_eq!(t("RTP/AVP/TCP;unicast;interleaved=0-1"), Ok(Tcp { rtp_channel: 0, rtcp_channel: 1 }));
        assert_eq!(t("RTP/AVP/TCP;unicast;interleaved=4"), Ok(Tcp { rtp_channel: 4, rtcp_channel: 5 }));
        assert_eq!(t("RTP/AVP/TCP;unicast"), Ok(Tcp { rtp_channel: 0, rtcp_channel: 1 }));
        assert_eq!(t("RTP/AVP;unicast;client_port=5000-5001"), Ok(Udp { client_rtp: 5000, client_rtcp: 5001 }));
        assert_eq!(t("RTP/AVP/UDP;unicast;client_port=6970-6971;mode=play"), Ok(Udp { client_rtp: 6970, client_rtcp: 6971 }));
        assert_eq!(t("rtp/avp;unicast;client_port=7000"), Ok(Udp { client_rtp: 7000, client_rtcp: 7001 }));
        // First supported alternative wins.
        assert_eq!(t("RTP/AVP;multicast;port=1-2, RTP/AVP/TCP;unicast;interleaved=2-3"), Ok(Tcp { rtp_channel: 2, rtcp_channel: 3 }));
        assert!(matches!(t("RTP/AVP;unicast"), Err(TransportError::Unsupported(_))));
        assert!(matches!(t("RTP/AVP/TCP;unicast;mode=record"), Err(TransportError::Unsupported(_))));
        assert!(matches!(t("RAW/RAW/UDP;unicast;client_port=1-2"), Err(TransportError::Unsupported(_))));
        assert!(matches!(t("RTP/AVP/TCP;interleaved=255"), Err(TransportError::Unsupported(_))));
        assert_eq!(parse_transport(None), Err(TransportError::Missing));
    }

    #[test]
    fn media_urls() {
        let u = |s: &str| parse_media_url(Some(&Url::parse(s).unwrap()));
        let m = |f: &str, t: Option<u32>| Ok(MediaUrl { file: f.into(), track: t });
        assert_eq!(u("rtsp://127.0.0.1:554/media/vtest.mkv"), m("vtest.mkv", None));
        assert_eq!(u("rtsp://127.0.0.1:554/media/vtest.mkv/"), m("vtest.mkv", None));
        assert_eq!(u("rtsp://h/media/vtest.mkv/trackID=0"), m("vtest.mkv", Some(0)));
        assert_eq!(u("rtsp://h/media/my%20cam.mkv/trackID=0/"), m("my cam.mkv", Some(0)));
        assert!(matches!(u("rtsp://h/media/vtest.mkv/other"), Err(UrlError::NotMedia(_))));
        assert!(matches!(u("rtsp://h/other/vtest.mkv"), Err(UrlError::NotMedia(_))));
        assert!(matches!(u("rtsp://h/media/"), Err(UrlError::BadName(_))));
        assert!(matches!(u("rtsp://h/media/..%2Fsecret"), Err(UrlError::BadName(_))));
        // The url crate resolves an encoded ".." itself; either way it is refused.
        assert!(u("rtsp://h/media/%2e%2e").is_err());
        assert!(u("rtsp://h/media/%2e%2e/x").is_err());
        assert!(matches!(u("rtsp://h/media/a%5Cb"), Err(UrlError::BadName(_))));
        assert!(matches!(u("rtsp://h/media/a%ZZ"), Err(UrlError::BadName(_))));
        assert_eq!(parse_media_url(None), Err(UrlError::Missing));
    }

    #[test]
    fn content_base_has_trailing_slash() {
        let u = Url::parse("rtsp://127.0.0.1:8554/media/vtest.mkv").unwrap();
        assert_eq!(content_base(&u), "rtsp://127.0.0.1:8554/media/vtest.mkv/");
        let base = Url::parse(&content_base(&u)).unwrap();
        assert_eq!(base.join("trackID=0").unwrap().as_str(), "rtsp://127.0.0.1:8554/media/vtest.mkv/trackID=0");
        let slash = Url::parse("rtsp://h/media/a.mkv/").unwrap();
        assert_eq!(content_base(&slash), "rtsp://h/media/a.mkv/");
        let creds = Url::parse("rtsp://admin:pw@h:554/media/a.mkv?x=1").unwrap();
        assert_eq!(content_base(&creds), "rtsp://h:554/media/a.mkv/");
    }
}
