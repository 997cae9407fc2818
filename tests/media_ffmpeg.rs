//! The media core checked against ffmpeg/ffprobe, the independent reference: demuxed
//! timestamps and keyframes, and fragmented MP4 output that must decode bit-exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

use vela::media::mkv::{self, EncodedFrame, H264Track};
use vela::media::mp4::{Fmp4Writer, FragmentInfo, VideoParams};

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media").join(name)
}

/// True when `tool` runs; tests that need it print why they skip otherwise (CI installs ffmpeg).
fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: {tool} is not on PATH (apt-get install ffmpeg)");
    }
    ok
}

/// A fresh scratch directory for this test binary and test name.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vela-media-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(tool: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
    assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// ffprobe's view of a file's video packets, in file order: (pts in 90 kHz, keyframe).
fn probe_packets(path: &Path) -> Vec<(i64, bool)> {
    let (out, _) = run(
        "ffprobe",
        &["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time,flags", "-of", "csv", path.to_str().unwrap()],
    );
    out.lines()
        .filter(|l| l.starts_with("packet"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let seconds: f64 = f[1].parse().unwrap_or_else(|_| panic!("bad pts_time in {l:?}"));
            ((seconds * 90_000.0).round() as i64, f[2].starts_with('K'))
        })
        .collect()
}

fn assert_matches_ffprobe(path: &Path, track: &H264Track) {
    let probed = probe_packets(path);
    let ours: Vec<(i64, bool)> = track.frames.iter().map(|f| (f.pts_90k, f.keyframe)).collect();
    assert_eq!(ours.len(), probed.len(), "frame count of {}", path.display());
    for (i, (a, b)) in ours.iter().zip(&probed).enumerate() {
        assert_eq!(a, b, "frame {i} of {}: (pts_90k, keyframe)", path.display());
    }
}

#[test]
fn vtest_demux_matches_ffprobe() {
    let track = mkv::read_h264_file(&media("vtest.mkv")).unwrap();
    assert_eq!((track.width, track.height, track.frame_duration_90k, track.nal_length_size), (768, 576, 9000, 4));
    assert_eq!(track.frames.len(), 795);
    let keys: Vec<usize> = track.frames.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
    assert_eq!(keys, (0..795).step_by(20).collect::<Vec<_>>());
    assert!(track.frames.iter().all(|f| f.pts_90k == f.dts_90k));
    assert_eq!(track.duration_90k(), 795 * 9000);
    assert_eq!(track.profile_level_id().as_deref(), Some("4d401f"));
    if have("ffprobe") {
        assert_matches_ffprobe(&media("vtest.mkv"), &track);
    }
}

#[test]
fn bikes_demux_matches_ffprobe() {
    let track = mkv::read_h264_file(&media("bikes.mkv")).unwrap();
    assert_eq!((track.width, track.height, track.frame_duration_90k), (640, 272, 3600));
    let keys: Vec<usize> = track.frames.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
    assert_eq!(keys.iter().take(3).copied().collect::<Vec<_>>(), vec![0, 50, 100]);
    if have("ffprobe") {
        assert_matches_ffprobe(&media("bikes.mkv"), &track);
    }
}

/// Files whose structure the sample footage lacks: B-frames (reordered presentation times)
/// and ffmpeg's live mode (unknown-size Segment).
#[test]
fn generated_files_demux_matches_ffprobe() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = scratch("generated");
    let cases: [(&str, &[&str]); 2] = [
        ("bframes.mkv", &["-bf", "3", "-g", "24", "-x264-params", "b-adapt=0"]),
        ("live.mkv", &["-bf", "0", "-g", "10", "-live", "1", "-cluster_time_limit", "300"]),
    ];
    for (name, extra) in cases {
        let out = dir.join(name);
        let mut args = vec!["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=192x108:rate=25", "-frames:v", "60"];
        args.extend_from_slice(&["-c:v", "libx264", "-pix_fmt", "yuv420p"]);
        args.extend_from_slice(extra);
        args.push(out.to_str().unwrap());
        run("ffmpeg", &args);
        let track = mkv::read_h264_file(&out).unwrap();
        assert_eq!((track.width, track.height, track.frame_duration_90k), (192, 108, 3600), "{name}");
        assert_matches_ffprobe(&out, &track);
        let dts: Vec<i64> = track.frames.iter().map(|f| f.dts_90k).collect();
        assert!(track.frames.iter().all(|f| f.dts_90k <= f.pts_90k), "{name}: a frame decoded after its presentation");
        assert!(dts.windows(2).all(|w| w[0] < w[1]), "{name}: decode times not increasing");
        if name == "bframes.mkv" {
            assert!(track.frames.windows(2).any(|w| w[1].pts_90k < w[0].pts_90k), "no reordering: the B-frame case tests nothing");
        }
        // The decoder gives every picture, in presentation order: held back when the SPS
        // allows reordering (B-frames), at once with its own access unit when it does not.
        let mut dec = vela::media::decode::Decoder::new();
        dec.set_avcc(&track.avcc, |_| {}).unwrap();
        let (mut out, mut at_once) = (Vec::new(), 0);
        for f in &track.frames {
            let before = out.len();
            dec.decode(&f.data, f.pts_90k, f.keyframe, |p| out.push(p.pts)).unwrap();
            at_once += usize::from(out.last() == Some(&f.pts_90k) && out.len() == before + 1);
        }
        dec.flush(|p| out.push(p.pts));
        assert_eq!(out.len(), 60, "{name}: {:?}", dec.stats());
        assert!(out.windows(2).all(|w| w[0] < w[1]), "{name}: presentation order {out:?}");
        if name == "live.mkv" {
            assert_eq!(at_once, 60, "{name}: no B-frames, no latency");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Remuxes a track into fMP4 with one fragment per GOP, each told the next GOP's decode time.
fn remux_by_gop(track: &H264Track, out: &Path) -> Vec<FragmentInfo> {
    let starts: Vec<usize> = track.frames.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
    let mut writer =
        Fmp4Writer::new(std::io::BufWriter::new(std::fs::File::create(out).unwrap()), &VideoParams::from_track(track)).unwrap();
    let mut infos = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(track.frames.len());
        let gop: &[EncodedFrame] = &track.frames[start..end];
        infos.push(writer.write_fragment(gop, track.frames.get(end).map(|f| f.dts_90k)).unwrap());
    }
    writer.finish().unwrap();
    infos
}

/// Per-frame pixel checksums of the decoded video (the last column of `-f framemd5`) and
/// whatever ffmpeg reported on stderr.
fn decode_md5s(path: &Path) -> (Vec<String>, String) {
    let (out, err) = run("ffmpeg", &["-v", "error", "-i", path.to_str().unwrap(), "-map", "0:v", "-f", "framemd5", "-"]);
    (out.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit(',').next().unwrap().trim().to_owned()).collect(), err)
}

fn frame_md5s(path: &Path) -> Vec<String> {
    let (md5s, err) = decode_md5s(path);
    assert!(err.is_empty(), "ffmpeg decoding {} reported: {err}", path.display());
    md5s
}

/// Decodes both files concurrently (the expensive part of these tests) and compares
/// checksums; returns the source's.
fn assert_same_pictures(source: &Path, remuxed: &Path) -> Vec<String> {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| frame_md5s(source));
        let b = frame_md5s(remuxed);
        (a.join().unwrap(), b)
    });
    assert_eq!(a.len(), b.len(), "decoded frame count of {}", remuxed.display());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "frame {i} decodes differently from {}", source.display());
    }
    a
}

#[test]
fn vtest_remux_to_fmp4_is_lossless_and_survives_truncation() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = scratch("remux");
    let source = media("vtest.mkv");
    let out = dir.join("vtest.mp4");
    let track = mkv::read_h264_file(&source).unwrap();
    let infos = remux_by_gop(&track, &out);
    assert_eq!(infos.len(), 40); // 795 frames, GOP 20
    assert!(infos.iter().all(|i| i.keyframe_offsets.len() == 1 && i.keyframe_offsets[0].sample == 0));
    assert_eq!(infos.iter().map(|i| i.duration_90k).sum::<u64>(), 795 * 9000);

    // ffprobe has nothing to complain about.
    let (stdout, stderr) = run("ffprobe", &["-v", "error", out.to_str().unwrap()]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));
    // Same packets, timestamps and keyframes as the source.
    let probed = probe_packets(&out);
    assert_eq!(probed, probe_packets(&source));
    assert!(probed[0].1, "first frame is not a keyframe");
    let (duration, _) = run("ffprobe", &["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", out.to_str().unwrap()]);
    let duration: f64 = duration.trim().parse().unwrap();
    assert!((duration - 79.5).abs() <= 0.1, "duration {duration}");
    // Passthrough is lossless: every decoded picture is identical.
    let pictures = assert_same_pictures(&source, &out);
    assert_eq!(pictures.len(), 795);

    // Power loss in the middle of the last fragment: everything before it still plays.
    let last = infos.last().unwrap();
    let data = std::fs::read(&out).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &data[..(last.offset + last.len / 2) as usize]).unwrap();
    let complete = 795 - last.frames as usize;
    let probed = probe_packets(&cut);
    assert!(probed.len() >= complete, "only {} of {complete} complete frames readable", probed.len());
    assert_eq!(probed[..complete], probe_packets(&source)[..complete]);
    // ffmpeg also returns the cut frame's partial data, which the decoder drops with an error.
    let (decoded, _) = decode_md5s(&cut);
    assert_eq!(decoded[..], pictures[..complete]);
    // Cut inside the last moof: the mdat of the fragment before is intact.
    let cut_moof = dir.join("cut-moof.mp4");
    std::fs::write(&cut_moof, &data[..(last.offset + 20) as usize]).unwrap();
    assert_eq!(probe_packets(&cut_moof).len(), complete);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bframes_remux_to_fmp4_is_lossless() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = scratch("remux-bframes");
    let source = dir.join("bframes.mkv");
    run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=192x108:rate=25",
            "-frames:v",
            "75",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ]
        .into_iter()
        .chain(["-bf", "3", "-g", "25", "-x264-params", "b-adapt=0", source.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    let track = mkv::read_h264_file(&source).unwrap();
    let out = dir.join("bframes.mp4");
    assert_eq!(remux_by_gop(&track, &out).len(), 3);
    let (stdout, stderr) = run("ffprobe", &["-v", "error", out.to_str().unwrap()]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));
    // Presentation times survive; the mp4 timeline starts at the first decode time, one
    // reorder delay before the first presentation.
    let delay = track.frames[0].pts_90k - track.frames[0].dts_90k;
    let shifted: Vec<(i64, bool)> = probe_packets(&source).into_iter().map(|(p, k)| (p + delay, k)).collect();
    assert_eq!(probe_packets(&out), shifted);
    assert_eq!(assert_same_pictures(&source, &out).len(), 75);
    let _ = std::fs::remove_dir_all(&dir);
}
