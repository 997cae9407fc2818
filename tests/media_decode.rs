//! H.264 decoding (openh264) against ffmpeg's output for the sample media, robustness against
//! damaged and missing access units, parameter changes, and the grayscale downscale.
//!
//! Reference checksums are MD5s of ffmpeg's luma planes: the first `width * height` bytes of
//! each frame of `ffmpeg -v error -i FILE -f rawvideo -pix_fmt yuv420p -`. (Not `-pix_fmt gray`:
//! swscale expands limited-range luma to full range for gray, so those bytes differ from Y.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use md5::{Digest, Md5};
use vela::media::decode::{DecodeStats, Decoder, Frame};
use vela::media::h264;
use vela::media::mkv::{self, H264Track};
use vela::runtime::packet::{VideoParams, VideoSample};

const VTEST_MD5: &[(usize, &str)] = &[
    (0, "f9d035a18d50eacab3e653bf8ee47f0d"),
    (1, "0b896c9ca621dfa65fa40047f9fa428b"),
    (100, "c5a1f4168c8fb2cbb11b42bd869aa5b2"),
    (125, "4c7c2609508de965b93665b47b4c6f88"),
    (230, "bf2646af2db07bbea3fc9e860c14eb45"),
    (300, "4c0d3f3b0820496ff845cacaf10d4101"),
    (794, "53b521f3282ff7428fcf7f4ca588d713"),
];
const BIKES_MD5: &[(usize, &str)] = &[
    (0, "83b918ce8147e331af508b3d8e26a375"),
    (1, "1ce7952a3116fe0ba04e51633d06a1ed"),
    (60, "e39c9c48fbbb09f8a33ffe3ab4cd2756"),
    (249, "11f87146c70bacdd3f7f2e66cd1bb59b"),
];

fn media(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/media").join(name)
}

fn track(name: &str) -> H264Track {
    mkv::read_h264_file(&media(name)).expect("demux")
}

fn y_md5(f: &Frame<'_>) -> String {
    format!("{:x}", Md5::digest(f.y_packed()))
}

/// One decoded picture: pts, size, and the luma MD5 when its source index was asked for.
#[derive(Debug)]
struct Out {
    pts: i64,
    width: usize,
    height: usize,
    md5: Option<String>,
}

/// Decodes `frames` (index into the track, possibly edited data) and returns pictures and stats.
/// `want` lists the source indices (looked up by pts) whose luma MD5 to compute.
fn run(
    avcc: &[u8],
    frames: impl IntoIterator<Item = (i64, bool, Vec<u8>)>,
    index_of_pts: &HashMap<i64, usize>,
    want: &[usize],
) -> (Vec<Out>, DecodeStats, usize) {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    let mut record = |f: &Frame<'_>| {
        let idx = index_of_pts.get(&f.pts).copied();
        let md5 = idx.filter(|i| want.contains(i)).map(|_| y_md5(f));
        out.push(Out { pts: f.pts, width: f.width, height: f.height, md5 });
    };
    dec.set_avcc(avcc, &mut record).unwrap();
    let mut errors_returned = 0;
    for (pts, key, data) in frames {
        if dec.decode(&data, pts, key, &mut record).is_err() {
            errors_returned += 1;
        }
    }
    dec.flush(&mut record);
    (out, dec.stats(), errors_returned)
}

fn pts_index(t: &H264Track) -> HashMap<i64, usize> {
    t.frames.iter().enumerate().map(|(i, f)| (f.pts_90k, i)).collect()
}

fn check_md5(out: &[Out], idx: &HashMap<i64, usize>, refs: &[(usize, &str)]) {
    for &(i, want) in refs {
        let Some(o) = out.iter().find(|o| idx.get(&o.pts) == Some(&i)) else { continue };
        assert_eq!(o.md5.as_deref(), Some(want), "frame {i}");
    }
}

fn decode_clean(name: &str, refs: &[(usize, &str)], w: usize, h: usize, n: usize) {
    let t = track(name);
    assert_eq!(t.frames.len(), n);
    let idx = pts_index(&t);
    let want: Vec<usize> = refs.iter().map(|r| r.0).collect();
    let (out, stats, errs) = run(&t.avcc, t.frames.iter().map(|f| (f.pts_90k, f.keyframe, f.data.to_vec())), &idx, &want);
    assert_eq!(errs, 0);
    assert_eq!(stats, DecodeStats { decoded: n as u64, errors: 0, resyncs: 0, skipped_until_keyframe: 0 });
    assert_eq!(out.len(), n, "every source frame decodes");
    assert!(out.iter().all(|o| (o.width, o.height) == (w, h)));
    let pts: Vec<i64> = out.iter().map(|o| o.pts).collect();
    let src: Vec<i64> = t.frames.iter().map(|f| f.pts_90k).collect();
    assert_eq!(pts, src, "pictures carry their access unit's pts, in order");
    for &(i, _) in refs {
        assert!(out[i].md5.is_some(), "frame {i} hashed");
    }
    check_md5(&out, &idx, refs);
}

#[test]
fn vtest_decodes_all_frames_bit_exact_with_ffmpeg() {
    decode_clean("vtest.mkv", VTEST_MD5, 768, 576, 795);
}

#[test]
fn bikes_decodes_all_frames_bit_exact_with_ffmpeg() {
    decode_clean("bikes.mkv", BIKES_MD5, 640, 272, 250);
}

#[test]
fn corrupt_and_missing_access_units_resync_at_next_keyframe() {
    let t = track("vtest.mkv");
    let idx = pts_index(&t);
    // vtest has a keyframe every 20 frames.
    assert!(t.frames[100].keyframe && t.frames[120].keyframe && t.frames[220].keyframe && !t.frames[105].keyframe);
    let frames = t.frames.iter().enumerate().filter_map(|(i, f)| {
        let mut data = f.data.to_vec();
        match i {
            // Garbage over the slice data of 105 (mid GOP), keeping the NAL framing intact.
            105 => {
                for b in data.iter_mut().skip(8).step_by(3) {
                    *b ^= 0x5a;
                }
            }
            // Broken AVCC framing: a length beyond the data.
            160 => data[0..4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes()),
            // A lost packet in the middle of a GOP.
            205..=207 => return None,
            _ => {}
        }
        Some((f.pts_90k, f.keyframe, data))
    });
    let (out, stats, errs) = run(&t.avcc, frames, &idx, &[125, 230, 300]);
    eprintln!("corrupt: {stats:?}, {} pictures, {errs} errors returned", out.len());
    assert!(stats.errors >= 2, "{stats:?}");
    assert_eq!(stats.errors as usize, errs);
    assert!(stats.resyncs >= 2, "{stats:?}");
    assert!(stats.skipped_until_keyframe > 0);
    assert_eq!(stats.decoded as usize, out.len());
    // Everything from each next keyframe on is there and correct.
    let decoded: Vec<usize> = out.iter().map(|o| idx[&o.pts]).collect();
    for i in (0..105).chain(120..160).chain(180..205).chain(220..795) {
        assert!(decoded.contains(&i), "frame {i} missing; stats {stats:?}");
    }
    for i in (161..180).chain(208..220) {
        assert!(!decoded.contains(&i), "frame {i} decoded from a broken reference");
    }
    check_md5(&out, &idx, &VTEST_MD5[3..6]);
    assert_eq!(out.iter().filter(|o| o.md5.is_some()).count(), 3);
}

#[test]
fn reported_loss_drops_until_next_keyframe() {
    let t = track("vtest.mkv");
    let idx = pts_index(&t);
    let mut dec = Decoder::new();
    let mut got = Vec::new();
    dec.set_avcc(&t.avcc, |_| {}).unwrap();
    for (i, f) in t.frames.iter().enumerate().take(60) {
        if (25..28).contains(&i) {
            continue;
        }
        if i == 28 {
            dec.note_loss(|fr| got.push(idx[&fr.pts]));
        }
        dec.decode(&f.data, f.pts_90k, f.keyframe, |fr| got.push(idx[&fr.pts])).unwrap();
    }
    dec.flush(|fr| got.push(idx[&fr.pts]));
    let want: Vec<usize> = (0..25).chain(40..60).collect();
    assert_eq!(got, want, "the picture held back at the loss comes out too");
    assert_eq!(dec.stats().resyncs, 1);
    assert_eq!(dec.stats().skipped_until_keyframe, 12);
    assert_eq!(dec.stats().errors, 0);
}

#[test]
fn stream_starting_mid_gop_waits_for_keyframe() {
    let t = track("bikes.mkv");
    let idx = pts_index(&t);
    let (out, stats, _) = run(&t.avcc, t.frames[30..120].iter().map(|f| (f.pts_90k, false, f.data.to_vec())), &idx, &[60]);
    assert_eq!(stats.skipped_until_keyframe, 20, "{stats:?}");
    assert_eq!(out.len(), 70);
    assert_eq!(idx[&out[0].pts], 50);
    check_md5(&out, &idx, BIKES_MD5);
}

fn samples(t: &H264Track, range: std::ops::Range<usize>, pts_offset: i64) -> Vec<VideoSample> {
    let params = Arc::new(VideoParams {
        width: t.width,
        height: t.height,
        avcc: Bytes::from(t.avcc.clone()),
        codec: format!("avc1.{}", t.profile_level_id().unwrap_or_default()),
    });
    t.frames[range]
        .iter()
        .map(|f| VideoSample {
            pts_90k: f.pts_90k + pts_offset,
            wall: 0,
            keyframe: f.keyframe,
            data: f.data.clone(),
            params: params.clone(),
        })
        .collect()
}

#[test]
fn resolution_change_through_new_avcc() {
    let v = track("vtest.mkv");
    let b = track("bikes.mkv");
    let off = v.frames[59].pts_90k + 9000;
    let mut all = samples(&v, 0..60, 0);
    all.extend(samples(&b, 0..75, off));
    let mut dec = Decoder::new();
    let mut out: Vec<(i64, usize, usize, Option<String>)> = Vec::new();
    let mut rec = |f: &Frame<'_>| {
        let md5 = (f.pts == off || f.pts == off + b.frames[60].pts_90k).then(|| y_md5(f));
        out.push((f.pts, f.width, f.height, md5));
    };
    for s in &all {
        dec.decode_sample(s, &mut rec).unwrap();
    }
    dec.flush(&mut rec);
    assert_eq!(out.len(), 135, "{:?}", dec.stats());
    assert!(out[..60].iter().all(|o| (o.1, o.2) == (768, 576)));
    assert!(out[60..].iter().all(|o| (o.1, o.2) == (640, 272)));
    let pts: Vec<i64> = all.iter().map(|s| s.pts_90k).collect();
    assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), pts);
    assert_eq!(out[60].3.as_deref(), Some(BIKES_MD5[0].1));
    assert_eq!(out[120].3.as_deref(), Some(BIKES_MD5[2].1));
    assert_eq!(dec.stats().errors, 0);
}

#[test]
fn resolution_change_in_band() {
    // The avcC stays vtest's; bikes' keyframes carry their SPS/PPS in band.
    let v = track("vtest.mkv");
    let b = track("bikes.mkv");
    let off = v.frames[39].pts_90k + 9000;
    let mut dec = Decoder::new();
    let mut sizes = Vec::new();
    let mut rec = |f: &Frame<'_>| sizes.push((f.width, f.height));
    dec.set_avcc(&v.avcc, &mut rec).unwrap();
    for f in &v.frames[..40] {
        dec.decode(&f.data, f.pts_90k, f.keyframe, &mut rec).unwrap();
    }
    for f in &b.frames[..60] {
        let mut data = Vec::new();
        if f.keyframe {
            for ps in b.sps.iter().chain(b.pps.iter()) {
                h264::push_length_prefixed(ps, 4, &mut data).unwrap();
            }
        }
        data.extend_from_slice(&f.data);
        dec.decode(&data, f.pts_90k + off, f.keyframe, &mut rec).unwrap();
    }
    dec.flush(&mut rec);
    assert_eq!(sizes.len(), 100, "{:?}", dec.stats());
    assert!(sizes[..40].iter().all(|&s| s == (768, 576)));
    assert!(sizes[40..].iter().all(|&s| s == (640, 272)));
}

#[test]
fn gray_frames_from_decoded_pictures_each_with_its_own_access_unit() {
    // vtest's SPS announces no reordering: every picture leaves the decoder with the access
    // unit that carried it (no frame of latency held back), and nothing is left to flush.
    let t = track("vtest.mkv");
    let mut dec = Decoder::new();
    let mut grays = Vec::new();
    dec.set_avcc(&t.avcc, |_| {}).unwrap();
    for (i, f) in t.frames[..3].iter().enumerate() {
        let mut out = Vec::new();
        let limit = if i < 2 { (320, 320) } else { (160, 120) };
        dec.decode(&f.data, f.pts_90k, f.keyframe, |fr| {
            let g = fr.gray(limit.0, limit.1);
            // The box filter's mean equals the picture's mean within rounding.
            let mean_full: f64 = fr.y_packed().iter().map(|&v| f64::from(v)).sum::<f64>() / (768.0 * 576.0);
            let mean_gray: f64 = g.data.iter().map(|&v| f64::from(v)).sum::<f64>() / g.data.len() as f64;
            assert!((mean_full - mean_gray).abs() < 0.5, "{mean_full} vs {mean_gray}");
            out.push((fr.pts, g));
        })
        .unwrap();
        assert_eq!(out.len(), 1, "access unit {i} gives its picture at once");
        assert_eq!(out[0].0, f.pts_90k);
        grays.extend(out.into_iter().map(|(_, g)| g));
    }
    dec.flush(|_| panic!("nothing held back"));
    assert_eq!((grays[0].width, grays[0].height, grays[0].data.len()), (256, 192, 256 * 192));
    assert_eq!((grays[2].width, grays[2].height), (153, 115));
}

/// Single-thread decode speed against ffmpeg; prints, never asserts.
/// `cargo test --release --test media_decode -- --ignored --nocapture decode_speed`
#[test]
#[ignore]
fn decode_speed() {
    let t = track("vtest.mkv");
    let mut dec = Decoder::new();
    dec.set_avcc(&t.avcc, |_| {}).unwrap();
    let mut n = 0usize;
    let start = Instant::now();
    for f in &t.frames {
        dec.decode(&f.data, f.pts_90k, f.keyframe, |_| n += 1).unwrap();
    }
    dec.flush(|_| n += 1);
    let ours = start.elapsed().as_secs_f64();

    let mut dec = Decoder::new();
    dec.set_avcc(&t.avcc, |_| {}).unwrap();
    let mut gray_time = 0.0;
    let start = Instant::now();
    for f in &t.frames {
        dec.decode(&f.data, f.pts_90k, f.keyframe, |fr| {
            let s = Instant::now();
            std::hint::black_box(fr.gray(320, 320));
            gray_time += s.elapsed().as_secs_f64();
        })
        .unwrap();
    }
    dec.flush(|_| {});
    let with_gray = start.elapsed().as_secs_f64();
    println!(
        "openh264: {n} frames 768x576 in {ours:.3} s = {:.0} fps; with gray 256x192: {:.0} fps ({:.1} us per downscale)",
        n as f64 / ours,
        n as f64 / with_gray,
        gray_time / n as f64 * 1e6
    );

    let start = Instant::now();
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-threads", "1", "-i"])
        .arg(media("vtest.mkv"))
        .args(["-f", "null", "-"])
        .status();
    let ff = start.elapsed().as_secs_f64();
    match status {
        Ok(s) if s.success() => {
            println!(
                "ffmpeg -threads 1: {:.3} s = {:.0} fps (includes process start); openh264/ffmpeg speed ratio {:.2}",
                ff,
                n as f64 / ff,
                ff / ours
            )
        }
        other => println!("ffmpeg not run: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Damaged streams: truncated, bit-flipped and reordered access units, a file cut off
// mid-stream. The damage is random but fixed by a seed, so a failure replays exactly.
// ---------------------------------------------------------------------------------------

/// SplitMix64, written out so that a seed means the same damage forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The part of vtest.mkv the damage tests play: 20 GOPs of 20 frames.
const DAMAGE_FRAMES: usize = 400;

/// Frames whose luma is compared with the clean decode: each keyframe and one mid-GOP frame.
fn compared(i: usize) -> bool {
    i % 20 == 0 || i % 20 == 13
}

/// Luma MD5s of the clean decode of the compared frames, by source index.
fn clean_md5s() -> &'static HashMap<usize, String> {
    static CLEAN: std::sync::OnceLock<HashMap<usize, String>> = std::sync::OnceLock::new();
    CLEAN.get_or_init(|| {
        let t = track("vtest.mkv");
        let idx = pts_index(&t);
        let want: Vec<usize> = (0..DAMAGE_FRAMES).filter(|&i| compared(i)).collect();
        let frames = t.frames[..DAMAGE_FRAMES].iter().map(|f| (f.pts_90k, f.keyframe, f.data.to_vec()));
        let (out, stats, _) = run(&t.avcc, frames, &idx, &want);
        assert_eq!(stats.decoded as usize, DAMAGE_FRAMES);
        out.into_iter().filter_map(|o| Some((idx[&o.pts], o.md5?))).collect()
    })
}

/// One access unit as the decoder gets it.
struct Fed {
    /// Index of the source frame it was made from.
    index: usize,
    pts: i64,
    keyframe: bool,
    data: Vec<u8>,
    /// Damaged, or not where it belongs in decoding order.
    disturbed: bool,
}

fn fed_clean(t: &H264Track, range: std::ops::Range<usize>, pts_offset: i64) -> Vec<Fed> {
    range
        .map(|i| {
            let f = &t.frames[i];
            Fed { index: i, pts: f.pts_90k + pts_offset, keyframe: f.keyframe, data: f.data.to_vec(), disturbed: false }
        })
        .collect()
}

/// What a damaged run did.
#[derive(Debug)]
struct Damaged {
    stats: DecodeStats,
    pictures: usize,
    /// Source frames that had to come out (see [`decode_damaged`]) and did.
    recovered: usize,
    /// Pictures compared bit for bit with the clean decode.
    compared: usize,
}

/// Decodes `fed` and checks what must hold whatever the damage: no panic (the test would
/// fail), every error counted, and from each intact keyframe on — until the next disturbed
/// access unit in decoding order — every picture is there and identical to the clean decode.
/// (The last picture before a disturbance may be lost: with hold-back, the picture still
/// inside openh264 when an access unit fails is not trusted.)
fn decode_damaged(t: &H264Track, fed: &[Fed]) -> Damaged {
    let clean = clean_md5s();
    let index_of: HashMap<i64, usize> = fed.iter().map(|f| (f.pts, f.index)).collect();
    let mut dec = Decoder::new();
    let mut out: Vec<(i64, Option<String>)> = Vec::new();
    let mut record = |f: &Frame<'_>| {
        let i = index_of.get(&f.pts).copied();
        out.push((f.pts, i.filter(|&i| compared(i)).map(|_| y_md5(f))));
    };
    dec.set_avcc(&t.avcc, &mut record).unwrap();
    let mut returned = 0;
    for f in fed {
        returned += usize::from(dec.decode(&f.data, f.pts, f.keyframe, &mut record).is_err());
    }
    dec.flush(&mut record);
    let stats = dec.stats();
    // (A failed flush is counted without being returned: there is no access unit to blame.)
    assert!(stats.errors as usize >= returned, "every error returned is counted: {stats:?}, {returned} returned");
    assert_eq!(stats.decoded as usize, out.len());
    assert!(out.len() <= fed.len(), "more pictures than access units");

    // Intact runs in decoding order: (pts that must come out, pts that may be lost).
    let (mut must, mut may_lose) = (Vec::new(), Vec::new());
    let mut in_run = false;
    for f in fed {
        if f.disturbed {
            if in_run {
                may_lose.extend(must.pop());
            }
            in_run = false;
        } else if f.keyframe || in_run {
            in_run = true;
            must.push(f.pts);
        }
    }
    let got: HashMap<i64, &Option<String>> = out.iter().map(|(p, m)| (*p, m)).collect();
    for p in &must {
        assert!(got.contains_key(p), "frame {} (pts {p}) of an intact run is missing; {stats:?}", index_of[p]);
    }
    let mut compared_n = 0;
    for p in must.iter().chain(&may_lose) {
        let i = index_of[p];
        if let (Some(Some(md5)), true) = (got.get(p), compared(i)) {
            assert_eq!(Some(md5), clean.get(&i), "frame {i} after resync differs from the clean decode; {stats:?}");
            compared_n += 1;
        }
    }
    Damaged { stats, pictures: out.len(), recovered: must.len(), compared: compared_n }
}

/// Cuts an access unit at `keep` bytes. `reframe`: the last NAL unit's length is corrected
/// (what an RTP depacketizer delivers when a packet's end is lost); otherwise the AVCC
/// length runs past the end (a file cut off inside a block).
fn cut(au: &[u8], keep: usize, reframe: bool) -> Vec<u8> {
    if !reframe {
        return au[..keep].to_vec();
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for nal in h264::avcc_nals(au, 4).map(Result::unwrap) {
        let room = keep.saturating_sub(offset + 4);
        if room == 0 {
            break;
        }
        h264::push_length_prefixed(&nal[..room.min(nal.len())], 4, &mut out).unwrap();
        offset += 4 + nal.len();
    }
    out
}

#[test]
fn truncated_access_units_are_counted_and_decoding_recovers_bit_exact_at_the_next_keyframe() {
    let t = track("vtest.mkv");
    let mut rng = Rng(1);
    let mut fed = fed_clean(&t, 0..DAMAGE_FRAMES, 0);
    let mut hit = 0;
    for f in fed.iter_mut().skip(1) {
        // Keyframes too: about one in ten of everything.
        if rng.chance(0.1) {
            let keep = 1 + rng.below(f.data.len() - 1);
            f.data = cut(&f.data, keep, rng.chance(0.5));
            f.disturbed = true;
            hit += 1;
        }
    }
    let d = decode_damaged(&t, &fed);
    eprintln!("truncated {hit} of {DAMAGE_FRAMES} access units: {d:?}");
    assert!(d.stats.errors >= 10 && d.stats.resyncs >= 5, "{d:?}");
    assert!(d.recovered >= 100 && d.compared >= 10, "{d:?}");
}

#[test]
fn bit_flipped_access_units_are_counted_and_decoding_recovers_bit_exact_at_the_next_keyframe() {
    let t = track("vtest.mkv");
    let mut rng = Rng(2);
    let mut fed = fed_clean(&t, 0..DAMAGE_FRAMES, 0);
    let mut flips = 0;
    for f in fed.iter_mut().skip(1) {
        if !rng.chance(0.08) {
            continue;
        }
        // About one bit in 4000 of the NAL units (headers included, framing spared, as an RTP
        // payload would be hit), at least one.
        let mut nals: Vec<Vec<u8>> = h264::avcc_nals(&f.data, 4).map(|n| n.unwrap().to_vec()).collect();
        let bits: usize = nals.iter().map(|n| n.len() * 8).sum();
        let n = 1 + bits / 4000;
        for _ in 0..n {
            let mut at = rng.below(bits);
            for nal in nals.iter_mut() {
                if at < nal.len() * 8 {
                    nal[at / 8] ^= 1 << (at % 8);
                    break;
                }
                at -= nal.len() * 8;
            }
        }
        flips += n;
        f.data.clear();
        for nal in &nals {
            h264::push_length_prefixed(nal, 4, &mut f.data).unwrap();
        }
        f.disturbed = true;
    }
    let d = decode_damaged(&t, &fed);
    eprintln!("{flips} bits flipped: {d:?}");
    // openh264 conceals some damage without an error; most keyframes hit still fail.
    assert!(d.stats.errors >= 3 && d.stats.resyncs >= 3, "{d:?}");
    assert!(d.recovered >= 100 && d.compared >= 10, "{d:?}");
}

#[test]
fn reordered_access_units_are_counted_and_decoding_recovers_bit_exact_at_the_next_keyframe() {
    let t = track("vtest.mkv");
    let mut rng = Rng(3);
    let mut fed = fed_clean(&t, 0..DAMAGE_FRAMES, 0);
    let mut swaps = 0;
    let mut i = 1;
    while i + 1 < fed.len() {
        if rng.chance(0.05) {
            fed.swap(i, i + 1);
            fed[i].disturbed = true;
            fed[i + 1].disturbed = true;
            swaps += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    let d = decode_damaged(&t, &fed);
    eprintln!("{swaps} neighbours swapped: {d:?}");
    assert!(d.stats.errors >= swaps as u64 / 2 && d.stats.resyncs >= 3, "{d:?}");
    assert!(d.recovered >= 100 && d.compared >= 10, "{d:?}");
}

#[test]
fn a_file_cut_off_mid_stream_then_played_again_recovers_bit_exact() {
    let t = track("vtest.mkv");
    let data = std::fs::read(media("vtest.mkv")).unwrap();
    // Cut inside the block of frame 150 (mid GOP): the demuxer yields the whole frames before it.
    let half = &t.frames[150];
    let keep = half.data.len() / 2;
    let cut_at = data.windows(64).position(|w| w == &half.data[..64]).unwrap() + keep;
    let prefix = mkv::read_h264_track(&data[..cut_at]).expect("a cut file still demuxes");
    assert_eq!(prefix.frames.len(), 150);
    assert!(prefix.frames.iter().zip(&t.frames).all(|(a, b)| a == b), "what it yields is the file's own frames");
    // The decoder gets those, the half block the cut left (as a reader streaming the file
    // would), and then the file again from the top, as a looping camera serves it.
    let mut fed = fed_clean(&t, 0..150, 0);
    fed.push(Fed { index: 150, pts: half.pts_90k, keyframe: false, data: cut(&half.data, keep, false), disturbed: true });
    let again = t.frames[DAMAGE_FRAMES - 1].pts_90k + 9000;
    fed.extend(fed_clean(&t, 0..DAMAGE_FRAMES, again));
    let d = decode_damaged(&t, &fed);
    eprintln!("cut off mid-stream: {d:?}");
    assert_eq!((d.stats.errors, d.stats.resyncs), (1, 1), "{d:?}");
    assert_eq!(d.pictures, 150 + DAMAGE_FRAMES, "everything but the cut frame decodes: {d:?}");
}

#[test]
fn access_units_without_a_picture_leave_the_times_of_later_pictures_alone() {
    // Parameter sets in an access unit of their own (some cameras send them so), or nothing
    // left of an access unit after a truncation: openh264 gives no picture and no error. The
    // pictures after them must still carry their own access unit's time.
    let t = track("vtest.mkv");
    let idx = pts_index(&t);
    let mut params_only = Vec::new();
    for ps in t.sps.iter().chain(&t.pps) {
        h264::push_length_prefixed(ps, 4, &mut params_only).unwrap();
    }
    let mut frames = Vec::new();
    for (i, f) in t.frames[..45].iter().enumerate() {
        match i {
            10 => frames.push((f.pts_90k - 4500, false, params_only.clone())),
            25 => frames.push((f.pts_90k - 4500, false, Vec::new())),
            _ => {}
        }
        frames.push((f.pts_90k, f.keyframe, f.data.to_vec()));
    }
    let (out, stats, errors) = run(&t.avcc, frames, &idx, &[13, 40]);
    assert_eq!((errors, stats.decoded), (0, 45), "{stats:?}");
    let pts: Vec<i64> = out.iter().map(|o| o.pts).collect();
    let src: Vec<i64> = t.frames[..45].iter().map(|f| f.pts_90k).collect();
    assert_eq!(pts, src, "each picture with its own time");
    let clean = clean_md5s();
    for o in out.iter().filter(|o| o.md5.is_some()) {
        assert_eq!(o.md5.as_ref(), clean.get(&idx[&o.pts]), "picture at {}", o.pts);
    }
}

#[test]
fn bit_flips_in_parameter_sets_never_take_the_decoder_down_and_good_ones_bring_it_back() {
    // A flipped bit in an in-band SPS or PPS that still parses changes the sequence: sizes,
    // reference counts, entropy coding. openh264 must survive whatever it says, and the next
    // keyframe with good parameter sets must decode exactly as in the clean stream.
    let t = track("vtest.mkv");
    let idx = pts_index(&t);
    let clean = clean_md5s();
    let mut rng = Rng(4);
    let (mut failed, mut cases) = (0, 0);
    for case in 0..60 {
        let (mut sps, mut pps) = (t.sps[0].clone(), t.pps[0].clone());
        let target = if case % 2 == 0 { &mut sps } else { &mut pps };
        for _ in 0..1 + rng.below(3) {
            // Spare the NAL header: a different NAL type is another test.
            let bit = 8 + rng.below((target.len() - 1) * 8);
            target[bit / 8] ^= 1 << (bit % 8);
        }
        let with = |params: [&[u8]; 2], f: &mkv::EncodedFrame| {
            let mut data = Vec::new();
            for ps in params {
                h264::push_length_prefixed(ps, 4, &mut data).unwrap();
            }
            data.extend_from_slice(&f.data);
            data
        };
        let frames = t.frames[..25].iter().enumerate().map(|(i, f)| {
            let data = match i {
                0 => with([&sps, &pps], f),
                20 => with([&t.sps[0], &t.pps[0]], f),
                _ => f.data.to_vec(),
            };
            (f.pts_90k, f.keyframe, data)
        });
        let (out, stats, _) = run(&t.avcc, frames, &idx, &[20]);
        let back: Vec<usize> = out.iter().map(|o| idx[&o.pts]).filter(|&i| i >= 20).collect();
        assert_eq!(back, (20..25).collect::<Vec<_>>(), "case {case}: {stats:?}");
        let key = out.iter().find(|o| o.pts == t.frames[20].pts_90k).unwrap();
        assert_eq!(key.md5.as_ref(), clean.get(&20), "case {case}");
        failed += usize::from(stats.errors > 0);
        cases += 1;
    }
    eprintln!("{failed} of {cases} damaged parameter sets made the decoder fail");
    assert!(failed > cases / 4, "{failed} of {cases}: the damage hardly mattered?");
}
