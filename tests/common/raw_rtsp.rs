//! A bare RTSP client for tests that check what goes over the wire (rtspsim, the decoder's robustness).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bare RTSP client over one TCP connection, for checking the wire format itself:
/// requests (CSeq checked), and interleaved packets as they come.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// Sequence number and timestamp of the last RTP packet read on channel 0.
    pub last_rtp: Option<(u16, u32)>,
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers(name).next()
    }
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw { stream: TcpStream::connect(addr).await.unwrap(), buf: Vec::new(), cseq: 0, last_rtp: None }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await.expect("server answers").unwrap();
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    pub async fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.stream.write_all(req.as_bytes()).await.unwrap();
        loop {
            // Skip interleaved data that is already in flight.
            if self.buf.first() == Some(&b'$') {
                self.packet().await;
                continue;
            }
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                let mut lines = head.split("\r\n");
                let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
                let headers: Vec<(String, String)> =
                    lines.map(|l| l.split_once(':').unwrap()).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
                let len: usize =
                    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("Content-Length")).map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    self.fill().await;
                }
                let body = String::from_utf8(self.buf[end + 4..end + 4 + len].to_vec()).unwrap();
                self.buf.drain(..end + 4 + len);
                let cseq = headers.iter().find(|(k, _)| k == "CSeq").map(|(_, v)| v.clone());
                assert_eq!(cseq, Some(self.cseq.to_string()), "CSeq echoed");
                return Answer { status, headers, body };
            }
            self.fill().await;
        }
    }

    /// The next interleaved packet: (channel, packet).
    pub async fn packet(&mut self) -> (u8, Vec<u8>) {
        while self.buf.len() < 4 {
            self.fill().await;
        }
        assert_eq!(self.buf[0], b'$', "expected interleaved data");
        let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        while self.buf.len() < 4 + len {
            self.fill().await;
        }
        let channel = self.buf[1];
        let pkt = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        if channel == 0 && pkt.len() >= 12 {
            self.last_rtp = Some((u16::from_be_bytes([pkt[2], pkt[3]]), u32::from_be_bytes(pkt[4..8].try_into().unwrap())));
        }
        (channel, pkt)
    }

    /// DESCRIBE `url`, SETUP its track over TCP and PLAY; returns the first sequence number.
    pub async fn play(&mut self, url: &str) -> u16 {
        let d = self.request("DESCRIBE", url, &[]).await;
        assert_eq!(d.status, 200, "{}", d.body);
        let track = format!("{}trackID=0", d.header("Content-Base").unwrap());
        let s = self.request("SETUP", &track, &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")]).await;
        assert_eq!(s.status, 200, "{}", s.body);
        let session = s.header("Session").unwrap().split(';').next().unwrap().to_owned();
        let p = self.request("PLAY", url, &[("Session", &session)]).await;
        assert_eq!(p.status, 200);
        let info = p.header("RTP-Info").unwrap();
        info.split(';').find_map(|x| x.strip_prefix("seq=")).unwrap().parse().unwrap()
    }
}
