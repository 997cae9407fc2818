//! The video store end to end: minutes of vtest recorded at accelerated pace into segments
//! that play and decode to the source frames; gaps from clock jumps; retention deleting
//! exactly the oldest segments; and index/file consistency after `kill -9` mid-recording.

#[path = "common/source.rs"]
mod source;
use source::Source;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vela::recording::retention::Reason;
use vela::recording::{
    recover, scan, spans, Catalog, Fragment, Nanos, Segment, Span, StoreLimits, VideoSettings, VideoStore, Written, GAP_TOLERANCE,
};

const S: Nanos = 1_000_000_000;
/// 2026-11-22T08:00:00Z
const T0: Nanos = 1_795_334_400 * S;

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media").join(name)
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED checks that need {tool}: not on PATH (apt-get install ffmpeg)");
    }
    ok
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vela-recording-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn settings(segment_s: i64) -> VideoSettings {
    VideoSettings { title: "t".into(), description: String::new(), segment_length: segment_s * S, retention: None, max_bytes: None }
}

/// Per-frame MD5s of a file's decoded video, in output order.
fn frame_md5s(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-an", "-vsync", "passthrough", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg cannot decode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|s| s.trim().to_string()))
        .collect()
}

/// `ffprobe -v error` over every packet: (error output, packet count).
fn probe(path: &Path) -> (String, usize) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "v", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let packets = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(usize::MAX);
    (String::from_utf8_lossy(&out.stderr).into_owned(), packets)
}

/// Every segment of a video, oldest first.
fn all_segments(store: &VideoStore, video: &str) -> Vec<Segment> {
    store.segments(video, 0, i64::MAX).unwrap().unwrap()
}

/// The store's index agrees with the files: each indexed segment's file exists, holds
/// exactly the indexed fragments (a box walk finds the same ones) and nothing after them;
/// every segment file is indexed; totals and spans match the segments.
fn assert_consistent(store: &VideoStore, video: &str) {
    let dir = store.video_dir(video).unwrap();
    let segs = all_segments(store, video);
    let mut files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    for seg in &segs {
        assert!(files.remove(&seg.file), "{video}: indexed {} has no file", seg.file);
        let path = store.segment_path(seg);
        let mut f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let s = scan::scan(&mut f, len).unwrap();
        if !seg.open {
            assert_eq!(len, seg.indexed_len(), "{}: file length vs index", seg.file);
            assert_eq!(recover::fragments_of(&s, seg.start), seg.fragments, "{}: fragments in the file vs the index", seg.file);
        } else {
            assert!(s.complete_len >= seg.indexed_len(), "{}: index vouches for bytes the file lacks", seg.file);
        }
        assert_eq!(s.init_len, seg.init_len);
    }
    assert!(files.is_empty(), "{video}: files not in the index: {files:?}");
    let summary = store.videos().unwrap().into_iter().find(|v| v.name == video).unwrap();
    assert_eq!(summary.bytes, segs.iter().map(Segment::indexed_len).sum::<u64>(), "{video}: byte total");
    assert_eq!(summary.segments, segs.len() as u64, "{video}: segment count");
    let want = spans::merge(segs.iter().flat_map(|s| s.fragments.iter().map(|f| Span { start: f.start, end: f.end() })), GAP_TOLERANCE);
    assert_eq!(store.ranges(video, i64::MIN, i64::MAX).unwrap().unwrap(), want, "{video}: spans");
}

/// What was fed: per segment id, the (source, frame index) of each sample, in order.
type Fed = BTreeMap<u64, Vec<(usize, usize)>>;

/// Feeds samples, assigning each to the segment it was written into.
struct Feeder<'a> {
    sources: Vec<&'a Source>,
    writer: vela::recording::SegmentWriter,
    fed: Fed,
    current: Option<u64>,
    written: Vec<Written>,
}

impl Feeder<'_> {
    fn push(&mut self, src: usize, i: usize, wall: Nanos) {
        let out = self.writer.push(&self.sources[src].sample(i, wall)).unwrap();
        for w in &out {
            if let Written::SegmentStarted { id, .. } = w {
                self.current = Some(*id);
            }
        }
        self.written.extend(out);
        self.fed.entry(self.current.expect("a segment is open")).or_default().push((src, i % self.sources[src].frames.len()));
    }
}

#[test]
fn minutes_of_recording_play_and_decode_to_the_source_frames() {
    let dir = scratch("record");
    let (vtest, bikes) = (Source::load(&media("vtest.mkv")), Source::load(&media("bikes.mkv")));
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    store.ensure_video("lobby", &dir.join("videos"), settings(30)).unwrap();
    let mut feed =
        Feeder { sources: vec![&vtest, &bikes], writer: store.writer("lobby").unwrap(), fed: Fed::new(), current: None, written: vec![] };
    assert!(matches!(store.writer("lobby"), Err(vela::recording::StoreError::Busy(_))));

    // Plan (wall clock): 08:00:00 +150 s of vtest; the camera clock jumps 60 s forward;
    // 60 s; it jumps back to 07:50:00; 40 s; the stream switches to bikes.mkv (other
    // parameters) for 10 s; back to vtest for 20 s. Jumps and switches happen at keyframes.
    let mut expected_runs: Vec<Span> = Vec::new();
    let (mut wall, mut i) = (T0, 0usize);
    let mut run_start = wall;
    let vtest_run = |feed: &mut Feeder, wall: &mut Nanos, i: &mut usize, secs: i64| {
        let until = *wall + secs * S;
        while *wall < until || !vtest.is_key(*i) {
            feed.push(0, *i, *wall);
            *wall += vtest.frame_ns;
            *i += 1;
        }
    };
    vtest_run(&mut feed, &mut wall, &mut i, 150);
    expected_runs.push(Span { start: run_start, end: wall });
    wall += 60 * S;
    run_start = wall;
    vtest_run(&mut feed, &mut wall, &mut i, 60);
    expected_runs.push(Span { start: run_start, end: wall });
    let back = T0 - 600 * S;
    assert!(back + 80 * S < T0, "the jump back lands before the first recording");
    wall = back;
    run_start = wall;
    vtest_run(&mut feed, &mut wall, &mut i, 40);
    for b in 0..bikes.frames.len() {
        feed.push(1, b, wall);
        wall += bikes.frame_ns;
    }
    vtest_run(&mut feed, &mut wall, &mut 0, 20);
    expected_runs.push(Span { start: run_start, end: wall });
    let (fed, mut written) = (std::mem::take(&mut feed.fed), std::mem::take(&mut feed.written));
    let dropped = feed.writer.dropped();
    written.extend(feed.writer.close().unwrap());
    assert_eq!(dropped, 0, "jumps at keyframes drop nothing");

    // Ranges: three runs, the jumped-back one first; exact to the frame (the last frame
    // before each gap lasts as long as the one before it).
    expected_runs.sort_by_key(|s| s.start);
    assert_eq!(store.ranges("lobby", i64::MIN, i64::MAX).unwrap().unwrap(), expected_runs);
    let window = store.ranges("lobby", T0 + 60 * S, T0 + 240 * S).unwrap().unwrap();
    let second = expected_runs[2];
    assert_eq!(window, vec![Span { start: T0 + 60 * S, end: expected_runs[1].end }, Span { start: second.start, end: T0 + 240 * S }]);
    assert_eq!(store.ranges("nobody", 0, 1).unwrap(), None);
    assert_eq!(store.segments("nobody", 0, 1).unwrap(), None);

    // Segments: split at the first keyframe 30 s after the start, at each jump and at the
    // parameter change; each starts with a keyframe; the frames fed are the frames indexed.
    let segs = all_segments(&store, "lobby");
    assert_eq!(segs.len(), fed.len());
    let by_id: HashMap<u64, &Segment> = segs.iter().map(|s| (s.id, s)).collect();
    for (id, frames) in &fed {
        let seg = by_id[id];
        assert!(!seg.open);
        assert_eq!(seg.fragments.iter().map(|f| f.frames as usize).sum::<usize>(), frames.len(), "{}", seg.file);
        let dur = seg.end - seg.start;
        assert!(dur <= 32 * S, "{}: {} s", seg.file, dur / S);
        let src = frames[0].0;
        assert_eq!(seg.codec, if src == 0 { "avc1.4d401f" } else { "avc1.4d4015" });
        assert_eq!((seg.width, seg.height), if src == 0 { (768, 576) } else { (640, 272) });
    }
    let starts: Vec<Nanos> = segs.iter().map(|s| s.start).collect();
    assert!(expected_runs.iter().all(|r| starts.contains(&r.start)), "each run starts a segment");
    let lengths: Vec<i64> = segs.iter().map(|s| (s.end - s.start) / 100_000_000).collect();
    eprintln!("{} segments, lengths (0.1 s): {lengths:?}", segs.len());
    // Events: a start and a close per segment, fragments in between.
    let started = written.iter().filter(|w| matches!(w, Written::SegmentStarted { .. })).count();
    let closed = written.iter().filter(|w| matches!(w, Written::SegmentClosed { .. })).count();
    assert_eq!((started, closed), (segs.len(), segs.len()));
    assert_consistent(&store, "lobby");
    let summary = &store.videos().unwrap()[0];
    assert_eq!((summary.start, summary.end, summary.live), (Some(expected_runs[0].start), Some(expected_runs[2].end), false));

    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let md5 = [frame_md5s(&media("vtest.mkv")), frame_md5s(&media("bikes.mkv"))];
    for (id, frames) in &fed {
        let path = store.segment_path(by_id[id]);
        let (errors, packets) = probe(&path);
        assert!(errors.is_empty(), "{}: ffprobe -v error: {errors}", path.display());
        assert_eq!(packets, frames.len(), "{}: packets", path.display());
        let want: Vec<&String> = frames.iter().map(|&(s, i)| &md5[s][i]).collect();
        let got = frame_md5s(&path);
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{}: decoded frames vs the source", path.display());
    }
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

/// Records `n` segments of `segment_s` seconds of vtest into `video`, starting at `start`.
fn record(store: &VideoStore, video: &str, start: Nanos, seconds: i64, src: &Source) {
    let mut w = store.writer(video).unwrap();
    let (mut wall, mut i) = (start, 0);
    while wall < start + seconds * S || !src.is_key(i) {
        w.push(&src.sample(i, wall)).unwrap();
        wall += src.frame_ns;
        i += 1;
    }
    w.close().unwrap();
}

#[test]
fn retention_deletes_exactly_the_oldest_segments() {
    let dir = scratch("retention");
    let vtest = Source::load(&media("vtest.mkv"));
    let cache = dir.join("videos");
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    // a: 60 s retention; b: at most 600 KB; c: no limits of its own.
    store.ensure_video("a", &cache, VideoSettings { retention: Some(60 * S), ..settings(4) }).unwrap();
    store.ensure_video("b", &cache, VideoSettings { max_bytes: Some(600_000), ..settings(4) }).unwrap();
    store.ensure_video("c", &cache, settings(4)).unwrap();
    // Settings apply at creation only; another folder is refused.
    assert_eq!(store.ensure_video("a", &cache, settings(9)).unwrap().retention, Some(60 * S));
    assert!(store.ensure_video("a", &dir.join("elsewhere"), settings(4)).is_err());
    assert!(store.ensure_video("../up", &cache, settings(4)).is_err());
    record(&store, "a", T0, 120, &vtest);
    record(&store, "b", T0 + S, 120, &vtest);
    record(&store, "c", T0 + 2 * S, 120, &vtest);
    let before: HashMap<&str, Vec<Segment>> = ["a", "b", "c"].into_iter().map(|v| (v, all_segments(&store, v))).collect();
    let ids = |v: &str| all_segments(&store, v).iter().map(|s| s.id).collect::<Vec<_>>();

    // Age and per-video size, at now = T0 + 150 s: a keeps segments ending at or after 90 s;
    // b drops its oldest until it fits 600 KB; c untouched. A leased segment of a is kept.
    let now = T0 + 150 * S;
    let lease = store.lease(&before["a"][..1]);
    let r = store.enforce_retention_with(now, &|_| None).unwrap();
    let aged: Vec<u64> = before["a"].iter().skip(1).filter(|s| s.end <= now - 60 * S).map(|s| s.id).collect();
    let mut b_total: u64 = before["b"].iter().map(Segment::indexed_len).sum();
    let mut sized = Vec::new();
    for s in &before["b"] {
        if b_total <= 600_000 {
            break;
        }
        b_total -= s.indexed_len();
        sized.push(s.id);
    }
    let deleted = |r: &vela::recording::RetentionReport, v: &str, why: Reason| {
        r.deleted.iter().filter(|d| d.video == v && d.reason == why).map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(deleted(&r, "a", Reason::Age), aged);
    assert_eq!(deleted(&r, "b", Reason::VideoSize), sized);
    assert_eq!(r.deleted.len(), aged.len() + sized.len());
    assert!(!aged.is_empty() && !sized.is_empty());
    assert_eq!(ids("a")[0], before["a"][0].id, "the leased segment stays");
    drop(lease);
    let r = store.enforce_retention_with(now, &|_| None).unwrap();
    assert_eq!(r.deleted.iter().map(|d| d.id).collect::<Vec<_>>(), vec![before["a"][0].id], "released, it goes");
    for v in ["a", "b", "c"] {
        assert_consistent(&store, v);
    }
    for d in &r.deleted {
        assert!(!d.path.exists());
    }
    let total: u64 = ["a", "b", "c"].iter().flat_map(|v| all_segments(&store, v)).map(|s| s.indexed_len()).sum();
    drop(store);

    // The store limit takes the globally oldest (a, b and c interleave by 1 s).
    let limit = total - 1_000_000;
    let store = VideoStore::open(&dir.join("index"), StoreLimits { max_bytes: Some(limit), min_free_bytes: 0 }).unwrap();
    let current: Vec<Segment> = ["a", "b", "c"].iter().flat_map(|v| all_segments(&store, v)).collect();
    let mut by_age = current.clone();
    by_age.sort_by_key(|s| s.start);
    let mut t: u64 = current.iter().map(Segment::indexed_len).sum();
    let mut want = Vec::new();
    for s in &by_age {
        if t <= limit {
            break;
        }
        t -= s.indexed_len();
        want.push((s.video.clone(), s.id));
    }
    let r = store.enforce_retention_with(now, &|_| None).unwrap();
    assert_eq!(r.deleted.iter().map(|d| (d.video.clone(), d.id)).collect::<Vec<_>>(), want);
    assert!(r.deleted.iter().all(|d| d.reason == Reason::StoreSize));
    assert!(want.len() >= 3, "{want:?}");
    drop(store);

    // The free-space floor: 500 KB short frees the oldest segments until 500 KB are freed;
    // an unreachable floor deletes all it may — never the segment being written — and says
    // the store is still low.
    let store = VideoStore::open(&dir.join("index"), StoreLimits { max_bytes: None, min_free_bytes: 10_000_000 }).unwrap();
    let mut by_age: Vec<Segment> = ["a", "b", "c"].iter().flat_map(|v| all_segments(&store, v)).collect();
    by_age.sort_by_key(|s| s.start);
    let mut freed = 0;
    let mut want = Vec::new();
    for s in &by_age {
        if freed >= 500_000 {
            break;
        }
        freed += s.indexed_len();
        want.push(s.id);
    }
    let r = store.enforce_retention_with(now, &|_| Some(9_500_000)).unwrap();
    assert_eq!(r.deleted.iter().map(|d| d.id).collect::<Vec<_>>(), want);
    assert!(r.deleted.iter().all(|d| d.reason == Reason::FreeSpace));
    assert!(!r.below_floor);
    let mut w = store.writer("c").unwrap();
    let t = T0 + 600 * S;
    for i in 0..25 {
        w.push(&vtest.sample(i, t + i as i64 * vtest.frame_ns)).unwrap();
    }
    let writing = w.segment().unwrap().id;
    let r = store.enforce_retention_with(now, &|_| Some(0)).unwrap();
    assert!(r.below_floor);
    for v in ["a", "b"] {
        assert!(all_segments(&store, v).is_empty(), "{v} emptied");
    }
    assert_eq!(all_segments(&store, "c").iter().map(|s| s.id).collect::<Vec<_>>(), vec![writing]);
    w.close().unwrap();
    for v in ["a", "b", "c"] {
        assert_consistent(&store, v);
    }
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

/// The child of the crash test: records until killed, printing each segment start and
/// each fragment the writer reported durable.
fn crash_child(dir: &Path, round: i64) -> ! {
    use std::io::Write;
    let vtest = Source::load(&media("vtest.mkv"));
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    store.ensure_video("cam", &dir.join("videos"), settings(6)).unwrap();
    let mut w = store.writer("cam").unwrap();
    // Each round records its own hour; a clock jump every 30 s of media.
    let mut wall = T0 + round * 3600 * S;
    let mut stdout = std::io::stdout().lock();
    for i in 0usize.. {
        if i % 300 == 0 && i > 0 && vtest.is_key(i) {
            wall += 5 * S;
        }
        for out in w.push(&vtest.sample(i, wall)).unwrap() {
            match out {
                Written::SegmentStarted { id, .. } => writeln!(stdout, "S {id}").unwrap(),
                Written::Fragment { id, fragment: Fragment { offset, len, .. } } => writeln!(stdout, "F {id} {offset} {len}").unwrap(),
                Written::SegmentClosed { .. } => {}
            }
        }
        stdout.flush().unwrap();
        wall += vtest.frame_ns;
        // About 50x real time: many fragment and segment boundaries per second.
        std::thread::sleep(Duration::from_millis(2));
    }
    unreachable!()
}

#[test]
fn kill_9_during_recording_leaves_a_consistent_store() {
    if let Ok(dir) = std::env::var("VELA_RECORDING_CHILD") {
        let round = std::env::var("VELA_RECORDING_ROUND").unwrap().parse().unwrap();
        crash_child(Path::new(&dir), round);
    }
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("VELA_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (VELA_CRASH_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = scratch("crash");
    let probe_ok = have("ffprobe");
    let mut probed: HashMap<(String, u64), ()> = HashMap::new();
    let mut totals = vela::recording::RecoveryReport::default();
    let started = Instant::now();
    for round in 0..20 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["kill_9_during_recording_leaves_a_consistent_store", "--exact", "--nocapture", "--test-threads=1"])
            .env("VELA_RECORDING_CHILD", &dir)
            .env("VELA_RECORDING_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>());
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
        let r = store.recovery().clone();
        eprintln!("round {round}: {} durable fragments reported; recovery {r:?}", lines.iter().filter(|l| l.starts_with("F ")).count());
        totals.segments_closed += r.segments_closed;
        totals.fragments_added += r.fragments_added;
        totals.bytes_truncated += r.bytes_truncated;
        totals.orphans_adopted += r.orphans_adopted;
        totals.empty_removed += r.empty_removed;
        totals.missing_files += r.missing_files;
        totals.fragments_dropped += r.fragments_dropped;
        assert_eq!((r.missing_files, r.fragments_dropped), (0, 0), "round {round}: {:?}", r.problems);
        if store.video_dir("cam").is_none() {
            continue; // killed before the video existed
        }
        assert_consistent(&store, "cam");
        let segs = all_segments(&store, "cam");
        assert!(segs.iter().all(|s| !s.open));
        // Everything the writer said was durable is still indexed.
        let by_id: HashMap<u64, &Segment> = segs.iter().map(|s| (s.id, s)).collect();
        for l in lines.iter().filter(|l| l.starts_with("F ")) {
            let v: Vec<u64> = l[2..].split(' ').map(|x| x.parse().unwrap()).collect();
            let seg = by_id.get(&v[0]).unwrap_or_else(|| panic!("round {round}: durable segment {} lost", v[0]));
            assert!(
                seg.fragments.iter().any(|f| f.offset <= v[1] && v[1] + v[2] <= f.offset + f.len),
                "round {round}: durable fragment {l} lost from {}",
                seg.file
            );
        }
        if probe_ok {
            for seg in &segs {
                if probed.insert((seg.file.clone(), seg.indexed_len()), ()).is_none() {
                    let (errors, packets) = probe(&store.segment_path(seg));
                    assert!(errors.is_empty(), "round {round}: {}: {errors}", seg.file);
                    assert_eq!(packets, seg.fragments.iter().map(|f| f.frames as usize).sum::<usize>(), "round {round}: {}", seg.file);
                }
            }
        }
    }
    eprintln!(
        "20 kills in {:.1} s; recovery in total: {totals:?}; {} segment files checked with ffprobe",
        started.elapsed().as_secs_f64(),
        probed.len()
    );
    assert!(totals.orphans_adopted + totals.segments_closed >= 10, "most kills land while a segment is open");
    std::fs::remove_dir_all(dir).ok();
}

/// Every crash outcome recovery handles, made by hand: an open segment whose index lags
/// its file and whose file ends in a torn fragment; a file the index never heard of; a
/// file with nothing but its init segment; an index entry whose file is gone.
#[test]
fn recovery_indexes_complete_fragments_cuts_torn_tails_and_adopts_orphans() {
    use vela::recording::index::Index;
    use vela::recording::names::segment_file_name;
    let dir = scratch("recovery");
    let vtest = Source::load(&media("vtest.mkv"));
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    store.ensure_video("cam", &dir.join("videos"), settings(10)).unwrap();
    record(&store, "cam", T0, 20, &vtest);
    let vdir = store.video_dir("cam").unwrap();
    let segs = all_segments(&store, "cam");
    assert_eq!(segs.len(), 2);
    let (a, b) = (segs[0].clone(), segs[1].clone());
    drop(store);

    // a: the index saw only 2 fragments and still has it open; half a fragment follows the last.
    let ix = Index::open(&dir.join("index")).unwrap();
    ix.put_segment(&Segment { open: true, fragments: a.fragments[..2].to_vec(), end: a.fragments[1].end(), ..a.clone() }).unwrap();
    let a_path = vdir.join(&a.file);
    let a_bytes = std::fs::read(&a_path).unwrap();
    let last = a.fragments.last().unwrap();
    let torn = &a_bytes[last.offset as usize..(last.offset + last.len / 2) as usize];
    std::fs::OpenOptions::new().append(true).open(&a_path).unwrap().write_all(torn).unwrap();
    // b copied under a later name, cut inside its third fragment: an orphan with two.
    let orphan_id = b.id + 600_000;
    let b_bytes = std::fs::read(vdir.join(&b.file)).unwrap();
    let cut = b.fragments[2].offset + 100;
    std::fs::write(vdir.join(segment_file_name(orphan_id)), &b_bytes[..cut as usize]).unwrap();
    // Only an init segment and a few bytes: nothing playable.
    let empty_id = b.id + 1_200_000;
    std::fs::write(vdir.join(segment_file_name(empty_id)), &b_bytes[..b.init_len as usize + 10]).unwrap();
    // An entry without its file; and a file that is not a segment.
    ix.put_segment(&Segment { id: b.id + 1_800_000, file: segment_file_name(b.id + 1_800_000), ..b.clone() }).unwrap();
    std::fs::write(vdir.join("notes.txt"), b"operator notes").unwrap();
    ix.flush().unwrap();
    drop(ix);

    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    let r = store.recovery().clone();
    eprintln!("{r:?}");
    assert_eq!((r.segments_closed, r.orphans_adopted, r.empty_removed, r.missing_files, r.fragments_dropped), (1, 1, 1, 1, 0));
    assert_eq!(r.fragments_added as usize, (a.fragments.len() - 2) + 2);
    assert_eq!(r.bytes_truncated, last.len / 2 + 100);
    let after = all_segments(&store, "cam");
    assert_eq!(after.iter().map(|s| s.id).collect::<Vec<_>>(), vec![a.id, b.id, orphan_id]);
    assert_eq!(after[0], a, "the open segment is re-indexed exactly as its writer indexed it");
    let adopted = &after[2];
    assert_eq!(adopted.fragments.len(), 2);
    assert_eq!((adopted.codec.as_str(), adopted.width, adopted.height), ("avc1.4d401f", 768, 576));
    for (x, y) in adopted.fragments.iter().zip(&b.fragments) {
        assert_eq!((x.offset, x.len, x.frames, x.duration), (y.offset, y.len, y.frames, y.duration));
        assert_eq!(x.start - adopted.start, y.start - b.start);
    }
    assert!(!vdir.join(segment_file_name(empty_id)).exists());
    assert!(vdir.join("notes.txt").exists());
    std::fs::remove_file(vdir.join("notes.txt")).unwrap();
    assert_consistent(&store, "cam");
    if have("ffprobe") {
        for seg in &after {
            let (errors, packets) = probe(&store.segment_path(seg));
            assert!(errors.is_empty(), "{}: {errors}", seg.file);
            assert_eq!(packets, seg.fragments.iter().map(|f| f.frames as usize).sum::<usize>());
        }
    }
    // Recovery is idempotent: a second open finds nothing to do.
    drop(store);
    let store = VideoStore::open(&dir.join("index"), StoreLimits::default()).unwrap();
    assert_eq!(store.recovery(), &vela::recording::RecoveryReport::default());
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

/// A week of 30 s segments (2 s GOPs) for two cameras, one recording continuously, one
/// with a 5 s gap every 5 minutes: index size per recorded hour, and how fast `ranges`
/// and `segments` answer over it.
#[test]
fn a_week_of_index_is_small_and_answers_fast() {
    use vela::recording::encoding;
    use vela::recording::index::Index;
    let dir = scratch("week");
    let ix = Index::open(&dir.join("index")).unwrap();
    let hours = 7 * 24;
    let per_hour = 120;
    let (mut logical, started) = (0u64, Instant::now());
    for (video, gap_every) in [("continuous", usize::MAX), ("gappy", 10)] {
        let mut start = T0;
        for k in 0..hours * per_hour {
            if k > 0 && k % gap_every == 0 {
                start += 5 * S;
            }
            let id = (start / 1_000_000) as u64;
            let mut offset = 700;
            let fragments: Vec<Fragment> = (0..15)
                .map(|j| {
                    let f = Fragment {
                        offset,
                        len: 120_000 + (k * 7 + j * 13) as u64 % 9000,
                        start: start + j as i64 * 2 * S,
                        duration: 2 * S,
                        frames: 20,
                    };
                    offset += f.len;
                    f
                })
                .collect();
            let seg = Segment {
                video: video.into(),
                id,
                file: vela::recording::names::segment_file_name(id),
                init_len: 700,
                codec: "avc1.4d401f".into(),
                width: 1280,
                height: 720,
                start,
                end: start + 30 * S,
                fragments,
                open: false,
            };
            logical += (encoding::encode_segment(&seg).len() + encoding::segment_key(video, id).len()) as u64;
            ix.put_segment(&seg).unwrap();
            start += 30 * S;
        }
    }
    ix.flush().unwrap();
    let built = started.elapsed();
    let on_disk = ix.size_on_disk().unwrap();
    let recorded_hours = 2 * hours as u64;
    eprintln!(
        "index: {} segments in {:.1} s; segment records {} B per recorded hour; sled on disk {:.1} MiB = {} B per recorded hour",
        2 * hours * per_hour,
        built.as_secs_f64(),
        logical / recorded_hours,
        on_disk as f64 / (1 << 20) as f64,
        on_disk / recorded_hours
    );
    let week_end = T0 + 10 * 24 * 3600 * S;
    let time = |f: &dyn Fn() -> usize| {
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..20 {
            n = f();
        }
        (t.elapsed() / 20, n)
    };
    let (cont, n_cont) = time(&|| ix.spans("continuous", T0 - S, week_end).unwrap().len());
    let (gappy, n_gappy) = time(&|| ix.spans("gappy", T0 - S, week_end).unwrap().len());
    let (day, _) = time(&|| ix.spans("gappy", T0 + 24 * 3600 * S, T0 + 48 * 3600 * S).unwrap().len());
    let (hour_segs, n_segs) = time(&|| ix.segments_overlapping("gappy", T0 + 100 * 3600 * S, T0 + 101 * 3600 * S).unwrap().len());
    eprintln!(
        "ranges over 7 days: continuous {n_cont} span(s) in {cont:?}; gappy {n_gappy} spans in {gappy:?}; one day of gappy in {day:?}; segments of one hour ({n_segs}) in {hour_segs:?}"
    );
    assert_eq!(n_cont, 1);
    assert_eq!(n_gappy, hours * per_hour / 10);
    assert!(n_segs >= 119);
    // Debug build; release is several times faster.
    assert!(cont < Duration::from_millis(5) && gappy < Duration::from_millis(100), "{cont:?} {gappy:?}");
    assert!(on_disk / recorded_hours < 200_000, "index bytes per hour: {}", on_disk / recorded_hours);
    drop(ix);
    std::fs::remove_dir_all(dir).ok();
}
