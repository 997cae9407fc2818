//! The sled index of the video store: videos, segments keyed by (video, start), per-video totals and merged recorded spans, changed in atomic batches.
//!
//! One tree, four key families (see [`super::encoding`]): `V name` (video record, JSON),
//! `M name` (totals), `S name NUL id` (segment record with its fragments; ids are start
//! times in ms so key order is time order) and `P name NUL start` (recorded spans: the
//! union of all fragments, pieces closer than [`GAP_TOLERANCE`] merged). Every change to
//! a segment rewrites its totals and spans in the same sled batch, so the three never
//! disagree, even after a crash. Spans make `ranges()` a short range scan however long the
//! recording: continuous recording is one span.
//!
//! Durability: batches are applied without waiting for sled's periodic flush; the media
//! files are the truth for anything after the last flush (recovery adopts them), and
//! callers that remove entries before deleting files call [`Index::flush`] in between.
//! Writers store a segment once, when it closes (see `writer.rs` for why).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::encoding::{self, Meta};
use super::spans;
use super::{Nanos, Segment, Span, StoreError, VideoSettings, GAP_TOLERANCE};

/// sled's default cache is 1 GiB; the index is read mostly at its recent end.
const CACHE_BYTES: u64 = 16 << 20;

/// How a video was created (settings apply only at creation, like AVA's videoCreationProperties).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// The video's own directory: its segment files live directly in it.
    pub dir: PathBuf,
    pub settings: VideoSettings,
}

pub struct Index {
    db: sled::Db,
    metadata: super::metadata::Metadata,
    /// Serialises read-modify-write of totals and spans (reads need no lock: each batch is atomic).
    write: Mutex<()>,
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Index(e.to_string())
}

fn corrupt(e: encoding::Corrupt) -> StoreError {
    StoreError::Index(e.to_string())
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Index("a thread panicked while changing the index".into())
}

impl Index {
    pub fn open(dir: &Path) -> Result<Index, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        let db = sled::Config::new().path(dir).cache_capacity(CACHE_BYTES).mode(sled::Mode::LowSpace).open().map_err(sled_err)?;
        let metadata = super::metadata::Metadata::open(&db)?;
        Ok(Index { db, metadata, write: Mutex::new(()) })
    }

    /// The inference metadata recorded with the videos (its own tree of the same database).
    pub fn metadata(&self) -> &super::metadata::Metadata {
        &self.metadata
    }

    /// Makes every applied change durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(sled_err)
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(sled_err)
    }

    pub fn video(&self, name: &str) -> Result<Option<VideoRecord>, StoreError> {
        match self.db.get(encoding::video_key(name)).map_err(sled_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Index(format!("video record of '{name}': {e}"))),
        }
    }

    pub fn videos(&self) -> Result<Vec<(String, VideoRecord)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(encoding::video_prefix()) {
            let (k, v) = kv.map_err(sled_err)?;
            let name = String::from_utf8(k[1..].to_vec()).map_err(|_| StoreError::Index("video name is not UTF-8".into()))?;
            let rec = serde_json::from_slice(&v).map_err(|e| StoreError::Index(format!("video record of '{name}': {e}")))?;
            out.push((name, rec));
        }
        Ok(out)
    }

    /// Creates the video unless it exists; returns the record in effect.
    pub fn create_video(&self, name: &str, rec: &VideoRecord) -> Result<VideoRecord, StoreError> {
        let _w = self.write.lock().map_err(poisoned)?;
        if let Some(existing) = self.video(name)? {
            return Ok(existing);
        }
        let json = serde_json::to_vec(rec).map_err(|e| StoreError::Index(e.to_string()))?;
        self.db.insert(encoding::video_key(name), json).map_err(sled_err)?;
        self.flush()?;
        Ok(rec.clone())
    }

    pub fn meta(&self, name: &str) -> Result<Meta, StoreError> {
        match self.db.get(encoding::meta_key(name)).map_err(sled_err)? {
            None => Ok(Meta::default()),
            Some(v) => encoding::decode_meta(&v).map_err(corrupt),
        }
    }

    pub fn segment(&self, name: &str, id: u64) -> Result<Option<Segment>, StoreError> {
        match self.db.get(encoding::segment_key(name, id)).map_err(sled_err)? {
            None => Ok(None),
            Some(v) => encoding::decode_segment(name, id, &v).map(Some).map_err(corrupt),
        }
    }

    /// Whether a segment with this id exists (without decoding it).
    pub fn has_segment(&self, name: &str, id: u64) -> Result<bool, StoreError> {
        self.db.contains_key(encoding::segment_key(name, id)).map_err(sled_err)
    }

    /// All segments of a video in start order, read lazily.
    pub fn iter_segments(&self, name: &str) -> impl Iterator<Item = Result<Segment, StoreError>> + Send + 'static {
        let video = name.to_string();
        self.db.scan_prefix(encoding::segment_prefix(name)).map(move |kv| {
            let (k, v) = kv.map_err(sled_err)?;
            let id = encoding::segment_key_id(&k).map_err(corrupt)?;
            encoding::decode_segment(&video, id, &v).map_err(corrupt)
        })
    }

    /// Segments with media overlapping `[start, end)`, in start order (segments without
    /// fragments have no media and never overlap).
    pub fn segments_overlapping(&self, name: &str, start: Nanos, end: Nanos) -> Result<Vec<Segment>, StoreError> {
        let meta = self.meta(name)?;
        // Keys are start times in ms: a segment overlapping the window starts at most its
        // longest length before it.
        let lo = start.saturating_sub(meta.max_segment).saturating_sub(1_000_000).max(0) / 1_000_000;
        let hi = end.max(0) / 1_000_000 + 1;
        let mut out = Vec::new();
        for kv in self.db.range(encoding::segment_key(name, lo as u64)..=encoding::segment_key(name, hi as u64)) {
            let (k, v) = kv.map_err(sled_err)?;
            let id = encoding::segment_key_id(&k).map_err(corrupt)?;
            let seg = encoding::decode_segment(name, id, &v).map_err(corrupt)?;
            if seg.start < end && seg.end > start {
                out.push(seg);
            }
        }
        Ok(out)
    }

    /// Recorded spans within `[start, end)`, clipped to it.
    pub fn spans(&self, name: &str, start: Nanos, end: Nanos) -> Result<Vec<Span>, StoreError> {
        if end <= start {
            return Ok(Vec::new());
        }
        Ok(spans::clip(self.spans_touching(name, Span { start, end })?, start, end))
    }

    /// Every stored span of a video.
    pub fn all_spans(&self, name: &str) -> Result<Vec<Span>, StoreError> {
        self.db
            .scan_prefix(encoding::span_prefix(name))
            .map(|kv| {
                let (k, v) = kv.map_err(sled_err)?;
                encoding::decode_span(&k, &v).map_err(corrupt)
            })
            .collect()
    }

    /// First and last stored span of a video.
    pub fn span_bounds(&self, name: &str) -> Result<Option<Span>, StoreError> {
        let mut it = self.db.scan_prefix(encoding::span_prefix(name));
        let decode = |kv: sled::Result<(sled::IVec, sled::IVec)>| -> Result<Span, StoreError> {
            let (k, v) = kv.map_err(sled_err)?;
            encoding::decode_span(&k, &v).map_err(corrupt)
        };
        let Some(first) = it.next().map(decode).transpose()? else { return Ok(None) };
        let last = it.next_back().map(decode).transpose()?.unwrap_or(first);
        Ok(Some(Span { start: first.start, end: last.end }))
    }

    /// Stored spans with `start < w.end` and `end > w.start`, in order.
    fn spans_touching(&self, name: &str, w: Span) -> Result<Vec<Span>, StoreError> {
        let mut out = Vec::new();
        // Spans are disjoint and sorted, so their ends are sorted too: walk back from the
        // window's end until a span ends before the window.
        for kv in self.db.range(encoding::span_prefix(name)..encoding::span_key(name, w.end)).rev() {
            let (k, v) = kv.map_err(sled_err)?;
            let s = encoding::decode_span(&k, &v).map_err(corrupt)?;
            if s.end <= w.start {
                break;
            }
            out.push(s);
        }
        out.reverse();
        Ok(out)
    }

    /// Inserts or replaces a segment, keeping its video's totals and spans in step.
    pub fn put_segment(&self, seg: &Segment) -> Result<(), StoreError> {
        let _w = self.write.lock().map_err(poisoned)?;
        let name = seg.video.as_str();
        let old = self.segment(name, seg.id)?;
        let mut meta = self.meta(name)?;
        let mut batch = sled::Batch::default();
        match &old {
            Some(o) => meta.bytes = meta.bytes.saturating_sub(o.indexed_len()),
            None => meta.segments += 1,
        }
        meta.bytes = meta.bytes.saturating_add(seg.indexed_len());
        meta.max_segment = meta.max_segment.max(seg.end.saturating_sub(seg.start));
        match &old {
            Some(o) if !only_grows(o, seg) => {
                let cut = Span { start: o.start.min(seg.start), end: o.end.max(seg.end) };
                self.respan_window(&mut batch, name, cut, &HashSet::from([seg.id]), std::slice::from_ref(seg))?;
            }
            _ => {
                let from = old.as_ref().map_or(0, |o| o.fragments.len().saturating_sub(1));
                let pieces = seg.fragments[from.min(seg.fragments.len())..].iter().map(|f| Span { start: f.start, end: f.end() });
                self.add_pieces(&mut batch, name, pieces)?;
            }
        }
        batch.insert(encoding::segment_key(name, seg.id), encoding::encode_segment(seg));
        batch.insert(encoding::meta_key(name), encoding::encode_meta(&meta));
        self.db.apply_batch(batch).map_err(sled_err)
    }

    /// Removes segments (missing ids are skipped); returns what was removed.
    pub fn remove_segments(&self, name: &str, ids: &[u64]) -> Result<Vec<Segment>, StoreError> {
        let _w = self.write.lock().map_err(poisoned)?;
        let mut meta = self.meta(name)?;
        let mut batch = sled::Batch::default();
        let mut removed = Vec::new();
        for &id in ids {
            if let Some(seg) = self.segment(name, id)? {
                meta.bytes = meta.bytes.saturating_sub(seg.indexed_len());
                meta.segments = meta.segments.saturating_sub(1);
                batch.remove(encoding::segment_key(name, id));
                removed.push(seg);
            }
        }
        let Some(cut) = removed
            .iter()
            .map(|s| Span { start: s.start, end: s.end })
            .reduce(|a, b| Span { start: a.start.min(b.start), end: a.end.max(b.end) })
        else {
            return Ok(removed);
        };
        let gone: HashSet<u64> = removed.iter().map(|s| s.id).collect();
        self.respan_window(&mut batch, name, cut, &gone, &[])?;
        batch.insert(encoding::meta_key(name), encoding::encode_meta(&meta));
        self.db.apply_batch(batch).map_err(sled_err)?;
        Ok(removed)
    }

    /// Adds recorded pieces to the spans (the common path: a fragment was appended).
    fn add_pieces(&self, batch: &mut sled::Batch, name: &str, pieces: impl Iterator<Item = Span>) -> Result<(), StoreError> {
        let new = spans::merge(pieces, GAP_TOLERANCE);
        let (Some(first), Some(last)) = (new.first(), new.last()) else { return Ok(()) };
        let near = spans::widen(Span { start: first.start, end: last.end }, GAP_TOLERANCE);
        let old = self.spans_touching(name, near)?;
        let merged = spans::merge(old.iter().copied().chain(new), GAP_TOLERANCE);
        write_span_diff(batch, name, &old, &merged);
        Ok(())
    }

    /// Recomputes the spans around `cut` after the segments in `replaced` changed or went:
    /// outside the window (widened by the tolerance) the old spans stand; inside it they are
    /// rebuilt from the fragments of the remaining (and `added`) segments.
    fn respan_window(
        &self,
        batch: &mut sled::Batch,
        name: &str,
        cut: Span,
        replaced: &HashSet<u64>,
        added: &[Segment],
    ) -> Result<(), StoreError> {
        let w = spans::widen(cut, GAP_TOLERANCE);
        let old = self.spans_touching(name, spans::widen(w, GAP_TOLERANCE))?;
        let mut pieces: Vec<Span> = old.iter().flat_map(|s| spans::outside(*s, w)).collect();
        // The stored max_segment covers every stored segment; `added` ones are passed in.
        let remaining = self.segments_overlapping(name, w.start, w.end)?.into_iter().filter(|s| !replaced.contains(&s.id));
        for seg in remaining.chain(added.iter().cloned()) {
            pieces.extend(spans::clip(seg.fragments.iter().map(|f| Span { start: f.start, end: f.end() }), w.start, w.end));
        }
        let merged = spans::merge(pieces, GAP_TOLERANCE);
        write_span_diff(batch, name, &old, &merged);
        Ok(())
    }
}

/// Whether `new` only adds media to `old`: same fragments, the last possibly longer, more after it.
fn only_grows(old: &Segment, new: &Segment) -> bool {
    let n = old.fragments.len();
    if new.fragments.len() < n {
        return false;
    }
    if n == 0 {
        return true;
    }
    old.fragments[..n - 1] == new.fragments[..n - 1] && {
        let (a, b) = (&old.fragments[n - 1], &new.fragments[n - 1]);
        a.offset == b.offset && a.start == b.start && b.len >= a.len && b.end() >= a.end()
    }
}

fn write_span_diff(batch: &mut sled::Batch, name: &str, old: &[Span], new: &[Span]) {
    for s in old.iter().filter(|s| !new.contains(s)) {
        batch.remove(encoding::span_key(name, s.start));
    }
    for s in new.iter().filter(|s| !old.contains(s)) {
        batch.insert(encoding::span_key(name, s.start), &encoding::encode_span_end(s.end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::Fragment;
    use proptest::prelude::*;

    pub(crate) fn temp_index() -> (Index, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vela-index-{}", uuid::Uuid::new_v4()));
        (Index::open(&dir).unwrap(), dir)
    }

    const S: Nanos = 1_000_000_000;

    /// A closed segment starting at `start_s` seconds with `n` fragments of `frag_s` seconds.
    fn seg(video: &str, start_s: i64, n: usize, frag_s: i64) -> Segment {
        let start = start_s * S;
        let id = (start / 1_000_000) as u64;
        let fragments: Vec<Fragment> = (0..n)
            .map(|i| Fragment {
                offset: 1000 + i as u64 * 500,
                len: 500,
                start: start + i as i64 * frag_s * S,
                duration: frag_s * S,
                frames: 20,
            })
            .collect();
        Segment {
            video: video.into(),
            id,
            file: crate::recording::names::segment_file_name(id),
            init_len: 1000,
            codec: "avc1.4d401f".into(),
            width: 768,
            height: 576,
            start,
            end: fragments.last().map_or(start, Fragment::end),
            fragments,
            open: false,
        }
    }

    fn sp(a: i64, b: i64) -> Span {
        Span { start: a * S, end: b * S }
    }

    #[test]
    fn appending_extends_spans_and_totals() {
        let (ix, dir) = temp_index();
        let mut s = seg("cam", 100, 0, 2);
        s.open = true;
        ix.put_segment(&s).unwrap();
        assert_eq!(ix.meta("cam").unwrap(), Meta { bytes: 1000, segments: 1, max_segment: 0 });
        assert!(ix.all_spans("cam").unwrap().is_empty());
        for n in 1..=3 {
            let mut grown = seg("cam", 100, n, 2);
            grown.open = true;
            ix.put_segment(&grown).unwrap();
        }
        assert_eq!(ix.all_spans("cam").unwrap(), vec![sp(100, 106)]);
        assert_eq!(ix.meta("cam").unwrap(), Meta { bytes: 2500, segments: 1, max_segment: 6 * S });
        // A segment after a 10 s gap is another span; one 0.5 s after the end joins.
        ix.put_segment(&seg("cam", 116, 2, 2)).unwrap();
        let mut near = seg("cam", 120, 1, 2);
        near.fragments[0].start += S / 2;
        near.start += S / 2;
        near.end += S / 2;
        ix.put_segment(&near).unwrap();
        assert_eq!(ix.all_spans("cam").unwrap(), vec![sp(100, 106), Span { start: 116 * S, end: 122 * S + S / 2 }]);
        assert_eq!(ix.spans("cam", 105 * S, 117 * S).unwrap(), vec![sp(105, 106), sp(116, 117)]);
        assert_eq!(
            ix.segments_overlapping("cam", 105 * S, 117 * S).unwrap().iter().map(|s| s.start / S).collect::<Vec<_>>(),
            vec![100, 116]
        );
        assert!(ix.segments_overlapping("cam", 106 * S, 116 * S).unwrap().is_empty());
        assert_eq!(ix.span_bounds("cam").unwrap(), Some(Span { start: 100 * S, end: 122 * S + S / 2 }));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn removing_the_oldest_segment_cuts_the_front_of_its_span() {
        let (ix, dir) = temp_index();
        for i in 0..10 {
            ix.put_segment(&seg("cam", i * 30, 15, 2)).unwrap();
        }
        assert_eq!(ix.all_spans("cam").unwrap(), vec![sp(0, 300)]);
        let removed = ix.remove_segments("cam", &[0, 30_000, 999]).unwrap();
        assert_eq!(removed.len(), 2);
        assert_eq!(ix.all_spans("cam").unwrap(), vec![sp(60, 300)]);
        // A hole in the middle splits the span.
        ix.remove_segments("cam", &[150_000]).unwrap();
        assert_eq!(ix.all_spans("cam").unwrap(), vec![sp(60, 150), sp(180, 300)]);
        assert_eq!(ix.meta("cam").unwrap().segments, 7);
        assert_eq!(ix.meta("cam").unwrap().bytes, 7 * (1000 + 15 * 500));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn videos_do_not_see_each_other() {
        let (ix, dir) = temp_index();
        ix.put_segment(&seg("a", 0, 2, 2)).unwrap();
        ix.put_segment(&seg("a b", 0, 3, 2)).unwrap();
        assert_eq!(ix.all_spans("a").unwrap(), vec![sp(0, 4)]);
        assert_eq!(ix.iter_segments("a").count(), 1);
        ix.remove_segments("a b", &[0]).unwrap();
        assert_eq!(ix.all_spans("a").unwrap(), vec![sp(0, 4)]);
        assert!(ix.all_spans("a b").unwrap().is_empty());
        std::fs::remove_dir_all(dir).ok();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Spans maintained incrementally equal spans computed from scratch, whatever is
        /// added, grown, replaced and removed (including overlapping segments from clocks
        /// that jumped back).
        #[test]
        fn incremental_spans_equal_a_full_rebuild(ops in proptest::collection::vec((0u8..4, 0i64..60, 0usize..6, 1i64..4), 1..25)) {
            let (ix, dir) = temp_index();
            for (op, start, n, len) in ops {
                let id = (start * S / 1_000_000) as u64;
                match op {
                    0 | 1 => ix.put_segment(&seg("v", start, n, len)).unwrap(),
                    2 => {
                        // Grow an existing segment by one fragment, or shrink it (recovery replacing).
                        if let Some(mut s) = ix.segment("v", id).unwrap() {
                            if n % 2 == 0 { s.fragments.pop(); } else {
                                let last = s.fragments.last().cloned();
                                let f = Fragment { offset: s.indexed_len(), len: 10, start: last.as_ref().map_or(s.start, Fragment::end), duration: len * S, frames: 1 };
                                s.fragments.push(f);
                            }
                            s.end = s.fragments.last().map_or(s.start, Fragment::end);
                            ix.put_segment(&s).unwrap();
                        }
                    }
                    _ => { ix.remove_segments("v", &[id]).unwrap(); }
                }
                let all: Vec<Segment> = ix.iter_segments("v").map(Result::unwrap).collect();
                let want = spans::merge(all.iter().flat_map(|s| s.fragments.iter().map(|f| Span { start: f.start, end: f.end() })), GAP_TOLERANCE);
                prop_assert_eq!(ix.all_spans("v").unwrap(), want);
                prop_assert_eq!(ix.meta("v").unwrap().bytes, all.iter().map(Segment::indexed_len).sum::<u64>());
                prop_assert_eq!(ix.meta("v").unwrap().segments, all.len() as u64);
            }
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
