//! Recording benchmark (issue 5): CPU per recorded camera vs `ffmpeg -c copy`, an hour's MP4 export vs `cat`, ranges over a week, index bytes per recorded hour.
//!
//! Footage: a 720p clip made from config/media/vtest.mkv with ffmpeg (libx264 High, no
//! B-frames, 10 fps, GOP 2 s exactly, 20 s) in a scratch folder — nothing is downloaded.
//!
//! 1. `cpu`: N cameras (`--cameras 16,64`) of that clip served by one `vela rtspsim` process
//!    at real time (one symlink per camera, so each camera is its own broadcast), recorded
//!    continuously by a `vela run` process: N live pipelines of the published
//!    `config/topologies/cvr-video-sink.json` (RTSP source → video sink into video `cam-<i>`,
//!    30 s segments). Once all N have emitted RecordingStarted (and 3 s more), the
//!    appliance's CPU (utime+stime from /proc) over `--window` seconds; then, on the same
//!    cameras, N `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 30
//!    -segment_format mp4 -reset_timestamps 1 out-%03d.mp4` over a window of the same
//!    length, as the yardstick. Printed: CPU seconds per camera-minute of both and their
//!    ratio, vela's CPU by thread, bytes written per camera-minute (against the cameras'
//!    own stream), RTSP sessions established, how far each video's newest durable media
//!    lags the clock (vela's playback API), whether the recorders stayed alive, and the
//!    appliance's WARN/ERROR lines. Nothing fails if they cannot keep up: it is reported.
//! 2. `export`: a synthetic hour — the 720p clip looped, 36 000 frames with wall times 100 ms
//!    apart from two hours ago — written by the store's own `SegmentWriter` into a
//!    `VideoStore` in a scratch folder (30 s segments), served by the playback API
//!    (`Playback::serve` on an actix System thread). `GET /api/videos/hour/export.mp4` of the
//!    whole hour over a plain TcpStream, 3 times: time to the first response byte (headers)
//!    and to the first body byte, total time, bytes, MB/s, Content-Length = bytes received.
//!    Beside each run, the yardstick: a `cat`-like sequential read of the same segment files
//!    (256 KiB reads into a sink), and the ratio. Both read through the page cache (the
//!    files were just written), so this is the server's cost, not the disk's. Then a 60 s
//!    window in the middle of the hour, 3 times: time to first byte and total.
//! 3. `ranges`: a week of one video (2 fps 64x64 H.264, GOP 2 s, so 15 fragments per 30 s
//!    segment like a real camera; 7 gaps of minutes scattered) written by the same
//!    `SegmentWriter`: real files, real index (on /dev/shm when it exists: the writer's
//!    300 000 fsyncs cost nothing there, and the index is the same). `GET
//!    /api/videos/week/ranges?start=<7 days ago>&end=<now>` on a keep-alive connection, 200
//!    requests after 20 warm-ups, p50/p99; the same through `Catalog::ranges` directly.
//! 4. `index`: `VideoStore::index_bytes()` (sled on disk) after the hour of 2 and after the
//!    week of 3, per recorded hour; segments per hour; and the segment records' own bytes
//!    per hour (what sled stores before its overhead).
//!
//! Numbers and ratios measured side by side in one run; it never fails on timing, only when
//! something cannot start. Scratch folders go at the end (`VELA_BENCH_KEEP=1` keeps them).
//!
//! `cargo bench --bench recording [-- cpu|export|ranges|index ...] [--cameras 16,64] [--window SECS]`

mod common;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vela::media::mkv::{read_h264_file, EncodedFrame};
use vela::playback::time::format_time;
use vela::recording::{encoding, Catalog, Nanos, StoreLimits, VideoSettings, VideoStore};
use vela::runtime::packet::{VideoParams, VideoSample};

const REPRO: &str = "cargo bench --bench recording --";
const S: Nanos = 1_000_000_000;
/// The 720p clip: 10 fps.
const FRAME: Nanos = S / 10;
/// An hour at 10 fps.
const HOUR_FRAMES: usize = 36_000;
const DAY: Nanos = 24 * 3600 * S;

// ---------------------------------------------------------------------------------------
// Options

struct Opts {
    sections: Vec<String>,
    cameras: Vec<usize>,
    window: Duration,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts { sections: Vec::new(), cameras: vec![16, 64], window: Duration::from_secs(20) };
        let usage = format!("usage: {REPRO} [cpu|export|ranges|index ...] [--cameras 16,64] [--window SECS]");
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--bench" => {} // cargo passes it to harness = false benches
                "--window" => {
                    let v: u64 = args.next().and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("--window needs seconds; {usage}"))?;
                    o.window = Duration::from_secs(v.max(1));
                }
                "--cameras" => {
                    let v = args.next().ok_or_else(|| anyhow!("--cameras needs a list like 16,64; {usage}"))?;
                    o.cameras = v
                        .split(',')
                        .map(|n| n.trim().parse::<usize>().map(|n| n.clamp(1, 256)))
                        .collect::<Result<_, _>>()
                        .map_err(|_| anyhow!("--cameras needs a list like 16,64; {usage}"))?;
                }
                "cpu" | "export" | "ranges" | "index" => o.sections.push(a),
                other => bail!("unknown argument {other:?}; {usage}"),
            }
        }
        Ok(o)
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }
}

// ---------------------------------------------------------------------------------------
// Scratch, footage

/// A scratch folder removed on drop (unless `VELA_BENCH_KEEP=1`).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(mqtt::scratch_dir(tag))
    }

    /// A scratch folder on tmpfs (/dev/shm) when there is one, where fsync costs nothing;
    /// else under the temp dir.
    fn on_tmpfs(tag: &str) -> anyhow::Result<Scratch> {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return Ok(Scratch::new(tag));
        }
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = shm.join(format!("vela-{tag}-{}-{nanos}", std::process::id()));
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Ok(Scratch(dir)),
            Err(_) => Ok(Scratch::new(tag)),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if keep() {
            println!("  (kept {})", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn ffmpeg(args: &[&str], out: &Path) -> anyhow::Result<()> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .arg(out)
        .status()
        .context("cannot run ffmpeg (apt-get install ffmpeg; scripts/test installs it)")?;
    if !status.success() {
        bail!("ffmpeg could not make {}", out.display());
    }
    Ok(())
}

/// 20 s of vtest.mkv at 1280x720, libx264 High, no B-frames, a keyframe every 20 frames (2 s).
fn make_720p(out: &Path) -> anyhow::Result<()> {
    let src = repo().join("config/media/vtest.mkv");
    let src = src.to_str().context("repo path is not UTF-8")?;
    ffmpeg(
        &[
            "-i",
            src,
            "-t",
            "20",
            "-vf",
            "scale=1280:720",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "0",
            "-g",
            "20",
            "-keyint_min",
            "20",
            "-sc_threshold",
            "0",
            "-an",
        ],
        out,
    )
}

/// 2 s of a 64x64 grey picture at 2 fps: one keyframe and three P-frames, looped for the week.
fn make_tiny(out: &Path) -> anyhow::Result<()> {
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=64x64:r=2:d=2",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "0",
            "-g",
            "4",
            "-keyint_min",
            "4",
            "-sc_threshold",
            "0",
        ],
        out,
    )
}

/// A camera stream made of a demuxed clip, looped (as tests/recording_store.rs does).
struct Source {
    params: Arc<VideoParams>,
    frames: Vec<EncodedFrame>,
}

impl Source {
    fn load(path: &Path) -> anyhow::Result<Source> {
        let t = read_h264_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let codec = format!("avc1.{}", t.profile_level_id().context("clip without an SPS")?);
        let params = Arc::new(VideoParams { width: t.width, height: t.height, avcc: Bytes::from(t.avcc.clone()), codec });
        if t.frames.is_empty() || !t.frames[0].keyframe {
            bail!("{}: does not start with a keyframe", path.display());
        }
        Ok(Source { params, frames: t.frames })
    }

    fn sample(&self, i: usize, wall: Nanos) -> VideoSample {
        let f = &self.frames[i % self.frames.len()];
        VideoSample { pts_90k: wall / 100_000 * 9, wall, keyframe: f.keyframe, data: f.data.clone(), params: self.params.clone() }
    }

    fn is_key(&self, i: usize) -> bool {
        self.frames[i % self.frames.len()].keyframe
    }

    /// The stream's bytes per second when played at `fps`.
    fn bytes_per_second(&self, fps: f64) -> f64 {
        self.frames.iter().map(|f| f.data.len() as f64).sum::<f64>() / (self.frames.len() as f64 / fps)
    }
}

fn now_ns() -> Nanos {
    vela::clock::unix_nanos(SystemTime::now())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else { return (0, 0) };
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------
// HTTP, by hand

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// One GET on its own connection (`Connection: close`), timed from before the connect.
struct Fetched {
    status: u16,
    head: String,
    /// First response byte (the status line).
    headers: Duration,
    /// First body byte.
    first_body: Option<Duration>,
    total: Duration,
    body: u64,
    content_length: Option<u64>,
}

impl Fetched {
    fn mb_per_s(&self) -> f64 {
        mb(self.body) / self.total.as_secs_f64()
    }
}

fn fetch_timed(addr: SocketAddr, path: &str) -> anyhow::Result<Fetched> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut buf = vec![0u8; 256 << 10];
    let mut head = Vec::new();
    let mut headers = None;
    let head_len = loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("{path}: the connection closed before the response head");
        }
        headers.get_or_insert_with(|| t0.elapsed());
        head.extend_from_slice(&buf[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let mut body = (head.len() - head_len) as u64;
    let mut first_body = (body > 0).then(|| t0.elapsed());
    head.truncate(head_len);
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        first_body.get_or_insert_with(|| t0.elapsed());
        body += n as u64;
    }
    let total = t0.elapsed();
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_length = header(&head, "content-length").and_then(|v| v.parse().ok());
    Ok(Fetched { status, headers: headers.unwrap_or(total), first_body, total, body, content_length, head })
}

/// A keep-alive HTTP/1.1 connection (what a browser's timeline reuses).
struct Http {
    r: BufReader<TcpStream>,
}

impl Http {
    fn connect(addr: SocketAddr) -> anyhow::Result<Http> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Http { r: BufReader::with_capacity(64 << 10, s) })
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            bail!("the server closed the connection");
        }
        Ok(l)
    }

    fn get(&mut self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        write!(self.r.get_mut(), "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        let status_line = self.line()?;
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).context("not an HTTP response")?;
        let (mut len, mut chunked) = (0usize, false);
        loop {
            let l = self.line()?;
            if l.trim().is_empty() {
                break;
            }
            if let Some(v) = header(&l, "content-length") {
                len = v.parse()?;
            }
            if header(&l, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = usize::from_str_radix(self.line()?.split(';').next().unwrap_or("").trim(), 16)?;
                if size == 0 {
                    while !self.line()?.trim().is_empty() {}
                    break;
                }
                let at = body.len();
                body.resize(at + size, 0);
                self.r.read_exact(&mut body[at..])?;
                self.line()?;
            }
        } else {
            body.resize(len, 0);
            self.r.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

/// The playback API of a store on an actix System thread of its own.
struct Server {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn serve(store: &VideoStore) -> anyhow::Result<Server> {
    let catalog: Arc<dyn Catalog> = Arc::new(store.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = actix_rt::System::new().block_on(async move {
            match vela::playback::Playback::new(catalog, None).serve("127.0.0.1:0") {
                Ok(s) => {
                    let _ = tx.send(Ok((s.addr, s.handle.clone())));
                    s.server.await
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    Ok(())
                }
            }
        });
    });
    let (addr, handle) = rx.recv_timeout(Duration::from_secs(30)).context("the playback server did not start")??;
    Ok(Server { addr, handle, thread: Some(thread) })
}

impl Drop for Server {
    fn drop(&mut self) {
        futures::executor::block_on(self.handle.stop(true));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Synthetic recordings (sections 2–4)

/// One video recorded into a store of its own by the store's writer.
struct Recorded {
    store: VideoStore,
    name: &'static str,
    video_dir: PathBuf,
    start: Nanos,
    end: Nanos,
    built: Duration,
    frames: usize,
    gaps: usize,
    _dir: Scratch,
}

fn settings(title: &str) -> VideoSettings {
    VideoSettings { title: title.into(), description: String::new(), segment_length: 30 * S, retention: None, max_bytes: None }
}

fn open_store(dir: &Path, name: &str, title: &str) -> anyhow::Result<VideoStore> {
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default())?;
    store.ensure_video(name, &dir.join("videos"), settings(title))?;
    Ok(store)
}

fn finish(store: VideoStore, name: &'static str, dir: Scratch, built: Duration, frames: usize, gaps: usize) -> anyhow::Result<Recorded> {
    let all = store.ranges(name, i64::MIN, i64::MAX)?.unwrap_or_default();
    let (start, end) = match (all.first(), all.last()) {
        (Some(a), Some(b)) => (a.start, b.end),
        _ => bail!("video '{name}': nothing recorded"),
    };
    let video_dir = store.video_dir(name).context("video without a directory")?;
    Ok(Recorded { store, name, video_dir, start, end, built, frames, gaps, _dir: dir })
}

/// An hour of the 720p clip, looped, 100 ms per frame from two hours ago.
fn record_hour(clip: &Path) -> anyhow::Result<Recorded> {
    let dir = Scratch::new("bench-recording-hour");
    let src = Source::load(clip)?;
    let store = open_store(&dir.0, "hour", "bench: a synthetic hour")?;
    let t0 = Instant::now();
    let start = now_ns() - 2 * 3600 * S;
    let mut w = store.writer("hour")?;
    for i in 0..HOUR_FRAMES {
        w.push(&src.sample(i, start + i as Nanos * FRAME))?;
    }
    w.close()?;
    finish(store, "hour", dir, t0.elapsed(), HOUR_FRAMES, 0)
}

/// Seven days up to now of a tiny stream (2 fps, GOP 2 s), with a gap of a few minutes
/// every 21 hours (at a keyframe, so nothing is dropped).
///
/// On tmpfs when there is one: the writer fsyncs every 2 s fragment (300 000 in a week),
/// which on a disk shared with builds took from 40 s to 10 minutes; the index and the
/// files are the same either way, and they are what sections 3 and 4 measure.
fn record_week(tiny: &Path) -> anyhow::Result<Recorded> {
    let dir = Scratch::on_tmpfs("bench-recording-week")?;
    let src = Source::load(tiny)?;
    let store = open_store(&dir.0, "week", "bench: a week")?;
    let t0 = Instant::now();
    let step = S / 2;
    let end = now_ns();
    let start = end - 7 * DAY;
    let mut w = store.writer("week")?;
    let (mut wall, mut i, mut gaps) = (start, 0usize, 0usize);
    let mut next_gap = start + 21 * 3600 * S;
    while wall < end {
        if wall >= next_gap && src.is_key(i) {
            wall += (2 + 3 * gaps as Nanos) * 60 * S;
            gaps += 1;
            next_gap += 21 * 3600 * S;
            continue;
        }
        w.push(&src.sample(i, wall))?;
        wall += step;
        i += 1;
    }
    w.close()?;
    finish(store, "week", dir, t0.elapsed(), i, gaps)
}

// ---------------------------------------------------------------------------------------
// 2. Export

struct ExportResult {
    runs: Vec<(Fetched, u64, Duration)>,
    window: Vec<Fetched>,
}

/// Reads every file of `dir` sequentially into a sink, 256 KiB at a time: (bytes, files, time).
fn cat_dir(dir: &Path) -> anyhow::Result<(u64, usize, Duration)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    for f in &files {
        let mut file = std::fs::File::open(f)?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += std::hint::black_box(n) as u64;
        }
    }
    Ok((total, files.len(), t0.elapsed()))
}

fn export_section(hour: &Recorded) -> anyhow::Result<ExportResult> {
    let server = serve(&hour.store)?;
    let base = format!("http://{}", server.addr);
    let path = format!("/api/videos/{}/export.mp4?start={}&end={}", hour.name, format_time(hour.start), format_time(hour.end));
    println!("  served by Playback::serve at {base}; GET {path}");
    let mut runs = Vec::new();
    for k in 1..=3 {
        let f = fetch_timed(server.addr, &path)?;
        if f.status != 200 {
            bail!("export answered {}: {}", f.status, f.head.lines().next().unwrap_or(""));
        }
        if k == 1 {
            let h = |n: &str| header(&f.head, n).unwrap_or("-").to_string();
            println!(
                "  X-Export-Start {} X-Export-End {} X-Export-Fragments {}{}",
                h("x-export-start"),
                h("x-export-end"),
                h("x-export-fragments"),
                header(&f.head, "x-export-truncated").map_or(String::new(), |t| format!(" X-Export-Truncated: {t}"))
            );
        }
        let (cat_bytes, files, cat_time) = cat_dir(&hour.video_dir)?;
        let cat_rate = mb(cat_bytes) / cat_time.as_secs_f64();
        let cl = match f.content_length {
            Some(n) if n == f.body => format!("Content-Length {n} = bytes received"),
            Some(n) => format!("Content-Length {n} ≠ {} bytes received!", f.body),
            None => "no Content-Length!".to_string(),
        };
        println!(
            "  run {k}: export headers after {:.1} ms, first body byte after {:.1} ms, {:.1} MB in {:.2} s = {:.0} MB/s ({cl}); \
             cat of the {files} segment files: {:.1} MB in {:.2} s = {:.0} MB/s → export/cat {:.2}×",
            ms(f.headers),
            f.first_body.map_or(f64::NAN, ms),
            mb(f.body),
            f.total.as_secs_f64(),
            f.mb_per_s(),
            mb(cat_bytes),
            cat_time.as_secs_f64(),
            cat_rate,
            f.mb_per_s() / cat_rate,
        );
        runs.push((f, cat_bytes, cat_time));
    }
    let w_start = hour.start + 1800 * S;
    let w_path = format!("/api/videos/{}/export.mp4?start={}&end={}", hour.name, format_time(w_start), format_time(w_start + 60 * S));
    println!("  a 60 s window in the middle: GET {w_path}");
    let mut window = Vec::new();
    for k in 1..=3 {
        let f = fetch_timed(server.addr, &w_path)?;
        println!(
            "  run {k}: {} headers after {:.1} ms, first body byte after {:.1} ms, {:.2} MB in {:.1} ms; fragments {}, span {} – {}",
            f.status,
            ms(f.headers),
            f.first_body.map_or(f64::NAN, ms),
            mb(f.body),
            ms(f.total),
            header(&f.head, "x-export-fragments").unwrap_or("-"),
            header(&f.head, "x-export-start").unwrap_or("-"),
            header(&f.head, "x-export-end").unwrap_or("-"),
        );
        window.push(f);
    }
    drop(server);
    Ok(ExportResult { runs, window })
}

// ---------------------------------------------------------------------------------------
// 3. Ranges

struct RangesResult {
    spans: usize,
    http: (Duration, Duration),
    direct: (Duration, Duration),
}

fn p50_p99(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (quantile(&v, 0.5), quantile(&v, 0.99))
}

fn ranges_section(week: &Recorded) -> anyhow::Result<RangesResult> {
    let server = serve(&week.store)?;
    let end = now_ns();
    let start = end - 7 * DAY;
    let path = format!("/api/videos/{}/ranges?start={}&end={}", week.name, format_time(start), format_time(end));
    println!("  GET http://{}{path}", server.addr);
    let mut http = Http::connect(server.addr)?;
    let (status, body) = http.get(&path)?;
    if status != 200 {
        bail!("ranges answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let json: Value = serde_json::from_slice(&body)?;
    let spans = json["ranges"].as_array().map_or(0, Vec::len);
    for _ in 0..20 {
        http.get(&path)?;
    }
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        let (status, _) = http.get(&path)?;
        times.push(t.elapsed());
        if status != 200 {
            bail!("ranges answered {status}");
        }
    }
    let http_q = p50_p99(times);
    let mut direct = Vec::with_capacity(200);
    let mut direct_spans = 0;
    for k in 0..220 {
        let t = Instant::now();
        let r = week.store.ranges(week.name, start, end)?.context("video gone")?;
        if k >= 20 {
            direct.push(t.elapsed());
        }
        direct_spans = r.len();
    }
    let direct_q = p50_p99(direct);
    println!(
        "  over HTTP (keep-alive, {} bytes of JSON, {spans} spans): p50 {:.0} µs, p99 {:.0} µs (200 requests)",
        body.len(),
        us(http_q.0),
        us(http_q.1)
    );
    println!("  Catalog::ranges directly ({direct_spans} spans): p50 {:.1} µs, p99 {:.1} µs (200 calls)", us(direct_q.0), us(direct_q.1));
    drop(server);
    Ok(RangesResult { spans, http: http_q, direct: direct_q })
}

// ---------------------------------------------------------------------------------------
// 4. Index

struct IndexRow {
    what: String,
    hours: f64,
    index_bytes: u64,
    segments: u64,
    record_bytes: u64,
    fragments: u64,
}

fn index_row(r: &Recorded, what: &str) -> anyhow::Result<IndexRow> {
    r.store.flush()?;
    let spans = r.store.ranges(r.name, i64::MIN, i64::MAX)?.unwrap_or_default();
    let hours = spans.iter().map(|s| (s.end - s.start) as f64).sum::<f64>() / (3600 * S) as f64;
    let segs = r.store.segments(r.name, i64::MIN, i64::MAX)?.unwrap_or_default();
    let record_bytes =
        segs.iter().map(|s| (encoding::encode_segment(s).len() + encoding::segment_key(r.name, s.id).len()) as u64).sum::<u64>();
    let fragments = segs.iter().map(|s| s.fragments.len() as u64).sum();
    Ok(IndexRow {
        what: what.to_string(),
        hours,
        index_bytes: r.store.index_bytes()?,
        segments: segs.len() as u64,
        record_bytes,
        fragments,
    })
}

/// What sled takes on disk for a store with one video and nothing recorded: the fixed part.
fn empty_index_bytes() -> anyhow::Result<u64> {
    let dir = Scratch::new("bench-recording-empty");
    let store = open_store(&dir.0, "empty", "bench: nothing")?;
    store.flush()?;
    Ok(store.index_bytes()?)
}

fn show_index(row: &IndexRow) {
    println!(
        "  {}: {:.2} recorded hours, {} segments ({:.1}/hour, {:.1} fragments each); sled on disk {:.2} MB = {:.0} bytes per recorded hour; segment records {:.0} bytes per hour",
        row.what,
        row.hours,
        row.segments,
        row.segments as f64 / row.hours,
        row.fragments as f64 / row.segments.max(1) as f64,
        mb(row.index_bytes),
        row.index_bytes as f64 / row.hours,
        row.record_bytes as f64 / row.hours,
    );
}

// ---------------------------------------------------------------------------------------
// 1. CPU per camera

fn cam_name(i: usize) -> String {
    format!("cam-{i}")
}

fn cam_file(i: usize) -> String {
    format!("cam-{i}.mkv")
}

/// CPU of a set of processes over one window.
struct Win {
    seconds: f64,
    cpu: f64,
    sim: f64,
    /// Whole machine, busy CPU-seconds (all processes, both cores).
    machine: f64,
    /// Bytes written per camera in the window.
    written: Vec<u64>,
    threads: Vec<(String, usize, f64)>,
    alive: (usize, usize),
    sessions: (usize, usize),
    load: String,
}

impl Win {
    fn camera_minutes(&self) -> f64 {
        self.written.len() as f64 * self.seconds / 60.0
    }

    fn per_camera_minute(&self) -> f64 {
        self.cpu / self.camera_minutes()
    }

    fn bytes_per_camera_minute(&self) -> f64 {
        self.written.iter().sum::<u64>() as f64 / self.camera_minutes()
    }
}

async fn measure(pids: &[u32], sim: &RtspSim, dirs: &[PathBuf], window: Duration, hz: f64, threads: bool) -> Win {
    let ticks = |pids: &[u32]| -> Vec<Option<u64>> { pids.iter().map(|p| proc_ticks(*p)).collect() };
    let th0 = if threads { thread_ticks(pids[0]) } else { BTreeMap::new() };
    let b0: Vec<u64> = dirs.iter().map(|d| bytes_under(d)).collect();
    let (load, sessions0) = (loadavg(), sim.sessions());
    let (c0, s0, m0, t0) = (ticks(pids), proc_ticks(sim.pid()).unwrap_or(0), machine_ticks(), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, s1, m1, seconds) = (ticks(pids), proc_ticks(sim.pid()).unwrap_or(0), machine_ticks(), t0.elapsed().as_secs_f64());
    let threads = if threads { thread_groups(&th0, &thread_ticks(pids[0]), hz) } else { Vec::new() };
    let written = dirs.iter().zip(&b0).map(|(d, b)| bytes_under(d).saturating_sub(*b)).collect();
    let cpu: u64 = c0.iter().zip(&c1).map(|(a, b)| b.unwrap_or(0).saturating_sub(a.unwrap_or(0))).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // /proc/stat counts jiffies over all cores: busy share × cores × seconds = CPU-seconds.
    let machine = if m1.1 > m0.1 { (m1.0 - m0.0) as f64 / (m1.1 - m0.1) as f64 * cores * seconds } else { 0.0 };
    Win {
        seconds,
        cpu: cpu as f64 / hz,
        sim: s1.saturating_sub(s0) as f64 / hz,
        machine,
        written,
        threads,
        alive: (c1.iter().filter(|c| c.is_some()).count(), pids.len()),
        sessions: (sessions0, sim.sessions()),
        load,
    }
}

fn show_win(label: &str, w: &Win, stream: f64) {
    let n = w.written.len();
    let (lo, hi) = (w.written.iter().min().copied().unwrap_or(0), w.written.iter().max().copied().unwrap_or(0));
    let per_min = |b: u64| b as f64 / (w.seconds / 60.0);
    println!(
        "  {label:<15} {:>6.2} CPU-s in {:.1} s = {:.4} CPU-s per camera-minute ({:.1} % of one core); rtspsim {:.2} CPU-s; whole machine {:.1} of {:.0} CPU-s busy (load {})",
        w.cpu,
        w.seconds,
        w.per_camera_minute(),
        100.0 * w.cpu / w.seconds,
        w.sim,
        w.machine,
        w.seconds * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        w.load,
    );
    println!(
        "  {:<15} wrote {:.2} MB per camera-minute ({:.2}× the cameras' stream); per camera {:.2}–{:.2} MB/min; RTSP sessions {} → {} of {n}; processes alive {} of {}",
        "",
        w.bytes_per_camera_minute() / 1e6,
        w.bytes_per_camera_minute() / (stream * 60.0),
        per_min(lo) / 1e6,
        per_min(hi) / 1e6,
        w.sessions.0,
        w.sessions.1,
        w.alive.0,
        w.alive.1,
    );
    if !w.threads.is_empty() {
        let top: Vec<String> =
            w.threads.iter().take(7).map(|(name, k, s)| format!("{name}×{k} {s:.2}s ({:.0} %)", 100.0 * s / w.cpu.max(1e-9))).collect();
        println!("  {:<15} threads: {}", "", top.join(", "));
    }
}

struct CpuRow {
    n: usize,
    started: usize,
    started_after: Duration,
    vela: Option<Win>,
    lag: Option<(usize, Duration, Duration)>,
    ffmpeg: Option<Win>,
    ffmpeg_errors: usize,
    log: (usize, Vec<String>),
}

/// (videos listed, median lag, max lag) of the newest durable media behind the clock, from
/// the appliance's playback API.
fn recording_lag(port: u16, n: usize) -> anyhow::Result<(usize, Duration, Duration)> {
    let mut http = Http::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let (status, body) = http.get("/api/videos")?;
    if status != 200 {
        bail!("/api/videos answered {status}");
    }
    let now = now_ns();
    let json: Value = serde_json::from_slice(&body)?;
    let mut lags: Vec<Duration> = Vec::new();
    let mut listed = 0;
    for v in json["videos"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        if !v["name"].as_str().is_some_and(|s| s.starts_with("cam-")) {
            continue;
        }
        listed += 1;
        let end = v["end"].as_str().and_then(vela::clock::parse_rfc3339).map(vela::clock::unix_nanos);
        // A camera with nothing durable yet counts as behind by the whole window.
        lags.push(end.map_or(Duration::MAX, |e| Duration::from_nanos((now - e).max(0) as u64)));
    }
    lags.resize(n.max(lags.len()), Duration::MAX);
    lags.sort();
    Ok((listed, quantile(&lags, 0.5), *lags.last().unwrap_or(&Duration::ZERO)))
}

async fn vela_side(bin: &Path, sim: &RtspSim, n: usize, o: &Opts, hz: f64, stream: f64, row: &mut CpuRow) -> anyhow::Result<()> {
    let mut v = Vela::new(bin, None)?;
    v.start()?;
    println!("  appliance: {} (pid {})", v.command_line(), v.pid());
    let c = v.client("bench").await?;
    let observer = v.client("observer").await?;
    let mut events = observer.inputs().await?;
    let topology: Value = serde_json::from_slice(&std::fs::read(repo().join("config/topologies/cvr-video-sink.json"))?)?;
    let topology_name = topology["name"].as_str().context("topology without a name")?.to_string();
    call_ok(&c, "pipelineTopologySet", topology).await?;
    let t0 = Instant::now();
    for i in 1..=n {
        let instance = json!({
            "@apiVersion": "1.1",
            "name": cam_name(i),
            "properties": { "topologyName": topology_name, "parameters": [
                { "name": "rtspUrl", "value": sim.url(&cam_file(i)) },
                { "name": "videoName", "value": cam_name(i) }
            ]}
        });
        call_ok(&c, "livePipelineSet", instance).await?;
        call_ok(&c, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": cam_name(i)})).await?;
    }
    println!("  {n} live pipelines of {topology_name} set and activated in {:.1} s", t0.elapsed().as_secs_f64());
    let wait = Duration::from_secs(30) + Duration::from_millis(250) * n as u32;
    if !sim.wait_sessions(n, wait) {
        println!("  only {} of {n} RTSP sessions established after {} s", sim.sessions(), wait.as_secs());
    }
    let mut started: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + wait;
    while started.len() < n {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some((_, m))) if m.property("eventType").is_some_and(|t| t.ends_with("Operational.RecordingStarted")) => {
                started.insert(m.property("subject").unwrap_or("").to_string());
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    row.started = started.len();
    row.started_after = t0.elapsed();
    drop(events);
    observer.disconnect().await;
    println!(
        "  RecordingStarted from {} of {n} pipelines, the last {:.1} s after the first activation",
        row.started,
        row.started_after.as_secs_f64()
    );
    // Past the first segment's start and the burst of connections.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dirs: Vec<PathBuf> = (1..=n).map(|i| v.state.join("videos").join(cam_name(i))).collect();
    let w = measure(&[v.pid()], sim, &dirs, o.window, hz, true).await;
    show_win("vela run", &w, stream);
    match recording_lag(v.playback_port, n) {
        Ok(lag) => {
            let show = |d: Duration| if d == Duration::MAX { "never".to_string() } else { format!("{:.1} s", d.as_secs_f64()) };
            println!(
                "  {:<15} newest durable media behind the clock: median {}, worst {} ({} of {n} videos listed; a 2 s GOP is written when it ends)",
                "",
                show(lag.1),
                show(lag.2),
                lag.0
            );
            row.lag = Some(lag);
        }
        Err(e) => println!("  (cannot read the appliance's /api/videos: {e:#})"),
    }
    row.vela = Some(w);
    c.disconnect().await;
    v.stop();
    row.log = v.log_summary();
    if row.log.0 > 0 {
        println!("  the appliance logged {} WARN/ERROR lines:", row.log.0);
        for k in &row.log.1 {
            println!("    {k}");
        }
    } else {
        println!("  the appliance logged no WARN/ERROR lines");
    }
    Ok(())
}

/// `n` ffmpeg RTSP → segmented MP4 stream copies, measured like the appliance.
async fn ffmpeg_side(ffmpeg: &Path, sim: &RtspSim, n: usize, o: &Opts, hz: f64, stream: f64, row: &mut CpuRow) -> anyhow::Result<()> {
    // Let the appliance's sessions go (the camera restarts its file for new viewers).
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.sessions() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    struct Kids(Vec<Child>, Scratch);
    impl Drop for Kids {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let out = Scratch::new("bench-recording-ffmpeg");
    let mut dirs = Vec::new();
    let mut kids = Kids(Vec::new(), out);
    for i in 1..=n {
        let dir = kids.1 .0.join(cam_name(i));
        std::fs::create_dir_all(&dir)?;
        let err = std::fs::File::create(dir.join("ffmpeg.err"))?;
        let child = Command::new(ffmpeg)
            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", &sim.url(&cam_file(i))])
            .args([
                "-c",
                "copy",
                "-f",
                "segment",
                "-segment_time",
                "30",
                "-segment_format",
                "mp4",
                "-reset_timestamps",
                "1",
                "out-%03d.mp4",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .context("cannot run ffmpeg")?;
        kids.0.push(child);
        dirs.push(dir);
    }
    println!(
        "  yardstick: {n} × (cd {}/cam-<i> && {} -nostdin -v error -rtsp_transport tcp -i {} -c copy -f segment -segment_time 30 -segment_format mp4 -reset_timestamps 1 out-%03d.mp4)",
        kids.1 .0.display(),
        ffmpeg.display(),
        sim.url("cam-<i>.mkv"),
    );
    let wait = Duration::from_secs(30) + Duration::from_millis(250) * n as u32;
    if !sim.wait_sessions(n, wait) {
        println!("  only {} of {n} ffmpeg RTSP sessions established after {} s", sim.sessions(), wait.as_secs());
    }
    // Past ffmpeg's probing of the stream: every recorder has written its first bytes.
    let first_bytes = |d: &PathBuf| std::fs::metadata(d.join("out-000.mp4")).map_or(0, |m| m.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    while dirs.iter().any(|d| first_bytes(d) == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let writing = dirs.iter().filter(|d| first_bytes(d) > 0).count();
    if writing < n {
        println!("  only {writing} of {n} ffmpeg recorders had written anything after 20 s");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids: Vec<u32> = kids.0.iter().map(Child::id).collect();
    let w = measure(&pids, sim, &dirs, o.window, hz, false).await;
    show_win("ffmpeg -c copy", &w, stream);
    for c in &kids.0 {
        sigterm(c.id());
    }
    for c in &mut kids.0 {
        wait_or_kill(c, Duration::from_secs(10));
    }
    let mut errors = Vec::new();
    for d in &dirs {
        let text = std::fs::read_to_string(d.join("ffmpeg.err")).unwrap_or_default();
        errors.extend(text.lines().filter(|l| !l.trim().is_empty() && !l.contains("Exiting normally")).map(str::to_string));
    }
    row.ffmpeg_errors = errors.len();
    if !errors.is_empty() {
        println!("  ffmpeg said {} lines, e.g.: {}", errors.len(), errors[0]);
    }
    row.ffmpeg = Some(w);
    Ok(())
}

async fn cpu_section(bin: &Path, clip: &Path, stream: f64, n: usize, o: &Opts, hz: f64) -> anyhow::Result<CpuRow> {
    let media = mqtt::scratch_dir("bench-recording-media");
    for i in 1..=n {
        std::os::unix::fs::symlink(clip, media.join(cam_file(i)))?;
    }
    let sim = RtspSim::start(bin, media, 1.0)?;
    println!("  cameras: {} (cam-1.mkv … cam-{n}.mkv → the 720p clip)", sim.command);
    let mut row = CpuRow {
        n,
        started: 0,
        started_after: Duration::ZERO,
        vela: None,
        lag: None,
        ffmpeg: None,
        ffmpeg_errors: 0,
        log: (0, Vec::new()),
    };
    vela_side(bin, &sim, n, o, hz, stream, &mut row).await?;
    match find_program("ffmpeg") {
        None => println!("  ffmpeg not installed: no yardstick (apt-get install ffmpeg)"),
        Some(ffmpeg) => ffmpeg_side(&ffmpeg, &sim, n, o, hz, stream, &mut row).await?,
    }
    if let (Some(v), Some(f)) = (&row.vela, &row.ffmpeg) {
        println!("  → vela / ffmpeg CPU per camera-minute: {:.2}×", v.per_camera_minute() / f.per_camera_minute());
    }
    Ok(row)
}

// ---------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let o = Opts::parse()?;
    let started = Instant::now();
    let hz = clock_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("vela recording benchmark ({cores} cores, CPU times in {hz} Hz ticks, load average at start {})", loadavg());
    let footage = Scratch::new("bench-recording-footage");
    let clip = footage.0.join("vtest-720p.mkv");
    let t = Instant::now();
    make_720p(&clip)?;
    let source = Source::load(&clip)?;
    let stream = source.bytes_per_second(10.0);
    println!(
        "footage: {} — {} frames at 1280x720, 10 fps, GOP 2 s, {:.0} kB/s ({:.2} MB per camera-minute), made in {:.1} s",
        clip.display(),
        source.frames.len(),
        stream / 1e3,
        stream * 60.0 / 1e6,
        t.elapsed().as_secs_f64()
    );
    drop(source);

    let mut cpu_rows = Vec::new();
    if o.wants("cpu") {
        let bin = vela_binary()?;
        println!("vela: {}", bin.display());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        for &n in &o.cameras {
            println!(
                "\n== 1. CPU per recorded camera: {n} cameras, 720p at real time, {} s windows ({REPRO} cpu --cameras {n} --window {})",
                o.window.as_secs(),
                o.window.as_secs()
            );
            cpu_rows.push(rt.block_on(cpu_section(&bin, &clip, stream, n, &o, hz))?);
        }
    }

    let hour = if o.wants("export") || o.wants("index") {
        println!("\n== the synthetic hour (for {REPRO} export / index)");
        let h = record_hour(&clip)?;
        println!(
            "  {} frames of the 720p clip written by SegmentWriter in {:.1} s ({:.0}× real time) into {}; {} – {}",
            h.frames,
            h.built.as_secs_f64(),
            3600.0 / h.built.as_secs_f64(),
            h.video_dir.display(),
            format_time(h.start),
            format_time(h.end)
        );
        Some(h)
    } else {
        None
    };
    let mut export = None;
    if let (true, Some(h)) = (o.wants("export"), &hour) {
        println!("\n== 2. MP4 export of the whole hour vs cat of its segment files ({REPRO} export)");
        export = Some(export_section(h)?);
    }

    let week = if o.wants("ranges") || o.wants("index") {
        println!("\n== a week of one video (for {REPRO} ranges / index)");
        let tiny = footage.0.join("tiny.mkv");
        make_tiny(&tiny)?;
        let w = record_week(&tiny)?;
        println!(
            "  {} frames (64x64, 2 fps, GOP 2 s) written by SegmentWriter in {:.1} s, {} gaps of 2–{} min; {} – {}; {:.0} MB of segment files in {}",
            w.frames,
            w.built.as_secs_f64(),
            w.gaps,
            2 + 3 * w.gaps.saturating_sub(1),
            format_time(w.start),
            format_time(w.end),
            mb(bytes_under(&w.video_dir)),
            w.video_dir.display()
        );
        Some(w)
    } else {
        None
    };
    let mut ranges = None;
    if let (true, Some(w)) = (o.wants("ranges"), &week) {
        println!("\n== 3. Ranges over 7 days ({REPRO} ranges)");
        ranges = Some(ranges_section(w)?);
    }

    let mut index = Vec::new();
    if o.wants("index") {
        println!("\n== 4. Index size per recorded hour ({REPRO} index)");
        if let Some(h) = &hour {
            index.push(index_row(h, "hour (720p, 2 s GOPs)")?);
        }
        if let Some(w) = &week {
            index.push(index_row(w, "week (64x64, 2 s GOPs)")?);
        }
        let empty = empty_index_bytes()?;
        println!("  (an empty store with one video: sled on disk {empty} bytes — included below)");
        for row in &index {
            show_index(row);
        }
    }

    println!("\n== Summary ({:.1} s in all; load average now {})", started.elapsed().as_secs_f64(), loadavg());
    println!("{:<58} {:<62} reproduce", "measurement", "result");
    let line = |m: &str, r: String, how: &str| println!("{m:<58} {r:<62} {REPRO} {how}");
    for r in &cpu_rows {
        let how = format!("cpu --cameras {} --window {}", r.n, o.window.as_secs());
        let pcm = |w: &Option<Win>| w.as_ref().map_or("n/a".into(), |w| format!("{:.4} CPU-s per camera-minute", w.per_camera_minute()));
        line(&format!("{} cameras: vela run (CVR video sink)", r.n), pcm(&r.vela), &how);
        line(&format!("{} cameras: ffmpeg -c copy → segment mp4", r.n), pcm(&r.ffmpeg), &how);
        let ratio = match (&r.vela, &r.ffmpeg) {
            (Some(v), Some(f)) if f.cpu > 0.0 => format!("{:.2}×", v.per_camera_minute() / f.per_camera_minute()),
            _ => "n/a".into(),
        };
        line(&format!("{} cameras: ratio vela / ffmpeg", r.n), ratio, &how);
        let bytes = |w: &Option<Win>| w.as_ref().map_or("n/a".into(), |w| format!("{:.2}", w.bytes_per_camera_minute() / 1e6));
        line(
            &format!("{} cameras: MB written per camera-minute (vela / ffmpeg)", r.n),
            format!("{} / {} (stream {:.2})", bytes(&r.vela), bytes(&r.ffmpeg), stream * 60.0 / 1e6),
            &how,
        );
        let sessions = |w: &Option<Win>| w.as_ref().map_or("n/a".into(), |w| format!("{}→{}", w.sessions.0, w.sessions.1));
        let lag = r.lag.map_or(
            "n/a".into(),
            |(_, _, max)| {
                if max == Duration::MAX {
                    "never".into()
                } else {
                    format!("{:.1} s", max.as_secs_f64())
                }
            },
        );
        line(
            &format!("{} cameras: sessions (vela / ffmpeg), worst lag, warnings", r.n),
            format!(
                "{}/{} / {}/{}, {lag}, {} WARN/ERROR, {} ffmpeg error lines; {} RecordingStarted",
                sessions(&r.vela),
                r.n,
                sessions(&r.ffmpeg),
                r.n,
                r.log.0,
                r.ffmpeg_errors,
                r.started
            ),
            &how,
        );
    }
    if let Some(e) = &export {
        let rates: Vec<String> = e.runs.iter().map(|(f, _, _)| format!("{:.0}", f.mb_per_s())).collect();
        let cats: Vec<String> = e.runs.iter().map(|(_, b, t)| format!("{:.0}", mb(*b) / t.as_secs_f64())).collect();
        let ratios: Vec<String> = e.runs.iter().map(|(f, b, t)| format!("{:.2}", f.mb_per_s() / (mb(*b) / t.as_secs_f64()))).collect();
        let f = &e.runs[0].0;
        line("export of 1 h (MB), MB/s per run", format!("{:.1} MB; {} MB/s", mb(f.body), rates.join(", ")), "export");
        line("  cat of the same segment files, MB/s per run", format!("{} MB/s", cats.join(", ")), "export");
        line("  ratio export / cat per run", format!("{}×", ratios.join("×, ")), "export");
        let ttfb: Vec<String> =
            e.runs.iter().map(|(f, _, _)| format!("{:.1}/{:.1}", ms(f.headers), f.first_body.map_or(f64::NAN, ms))).collect();
        line("  time to headers / first body byte, ms per run", ttfb.join(", "), "export");
        let ok = e.runs.iter().all(|(f, _, _)| f.content_length == Some(f.body));
        line("  Content-Length = bytes received", (if ok { "yes, every run" } else { "NO" }).to_string(), "export");
        let w: Vec<String> =
            e.window.iter().map(|f| format!("{:.1}/{:.1}/{:.1}", ms(f.headers), f.first_body.map_or(f64::NAN, ms), ms(f.total))).collect();
        line("export of a 60 s window: headers/first byte/total, ms", w.join(", "), "export");
    }
    if let Some(r) = &ranges {
        line(
            &format!("ranges over 7 days ({} spans) over HTTP", r.spans),
            format!("p50 {:.0} µs, p99 {:.0} µs", us(r.http.0), us(r.http.1)),
            "ranges",
        );
        line("  the same through Catalog::ranges", format!("p50 {:.1} µs, p99 {:.1} µs", us(r.direct.0), us(r.direct.1)), "ranges");
    }
    for row in &index {
        line(
            &format!("index: {}", row.what),
            format!(
                "{:.0} B/recorded hour (records {:.0} B), {:.1} segments/hour",
                row.index_bytes as f64 / row.hours,
                row.record_bytes as f64 / row.hours,
                row.segments as f64 / row.hours
            ),
            "index",
        );
    }
    drop(hour);
    drop(week);
    drop(footage);
    Ok(())
}
