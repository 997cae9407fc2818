//! The player page in headless Chromium over a real video store: the list, the timeline with its gap, clicks that play from the clicked wall-clock time (on across the pause and a change of picture size), the download link of a shift-drag selection, the live edge, zoom and pan.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them); fails,
//! rather than skips, without them. Saves a screenshot to
//! `target/test-artifacts/player-page.png`.

#[path = "common/webdriver.rs"]
mod webdriver;

#[path = "common/source.rs"]
mod source;
use source::Source;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use vela::playback::time::{format_time, parse_time};
use vela::recording::{Nanos, Span, StoreLimits, VideoSettings, VideoStore};
use webdriver::Browser;

const S: Nanos = 1_000_000_000;
const MS: Nanos = 1_000_000;
/// vtest.mkv's GOP: a wall time shown may lie this much before the one asked for (playback
/// starts at the keyframe at or before it) on top of the ±2 s the test allows.
const GOP: Nanos = 2 * S;
const TOKEN: &str = "s3cret";
/// Prints the page's state when a wait times out.
const DIAGNOSE: &str = "return window.vela ? window.vela.state() : document.documentElement.outerHTML.slice(0, 3000)";

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media").join(name)
}

fn now_ns() -> Nanos {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as Nanos
}

fn rfc(ns: Nanos) -> String {
    format_time(ns)
}

fn parse(v: &Value) -> Nanos {
    parse_time("test", v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

fn settings(title: &str) -> VideoSettings {
    VideoSettings { title: title.into(), description: String::new(), segment_length: 30 * S, retention: None, max_bytes: None }
}

/// What "lobby" holds: two recorded ranges 5 minutes apart; the second changes picture
/// size (768x576 → 640x272) at `change`.
struct Lobby {
    a: Span,
    b: Span,
    change: Nanos,
}

/// Records "lobby", all in the past: vtest for 2 min, a 5 min pause, then 30 s of vtest,
/// bikes.mkv (another picture size, 10 s), 20 s of vtest.
fn record_lobby(store: &VideoStore, videos: &Path) -> Lobby {
    let (vtest, bikes) = (Source::load(&media("vtest.mkv")), Source::load(&media("bikes.mkv")));
    store.ensure_video("lobby", videos, settings("Lobby camera")).unwrap();
    let mut w = store.writer("lobby").unwrap();
    // Runs of vtest end at a keyframe, so the next run (or a pause) starts with one.
    let vtest_run = |w: &mut vela::recording::SegmentWriter, i: &mut usize, wall: &mut Nanos, secs: i64| {
        let until = *wall + secs * S;
        while *wall < until || !vtest.is_key(*i) {
            w.push(&vtest.sample(*i, *wall)).unwrap();
            *wall += vtest.frame_ns;
            *i += 1;
        }
    };
    let t0 = (now_ns() - 15 * 60 * S) / S * S;
    let (mut wall, mut i) = (t0, 0);
    vtest_run(&mut w, &mut i, &mut wall, 120);
    let a = Span { start: t0, end: wall };
    wall += 300 * S;
    let b_start = wall;
    vtest_run(&mut w, &mut i, &mut wall, 30);
    let change = wall;
    for f in 0..bikes.frames.len() {
        w.push(&bikes.sample(f, wall)).unwrap();
        wall += bikes.frame_ns;
    }
    vtest_run(&mut w, &mut 0, &mut wall, 20);
    assert_eq!(w.dropped(), 0);
    w.close().unwrap();
    let lobby = Lobby { a, b: Span { start: b_start, end: wall }, change };
    assert!(lobby.b.end < now_ns() - 5 * 60 * S);
    lobby
}

/// The inference metadata written for lobby's first range: `start` … `start` + 20 s.
struct Meta {
    start: Nanos,
    end: Nanos,
    /// When the line crossing event is.
    event: Nanos,
}

const PERSON_TRACK: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const CAR_TRACK: &str = "c3d4e5f60718293a4b5c6d7e8f90a1b2";
/// l, t, w, h, normalised to the picture.
const PERSON_BOX: [f64; 4] = [0.10, 0.20, 0.30, 0.40];
const MOTION_BOX: [f64; 4] = [0.45, 0.75, 0.10, 0.10];
/// The tracker's entries are this far apart; the motion detector's five times as far.
const META_STEP: Nanos = 100 * MS;

/// The car of the tracker's `k`th entry: it jumps 2 % of the picture's width from one
/// entry to the next (10 positions), so that drawing another entry than the one due shows.
fn car_box(k: i64) -> [f64; 4] {
    [0.55 + 0.02 * (k % 10) as f64, 0.45, 0.15, 0.30]
}

fn entity(id: i64, track: &str, tag: &str, confidence: f64, b: [f64; 4]) -> Value {
    json!({"type": "entity", "subtype": "objectDetection", "inferenceId": format!("{id:032x}"), "sequenceId": track,
           "entity": {"tag": {"value": tag, "confidence": confidence}, "box": {"l": b[0], "t": b[1], "w": b[2], "h": b[3]}}})
}

/// Writes what analytics would have recorded with lobby from 60 s into its first range,
/// for 20 s: every 100 ms a person standing still and a car jumping about (the
/// "objectTracker"), every 500 ms a motion box (the "motionDetector", at the same instants
/// as every fifth tracker entry), and a line crossing 5 s in.
fn record_metadata(store: &VideoStore, lobby: &Lobby) -> Meta {
    let start = lobby.a.start + 60 * S;
    let n = 200;
    for k in 0..n {
        let t = start + k * META_STEP;
        let tracked =
            json!([entity(2 * k, PERSON_TRACK, "person", 0.93, PERSON_BOX), entity(2 * k + 1, CAR_TRACK, "car", 0.8, car_box(k))]);
        store.put_metadata("lobby", t, "objectTracker", &tracked).unwrap();
        if k % 5 == 0 {
            let b = MOTION_BOX;
            let motion = json!([{"type": "motion", "motion": {"box": {"l": b[0], "t": b[1], "w": b[2], "h": b[3]}}}]);
            store.put_metadata("lobby", t, "motionDetector", &motion).unwrap();
        }
    }
    let event = start + 5 * S + 50 * MS;
    let crossing = json!([{"type": "event", "subtype": "lineCrossing", "event": {"name": "LineCrossing1",
        "properties": {"direction": "clockwise", "total": "3", "clockwiseTotal": "2", "counterclockwiseTotal": "1"}}}]);
    store.put_metadata("lobby", event, "lineCrossing", &crossing).unwrap();
    Meta { start, end: start + n * META_STEP, event }
}

/// Records "gate" live: 40 s of vtest up to now at once, then a frame every 100 ms as the
/// clock reaches it, until `stop`.
fn record_live(store: &VideoStore, videos: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    store.ensure_video("gate", videos, settings("Gate camera")).unwrap();
    let mut w = store.writer("gate").unwrap();
    std::thread::spawn(move || {
        let vtest = Source::load(&media("vtest.mkv"));
        let mut wall = (now_ns() - 40 * S) / S * S;
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let ahead = wall - now_ns();
            if ahead > 0 {
                std::thread::sleep(Duration::from_nanos(ahead.min(50 * MS) as u64));
                continue;
            }
            w.push(&vtest.sample(i, wall)).unwrap();
            wall += vtest.frame_ns;
            i += 1;
        }
        w.close().unwrap();
    })
}

/// Serves the store's playback API and the page on an actix system of its own.
fn start_server(store: VideoStore) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let serving = vela::playback::Playback::new(Arc::new(store), Some(TOKEN.into())).serve("127.0.0.1:0").unwrap();
            tx.send(serving.addr).unwrap();
            serving.server.await
        })
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), PathBuf::from);
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// On a failure: a screenshot and the page's state, for whoever reads the log.
struct OnFailure<'a>(&'a Browser);

impl Drop for OnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(png) = self.0.screenshot() {
                let path = artifacts().join("player-page-failure.png");
                if std::fs::write(&path, png).is_ok() {
                    eprintln!("screenshot of the failure: {}", path.display());
                }
            }
            if let Ok(state) = self.0.execute(DIAGNOSE, vec![]) {
                eprintln!("page state at the failure: {state:#}");
            }
        }
    }
}

/// The page's own view of itself.
fn state(b: &Browser) -> Value {
    b.execute("return window.vela.state()", vec![]).unwrap()
}

/// Viewport coordinates of wall time `t` on the timeline's recorded-ranges bar, and the
/// time the page maps that (whole) pixel back to.
fn timeline_point(b: &Browser, t: Nanos) -> (i64, i64, Nanos) {
    let v = b
        .execute(
            "const r = document.querySelector('#timeline canvas').getBoundingClientRect();
             const x = Math.round(r.left + window.vela.timeToX(arguments[0]));
             const y = Math.round(r.top + window.vela.state().timeline.barY);
             if (x < r.left || x > r.right) return {off: true, x, left: r.left, right: r.right};
             return {x, y, time: window.vela.xToTime(x - r.left)};",
            vec![json!(rfc(t))],
        )
        .unwrap();
    assert!(v["off"].is_null(), "{} is not on the visible timeline: {v}; {}", rfc(t), state(b)["view"]);
    (v["x"].as_i64().unwrap(), v["y"].as_i64().unwrap(), parse(&v["time"]))
}

/// Waits until the video plays (readyState ≥ 3, not paused, currentTime advancing);
/// returns the wall time shown then and the page state.
fn wait_playing(b: &Browser, what: &str) -> (Nanos, Value) {
    let r = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const v = document.getElementById('video');
             const deadline = Date.now() + 20000;
             (function poll(prev) {
               const now = {t: v.currentTime, rs: v.readyState, paused: v.paused};
               if (prev && now.rs >= 3 && !now.paused && now.t > prev.t + 0.05) return done({wall: window.vela.wallTime(), state: window.vela.state()});
               if (Date.now() > deadline) return done({timeout: true, state: window.vela.state()});
               setTimeout(() => poll(now), 200);
             })(null);",
            vec![],
        )
        .unwrap();
    assert!(r["timeout"].is_null(), "{what}: the video does not play: {:#}", r["state"]);
    (parse(&r["wall"]), r["state"].clone())
}

fn secs(ns: Nanos) -> f64 {
    ns as f64 / S as f64
}

/// The video element's box and picture size, the overlay canvas's box and size, the wall
/// time shown and the overlay's state, read at once.
fn overlay_geometry(b: &Browser) -> Value {
    b.execute(
        "const v = document.getElementById('video');
         const c = document.getElementById('overlay');
         const vr = v.getBoundingClientRect();
         const cr = c.getBoundingClientRect();
         return {video: {left: vr.left, top: vr.top, width: vr.width, height: vr.height, vw: v.videoWidth, vh: v.videoHeight},
                 canvas: {left: cr.left, top: cr.top, width: cr.width, height: cr.height, pw: c.width, ph: c.height},
                 wall: window.vela.wallTime(), paused: v.paused, overlay: window.vela.state().overlay};",
        vec![],
    )
    .unwrap()
}

/// Where `object-fit: contain` puts the picture in the video element, computed here from
/// the element's box and the picture's size: [x, y, w, h] in CSS px from its top-left corner.
fn picture_rect(g: &Value) -> [f64; 4] {
    let f = |k: &str| g["video"][k].as_f64().unwrap_or_else(|| panic!("{k}: {g}"));
    let (w, h, vw, vh) = (f("width"), f("height"), f("vw"), f("vh"));
    assert!(w > 0.0 && h > 0.0 && vw > 0.0 && vh > 0.0, "{g}");
    let scale = (w / vw).min(h / vh);
    let (cw, ch) = (vw * scale, vh * scale);
    [(w - cw) / 2.0, (h - ch) / 2.0, cw, ch]
}

/// The RGBA of the overlay canvas's pixels under points given in CSS px from the video
/// element's top-left corner (null off the canvas).
fn overlay_pixels(b: &Browser, points: &[(f64, f64)]) -> Vec<Option<[u8; 4]>> {
    let v = b
        .execute(
            "const v = document.getElementById('video');
             const c = document.getElementById('overlay');
             const vr = v.getBoundingClientRect();
             const cr = c.getBoundingClientRect();
             const g = c.getContext('2d');
             return arguments[0].map(([x, y]) => {
               const px = Math.floor((vr.left + x - cr.left) * c.width / cr.width);
               const py = Math.floor((vr.top + y - cr.top) * c.height / cr.height);
               if (px < 0 || py < 0 || px >= c.width || py >= c.height) return null;
               return Array.from(g.getImageData(px, py, 1, 1).data);
             });",
            vec![json!(points.iter().map(|&(x, y)| [x, y]).collect::<Vec<_>>())],
        )
        .unwrap();
    v.as_array().unwrap().iter().map(|p| p.as_array().map(|a| std::array::from_fn(|i| a[i].as_u64().unwrap() as u8))).collect()
}

/// How many pixels of the overlay canvas are not transparent, and what the page says it drew.
fn overlay_painted(b: &Browser) -> (u64, Value) {
    let v = b
        .execute(
            "const c = document.getElementById('overlay');
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0;
             for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
             return {painted: n, overlay: window.vela.state().overlay};",
            vec![],
        )
        .unwrap();
    (v["painted"].as_u64().unwrap(), v["overlay"].clone())
}

fn hex_rgb(colour: &str) -> [u8; 3] {
    let c = colour.strip_prefix('#').unwrap_or_else(|| panic!("not #rrggbb: {colour}"));
    std::array::from_fn(|i| u8::from_str_radix(&c[2 * i..2 * i + 2], 16).unwrap())
}

/// Checks the overlay of a paused video against the metadata written: the boxes the page
/// says it drew are where the picture rect (computed here) × the normalised boxes put them,
/// from the entries due at the wall time shown; and the canvas is painted in each track's
/// colour on the boxes' edges and not inside them. Returns the page's geometry.
fn check_overlay(b: &Browser, meta: &Meta, what: &str) -> Value {
    let g = overlay_geometry(b);
    assert_eq!(g["paused"], true, "{what}: check a paused video");
    let [px, py, pw, ph] = picture_rect(&g);
    // The canvas lies over the video element.
    for (k, v) in [("left", "left"), ("top", "top"), ("width", "width"), ("height", "height")] {
        let (c, e) = (g["canvas"][k].as_f64().unwrap(), g["video"][v].as_f64().unwrap());
        assert!((c - e).abs() <= 1.0, "{what}: the overlay's {k} is {c}, the video's {e}: {g:#}");
    }
    let wall = parse(&g["wall"]);
    assert!(wall >= meta.start && wall < meta.end, "{what}: paused at {} outside the metadata: {g:#}", rfc(wall));
    let drawn = g["overlay"]["drawn"].as_array().unwrap_or_else(|| panic!("{what}: no overlay state: {g:#}"));
    let mut labels: Vec<&str> = drawn.iter().map(|d| d["label"].as_str().unwrap()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["car 80% #c3d4", "motion", "person 93% #a1b2"], "{what}: {g:#}");
    let mut colours = std::collections::HashMap::new();
    for d in drawn {
        let label = d["label"].as_str().unwrap();
        let time = parse(&d["time"]);
        let k = (time - meta.start) / META_STEP;
        assert_eq!(meta.start + k * META_STEP, time, "{what}: {label} from an entry that was not written: {d}");
        // The latest entry of its source at or before the wall time shown (to the
        // millisecond of wallTime()).
        let step = if label == "motion" { 5 * META_STEP } else { META_STEP };
        assert!(time <= wall + MS && wall - time < step + MS, "{what}: {label} of {} shown at {}", rfc(time), rfc(wall));
        let normalised = match label {
            "motion" => MOTION_BOX,
            "person 93% #a1b2" => PERSON_BOX,
            _ => car_box(k),
        };
        let expected = [px + normalised[0] * pw, py + normalised[1] * ph, normalised[2] * pw, normalised[3] * ph];
        let got = ["x", "y", "w", "h"].map(|k| d[k].as_f64().unwrap());
        for i in 0..4 {
            assert!(
                (got[i] - expected[i]).abs() <= 2.0,
                "{what}: {label} drawn at {got:?}, expected {expected:?} (picture {:?})",
                [px, py, pw, ph]
            );
        }
        // The pixels: the box's edges in its colour, its inside clear. Points are taken from
        // the expected rectangle, not from what the page says.
        let [x, y, w, h] = expected;
        let points = [(x, y + h / 2.0), (x + w, y + h / 2.0), (x + w * 0.75, y), (x + w / 2.0, y + h), (x + w / 2.0, y + h / 2.0)];
        let pixels = overlay_pixels(b, &points);
        let colour = d["colour"].as_str().unwrap();
        let rgb = hex_rgb(colour);
        for (p, at) in pixels[..4].iter().zip(&points) {
            let p = p.unwrap_or_else(|| panic!("{what}: {at:?} is off the canvas"));
            let close = (0..3).all(|i| (p[i] as i32 - rgb[i] as i32).abs() <= 24);
            assert!(p[3] >= 160 && close, "{what}: {label}'s edge at {at:?} is {p:?}, not {colour}");
        }
        assert_eq!(pixels[4].map(|p| p[3]), Some(0), "{what}: {label} is filled at its centre {:?}", points[4]);
        colours.insert(label.split(' ').next().unwrap().to_owned(), colour.to_owned());
        if let Some(track) = d["track"].as_str() {
            assert!(label.ends_with(&format!("#{}", &track[..4])), "{what}: {d}");
        }
    }
    assert_ne!(colours["person"], colours["car"], "{what}: two tracks, one colour");
    g
}

#[test]
fn the_player_page_plays_what_the_timeline_is_clicked_at() {
    let started = Instant::now();
    // Directories of earlier runs that failed (a failure leaves its directory to look at)
    // and have ended; and the last failure's screenshot, now stale.
    for old in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("vela-player-page-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
    }
    let _ = std::fs::remove_file(artifacts().join("player-page-failure.png"));
    let dir = std::env::temp_dir().join(format!("vela-player-page-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    let lobby = record_lobby(&store, &dir.join("videos"));
    let meta = record_metadata(&store, &lobby);
    let stop = Arc::new(AtomicBool::new(false));
    let live = record_live(&store, &dir.join("videos"), stop.clone());
    let addr = start_server(store.clone());
    let page_url = |path: &str| format!("http://{addr}{path}");

    let browser = Browser::start(1280, 900);
    let b = &browser;
    let _on_failure = OnFailure(b);
    eprintln!("fixture, server and browser ready after {:?}", started.elapsed());

    // Without the token the page loads (it holds no data) but the API refuses it, and the
    // page says how to get in.
    b.navigate(&page_url("/"));
    b.wait_until(
        "the page to report the missing token",
        Duration::from_secs(10),
        "const s = document.getElementById('status').textContent; return s.includes('Unauthorized') && s.includes('access_token') && s",
        DIAGNOSE,
    );

    // With it: the list, "gate" marked live and "lobby" not.
    b.navigate(&page_url(&format!("/?access_token={TOKEN}")));
    let item = b.wait_for_element("#videos [data-name=\"lobby\"]", Duration::from_secs(10));
    b.wait_for_element("#videos [data-name=\"gate\"]", Duration::from_secs(10));
    let badges = b
        .execute(
            "return [...document.querySelectorAll('#videos button')].map(e => [e.dataset.name, !e.querySelector('.badge').hidden])",
            vec![],
        )
        .unwrap();
    assert_eq!(badges, json!([["gate", true], ["lobby", false]]));

    // Select "lobby": the timeline shows both ranges and the pause between them.
    b.click(&item).unwrap();
    let s = b.wait_until(
        "the timeline to show lobby's two ranges",
        Duration::from_secs(10),
        "const s = window.vela.state(); return s.video === 'lobby' && s.ranges.length === 2 && s",
        DIAGNOSE,
    );
    let ranges: Vec<(Nanos, Nanos)> = s["ranges"].as_array().unwrap().iter().map(|r| (parse(&r["start"]), parse(&r["end"]))).collect();
    let ms = |t: Nanos| t / MS * MS;
    assert_eq!(ranges, vec![(ms(lobby.a.start), ms(lobby.a.end)), (ms(lobby.b.start), ms(lobby.b.end))]);
    assert!(b.find("#live").is_some());
    assert_eq!(b.execute("return document.getElementById('live').disabled", vec![]).unwrap(), true, "lobby is not live");
    // Drawn: the bar's colour in both ranges is the same, and differs in the gap.
    let colours = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             requestAnimationFrame(() => requestAnimationFrame(() => {
               const c = document.querySelector('#timeline canvas');
               const g = c.getContext('2d');
               const k = c.width / c.clientWidth;
               const y = Math.round(window.vela.state().timeline.barY * k);
               done(arguments[0].map(t => Array.from(g.getImageData(Math.round(window.vela.timeToX(t) * k), y, 1, 1).data)));
             }));",
            vec![json!([rfc(lobby.a.start + 60 * S), rfc(lobby.a.end + 150 * S), rfc(lobby.b.start + 30 * S)])],
        )
        .unwrap();
    assert_eq!(colours[0], colours[2], "both ranges drawn alike: {colours}");
    assert_ne!(colours[0], colours[1], "the gap is visible: {colours}");

    // A real click inside the first range plays from there.
    let (x, y, clicked) = timeline_point(b, lobby.a.start + 40 * S);
    assert!((clicked - (lobby.a.start + 40 * S)).abs() < S, "a pixel is less than a second here");
    b.click_at(x, y).unwrap();
    let (shown, s) = wait_playing(b, "after a click in the first range");
    eprintln!("clicked {}, shown {} (after {:?})", rfc(clicked), rfc(shown), started.elapsed());
    assert_eq!(parse(&s["session"]["target"]), ms(clicked), "the click seeks to the time under the pointer");
    assert!((shown - clicked).abs() <= 2 * S + GOP, "shown {} vs clicked {}", rfc(shown), rfc(clicked));
    assert_eq!((s["media"]["width"].as_u64(), s["media"]["height"].as_u64()), (Some(768), Some(576)));

    // Played into the pause, the player skips it and goes on with the second range.
    let (x, y, _) = timeline_point(b, lobby.a.end - 3 * S);
    b.click_at(x, y).unwrap();
    wait_playing(b, "before the pause");
    let s = b.wait_until(
        "playback to skip the pause",
        Duration::from_secs(15),
        &format!("const w = window.vela.wallTime(); return w && Date.parse(w) > {} && window.vela.state()", (lobby.b.start + S) / MS),
        DIAGNOSE,
    );
    assert!(parse(&s["wallTime"]) < lobby.b.start + 5 * S, "the second range plays from its start: {s:#}");

    // Another click, 3 s before the second range changes picture size: it plays from
    // there, and on across the change, which happens at the wall time it was recorded at.
    let (x, y, clicked) = timeline_point(b, lobby.change - 3 * S);
    b.click_at(x, y).unwrap();
    let (shown, s) = wait_playing(b, "after a click in the second range");
    eprintln!("clicked {}, shown {}", rfc(clicked), rfc(shown));
    assert_eq!(parse(&s["session"]["target"]), ms(clicked));
    assert!((shown - clicked).abs() <= 2 * S + GOP, "shown {} vs clicked {}", rfc(shown), rfc(clicked));
    let resized = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const v = document.getElementById('video');
             if (v.videoWidth === 640) return done({already: true, state: window.vela.state()});
             const timer = setTimeout(() => done({timeout: true, state: window.vela.state()}), 15000);
             v.addEventListener('resize', function on() {
               if (v.videoWidth !== 640) return;
               v.removeEventListener('resize', on);
               clearTimeout(timer);
               done({wall: window.vela.wallTime(), width: v.videoWidth, height: v.videoHeight});
             });",
            vec![],
        )
        .unwrap();
    assert!(resized["wall"].is_string(), "no change of picture size seen: {resized:#}");
    let at = parse(&resized["wall"]);
    eprintln!("picture size changed at {} (recorded at {})", rfc(at), rfc(lobby.change));
    assert!(at >= lobby.change - S / 2 && at <= lobby.change + S, "the new size shows at {} instead of {}", rfc(at), rfc(lobby.change));
    assert_eq!(resized["height"], 272);
    // And playback goes on in the new size.
    b.wait_until(
        "playback to go on after the change of picture size",
        Duration::from_secs(10),
        &format!(
            "const s = window.vela.state(); return s.wallTime && Date.parse(s.wallTime) > {} && s.media.readyState >= 2 && s.media.width === 640 && s",
            (lobby.change + 2 * S) / MS
        ),
        DIAGNOSE,
    );

    // Boxes: off by default. Played where metadata was recorded, nothing is drawn until the
    // toggle is on; then the boxes of the entries due, also after a resize that letterboxes
    // the picture the other way; off again clears the canvas, and so does a part of the
    // recording without metadata.
    let overlay_started = Instant::now();
    let boxes = b.find("#boxes").expect("the Boxes toggle");
    assert_eq!(b.execute("return document.getElementById('boxes').checked", vec![]).unwrap(), false, "Boxes are off by default");
    let (x, y, _) = timeline_point(b, meta.start + 4 * S);
    b.click_at(x, y).unwrap();
    wait_playing(b, "in the metadata");
    std::thread::sleep(Duration::from_millis(300));
    let (painted, o) = overlay_painted(b);
    assert_eq!((painted, o["on"].as_bool(), o["drawn"].as_array().map(Vec::len)), (0, Some(false), Some(0)), "off: {o:#}");
    b.click(&boxes).unwrap();
    b.wait_until(
        "the boxes",
        Duration::from_secs(10),
        "const o = window.vela.state().overlay; return o.on && o.drawn.length === 3 && o",
        DIAGNOSE,
    );
    assert_eq!(b.execute("return localStorage.getItem('vela.boxes')", vec![]).unwrap(), "on", "the toggle is remembered");
    // Paused half a second after the line crossing (the playhead placed exactly, in what is
    // buffered): the boxes of the entries due then, and the event's caption.
    b.click(&b.find("#play").unwrap()).unwrap();
    b.wait_until("a pause in the metadata", Duration::from_secs(5), "return document.getElementById('video').paused", DIAGNOSE);
    let seeked = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const v = document.getElementById('video');
             const timer = setTimeout(() => done({timeout: true, state: window.vela.state()}), 5000);
             v.addEventListener('seeked', () => { clearTimeout(timer); done({wall: window.vela.wallTime()}); }, {once: true});
             v.currentTime = arguments[0] / 1000 - window.vela.state().session.base;",
            vec![json!((meta.event + S / 2) / MS)],
        )
        .unwrap();
    assert!(seeked["timeout"].is_null(), "no seek: {seeked:#}");
    assert!((parse(&seeked["wall"]) - (meta.event + S / 2)).abs() <= MS, "{seeked:#}");
    b.wait_until(
        "the line crossing's caption",
        Duration::from_secs(5),
        "const o = window.vela.state().overlay; return o.captions.includes('LineCrossing1 clockwise') && o.drawn.length === 3",
        DIAGNOSE,
    );
    let g = check_overlay(b, &meta, "paused");
    let picture = picture_rect(&g);
    assert!(picture[0] > 1.0 && picture[1].abs() < 1.0, "the wide window shows the picture with bars left and right: {picture:?}");
    let (painted, _) = overlay_painted(b);
    assert!(painted > 0);
    let shot = artifacts().join("player-overlay.png");
    std::fs::write(&shot, b.screenshot().unwrap()).unwrap();
    eprintln!("screenshot with boxes: {}", shot.display());
    // A narrow window: bars above and below the picture; the boxes follow.
    b.set_window_size(760, 900).unwrap();
    b.wait_until(
        "the overlay to follow a resize",
        Duration::from_secs(5),
        "const o = window.vela.state().overlay; const v = document.getElementById('video');
         return o.content && Math.abs(o.content.w - v.getBoundingClientRect().width) < 1 && o.drawn.length === 3",
        DIAGNOSE,
    );
    let g = check_overlay(b, &meta, "narrow window");
    let picture = picture_rect(&g);
    assert!(picture[1] > 1.0 && picture[0].abs() < 1.0, "the narrow window shows the picture with bars above and below: {picture:?}");
    b.set_window_size(1280, 900).unwrap();
    // Off: nothing drawn, the canvas clear.
    b.click(&boxes).unwrap();
    b.wait_until(
        "the boxes to go",
        Duration::from_secs(5),
        "const o = window.vela.state().overlay; return !o.on && o.drawn.length === 0",
        DIAGNOSE,
    );
    let (painted, o) = overlay_painted(b);
    assert_eq!(painted, 0, "the canvas is cleared when the boxes are off: {o:#}");
    assert_eq!(b.execute("return localStorage.getItem('vela.boxes')", vec![]).unwrap(), "off");
    b.click(&boxes).unwrap();
    b.wait_until("the boxes again", Duration::from_secs(5), "return window.vela.state().overlay.drawn.length === 3", DIAGNOSE);
    check_overlay(b, &meta, "on again");
    // Where nothing was recorded about the pictures (20 s after the metadata), nothing is drawn.
    let (x, y, _) = timeline_point(b, meta.end + 20 * S);
    b.click_at(x, y).unwrap();
    wait_playing(b, "after the metadata");
    let s = b.wait_until(
        "the overlay to have read the metadata there",
        Duration::from_secs(10),
        "const s = window.vela.state(); const o = s.overlay; const w = Date.parse(s.wallTime);
         return o.window && !o.fetching && Date.parse(o.window.start) <= w && w <= Date.parse(o.window.end) && s",
        DIAGNOSE,
    );
    assert!(parse(&s["wallTime"]) > meta.end + 5 * S, "{s:#}");
    std::thread::sleep(Duration::from_millis(200));
    let (painted, o) = overlay_painted(b);
    assert_eq!((painted, o["on"].as_bool(), o["drawn"].as_array().map(Vec::len)), (0, Some(true), Some(0)), "no metadata there: {o:#}");
    assert!(o["error"].is_null(), "{o:#}");
    eprintln!("overlay checked in {:?}", overlay_started.elapsed());

    // Shift-drag selects a range; the download link exports it (with the token, since a
    // link cannot send a header).
    let (x0, y0, from) = timeline_point(b, lobby.a.start + 10 * S);
    let (x1, _, to) = timeline_point(b, lobby.a.start + 50 * S);
    b.drag((x0, y0), (x1, y0), true).unwrap();
    let s = b.wait_until("a selection", Duration::from_secs(5), "const s = window.vela.state(); return s.selection && s", DIAGNOSE);
    let (sel_start, sel_end) = (parse(&s["selection"]["start"]), parse(&s["selection"]["end"]));
    assert_eq!((sel_start, sel_end), (ms(from), ms(to)), "the selection spans the drag");
    let href = s["download"].as_str().unwrap_or_else(|| panic!("no download link: {s}")).to_owned();
    let (path, query) = href.split_once('?').unwrap();
    assert_eq!(path, "api/videos/lobby/export.mp4");
    let params: std::collections::HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert_eq!(parse_time("start", &params["start"]).unwrap(), sel_start, "{href}");
    assert_eq!(parse_time("end", &params["end"]).unwrap(), sel_end, "{href}");
    assert_eq!(params["access_token"], TOKEN);
    let head = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('download').href, {headers: {Range: 'bytes=0-7'}})
               .then(r => r.arrayBuffer().then(body => done({status: r.status, type: r.headers.get('content-type'),
                 start: r.headers.get('x-export-start'), end: r.headers.get('x-export-end'), len: body.byteLength})))
               .catch(e => done({error: String(e)}));",
            vec![],
        )
        .unwrap();
    assert_eq!((head["status"].as_u64(), head["type"].as_str(), head["len"].as_u64()), (Some(206), Some("video/mp4"), Some(8)), "{head}");
    let exported = (parse(&head["start"]), parse(&head["end"]));
    assert!(exported.0 <= sel_start && sel_start - exported.0 <= GOP, "export starts at the keyframe before the selection: {head}");
    assert!(exported.1 >= sel_end && exported.1 - sel_end <= GOP, "{head}");

    let shot = artifacts().join("player-page.png");
    std::fs::write(&shot, b.screenshot().unwrap()).unwrap();
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());

    // A video being recorded: "Live" jumps to its live edge, and playback follows it.
    b.click(&b.find("#videos [data-name=\"gate\"]").unwrap()).unwrap();
    b.wait_until(
        "the live button",
        Duration::from_secs(10),
        "return window.vela.state().video === 'gate' && !document.getElementById('live').disabled",
        DIAGNOSE,
    );
    b.click(&b.find("#live").unwrap()).unwrap();
    let (first, _) = wait_playing(b, "at the live edge");
    let behind = now_ns() - first;
    eprintln!("live: {} s behind", secs(behind));
    assert!(behind > 0 && behind < 12 * S, "live playback shows {} at {}", rfc(first), rfc(now_ns()));
    std::thread::sleep(Duration::from_secs(6));
    let s = state(b);
    let later = parse(&s["wallTime"]);
    assert!(later - first >= 4 * S, "live playback stalls: {} then {}: {s:#}", rfc(first), rfc(later));
    assert!(now_ns() - later < 12 * S, "live playback falls behind: {s:#}");

    // Zoom: buttons halve and double the visible span, the wheel zooms around the pointer;
    // dragging pans. Paused first, so that the view does not follow the playhead meanwhile.
    b.click(&b.find("#play").unwrap()).unwrap();
    b.wait_until("a pause", Duration::from_secs(5), "return document.getElementById('video').paused", DIAGNOSE);
    let span = |s: &Value| parse(&s["view"]["end"]) - parse(&s["view"]["start"]);
    let before = span(&state(b));
    b.click(&b.find("#zoom-in").unwrap()).unwrap();
    let zoomed = span(&state(b));
    assert!((zoomed * 2 - before).abs() < S, "zoom in: {} s → {} s", secs(before), secs(zoomed));
    b.click(&b.find("#zoom-out").unwrap()).unwrap();
    assert!((span(&state(b)) - before).abs() < S);
    let geometry = b
        .execute("const r = document.querySelector('#timeline canvas').getBoundingClientRect(); return [r.left, r.top, r.width]", vec![])
        .unwrap();
    let (left, top, width) = (geometry[0].as_f64().unwrap(), geometry[1].as_f64().unwrap(), geometry[2].as_f64().unwrap());
    let (cx, cy) = ((left + width / 2.0) as i64, (top + 50.0) as i64);
    let at_pointer = |s: &Value| {
        let start = parse(&s["view"]["start"]);
        start + ((cx as f64 - left) / width * span(s) as f64) as Nanos
    };
    let s0 = state(b);
    b.wheel(cx, cy, -300).unwrap();
    let s1 = b.wait_until(
        "the wheel to zoom in",
        Duration::from_secs(5),
        &format!(
            "const s = window.vela.state(); return (Date.parse(s.view.end) - Date.parse(s.view.start)) < {} && s",
            span(&s0) / MS - 1000
        ),
        DIAGNOSE,
    );
    assert!((at_pointer(&s1) - at_pointer(&s0)).abs() < S, "the time under the pointer stays put");
    b.drag((cx, cy), (cx + 200, cy), false).unwrap();
    let s2 = state(b);
    let moved = parse(&s1["view"]["start"]) - parse(&s2["view"]["start"]);
    let expected = (200.0 / width * span(&s1) as f64) as Nanos;
    assert!((moved - expected).abs() < span(&s1) / 50, "dragging 200 px pans by {} s, not {} s", secs(moved), secs(expected));
    assert_eq!(span(&s2), span(&s1));
    // The timeline asked for ranges only now and then (debounced, cached per window).
    let requests = s2["rangeRequests"].as_u64().unwrap();
    assert!(requests <= 15, "{requests} ranges requests");

    // From weeks down to seconds: zoom stops at 62 days and at 10 s, and the ranges of a
    // view of weeks still come (the timeline draws day and second ticks on the way).
    let zoom_out = b.find("#zoom-out").unwrap();
    for _ in 0..20 {
        b.click(&zoom_out).unwrap();
    }
    let s = b.wait_until(
        "the ranges of a 62-day view",
        Duration::from_secs(10),
        "const s = window.vela.state(); return s.rangesWindow && Date.parse(s.rangesWindow.start) <= Date.parse(s.view.start) && s.ranges.length > 0 && s",
        DIAGNOSE,
    );
    assert_eq!(span(&s), 62 * 86_400 * S);
    let zoom_in = b.find("#zoom-in").unwrap();
    for _ in 0..26 {
        b.click(&zoom_in).unwrap();
    }
    assert_eq!(span(&state(b)), 10 * S);
    // No error on the page all along (uncaught exceptions included).
    std::thread::sleep(Duration::from_millis(300));
    let s = state(b);
    assert_eq!(s["log"], json!([]), "the page reported problems: {s:#}");
    // The overlay stayed on, and read the live video's (empty) metadata without a problem.
    let o = &s["overlay"];
    assert_eq!((o["on"].as_bool(), o["video"].as_str()), (Some(true), Some("gate")), "{o:#}");
    assert!(o["error"].is_null() && o["fetches"].as_u64() > Some(0), "{o:#}");

    stop.store(true, Ordering::SeqCst);
    live.join().unwrap();
    drop(_on_failure);
    drop(browser);
    eprintln!("done after {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
