//! The playback API over a real socket, against segment files written from vtest.mkv: ffmpeg decodes its HLS, exports match the source frame for frame, byte ranges and errors behave.
//!
//! The catalog here is a small in-test implementation over the written files (the real
//! store is built in parallel); it keeps the contract's promises: segments overlapping a
//! window in time order, merged ranges, and leases that are counted so the test can see
//! every response let go of its segments.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use vela::media::mkv::{self, H264Track};
use vela::media::mp4::{Fmp4Writer, VideoParams};
use vela::recording::{Catalog, Fragment, Lease, Nanos, Segment, Span, StoreError, VideoSummary, GAP_TOLERANCE};

const SECOND: Nanos = 1_000_000_000;
/// 2024-05-01T12:00:00Z: the synthetic wall clock of the recordings.
const T0: Nanos = 1_714_564_800 * SECOND;
/// vtest.mkv: 10 fps, a keyframe every 20 frames.
const FRAME: Nanos = SECOND / 10;
const GOP: Nanos = 2 * SECOND;
/// The recording of "lobby" pauses between its second and third file.
const GAP: Nanos = 30 * SECOND;

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media").join(name)
}

fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"].iter().all(|t| Command::new(t).arg("-version").output().is_ok_and(|o| o.status.success()));
    if !ok {
        eprintln!("SKIPPED: ffmpeg/ffprobe not on PATH (apt-get install ffmpeg)");
    }
    ok
}

fn rfc(ns: Nanos) -> String {
    vela::playback::time::format_time(ns)
}

/// A segment file written from frames `range` of `track`, the first frame at wall time `start`.
fn write_segment(dir: &Path, video: &str, track: &H264Track, range: std::ops::Range<usize>, start: Nanos) -> Segment {
    let file = format!("{}.mp4", vela::clock::basic(UNIX_EPOCH + Duration::from_nanos(start as u64)));
    let params = VideoParams::from_track(track);
    let mut w = Fmp4Writer::new(Vec::new(), &params).unwrap();
    let init_len = w.position();
    let frames = &track.frames[range.clone()];
    let base = frames[0].dts_90k;
    let ns = |ticks: i64| ticks * SECOND / 90_000;
    let mut fragments = Vec::new();
    let mut gop_start = 0;
    for i in 1..=frames.len() {
        if i == frames.len() || frames[i].keyframe {
            let next = track.frames.get(range.start + i).map(|f| f.dts_90k);
            let info = w.write_fragment(&frames[gop_start..i], next).unwrap();
            fragments.push(Fragment {
                offset: info.offset,
                len: info.len,
                start: start + ns(info.start_90k - base),
                duration: ns(info.duration_90k as i64),
                frames: info.frames,
            });
            gop_start = i;
        }
    }
    std::fs::write(dir.join(&file), w.finish().unwrap()).unwrap();
    Segment {
        video: video.into(),
        id: (start / 1_000_000) as u64,
        file,
        init_len,
        codec: "avc1.4d401f".into(),
        width: track.width,
        height: track.height,
        start,
        end: fragments.last().unwrap().end(),
        fragments,
        open: false,
    }
}

/// The test's catalog: videos as lists of segment files in one directory.
struct TestCatalog {
    dir: PathBuf,
    videos: HashMap<String, Vec<Segment>>,
    leases: Arc<AtomicUsize>,
}

struct LeaseGuard(Arc<AtomicUsize>);

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Catalog for TestCatalog {
    fn videos(&self) -> Result<Vec<VideoSummary>, StoreError> {
        let mut out: Vec<VideoSummary> = self
            .videos
            .iter()
            .map(|(name, segs)| VideoSummary {
                name: name.clone(),
                title: format!("{name} camera"),
                description: String::new(),
                start: segs.first().map(|s| s.start),
                end: segs.last().map(|s| s.end),
                bytes: segs.iter().map(|s| s.indexed_len()).sum(),
                segments: segs.len() as u64,
                live: false,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn segments(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Segment>>, StoreError> {
        Ok(self.videos.get(video).map(|segs| segs.iter().filter(|s| s.end > start && s.start < end).cloned().collect()))
    }

    fn metadata(&self, video: &str, _: Nanos, _: Nanos, _: usize) -> Result<Option<vela::recording::metadata::Page>, StoreError> {
        Ok(self.videos.get(video).map(|_| Default::default()))
    }

    fn ranges(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Span>>, StoreError> {
        let Some(segs) = self.videos.get(video) else { return Ok(None) };
        let mut out: Vec<Span> = Vec::new();
        for f in segs.iter().flat_map(|s| &s.fragments).filter(|f| f.end() > start && f.start < end) {
            let span = Span { start: f.start.max(start), end: f.end().min(end) };
            match out.last_mut() {
                Some(last) if span.start - last.end <= GAP_TOLERANCE => last.end = last.end.max(span.end),
                _ => out.push(span),
            }
        }
        Ok(Some(out))
    }

    fn segment_path(&self, segment: &Segment) -> PathBuf {
        self.dir.join(&segment.file)
    }

    fn lease(&self, _segments: &[Segment]) -> Lease {
        self.leases.fetch_add(1, Ordering::SeqCst);
        Lease(Box::new(LeaseGuard(self.leases.clone())))
    }
}

struct Fixture {
    addr: SocketAddr,
    dir: PathBuf,
    track: H264Track,
    /// Wall-clock time of each source frame in "lobby".
    wall: Vec<Nanos>,
    /// ffmpeg's MD5 of each decoded source frame.
    source_md5: Vec<String>,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Source frames shown in `[start, end)` of "lobby"'s wall clock.
    fn frames_between(&self, start: Nanos, end: Nanos) -> Vec<usize> {
        (0..self.wall.len()).filter(|&i| self.wall[i] >= start && self.wall[i] < end).collect()
    }
}

/// Starts a server on its own thread and actix system.
fn start_server(catalog: Arc<dyn Catalog>, auth: Option<String>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let serving = vela::playback::serve("127.0.0.1:0", catalog, auth).await.unwrap();
            tx.send(serving.addr).unwrap();
            serving.server.await
        })
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

/// "lobby": vtest.mkv as four 20 s files (the last 19.5 s), a 30 s pause after the second.
/// "mixed": 10 s of vtest, then 10 s of bikes.mkv (another picture size) right after.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Directories of earlier runs that have ended (the fixture outlives every test, so
        // nothing removes its own).
        for old in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = old.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("vela-playback-api-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(old.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("vela-playback-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let track = mkv::read_h264_file(&media("vtest.mkv")).unwrap();
        assert_eq!(track.frames.len(), 795);
        let wall: Vec<Nanos> =
            track.frames.iter().enumerate().map(|(i, f)| T0 + f.pts_90k * SECOND / 90_000 + if i >= 400 { GAP } else { 0 }).collect();
        let lobby: Vec<Segment> = [0..200, 200..400, 400..600, 600..795]
            .into_iter()
            .map(|r| write_segment(&dir, "lobby", &track, r.clone(), wall[r.start]))
            .collect();
        let bikes = mkv::read_h264_file(&media("bikes.mkv")).unwrap();
        let mixed_start = T0 + 3600 * SECOND;
        let mixed = vec![
            write_segment(&dir, "mixed", &track, 0..100, mixed_start),
            write_segment(&dir, "mixed", &bikes, 0..bikes.frames.len(), mixed_start + 10 * SECOND),
        ];
        let catalog = TestCatalog {
            dir: dir.clone(),
            videos: HashMap::from([("lobby".to_owned(), lobby), ("mixed".to_owned(), mixed)]),
            leases: Arc::new(AtomicUsize::new(0)),
        };
        let addr = start_server(Arc::new(catalog), None);
        let source_md5 = if have_ffmpeg() { framemd5(media("vtest.mkv").to_str().unwrap()) } else { Vec::new() };
        Fixture { addr, dir, track, wall, source_md5 }
    })
}

/// A response read off the socket.
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    fn json(&self) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap().to_owned()
    }
}

/// Minimal HTTP/1.1: one request per connection, the raw path sent as given (so traversal
/// attempts reach the server unnormalised).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    assert!(!headers.contains_key("transfer-encoding"), "{path}: bodies here have a known length");
    Response { status, headers, body: raw[split + 4..].to_vec() }
}

fn get(path: &str) -> Response {
    http(fixture().addr, "GET", path, &[])
}

fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// MD5 of every decoded frame of `input` (a file or URL), in output order.
fn framemd5(input: &str) -> Vec<String> {
    let (out, err) = run("ffmpeg", &["-v", "error", "-i", input, "-fps_mode", "passthrough", "-f", "framemd5", "-"]);
    assert_eq!(err, "", "ffmpeg decoding {input} reported errors");
    out.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit(',').next().unwrap().trim().to_owned()).collect()
}

/// ffprobe's packets of a file: (pts, duration) in seconds.
fn probe_packets(path: &Path) -> Vec<(f64, f64)> {
    let (out, err) =
        run("ffprobe", &["-v", "error", "-show_entries", "packet=pts_time,duration_time", "-of", "csv", path.to_str().unwrap()]);
    assert_eq!(err, "", "ffprobe complained about {}", path.display());
    out.lines()
        .filter(|l| l.starts_with("packet"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

fn parse_rfc(s: &str) -> Nanos {
    vela::playback::time::parse_time("header", s).unwrap()
}

fn export_path(video: &str, start: Nanos, end: Nanos) -> String {
    format!("/api/videos/{video}/export.mp4?start={}&end={}", rfc(start), rfc(end))
}

#[test]
fn lists_videos_and_recorded_ranges_with_the_gap() {
    let fx = fixture();
    let r = get("/api/videos");
    assert_eq!(r.status, 200);
    let v = r.json();
    let lobby = &v["videos"][0];
    assert_eq!(lobby["name"], "lobby");
    assert_eq!(lobby["start"], "2024-05-01T12:00:00.000Z");
    assert_eq!(lobby["end"], "2024-05-01T12:01:49.500Z");
    assert_eq!(lobby["segments"], 4);
    assert_eq!(lobby["live"], false);
    let r = get("/api/videos/lobby/ranges?start=2024-05-01T00:00:00Z&end=2024-05-02T00:00:00Z");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"ranges": [
            {"start": "2024-05-01T12:00:00.000Z", "end": "2024-05-01T12:00:40.000Z"},
            {"start": "2024-05-01T12:01:10.000Z", "end": "2024-05-01T12:01:49.500Z"},
        ]})
    );
    // Clipped to the window.
    let r = get("/api/videos/lobby/ranges?start=2024-05-01T12:00:30Z&end=2024-05-01T12:01:20Z");
    assert_eq!(r.json()["ranges"][1], serde_json::json!({"start": "2024-05-01T12:01:10.000Z", "end": "2024-05-01T12:01:20.000Z"}));
    let _ = fx;
}

#[test]
fn hls_windows_and_the_live_playlist_decode_with_ffmpeg() {
    let fx = fixture();
    if !have_ffmpeg() {
        return;
    }
    // Across a file boundary, the pause, and another file boundary.
    let (start, end) = (T0 + 5 * SECOND, T0 + 95 * SECOND);
    let path = format!("/api/videos/lobby/playlist.m3u8?start={}&end={}", rfc(start), rfc(end));
    let r = get(&path);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.apple.mpegurl"));
    let playlist = String::from_utf8(r.body).unwrap();
    assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY\n").count(), 3, "{playlist}");
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));
    // ffmpeg fetches the playlist, the init sections and every byte range, and decodes.
    let decoded = framemd5(&fx.url(&path));
    // The fragments overlapping the window: from the keyframe at 4 s to the end of the GOP
    // holding 95 s of wall clock.
    let expected: Vec<String> = fx.frames_between(T0 + 4 * SECOND, T0 + 96 * SECOND).iter().map(|&i| fx.source_md5[i].clone()).collect();
    assert_eq!(decoded.len(), expected.len());
    assert!(decoded == expected, "HLS frames differ from the source frames");
    eprintln!("HLS {} .. {}: {} frames decoded, identical to the source", rfc(start), rfc(end), decoded.len());

    // Live (no window): the last minutes of a video no longer recording, ending.
    let r = get("/api/videos/lobby/playlist.m3u8");
    let live = String::from_utf8(r.body).unwrap();
    assert!(live.ends_with("#EXT-X-ENDLIST\n") && !live.contains("PLAYLIST-TYPE"), "{live}");
    let again = String::from_utf8(get("/api/videos/lobby/playlist.m3u8").body).unwrap();
    assert_eq!(live, again, "a refresh with nothing new is the same playlist");
    let decoded = framemd5(&fx.url("/api/videos/lobby/playlist.m3u8"));
    assert_eq!(decoded, fx.source_md5, "the live playlist holds the whole recording");
}

/// Downloads an export and checks it against the source: a valid file, starting at the
/// keyframe at or before `start` and ending with the GOP holding `end`, frame for frame.
fn check_export(start: Nanos, end: Nanos) -> (Vec<u8>, String) {
    let fx = fixture();
    let path = export_path("lobby", start, end);
    let r = get(&path);
    assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-length").map(|l| l.parse::<usize>().unwrap()), Some(r.body.len()));
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("content-disposition").unwrap().starts_with("attachment; filename=\"lobby_2024"), "{:?}", r.headers);
    assert!(r.header("x-export-truncated").is_none());
    let (got_start, got_end) = (parse_rfc(r.header("x-export-start").unwrap()), parse_rfc(r.header("x-export-end").unwrap()));
    let recorded_start = start.max(T0);
    assert!(got_start <= recorded_start && recorded_start - got_start < GOP, "export starts at {} for {}", rfc(got_start), rfc(start));
    assert!(got_end >= end.min(fx.wall[794] + FRAME) && got_end - end < GOP, "export ends at {} for {}", rfc(got_end), rfc(end));
    if !have_ffmpeg() {
        return (r.body, path);
    }
    let file = fx.dir.join(format!("export-{start}-{end}.mp4"));
    std::fs::write(&file, &r.body).unwrap();
    // Duration: the wall-clock span exported, pauses included, to the frame.
    let packets = probe_packets(&file);
    let first = packets.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    let last = packets.iter().map(|p| p.0 + p.1).fold(f64::MIN, f64::max);
    let duration = last - first;
    let expected = (got_end - got_start) as f64 / SECOND as f64;
    assert!((duration - expected).abs() < 0.05, "duration {duration} s, exported span {expected} s");
    let frames = fx.frames_between(got_start, got_end);
    assert_eq!(packets.len(), frames.len());
    let decoded = framemd5(file.to_str().unwrap());
    let source: Vec<String> = frames.iter().map(|&i| fx.source_md5[i].clone()).collect();
    assert!(decoded == source, "decoded frames of {path} differ from the source");
    eprintln!(
        "export {} .. {}: {} bytes, {} .. {} ({duration:.1} s), {} frames identical to the source",
        rfc(start),
        rfc(end),
        r.body.len(),
        rfc(got_start),
        rfc(got_end),
        frames.len()
    );
    (r.body, path)
}

#[test]
fn exports_match_the_source_frames_and_durations() {
    let fx = fixture();
    // Inside one file, starting and ending mid-GOP.
    check_export(T0 + 3_300_000_000, T0 + 11_700_000_000);
    // Across the first file boundary.
    check_export(T0 + 15 * SECOND, T0 + 25 * SECOND);
    // Across the pause: two files recorded 30 s apart play 30 s apart.
    check_export(T0 + 35 * SECOND, T0 + 75 * SECOND);
    // On GOP boundaries exactly.
    check_export(T0 + 20 * SECOND, T0 + 22 * SECOND);
    // Everything, ending with the short last GOP; the window reaches past the recording.
    check_export(T0 - 60 * SECOND, T0 + 200 * SECOND);
    // A single frame's worth.
    check_export(T0 + 90 * SECOND, T0 + 90 * SECOND + 1_000_000);
    assert_eq!(fx.track.frames.len(), fx.wall.len());
}

#[test]
fn byte_ranges_are_slices_of_the_full_download() {
    let fx = fixture();
    let (full, path) = check_export(T0 + 35 * SECOND, T0 + 75 * SECOND);
    let len = full.len();
    let etag = get(&path).header("etag").unwrap().to_owned();
    let cases = [
        ("bytes=0-0", 0, 1),
        ("bytes=0-99", 0, 100),
        ("bytes=500-", 500, len),
        ("bytes=-1000", len - 1000, len),
        ("bytes=1000-200000", 1000, 200_001),
        (&format!("bytes={}-{}", len / 2, len / 2 + 300_000) as &str, len / 2, len / 2 + 300_001),
        (&format!("bytes={}-{}", len - 10, len + 10_000) as &str, len - 10, len),
    ];
    for (range, a, b) in cases {
        let r = http(fx.addr, "GET", &path, &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("content-range"), Some(format!("bytes {a}-{}/{len}", b - 1).as_str()), "{range}");
        assert_eq!(r.header("content-length"), Some((b - a).to_string().as_str()));
        assert!(r.body == full[a..b], "{range}: bytes differ from the full download");
    }
    // Resuming with the right validator gets the range, with a stale one the whole body.
    assert_eq!(http(fx.addr, "GET", &path, &[("Range", "bytes=10-"), ("If-Range", &etag)]).status, 206);
    let r = http(fx.addr, "GET", &path, &[("Range", "bytes=10-"), ("If-Range", "\"stale\"")]);
    assert_eq!((r.status, r.body.len()), (200, len));
    // Several ranges: the whole body (allowed, and simpler than multipart).
    assert_eq!(http(fx.addr, "GET", &path, &[("Range", "bytes=0-1,5-6")]).body.len(), len);
    let r = http(fx.addr, "GET", &path, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{len}").as_str()));
    assert_eq!(r.error_code(), "RangeNotSatisfiable");
    // HEAD: the headers of the download, no body.
    let r = http(fx.addr, "HEAD", &path, &[]);
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some(len.to_string().as_str()), 0));

    // Segment files, as playlists reference them: whole and in ranges.
    let playlist =
        String::from_utf8(get("/api/videos/lobby/playlist.m3u8?start=2024-05-01T12:00:00Z&end=2024-05-01T12:00:30Z").body).unwrap();
    let uri = playlist.lines().find(|l| l.starts_with("segments/")).unwrap();
    let seg_path = format!("/api/videos/lobby/{uri}");
    let r = get(&seg_path);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    let served = r.body;
    // The file as written, except for the decode times, which are moved onto the wall clock.
    let file = std::fs::read(fx.dir.join("20240501T120000.mp4")).unwrap();
    assert_eq!(served.len(), file.len());
    let differing = served.iter().zip(&file).filter(|(a, b)| a != b).count();
    assert!(differing > 0 && differing <= 10 * 8, "{differing} bytes differ");
    for (range, a, b) in
        [("bytes=100-199", 100, 200), ("bytes=241000-242500", 241_000, 242_501), ("bytes=-5", served.len() - 5, served.len())]
    {
        let r = http(fx.addr, "GET", &seg_path, &[("Range", range)]);
        assert_eq!(r.status, 206);
        assert!(r.body == served[a..b], "{range}");
    }
    // Without the lookup hint too.
    let r = get("/api/videos/lobby/segments/20240501T120000.mp4");
    assert!(r.status == 200 && r.body == served);
    if have_ffmpeg() {
        // The first frame of the file is at its wall-clock time.
        let path = fx.dir.join("served-segment.mp4");
        std::fs::write(&path, &served).unwrap();
        let first = probe_packets(&path)[0].0;
        assert!((first - (T0 / SECOND) as f64).abs() < 0.001, "{first}");
    }
}

#[test]
fn exports_stop_where_the_picture_changes() {
    let fx = fixture();
    let start = T0 + 3600 * SECOND;
    let r = get(&export_path("mixed", start, start + 20 * SECOND));
    assert_eq!(r.status, 200);
    let note = r.header("x-export-truncated").expect("the export says it stopped");
    assert!(note.starts_with("stopped at 2024-05-01T13:00:10.000Z"), "{note}");
    assert_eq!(r.header("x-export-end"), Some("2024-05-01T13:00:10.000Z"));
    if have_ffmpeg() {
        let file = fx.dir.join("mixed.mp4");
        std::fs::write(&file, &r.body).unwrap();
        assert_eq!(probe_packets(&file).len(), 100);
    }
    // A window in the second file alone exports it.
    let r = get(&export_path("mixed", start + 12 * SECOND, start + 14 * SECOND));
    assert_eq!(r.status, 200);
    assert!(r.header("x-export-truncated").is_none());
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let fx = fixture();
    let ok = "start=2024-05-01T12:00:00Z&end=2024-05-01T12:01:00Z";
    let cases: Vec<(String, u16, &str, &str)> = vec![
        // Windows in the future, reversed, huge, malformed, incomplete.
        ("/api/videos/lobby/export.mp4?start=2099-01-01T00:00:00Z&end=2099-01-01T00:01:00Z".into(), 400, "InvalidTime", "not in the past"),
        (
            "/api/videos/lobby/playlist.m3u8?start=2024-05-01T12:01:00Z&end=2024-05-01T12:00:00Z".into(),
            400,
            "InvalidTime",
            "must be before",
        ),
        (
            "/api/videos/lobby/export.mp4?start=2024-04-01T00:00:00Z&end=2024-05-01T12:00:00Z".into(),
            400,
            "InvalidTime",
            "more than the maximum of 24 h",
        ),
        ("/api/videos/lobby/ranges?start=2020-01-01T00:00:00Z&end=2024-05-01T12:00:00Z".into(), 400, "InvalidTime", "maximum"),
        ("/api/videos/lobby/export.mp4?start=noon&end=2024-05-01T12:00:00Z".into(), 400, "InvalidTime", "'start' is not an RFC 3339 time"),
        ("/api/videos/lobby/export.mp4?start=2024-05-01T12:00:00Z&end=2024-05-01T25:00:00Z".into(), 400, "InvalidTime", "'end'"),
        ("/api/videos/lobby/export.mp4?start=2024-05-01T12:00:00Z".into(), 400, "InvalidTime", "'end' is missing"),
        ("/api/videos/lobby/playlist.m3u8?end=2024-05-01T12:00:00Z".into(), 400, "InvalidTime", "'start' is missing"),
        ("/api/videos/lobby/export.mp4?start=%ZZ&end=%".into(), 400, "InvalidTime", "RFC 3339"),
        // Unknown videos, files, nothing recorded.
        (format!("/api/videos/garage/export.mp4?{ok}"), 404, "VideoNotFound", "garage"),
        ("/api/videos/garage/playlist.m3u8".into(), 404, "VideoNotFound", "garage"),
        (format!("/api/videos/garage/ranges?{ok}"), 404, "VideoNotFound", "garage"),
        ("/api/videos/lobby/export.mp4?start=2024-05-01T12:00:45Z&end=2024-05-01T12:01:05Z".into(), 404, "NoRecording", "between"),
        ("/api/videos/lobby/segments/20240501T130000.mp4".into(), 404, "SegmentNotFound", "20240501T130000.mp4"),
        ("/api/videos/lobby/segments/export-1-2.mp4".into(), 404, "SegmentNotFound", ""),
        // Traversal in names, raw and escaped.
        ("/api/videos/lobby/segments/..%2F..%2F..%2Fetc%2Fpasswd".into(), 400, "InvalidName", "path separator"),
        ("/api/videos/lobby/segments/%2e%2e".into(), 400, "InvalidName", "'..'"),
        ("/api/videos/lobby/segments/..".into(), 400, "InvalidName", "'..'"),
        (format!("/api/videos/%2e%2e/ranges?{ok}"), 400, "InvalidName", "'..'"),
        (format!("/api/videos/..%2flobby/export.mp4?{ok}"), 400, "InvalidName", ""),
        (format!("/api/videos/lobby%00/export.mp4?{ok}"), 400, "InvalidName", "control"),
        ("/api/videos/lobby/segments/../../../../etc/passwd".into(), 404, "NotFound", ""),
        ("/api/videos/../../etc/passwd".into(), 404, "NotFound", ""),
        ("/api/videos/lobby/whatever".into(), 404, "NotFound", ""),
    ];
    for (path, status, code, says) in cases {
        let r = get(&path);
        assert_eq!(r.status, status, "{path}: {}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{path}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
        assert!(!r.body.windows(5).any(|w| w == b"root:"), "{path} leaked a file");
    }
    // Still serving.
    assert_eq!(get("/api/videos").status, 200);
    let _ = fx;
}

#[test]
fn the_token_guards_the_api_and_leases_end_with_their_bodies() {
    let fx = fixture();
    // A server of its own, so that other tests' requests do not hold leases.
    let leases = Arc::new(AtomicUsize::new(0));
    let dir = fx.dir.join("door");
    std::fs::create_dir_all(&dir).unwrap();
    let door = vec![write_segment(&dir, "door", &fx.track, 0..200, T0), write_segment(&dir, "door", &fx.track, 200..400, T0 + 20 * SECOND)];
    let catalog = TestCatalog { dir, videos: HashMap::from([("door".to_owned(), door)]), leases: leases.clone() };
    let addr = start_server(Arc::new(catalog), Some("open sesame".into()));
    let path = export_path("door", T0, T0 + 30 * SECOND);
    let r = http(addr, "GET", &path, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "Unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"vela\""));
    assert_eq!(http(addr, "GET", "/api/videos", &[("Authorization", "Bearer open sesam")]).status, 401);
    let r = http(addr, "GET", &path, &[("Authorization", "Bearer open sesame")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), r.header("content-length").unwrap().parse::<usize>().unwrap());
    // A client that goes away mid-body releases its lease too.
    {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer open sesame\r\n\r\n").unwrap();
        let mut some = [0u8; 1024];
        let _ = s.read(&mut some).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while leases.load(Ordering::SeqCst) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(leases.load(Ordering::SeqCst), 0, "every response let go of its segments");
    if have_ffmpeg() {
        let url = format!("http://{addr}/api/videos/door/playlist.m3u8?access_token=open%20sesame");
        let (_, err) = run("ffmpeg", &["-v", "error", "-i", &url, "-f", "null", "-"]);
        assert_eq!(err, "");
    }
}

/// A video being recorded: after the first `initial`, one more fragment becomes visible every
/// `interval`; when all are, recording stops. Every segment is the same file on disk (the
/// same minute of vtest, again and again), under its own name and time.
struct GrowingCatalog {
    path: PathBuf,
    segments: Vec<Segment>,
    initial: usize,
    interval: Duration,
    started: std::time::Instant,
}

impl GrowingCatalog {
    fn visible(&self) -> (Vec<Segment>, bool) {
        let total: usize = self.segments.iter().map(|s| s.fragments.len()).sum();
        let n = (self.initial + (self.started.elapsed().as_millis() / self.interval.as_millis()) as usize).min(total);
        let mut left = n;
        let mut out = Vec::new();
        for s in &self.segments {
            if left == 0 {
                break;
            }
            let mut v = s.clone();
            let k = v.fragments.len().min(left);
            v.fragments.truncate(k);
            v.end = v.fragments[k - 1].end();
            v.open = k < s.fragments.len();
            left -= k;
            out.push(v);
        }
        (out, n < total)
    }
}

/// `n` copies of a segment one after the other (all indexing the same file), as if it had
/// been recorded `n` times without a pause.
fn back_to_back(one: &Segment, n: usize) -> Vec<Segment> {
    let span = one.end - one.start;
    (0..n)
        .map(|k| {
            let mut s = one.clone();
            let shift = span * k as Nanos;
            s.id += k as u64;
            s.file = format!("{}-{k}.mp4", one.video);
            s.start += shift;
            s.end += shift;
            s.fragments.iter_mut().for_each(|f| f.start += shift);
            s
        })
        .collect()
}

impl Catalog for GrowingCatalog {
    fn videos(&self) -> Result<Vec<VideoSummary>, StoreError> {
        let (segs, live) = self.visible();
        Ok(vec![VideoSummary {
            name: "porch".into(),
            title: String::new(),
            description: String::new(),
            start: segs.first().map(|s| s.start),
            end: segs.last().map(|s| s.end),
            bytes: 0,
            segments: segs.len() as u64,
            live,
        }])
    }

    fn segments(&self, video: &str, start: Nanos, end: Nanos) -> Result<Option<Vec<Segment>>, StoreError> {
        Ok((video == "porch").then(|| self.visible().0.into_iter().filter(|s| s.end > start && s.start < end).collect()))
    }

    fn ranges(&self, _: &str, _: Nanos, _: Nanos) -> Result<Option<Vec<Span>>, StoreError> {
        Ok(None)
    }

    fn metadata(&self, _: &str, _: Nanos, _: Nanos, _: usize) -> Result<Option<vela::recording::metadata::Page>, StoreError> {
        Ok(None)
    }

    fn segment_path(&self, _: &Segment) -> PathBuf {
        self.path.clone()
    }

    fn lease(&self, _: &[Segment]) -> Lease {
        Lease(Box::new(()))
    }
}

#[test]
fn ffmpeg_follows_a_growing_live_playlist_without_skipping_or_repeating() {
    let fx = fixture();
    if !have_ffmpeg() {
        return;
    }
    // Five recordings of vtest back to back: 200 fragments, 6 min 37 s, longer than the
    // live window, so refreshes slide it.
    let dir = fx.dir.join("porch");
    std::fs::create_dir_all(&dir).unwrap();
    let start = T0 + 7200 * SECOND;
    let one = write_segment(&dir, "porch", &fx.track, 0..795, start);
    let segments = back_to_back(&one, 5);
    let catalog = GrowingCatalog {
        path: dir.join(&one.file),
        segments,
        initial: 190,
        interval: Duration::from_millis(400),
        started: std::time::Instant::now(),
    };
    let addr = start_server(Arc::new(catalog), None);
    let url = format!("http://{addr}/api/videos/porch/playlist.m3u8");
    let first = String::from_utf8(http(addr, "GET", "/api/videos/porch/playlist.m3u8", &[]).body).unwrap();
    assert!(!first.contains("#EXT-X-ENDLIST"), "{first}");
    assert!(first.matches("#EXTINF").count() <= 151, "the live window is five minutes");
    let decoded = framemd5(&url);
    // ffmpeg starts three fragments from the live edge and follows until the recording
    // stops: what it decoded is the end of the recording, every frame once, in order.
    let all: Vec<&String> = fx.source_md5.iter().cycle().take(5 * 795).collect();
    assert!(decoded.len() >= 100, "{} frames", decoded.len());
    let tail: Vec<String> = all[all.len() - decoded.len()..].iter().map(|s| s.to_string()).collect();
    assert!(decoded == tail, "the live frames are not the end of the recording in order");
    eprintln!("live: ffmpeg followed the growing playlist for {} frames, identical to the source", decoded.len());
    let last = String::from_utf8(http(addr, "GET", "/api/videos/porch/playlist.m3u8", &[]).body).unwrap();
    assert!(last.ends_with("#EXT-X-ENDLIST\n"));
}

/// Time to first byte and throughput of a one-hour export (vtest, 45 times back to back),
/// plus the time a playlist of that hour takes. A measurement, not a check: run with
/// `cargo test --release --test playback_api -- --ignored --nocapture`.
#[test]
#[ignore]
fn export_of_an_hour() {
    let fx = fixture();
    let dir = fx.dir.join("hour");
    std::fs::create_dir_all(&dir).unwrap();
    let start = T0 + 86_400 * SECOND;
    let one = write_segment(&dir, "hour", &fx.track, 0..795, start);
    let segments = back_to_back(&one, 46);
    let catalog = GrowingCatalog {
        path: dir.join(&one.file),
        segments,
        initial: usize::MAX / 2,
        interval: Duration::from_secs(1),
        started: std::time::Instant::now(),
    };
    let addr = start_server(Arc::new(catalog), None);
    let path = format!("/api/videos/porch/export.mp4?start={}&end={}", rfc(start), rfc(start + 3600 * SECOND));
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = s.read(&mut buf).unwrap();
    let ttfb = t.elapsed();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n.min(300)]));
    let mut total = n as u64;
    loop {
        match s.read(&mut buf).unwrap() {
            0 => break,
            k => total += k as u64,
        }
    }
    let all = t.elapsed();
    let t = std::time::Instant::now();
    let playlist = http(addr, "GET", &path.replace("export.mp4", "playlist.m3u8"), &[]);
    let playlist_time = t.elapsed();
    assert_eq!(playlist.status, 200);
    eprintln!(
        "one-hour export: {} MB, first byte after {:.1} ms, all after {:.2} s ({:.0} MB/s); its playlist ({} fragments) in {:.1} ms",
        total / 1_000_000,
        ttfb.as_secs_f64() * 1000.0,
        all.as_secs_f64(),
        total as f64 / 1e6 / all.as_secs_f64(),
        String::from_utf8_lossy(&playlist.body).matches("#EXTINF").count(),
        playlist_time.as_secs_f64() * 1000.0
    );
}
