//! End-to-end tests of `rtspsim`, the simulated RTSP camera: retina and ffmpeg as independent clients, plus a raw wire-level client.

mod common;

#[path = "common/raw_rtsp.rs"]
mod raw_rtsp;
use raw_rtsp::Raw;

use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, ParametersRef};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use url::Url;
use vela::modules::rtspsim::{self, AuthSchemes, Config, Credentials, Server};

fn media_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media")
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(speed: f64) -> Server {
    let mut c = Config::new(localhost(), media_dir());
    c.speed = speed;
    rtspsim::serve(c).await.expect("server starts")
}

async fn start_with_auth(speed: f64, schemes: AuthSchemes) -> Server {
    let mut c = Config::new(localhost(), media_dir());
    c.speed = speed;
    c.credentials = Some(Credentials { username: "admin".into(), password: "s3cret pass".into() });
    c.auth_schemes = schemes;
    rtspsim::serve(c).await.expect("server starts")
}

/// What a retina client saw.
struct Received {
    sdp: String,
    dimensions: (u32, u32),
    /// (extended RTP timestamp, keyframe, arrival)
    frames: Vec<(i64, bool, Instant)>,
    /// RTCP sender reports: (their RTP timestamp, that of the last frame received before them).
    sender_reports: Vec<(i64, Option<i64>)>,
}

impl Received {
    /// Frames that arrived within `window` after the first one.
    fn count_within(&self, window: Duration) -> usize {
        let Some(&(_, _, t0)) = self.frames.first() else { return 0 };
        self.frames.iter().filter(|f| f.2 - t0 <= window).count()
    }

    /// At least one sender report arrived and it maps "now" onto the stream's own timeline.
    fn assert_sender_reports(&self) {
        assert!(!self.sender_reports.is_empty(), "no RTCP sender report");
        for &(sr, last_frame) in &self.sender_reports {
            if let Some(f) = last_frame {
                assert!((sr - f).abs() < 90_000, "SR timestamp {sr} is far from the last frame's {f}");
            }
        }
    }

    fn assert_steady(&self, step: i64, gop: usize) {
        assert!(!self.frames.is_empty(), "no frames");
        for (i, w) in self.frames.windows(2).enumerate() {
            assert_eq!(w[1].0 - w[0].0, step, "RTP timestamp step at frame {i}");
        }
        for (i, f) in self.frames.iter().enumerate() {
            assert_eq!(f.1, i % gop == 0, "keyframe flag of frame {i} (every {gop} frames, starting with one)");
        }
    }
}

async fn retina_receive(
    url: &str,
    transport: Transport,
    creds: Option<retina::client::Credentials>,
    for_: Duration,
) -> Result<Received, retina::Error> {
    let mut session = Session::describe(Url::parse(url).unwrap(), SessionOptions::default().creds(creds)).await?;
    let sdp = String::from_utf8_lossy(session.sdp()).into_owned();
    let dimensions = match session.streams()[0].parameters() {
        Some(ParametersRef::Video(v)) => v.pixel_dimensions(),
        other => panic!("no video parameters from the SDP: {other:?}"),
    };
    session.setup(0, SetupOptions::default().transport(transport)).await?;
    let playing = session.play(PlayOptions::default()).await?;
    let mut demuxed = Box::pin(playing.demuxed()?);
    let deadline = Instant::now() + for_;
    let mut frames = Vec::new();
    let mut sender_reports = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, demuxed.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(CodecItem::VideoFrame(f)))) => frames.push((f.timestamp().timestamp(), f.is_random_access_point(), Instant::now())),
            Ok(Some(Ok(CodecItem::Rtcp(r)))) => {
                if let Some(t) = r.rtp_timestamp() {
                    sender_reports.push((t.timestamp(), frames.last().map(|f: &(i64, bool, Instant)| f.0)));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    Ok(Received { sdp, dimensions, frames, sender_reports })
}

fn tcp() -> Transport {
    Transport::Tcp(Default::default())
}

fn udp() -> Transport {
    Transport::Udp(Default::default())
}

/// Runs ffmpeg (or ffprobe) and returns (success, stderr).
async fn run_tool(tool: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {tool} (apt-get install ffmpeg): {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vela-rtspsim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_tcp_gets_paced_frames_with_exact_timestamps_and_gop() {
    let server = start(4.0).await;
    let r = retina_receive(&server.url("vtest.mkv"), tcp(), None, Duration::from_secs(3)).await.unwrap();
    assert_eq!(r.dimensions, (768, 576));
    assert!(r.sdp.contains("sprop-parameter-sets="), "{}", r.sdp);
    assert!(r.sdp.contains("a=control:trackID=0"), "{}", r.sdp);
    r.assert_steady(9000, 20);
    r.assert_sender_reports();
    // 10 fps × speed 4 = 40 frames per second of wall time.
    let n = r.count_within(Duration::from_secs(2));
    assert!((72..=88).contains(&n), "{n} frames in 2 s at 40 fps");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_timestamps_continue_across_loops() {
    // bikes.mkv is 10 s at 25 fps: at speed 10 it loops every second.
    let server = start(10.0).await;
    let r = retina_receive(&server.url("bikes.mkv"), tcp(), None, Duration::from_millis(2600)).await.unwrap();
    assert_eq!(r.dimensions, (640, 272));
    assert!(r.frames.len() > 2 * 250, "only {} frames: the test must cross at least two loops", r.frames.len());
    r.assert_steady(3600, 50);
    let n = r.count_within(Duration::from_secs(2));
    assert!((450..=550).contains(&n), "{n} frames in 2 s at 250 fps");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_udp() {
    let server = start(4.0).await;
    let r = retina_receive(&server.url("vtest.mkv"), udp(), None, Duration::from_secs(2)).await.unwrap();
    r.assert_steady(9000, 20);
    r.assert_sender_reports();
    assert!(r.frames.len() >= 40, "{} frames over UDP", r.frames.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_over_tcp_and_udp_without_errors() {
    let server = start(4.0).await;
    let url = server.url("vtest.mkv");
    let tcp_args = ["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", &url, "-t", "5", "-f", "null", "-"];
    let udp_args = ["-nostdin", "-v", "error", "-rtsp_transport", "udp", "-i", &url, "-t", "5", "-f", "null", "-"];
    let (tcp, udp) = (run_tool("ffmpeg", &tcp_args), run_tool("ffmpeg", &udp_args));
    let ((tcp_ok, tcp_err), (udp_ok, udp_err)) = tokio::join!(tcp, udp);
    assert!(tcp_ok && tcp_err.trim().is_empty(), "ffmpeg over TCP: {tcp_err}");
    assert!(udp_ok && udp_err.trim().is_empty(), "ffmpeg over UDP: {udp_err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_records_a_clean_mp4() {
    let server = start(4.0).await;
    let dir = temp_dir("mp4");
    let out = dir.join("out.mp4");
    let out_s = out.to_str().unwrap();
    let (ok, err) = run_tool(
        "ffmpeg",
        &["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", &server.url("vtest.mkv"), "-t", "3", "-c", "copy", "-y", out_s],
    )
    .await;
    assert!(ok && err.trim().is_empty(), "ffmpeg: {err}");
    let (ok, probe) = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
            out_s,
        ],
    )
    .await;
    assert!(ok, "ffprobe: {probe}");
    let fields: Vec<&str> = probe.trim().split(',').collect();
    assert_eq!(&fields[..3], &["h264", "768", "576"], "ffprobe said {probe:?} (any error output would be here too)");
    let frames: u32 = fields[3].parse().unwrap();
    assert!((28..=32).contains(&frames), "{frames} frames in 3 s of 10 fps");
    server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_clients_share_one_live_camera_per_file() {
    let server = start(2.0).await;
    let url = server.url("vtest.mkv");
    // 12 retina clients of vtest (every third over UDP), one of bikes, three ffmpeg processes.
    let mut retinas = Vec::new();
    for i in 0..13 {
        let (url, step, gop) = if i == 12 { (server.url("bikes.mkv"), 3600, 50) } else { (url.clone(), 9000, 20) };
        let t = if i % 3 == 2 { udp() } else { tcp() };
        retinas.push((step, gop, tokio::spawn(async move { retina_receive(&url, t, None, Duration::from_secs(3)).await })));
    }
    let ffmpegs: Vec<_> = ["tcp", "udp", "tcp"]
        .into_iter()
        .map(|t| {
            let url = url.clone();
            tokio::spawn(async move {
                run_tool(
                    "ffmpeg",
                    &["-nostdin", "-v", "error", "-rtsp_transport", t, "-i", &url, "-t", "3", "-c", "copy", "-f", "null", "-"],
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.running_cameras(), 2, "all clients of one file watch the same camera");
    for (i, (step, gop, h)) in retinas.into_iter().enumerate() {
        let r = h.await.unwrap().unwrap_or_else(|e| panic!("retina client {i}: {e}"));
        r.assert_steady(step, gop);
        assert!(r.frames.len() >= 20, "retina client {i} got {} frames", r.frames.len());
    }
    for h in ffmpegs {
        let (ok, err) = h.await.unwrap();
        assert!(ok && err.trim().is_empty(), "ffmpeg client: {err}");
    }
    // A camera stops once its last viewer has gone (it notices at its next frame).
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.running_cameras() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.running_cameras(), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_digest_authentication() {
    let good = || Some(retina::client::Credentials { username: "admin".into(), password: "s3cret pass".into() });
    let bad = || Some(retina::client::Credentials { username: "admin".into(), password: "guess".into() });
    let short = Duration::from_millis(600);
    for schemes in [AuthSchemes::BasicAndDigest, AuthSchemes::Basic, AuthSchemes::Digest] {
        let server = start_with_auth(8.0, schemes).await;
        let url = server.url("vtest.mkv");
        let e = retina_receive(&url, tcp(), None, short).await.err().expect("no credentials must fail");
        assert_eq!(e.status_code(), Some(401), "{schemes:?}: {e}");
        let e = retina_receive(&url, tcp(), bad(), short).await.err().expect("wrong password must fail");
        assert_eq!(e.status_code(), Some(401), "{schemes:?}: {e}");
        let r = retina_receive(&url, tcp(), good(), Duration::from_secs(1)).await.unwrap_or_else(|e| panic!("{schemes:?}: {e}"));
        assert!(!r.frames.is_empty(), "{schemes:?}: no frames");

        // The challenges themselves, one per header line.
        let mut raw = Raw::connect(server.local_addr()).await;
        let resp = raw.request("DESCRIBE", &url, &[]).await;
        assert_eq!(resp.status, 401);
        let challenges: Vec<&str> = resp.headers("WWW-Authenticate").collect();
        let want = match schemes {
            AuthSchemes::BasicAndDigest => 2,
            _ => 1,
        };
        assert_eq!(challenges.len(), want, "{challenges:?}");
        // OPTIONS stays open.
        assert_eq!(raw.request("OPTIONS", &url, &[]).await.status, 200);
        server.shutdown().await;
    }
    // An independent client: ffmpeg with credentials in the URL (it picks Digest).
    let server = start_with_auth(8.0, AuthSchemes::BasicAndDigest).await;
    let url = format!("rtsp://admin:s3cret%20pass@{}/media/vtest.mkv", server.local_addr());
    let (ok, err) =
        run_tool("ffmpeg", &["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", &url, "-t", "2", "-c", "copy", "-f", "null", "-"])
            .await;
    assert!(ok && err.trim().is_empty(), "ffmpeg with digest: {err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_are_404_and_other_codecs_415() {
    let dir = temp_dir("codecs");
    let (ok, err) = run_tool(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=5",
            "-t",
            "1",
            "-c:v",
            "mpeg4",
            dir.join("mpeg4.mkv").to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "ffmpeg could not make the fixture: {err}");
    std::fs::write(dir.join("notes.txt"), "not a video").unwrap();
    std::fs::copy(media_dir().join("bikes.mkv"), dir.join("bikes.mkv")).unwrap();

    let server = rtspsim::serve(Config::new(localhost(), &dir)).await.unwrap();
    let e = retina_receive(&server.url("missing.mkv"), tcp(), None, Duration::from_secs(1)).await.err().expect("404");
    assert_eq!(e.status_code(), Some(404), "{e}");

    let mut raw = Raw::connect(server.local_addr()).await;
    let r = raw.request("DESCRIBE", &server.url("mpeg4.mkv"), &[]).await;
    assert_eq!(r.status, 415);
    assert!(r.body.contains("no H.264") && r.body.contains("V_MPEG4/ISO/ASP"), "{}", r.body);
    let r = raw.request("DESCRIBE", &server.url("notes.txt"), &[]).await;
    assert_eq!(r.status, 415);
    assert!(r.body.contains("not a Matroska"), "{}", r.body);
    for path in ["/media/..%2Fsecret", "/other/bikes.mkv", "/media/bikes.mkv/trackID=3"] {
        let r = raw.request("DESCRIBE", &format!("rtsp://{}{path}", server.local_addr()), &[]).await;
        assert_eq!(r.status, 404, "{path}");
    }
    let r = raw.request("DESCRIBE", &server.url("bikes.mkv"), &[]).await;
    assert_eq!(r.status, 200, "the folder is still served");
    server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_level_session_rtp_info_marker_and_sender_reports() {
    let server = start(4.0).await;
    let url = server.url("vtest.mkv");
    let mut raw = Raw::connect(server.local_addr()).await;

    let opts = raw.request("OPTIONS", &url, &[]).await;
    assert!(opts.header("Public").unwrap().contains("GET_PARAMETER"));
    let d = raw.request("DESCRIBE", &url, &[("Accept", "application/sdp")]).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.header("Content-Base"), Some(format!("{url}/").as_str()));
    assert_eq!(d.header("Content-Type"), Some("application/sdp"));
    assert!(d.body.contains("a=framesize:96 768-576"), "{}", d.body);

    let track = format!("{url}/trackID=0");
    assert_eq!(raw.request("PLAY", &url, &[("Session", "nope")]).await.status, 455, "PLAY before SETUP");
    assert_eq!(raw.request("SETUP", &track, &[("Transport", "RTP/AVP;multicast")]).await.status, 461);
    let s = raw.request("SETUP", &track, &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")]).await;
    assert_eq!(s.status, 200);
    let session_header = s.header("Session").unwrap().to_owned();
    assert!(session_header.ends_with(";timeout=60"), "{session_header}");
    let session = session_header.split(';').next().unwrap().to_owned();
    let transport = s.header("Transport").unwrap().to_owned();
    let ssrc = u32::from_str_radix(transport.split("ssrc=").nth(1).unwrap().split(';').next().unwrap(), 16).unwrap();
    assert!(transport.starts_with("RTP/AVP/TCP;unicast;interleaved=0-1"), "{transport}");
    assert_eq!(raw.request("PLAY", &url, &[("Session", "wrong")]).await.status, 454);

    let p = raw.request("PLAY", &url, &[("Session", &session), ("Range", "npt=0.000-")]).await;
    assert_eq!(p.status, 200);
    assert_eq!(p.header("Range"), Some("npt=0.000-"));
    let info = p.header("RTP-Info").unwrap();
    let field = |k: &str| info.split(';').find_map(|x| x.strip_prefix(k)).unwrap().parse::<u32>().unwrap();
    assert!(info.starts_with(&format!("url={track};")), "{info}");
    let (seq0, rtptime) = (field("seq=") as u16, field("rtptime="));

    // Read packets: the first must carry the announced sequence number, the first frame is a
    // keyframe at most one GOP after rtptime, markers end frames, and an SR arrives.
    let mut expect_seq = seq0;
    let mut frames = 0;
    let mut sr = None;
    let mut last_ts = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while (frames < 30 || sr.is_none()) && Instant::now() < deadline {
        let (channel, pkt) = raw.packet().await;
        if channel == 1 {
            assert_eq!(pkt[1], 200, "sender report first in the compound packet");
            assert_eq!(u32::from_be_bytes(pkt[4..8].try_into().unwrap()), ssrc);
            sr = Some(u32::from_be_bytes(pkt[16..20].try_into().unwrap()));
            continue;
        }
        assert_eq!(channel, 0);
        assert_eq!(pkt[0] >> 6, 2, "RTP version");
        assert_eq!(pkt[1] & 0x7f, 96);
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes(pkt[4..8].try_into().unwrap());
        assert_eq!(u32::from_be_bytes(pkt[8..12].try_into().unwrap()), ssrc);
        assert_eq!(seq, expect_seq, "contiguous sequence numbers");
        expect_seq = seq.wrapping_add(1);
        match last_ts {
            None => {
                let ahead = ts.wrapping_sub(rtptime);
                assert!(ahead % 9000 == 0 && ahead < 20 * 9000, "first timestamp {ts} vs rtptime {rtptime}");
                // The first packet of the first frame: SPS in-band before the keyframe.
                assert_eq!(pkt[12] & 0x1f, 7, "SPS first");
            }
            Some(prev) if prev != ts => assert_eq!(ts.wrapping_sub(prev), 9000),
            _ => {}
        }
        last_ts = Some(ts);
        if pkt[1] & 0x80 != 0 {
            frames += 1;
        }
        assert!(pkt.len() <= 12 + 1400, "payload over the MTU budget");
    }
    assert!(frames >= 30, "{frames} frames");
    let sr_ts = sr.expect("an RTCP sender report within 3 s");
    assert!(sr_ts.wrapping_sub(rtptime) < 90_000 * 60, "SR timestamp {sr_ts} is on the stream's timeline (rtptime {rtptime})");

    let k = raw.request("GET_PARAMETER", &url, &[("Session", &session)]).await;
    assert_eq!(k.status, 200);
    assert_eq!(k.header("Session"), Some(session_header.as_str()));
    let t = raw.request("TEARDOWN", &url, &[("Session", &session)]).await;
    assert_eq!(t.status, 200);
    assert_eq!(raw.request("PLAY", &url, &[("Session", &session)]).await.status, 455, "session is gone");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_keep_the_timeline_monotonic() {
    let server = start(8.0).await;
    let url = server.url("vtest.mkv");
    let mut raw = Raw::connect(server.local_addr()).await;
    assert_eq!(raw.request("OPTIONS", &url, &[("Require", "onvif-replay")]).await.status, 551);
    let s = raw.request("SETUP", &format!("{url}/trackID=0"), &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")]).await;
    let session = s.header("Session").unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(raw.request("PLAY", &url, &[("Session", &session)]).await.status, 200);
    for _ in 0..40 {
        raw.packet().await;
    }
    assert_eq!(raw.request("PAUSE", &url, &[("Session", &session)]).await.status, 200);
    let (last_seq, last_ts) = raw.last_rtp.expect("packets before the pause");
    // Long enough for the now unwatched camera to stop; resuming restarts it from the top.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(server.running_cameras(), 0);
    let p = raw.request("PLAY", &url, &[("Session", &session)]).await;
    let info = p.header("RTP-Info").unwrap();
    let field = |k: &str| info.split(';').find_map(|x| x.strip_prefix(k)).unwrap().parse::<u32>().unwrap();
    assert_eq!(field("seq=") as u16, last_seq.wrapping_add(1), "sequence numbers continue");
    assert_eq!(field("rtptime="), last_ts.wrapping_add(9000), "RTP time continues one frame later");
    let mut prev = last_ts;
    for _ in 0..40 {
        let (ch, pkt) = raw.packet().await;
        if ch == 0 {
            let ts = u32::from_be_bytes(pkt[4..8].try_into().unwrap());
            assert!((ts.wrapping_sub(prev) as i32) >= 0, "timestamp went back from {prev} to {ts}");
            prev = ts;
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_time_out() {
    let mut c = Config::new(localhost(), media_dir());
    c.session_timeout = Duration::from_secs(1);
    let server = rtspsim::serve(c).await.unwrap();
    let mut raw = Raw::connect(server.local_addr()).await;
    let s = raw.request("SETUP", &format!("{}/trackID=0", server.url("vtest.mkv")), &[("Transport", "RTP/AVP/TCP;unicast")]).await;
    assert_eq!(s.header("Session").unwrap().split(';').nth(1), Some("timeout=1"));
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.stream.read(&mut buf)).await.expect("closed in time").unwrap();
    assert_eq!(n, 0, "connection closed");
    assert!(t0.elapsed() >= Duration::from_millis(900));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let mut c = Config::new(localhost(), media_dir());
    c.speed = 0.0;
    assert!(matches!(rtspsim::serve(c).await, Err(rtspsim::RtspSimError::InvalidSpeed(_))));
    let c = Config::new(localhost(), media_dir().join("vtest.mkv"));
    assert!(matches!(rtspsim::serve(c).await, Err(rtspsim::RtspSimError::MediaDir { .. })));
}

/// Measures the server's CPU with 16 real-time clients of vtest.mkv for 20 s. The clients are
/// ffmpeg processes (stream copy, no decoding), so this process's CPU is the server's.
/// Run with `cargo test --test rtspsim -- --ignored --nocapture cpu`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn cpu_of_sixteen_real_time_clients() {
    let server = start(1.0).await;
    let url = server.url("vtest.mkv");
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            let t = if i % 2 == 0 { "tcp" } else { "udp" };
            tokio::spawn(async move {
                run_tool(
                    "ffmpeg",
                    &["-nostdin", "-v", "error", "-rtsp_transport", t, "-i", &url, "-t", "25", "-c", "copy", "-f", "null", "-"],
                )
                .await
            })
        })
        .collect();
    // Let every client join and the first keyframe pass, then measure 20 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, t0) = (process_cpu_ticks(), Instant::now());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (cpu1, wall) = (process_cpu_ticks(), t0.elapsed());
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let pct = (cpu1 - cpu0) as f64 / ticks_per_sec / wall.as_secs_f64() * 100.0;
    println!("rtspsim server CPU with 16 real-time clients of vtest.mkv: {pct:.2} % of one core over {:.1} s", wall.as_secs_f64());
    for h in clients {
        let (ok, err) = h.await.unwrap();
        assert!(ok && err.trim().is_empty(), "{err}");
    }
    server.shutdown().await;
}

/// utime + stime of this process in clock ticks, from /proc/self/stat.
fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}
