//! HLS (version 7, fMP4) media playlists over indexed fragments: VOD windows, and live playlists numbered stably across refreshes.
//!
//! Every fragment of a segment file (one GOP, starting with a keyframe) is one HLS media
//! segment: a byte range of the file as the segments route serves it (the file's bytes
//! with decode times moved onto the wall clock, see [`super::export::segment_pieces`]), so
//! players fetch exactly what the index vouches for and nothing is remuxed. Each file is
//! its own init section (`EXT-X-MAP` on its first bytes). A new file is marked a
//! discontinuity (its encoder may have restarted), and so is a gap in wall-clock time;
//! `EXT-X-PROGRAM-DATE-TIME` then says where the media sits on the wall clock, which is
//! what a timeline needs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Mutex;

use crate::recording::{Fragment, Nanos, Segment, Span, GAP_TOLERANCE};

use super::time::format_time;

const SECOND: Nanos = 1_000_000_000;

/// How much of a growing video a live playlist lists: enough for players to buffer and to
/// seek back a little; the timeline uses VOD windows for anything older.
pub const LIVE_WINDOW: Nanos = 5 * 60 * SECOND;

/// How far behind the newest listing a live refresh still counts fragments from the last
/// anchor (see [`LiveSequencer`]); a player silent for longer than this has gone.
pub const LIVE_CATCH_UP: Nanos = 60 * 60 * SECOND;

/// Unit of the numbers a live playlist starts from when it has no anchor: fragments are
/// longer than this, so numbering restarted after a server restart never goes backwards.
const RESTART_UNIT: Nanos = 10_000_000;

/// One fragment as a playlist lists it.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub segment: &'a Segment,
    pub fragment: &'a Fragment,
    /// A discontinuity precedes it: another file, or a jump in wall-clock time from the
    /// previous fragment beyond [`GAP_TOLERANCE`]. Meaningless for the first entry.
    pub boundary: bool,
}

impl Entry<'_> {
    fn same_file(&self, other: &Entry) -> bool {
        self.segment.id == other.segment.id && self.segment.file == other.segment.file
    }
}

/// All fragments of `segments` (in time order, as the catalog returns them), with the
/// discontinuities between them.
pub fn entries(segments: &[Segment]) -> Vec<Entry<'_>> {
    let mut out: Vec<Entry> = Vec::with_capacity(segments.iter().map(|s| s.fragments.len()).sum());
    for segment in segments {
        for fragment in &segment.fragments {
            let boundary = out.last().is_none_or(|prev| {
                prev.segment.id != segment.id || fragment.start.saturating_sub(prev.fragment.end()).saturating_abs() > GAP_TOLERANCE
            });
            out.push(Entry { segment, fragment, boundary });
        }
    }
    out
}

/// Indices of the entries overlapping `[window.start, window.end)`: the first is the fragment
/// containing the start (so playback begins on the keyframe at or before it) or the first
/// after it when the start falls in a gap.
pub fn overlapping(entries: &[Entry], window: Span) -> Range<usize> {
    let first = entries.iter().position(|e| e.fragment.end() > window.start).unwrap_or(entries.len());
    let last = entries[first..].iter().position(|e| e.fragment.start >= window.end).map_or(entries.len(), |n| first + n);
    first..last
}

/// The playlist header's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub target_duration: u64,
    /// `EXT-X-PLAYLIST-TYPE:VOD`: the listing will never change.
    pub vod: bool,
    /// `EXT-X-ENDLIST`: no media will be added.
    pub endlist: bool,
}

/// `EXT-X-TARGETDURATION`: every `EXTINF` rounded to the nearest second must not exceed it,
/// so the longest fragment rounded up (at least 1).
pub fn target_duration(entries: &[Entry]) -> u64 {
    let longest = entries.iter().map(|e| e.fragment.duration.max(0)).max().unwrap_or(0);
    ((longest.saturating_add(SECOND - 1) / SECOND) as u64).max(1)
}

/// Writes the playlist. `uri` names a segment file relative to the playlist.
pub fn render(entries: &[Entry], header: &Header, uri: &dyn Fn(&Segment) -> String) -> String {
    let mut out = String::with_capacity(256 + entries.len() * 120);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", header.target_duration);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", header.media_sequence);
    if header.discontinuity_sequence != 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", header.discontinuity_sequence);
    }
    if header.vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    // Every fragment starts with a keyframe and carries its own timing.
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut current_uri = String::new();
    for (i, e) in entries.iter().enumerate() {
        let new_file = i == 0 || !e.same_file(&entries[i - 1]);
        if new_file {
            current_uri = uri(e.segment);
        }
        if i > 0 && e.boundary {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if new_file {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{current_uri}\",BYTERANGE=\"{}@0\"", e.segment.init_len);
        }
        if i == 0 || e.boundary {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_time(e.fragment.start));
        }
        let _ = writeln!(out, "#EXTINF:{:.3},", e.fragment.duration.max(0) as f64 / SECOND as f64);
        let _ = writeln!(out, "#EXT-X-BYTERANGE:{}@{}", e.fragment.len, e.fragment.offset);
        out.push_str(&current_uri);
        out.push('\n');
    }
    if header.endlist {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// A closed window: every overlapping fragment, numbered from zero, with `EXT-X-ENDLIST`.
/// `None` when nothing in `segments` overlaps the window.
pub fn vod_playlist(segments: &[Segment], window: Span, uri: &dyn Fn(&Segment) -> String) -> Option<String> {
    let all = entries(segments);
    let listed = &all[overlapping(&all, window)];
    if listed.is_empty() {
        return None;
    }
    let header =
        Header { media_sequence: 0, discontinuity_sequence: 0, target_duration: target_duration(listed), vod: true, endlist: true };
    Some(render(listed, &header, uri))
}

/// Where the numbering of a video's live playlist stands: a listed fragment and its numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveAnchor {
    segment: u64,
    offset: u64,
    start: Nanos,
    media_sequence: u64,
    discontinuity_sequence: u64,
    target_duration: u64,
}

/// Numbers live playlists so that a fragment keeps its media sequence number (and its
/// discontinuity sequence number) across refreshes, as RFC 8216 §6.2.2 requires of a
/// sliding window.
///
/// Sequence numbers are implicit (the first segment's plus its position), so numbering is a
/// running count of fragments. The index has no such count, and counting from the start of
/// a video would read weeks of index on every refresh and change whenever retention
/// deletes. Instead each video keeps an anchor: the first fragment of the last live listing
/// and its numbers. A refresh reads the index from the anchor on (a few minutes of it, as
/// players refresh every few seconds) and counts on. Without an anchor (first viewer, a
/// server restart, or no viewer for [`LIVE_CATCH_UP`]) numbering restarts from the
/// fragment's wall-clock time in 10 ms units, which only ever moves forwards, so a player
/// that survives the restart skips ahead instead of waiting for numbers that never come.
///
/// One sequencer must serve all workers of a server (it is shared by [`super::Playback`]).
#[derive(Debug, Default)]
pub struct LiveSequencer {
    anchors: Mutex<HashMap<String, LiveAnchor>>,
}

/// What [`LiveSequencer::begin`] saw, handed back to [`LiveSequencer::playlist`].
#[derive(Debug, Clone)]
pub struct LiveRequest {
    video: String,
    /// Wall-clock start of the listing (the newest recorded time minus [`LIVE_WINDOW`]).
    window_start: Nanos,
    /// Fetch the index from here on.
    pub fetch_from: Nanos,
    anchor: Option<LiveAnchor>,
}

impl LiveSequencer {
    /// Starts a live listing of `video` whose newest recorded time is `edge`: says from where
    /// the index must be read.
    pub fn begin(&self, video: &str, edge: Nanos) -> LiveRequest {
        let window_start = edge.saturating_sub(LIVE_WINDOW);
        let anchor = self.lock().get(video).cloned();
        let fetch_from = match &anchor {
            Some(a) if a.start < window_start && a.start >= window_start.saturating_sub(LIVE_CATCH_UP) => a.start,
            _ => window_start,
        };
        LiveRequest { video: video.to_owned(), window_start, fetch_from, anchor }
    }

    /// The playlist of the last [`LIVE_WINDOW`] of `segments` (read from `request.fetch_from`
    /// on). `live` is false once nothing is being recorded: the playlist then ends
    /// (`EXT-X-ENDLIST`) and players stop refreshing. `None` when nothing is listed.
    pub fn playlist(&self, request: &LiveRequest, segments: &[Segment], live: bool, uri: &dyn Fn(&Segment) -> String) -> Option<String> {
        let all = entries(segments);
        let first = all.iter().position(|e| e.fragment.end() > request.window_start)?;
        let listed = &all[first..];
        let mut anchors = self.lock();
        // The anchor may have moved on since `begin` (another refresh, same video): either
        // one, if listed, gives the same numbers.
        let current = anchors.get(&request.video).cloned();
        let found = [current.as_ref(), request.anchor.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|a| all.iter().position(|e| e.segment.id == a.segment && e.fragment.offset == a.offset).map(|at| (a, at)));
        let (media_sequence, discontinuity_sequence) = match found {
            Some((a, at)) => continue_numbers(&all, a, at, first),
            None => {
                let from_time = u64::try_from(listed[0].fragment.start / RESTART_UNIT).unwrap_or(0);
                let previous = current.as_ref().or(request.anchor.as_ref());
                (
                    previous.map_or(from_time, |p| from_time.max(p.media_sequence.saturating_add(1))),
                    previous.map_or(from_time, |p| from_time.max(p.discontinuity_sequence.saturating_add(1))),
                )
            }
        };
        // The target duration must not change while the playlist lives; it can only grow
        // (if a camera lengthens its GOP), never shrink.
        let target = target_duration(listed).max(current.as_ref().map_or(0, |a| a.target_duration));
        let newest = current.as_ref().is_none_or(|a| listed[0].fragment.start >= a.start || found.is_none());
        if newest {
            anchors.insert(
                request.video.clone(),
                LiveAnchor {
                    segment: listed[0].segment.id,
                    offset: listed[0].fragment.offset,
                    start: listed[0].fragment.start,
                    media_sequence,
                    discontinuity_sequence,
                    target_duration: target,
                },
            );
        }
        drop(anchors);
        let header = Header { media_sequence, discontinuity_sequence, target_duration: target, vod: false, endlist: !live };
        Some(render(listed, &header, uri))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveAnchor>> {
        // Nothing panics while holding it; a poisoned map is still a consistent map.
        self.anchors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The numbers of `all[first]` given that `all[at]` has the anchor's: one media sequence
/// number per fragment, one discontinuity sequence number per boundary between them.
fn continue_numbers(all: &[Entry], anchor: &LiveAnchor, at: usize, first: usize) -> (u64, u64) {
    let boundaries = |r: Range<usize>| all[r].iter().filter(|e| e.boundary).count() as u64;
    if first >= at {
        (
            anchor.media_sequence.saturating_add((first - at) as u64),
            anchor.discontinuity_sequence.saturating_add(boundaries(at + 1..first + 1)),
        )
    } else {
        (
            anchor.media_sequence.saturating_sub((at - first) as u64),
            anchor.discontinuity_sequence.saturating_sub(boundaries(first + 1..at + 1)),
        )
    }
}

/// Percent-encodes a file name for a URI path segment (RFC 3986 unreserved characters pass).
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const T0: Nanos = 1_714_564_800 * SECOND;

    /// A segment file starting at `start` with `n` fragments of `gop` each.
    pub fn segment(id: u64, start: Nanos, n: usize, gop: Nanos) -> Segment {
        let init_len = 700;
        let fragments: Vec<Fragment> = (0..n)
            .map(|i| Fragment { offset: init_len + 1000 * i as u64, len: 1000, start: start + gop * i as Nanos, duration: gop, frames: 20 })
            .collect();
        Segment {
            video: "cam".into(),
            id,
            file: format!("{id}.mp4"),
            init_len,
            codec: "avc1.4d401f".into(),
            width: 768,
            height: 576,
            start,
            end: start + gop * n as Nanos,
            fragments,
            open: false,
        }
    }

    fn uri(s: &Segment) -> String {
        format!("segments/{}", s.file)
    }

    fn lines(p: &str) -> Vec<&str> {
        p.lines().collect()
    }

    #[test]
    fn vod_lists_overlapping_fragments_with_maps_and_discontinuities() {
        // Two contiguous files, then a 10 s gap, then a third.
        let segs =
            vec![segment(1, T0, 5, 2 * SECOND), segment(2, T0 + 10 * SECOND, 5, 2 * SECOND), segment(3, T0 + 30 * SECOND, 5, 2 * SECOND)];
        // From inside the second fragment of file 1 to inside the first of file 3.
        let p = vod_playlist(&segs, Span { start: T0 + 3 * SECOND, end: T0 + 31 * SECOND }, &uri).unwrap();
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI=\"segments/1.mp4\",BYTERANGE=\"700@0\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:02.000Z
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000@1700
segments/1.mp4
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000@2700
segments/1.mp4
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000@3700
segments/1.mp4
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000@4700
segments/1.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"segments/2.mp4\",BYTERANGE=\"700@0\"
#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:10.000Z
";
        assert!(p.starts_with(expected), "{p}");
        let l = lines(&p);
        assert_eq!(l.iter().filter(|l| l.starts_with("#EXTINF")).count(), 4 + 5 + 1);
        assert_eq!(l.iter().filter(|l| **l == "#EXT-X-DISCONTINUITY").count(), 2);
        assert_eq!(l.iter().filter(|l| l.starts_with("#EXT-X-MAP")).count(), 3);
        assert_eq!(l.iter().filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME")).count(), 3);
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:30.000Z\n#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@700\nsegments/3.mp4\n#EXT-X-ENDLIST\n"), "{p}");
    }

    #[test]
    fn a_gap_inside_a_file_is_a_discontinuity_without_a_new_map() {
        let mut s = segment(1, T0, 4, 2 * SECOND);
        for f in &mut s.fragments[2..] {
            f.start += 5 * SECOND;
        }
        // Jitter within the tolerance is not a gap.
        s.fragments[1].start += GAP_TOLERANCE / 2;
        let p = vod_playlist(&[s], Span { start: T0, end: T0 + 60 * SECOND }, &uri).unwrap();
        assert_eq!(lines(&p).iter().filter(|l| **l == "#EXT-X-DISCONTINUITY").count(), 1, "{p}");
        assert_eq!(lines(&p).iter().filter(|l| l.starts_with("#EXT-X-MAP")).count(), 1);
        assert!(p.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:09.000Z\n"), "{p}");
    }

    #[test]
    fn target_duration_rounds_the_longest_fragment_up() {
        let mut s = segment(1, T0, 3, 2 * SECOND);
        s.fragments[1].duration = 2 * SECOND + 1;
        let p = vod_playlist(&[s.clone()], Span { start: T0, end: T0 + 60 * SECOND }, &uri).unwrap();
        assert!(p.contains("#EXT-X-TARGETDURATION:3\n"), "{p}");
        s.fragments[1].duration = SECOND / 10;
        let e = entries(std::slice::from_ref(&s));
        assert_eq!(target_duration(&e[1..2]), 1);
    }

    #[test]
    fn windows_start_on_the_fragment_at_or_before_and_empty_windows_list_nothing() {
        let segs = vec![segment(1, T0, 5, 2 * SECOND), segment(2, T0 + 30 * SECOND, 5, 2 * SECOND)];
        let all = entries(&segs);
        assert_eq!(overlapping(&all, Span { start: T0, end: T0 + 1 }), 0..1);
        assert_eq!(overlapping(&all, Span { start: T0 + 2 * SECOND, end: T0 + 4 * SECOND }), 1..2);
        assert_eq!(overlapping(&all, Span { start: T0 + 2 * SECOND - 1, end: T0 + 4 * SECOND + 1 }), 0..3);
        // In the gap: the first fragment after it.
        assert_eq!(overlapping(&all, Span { start: T0 + 15 * SECOND, end: T0 + 31 * SECOND }), 5..6);
        assert!(vod_playlist(&segs, Span { start: T0 + 12 * SECOND, end: T0 + 30 * SECOND }, &uri).is_none());
        assert!(vod_playlist(&[], Span { start: T0, end: T0 + 30 * SECOND }, &uri).is_none());
    }

    /// The header numbers and the URIs + byte ranges of a live playlist, in order.
    fn parse_live(p: &str) -> (u64, u64, Vec<String>, Vec<usize>, bool) {
        let num = |tag: &str| p.lines().find_map(|l| l.strip_prefix(tag)).map_or(0, |v| v.parse().unwrap());
        let mut listed = Vec::new();
        let mut discontinuities = Vec::new();
        let mut range = "";
        for l in p.lines() {
            if l == "#EXT-X-DISCONTINUITY" {
                discontinuities.push(listed.len());
            } else if let Some(r) = l.strip_prefix("#EXT-X-BYTERANGE:") {
                range = r;
            } else if !l.starts_with('#') {
                listed.push(format!("{l}#{range}"));
            }
        }
        (num("#EXT-X-MEDIA-SEQUENCE:"), num("#EXT-X-DISCONTINUITY-SEQUENCE:"), listed, discontinuities, p.contains("#EXT-X-ENDLIST"))
    }

    #[test]
    fn live_numbers_stay_with_their_fragments_across_refreshes() {
        // A recording growing by one 2 s fragment per step; a new file every 30 fragments and
        // a gap after step 100.
        let gop = 2 * SECOND;
        let seq = LiveSequencer::default();
        let mut numbers: HashMap<String, (u64, u64)> = HashMap::new();
        let mut last_first = None;
        for step in 1..400usize {
            let mut segs = Vec::new();
            let mut t = T0;
            let mut left = step;
            let mut id = 0;
            while left > 0 {
                let n = left.min(30);
                segs.push(segment(id, t, n, gop));
                t += gop * n as Nanos;
                if id == 3 {
                    t += 60 * SECOND;
                }
                id += 1;
                left -= n;
            }
            let edge = segs.last().unwrap().end;
            let req = seq.begin("cam", edge);
            let fetched: Vec<Segment> = segs.into_iter().filter(|s| s.end > req.fetch_from).collect();
            let p = seq.playlist(&req, &fetched, true, &|s| format!("segments/{}", s.file)).unwrap();
            let (msn, dsn, listed, discontinuities, ended) = parse_live(&p);
            assert!(!ended);
            assert!(p.contains("#EXT-X-TARGETDURATION:2\n"));
            assert!(!p.contains("PLAYLIST-TYPE"));
            // The listing is the last five minutes.
            assert!(!listed.is_empty() && listed.len() as Nanos * gop <= LIVE_WINDOW + gop, "step {step}: {}", listed.len());
            let mut d = dsn;
            for (i, key) in listed.iter().enumerate() {
                if discontinuities.contains(&i) {
                    d += 1;
                }
                let n = (msn + i as u64, d);
                assert_eq!(*numbers.entry(key.clone()).or_insert(n), n, "step {step}: {key} renumbered");
            }
            if let Some(prev) = last_first {
                assert!(msn >= prev, "step {step}: media sequence went back");
            }
            last_first = Some(msn);
        }
        // 399 fragments, each numbered once, consecutively from the first listing's number.
        let mut all: Vec<u64> = numbers.values().map(|n| n.0).collect();
        all.sort();
        assert_eq!(all.len(), 399);
        assert!(all.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn live_numbering_restarts_forwards_and_ends_when_recording_stops() {
        let gop = 2 * SECOND;
        let segs = vec![segment(1, T0, 30, gop)];
        let seq = LiveSequencer::default();
        let req = seq.begin("cam", segs[0].end);
        let (msn, _, listed, _, ended) = parse_live(&seq.playlist(&req, &segs, false, &uri).unwrap());
        assert!(ended);
        assert_eq!(listed.len(), 30);
        assert_eq!(msn, (T0 / RESTART_UNIT) as u64);
        // A fresh sequencer (a restart) a day later starts from a larger number.
        let later = vec![segment(9, T0 + 86_400 * SECOND, 30, gop)];
        let fresh = LiveSequencer::default();
        let req = fresh.begin("cam", later[0].end);
        let (msn2, ..) = parse_live(&fresh.playlist(&req, &later, true, &uri).unwrap());
        assert!(msn2 > msn + 30);
        // The old sequencer, anchor long gone: also forwards, also from the time.
        let req = seq.begin("cam", later[0].end);
        assert_eq!(req.fetch_from, later[0].end - LIVE_WINDOW);
        let (msn3, ..) = parse_live(&seq.playlist(&req, &later, true, &uri).unwrap());
        assert_eq!(msn3, msn2);
        // Nothing in the listing window: no playlist.
        let req = seq.begin("cam", T0 + 1000 * 86_400 * SECOND);
        assert!(seq.playlist(&req, &later, true, &uri).is_none());
    }

    #[test]
    fn file_names_are_escaped_for_uris() {
        assert_eq!(encode_path_segment("20240501T120000Z-1.mp4"), "20240501T120000Z-1.mp4");
        assert_eq!(encode_path_segment("a b/ü?"), "a%20b%2F%C3%BC%3F");
    }
}
