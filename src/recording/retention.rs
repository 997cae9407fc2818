//! Retention: a pure policy choosing which segments to delete (age, per-video size, store size, free-disk floor; oldest first) and the applier that deletes them index-first.
//!
//! Rules, in order:
//! 1. per video, segments that ended before `now − retention`;
//! 2. per video, the oldest segments while the video is over its `max_bytes`;
//! 3. the globally oldest segments while all videos together are over `StoreLimits::max_bytes`;
//! 4. per file system, the oldest segments of the videos on it while its free space is under
//!    `StoreLimits::min_free_bytes`.
//!
//! "Oldest" is by segment start. A segment being written or leased by a reader is never
//! deleted; the next oldest goes instead. The policy reads segments lazily, oldest first,
//! and stops as soon as the rules are met, so a pass over weeks of index reads only what
//! it deletes (plus the segments it has to step over).

use std::collections::{HashMap, VecDeque};
use std::iter::Peekable;
use std::path::{Path, PathBuf};

use super::index::Index;
use super::{Nanos, StoreError};

/// Store-wide limits (the appliance's settings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreLimits {
    /// All videos together.
    pub max_bytes: Option<u64>,
    /// Free space to keep on each file system holding videos.
    pub min_free_bytes: u64,
}

/// Why a segment was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Ended before now − the video's retention period.
    Age,
    /// The video was over its own size limit.
    VideoSize,
    /// All videos together were over the store's size limit.
    StoreSize,
    /// Its file system had less free space than the floor.
    FreeSpace,
}

/// What the policy needs to know about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: u64,
    pub start: Nanos,
    pub end: Nanos,
    pub bytes: u64,
    /// Being written, or leased by a reader: never deleted.
    pub protected: bool,
}

/// One video's rules and its segments, oldest first.
pub struct VideoInput<I> {
    pub retention: Option<Nanos>,
    pub max_bytes: Option<u64>,
    pub total_bytes: u64,
    /// Index into the policy's file systems.
    pub fs: usize,
    pub segments: I,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// (video index, segment, why), in the order decided.
    pub delete: Vec<(usize, Candidate, Reason)>,
    /// Per file system: free space after the deletions, when known.
    pub free_after: Vec<Option<u64>>,
    /// Per file system: still under the floor after deleting everything allowed.
    pub below_floor: Vec<bool>,
}

struct Cursor<I: Iterator<Item = Candidate>> {
    /// Looked at by an earlier rule and kept; older than anything left in `rest`.
    kept: VecDeque<Candidate>,
    rest: Peekable<I>,
}

impl<I: Iterator<Item = Candidate>> Cursor<I> {
    /// The oldest segment a size rule may delete (protected ones are stepped over for good).
    fn front(&mut self) -> Option<&Candidate> {
        while self.kept.front().is_some_and(|c| c.protected) {
            self.kept.pop_front();
        }
        if !self.kept.is_empty() {
            return self.kept.front();
        }
        while self.rest.peek().is_some_and(|c| c.protected) {
            self.rest.next();
        }
        self.rest.peek()
    }

    fn pop(&mut self) -> Option<Candidate> {
        self.front()?;
        self.kept.pop_front().or_else(|| self.rest.next())
    }
}

/// Decides what to delete. `free[fs]` is each file system's free space (None: unknown, the
/// floor is not applied to it).
pub fn plan<I: Iterator<Item = Candidate>>(videos: Vec<VideoInput<I>>, now: Nanos, limits: &StoreLimits, free: &[Option<u64>]) -> Plan {
    let mut delete = Vec::new();
    let mut free: Vec<Option<u64>> = free.to_vec();
    let mut totals: Vec<u64> = videos.iter().map(|v| v.total_bytes).collect();
    let fs_of: Vec<usize> = videos.iter().map(|v| v.fs).collect();
    let mut cursors: Vec<Cursor<I>> = Vec::with_capacity(videos.len());
    let mut gone = |v: usize, c: Candidate, why: Reason, totals: &mut Vec<u64>, free: &mut Vec<Option<u64>>| {
        totals[v] = totals[v].saturating_sub(c.bytes);
        if let Some(f) = free.get_mut(fs_of[v]).and_then(Option::as_mut) {
            *f = f.saturating_add(c.bytes);
        }
        delete.push((v, c, why));
    };

    // Rules 1 and 2, per video, in one walk from its oldest segment.
    for (v, input) in videos.into_iter().enumerate() {
        let cutoff = input.retention.map(|r| now.saturating_sub(r));
        let mut cursor = Cursor { kept: VecDeque::new(), rest: input.segments.peekable() };
        while let Some(c) = cursor.rest.peek() {
            let over = input.max_bytes.is_some_and(|m| totals[v] > m);
            // Segments starting after the cutoff cannot have ended before it.
            if !over && cutoff.is_none_or(|cut| c.start >= cut) {
                break;
            }
            let Some(c) = cursor.rest.next() else { break };
            if c.protected {
                continue;
            }
            if cutoff.is_some_and(|cut| c.end <= cut) {
                gone(v, c, Reason::Age, &mut totals, &mut free);
            } else if over {
                gone(v, c, Reason::VideoSize, &mut totals, &mut free);
            } else {
                cursor.kept.push_back(c);
            }
        }
        cursors.push(cursor);
    }

    // Rule 3: globally oldest first.
    if let Some(max) = limits.max_bytes {
        while totals.iter().sum::<u64>() > max {
            let Some(v) = oldest(&mut cursors, |_| true) else { break };
            let Some(c) = cursors[v].pop() else { break };
            gone(v, c, Reason::StoreSize, &mut totals, &mut free);
        }
    }

    // Rule 4: per file system, the oldest of the videos on it.
    let mut below_floor = vec![false; free.len()];
    for fs in 0..free.len() {
        while free[fs].is_some_and(|f| f < limits.min_free_bytes) {
            let Some(v) = oldest(&mut cursors, |v| fs_of[v] == fs) else { break };
            let Some(c) = cursors[v].pop() else { break };
            gone(v, c, Reason::FreeSpace, &mut totals, &mut free);
        }
        below_floor[fs] = free[fs].is_some_and(|f| f < limits.min_free_bytes);
    }
    Plan { delete, free_after: free, below_floor }
}

/// The video whose oldest deletable segment starts first.
fn oldest<I: Iterator<Item = Candidate>>(cursors: &mut [Cursor<I>], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(Nanos, usize)> = None;
    for (v, c) in cursors.iter_mut().enumerate() {
        if !eligible(v) {
            continue;
        }
        if let Some(front) = c.front() {
            if best.is_none_or(|(start, _)| front.start < start) {
                best = Some((front.start, v));
            }
        }
    }
    best.map(|(_, v)| v)
}

/// One deleted segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    pub video: String,
    pub id: u64,
    pub path: PathBuf,
    pub start: Nanos,
    pub end: Nanos,
    pub bytes: u64,
    pub reason: Reason,
}

/// What a retention pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Oldest first within each rule, in the order deleted.
    pub deleted: Vec<Deleted>,
    /// Some file system holding videos is still under the free-space floor: nothing more
    /// could be deleted (the caller raises a diagnostics event).
    pub below_floor: bool,
    /// The lowest free space of those file systems after the pass, when known.
    pub free_bytes: Option<u64>,
    /// Files whose index entry was removed but which could not be deleted (they are adopted
    /// again at the next open, and retention deletes them then).
    pub failed: Vec<(PathBuf, String)>,
}

/// Free bytes available to unprivileged users on the file system holding `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// A video as the applier sees it.
pub(crate) struct VideoView {
    pub name: String,
    pub dir: PathBuf,
    pub retention: Option<Nanos>,
    pub max_bytes: Option<u64>,
    /// The segment its writer has open, if any, and its bytes so far (the index stores it
    /// when it closes).
    pub writing: Option<(u64, u64)>,
}

/// Removes a video's segments from the index, except those leased at that moment; returns the removed.
pub(crate) type Remover<'a> = dyn Fn(&str, &[u64]) -> Result<Vec<super::Segment>, StoreError> + 'a;

/// Runs a pass: plans, removes the index entries (re-checking leases at that moment),
/// flushes the index, then deletes the files.
pub(crate) fn apply(
    index: &Index,
    videos: &[VideoView],
    now: Nanos,
    limits: &StoreLimits,
    free: &dyn Fn(&Path) -> Option<u64>,
    is_leased: &dyn Fn(&str, u64) -> bool,
    remove_unless_leased: &Remover,
) -> Result<RetentionReport, StoreError> {
    use std::os::unix::fs::MetadataExt;
    // File systems by device, each with its free space.
    let mut devices: HashMap<u64, usize> = HashMap::new();
    let mut fs_free: Vec<Option<u64>> = Vec::new();
    let mut inputs = Vec::with_capacity(videos.len());
    let error: std::cell::RefCell<Option<StoreError>> = std::cell::RefCell::new(None);
    for v in videos {
        let fs = match std::fs::metadata(&v.dir) {
            Ok(m) => *devices.entry(m.dev()).or_insert_with(|| {
                fs_free.push(free(&v.dir));
                fs_free.len() - 1
            }),
            Err(_) => {
                fs_free.push(None);
                fs_free.len() - 1
            }
        };
        let meta = index.meta(&v.name)?;
        let (name, writing, error) = (v.name.clone(), v.writing.map(|w| w.0), &error);
        let segments = index.iter_segments(&v.name).map_while(move |s| match s {
            Ok(s) => Some(Candidate {
                id: s.id,
                start: s.start,
                end: s.end,
                bytes: s.indexed_len(),
                protected: s.open || writing == Some(s.id) || is_leased(&name, s.id),
            }),
            Err(e) => {
                error.borrow_mut().get_or_insert(e);
                None
            }
        });
        let open_bytes = v.writing.map_or(0, |w| w.1);
        inputs.push(VideoInput {
            retention: v.retention,
            max_bytes: v.max_bytes,
            total_bytes: meta.bytes.saturating_add(open_bytes),
            fs,
            segments,
        });
    }
    let plan = plan(inputs, now, limits, &fs_free);
    if let Some(e) = error.into_inner() {
        return Err(e);
    }
    let mut report = RetentionReport {
        below_floor: plan.below_floor.iter().any(|b| *b),
        free_bytes: plan.free_after.iter().flatten().min().copied(),
        ..RetentionReport::default()
    };
    let mut by_video: Vec<Vec<(u64, Reason)>> = vec![Vec::new(); videos.len()];
    for (v, c, why) in &plan.delete {
        by_video[*v].push((c.id, *why));
    }
    let mut removed_all = Vec::new();
    for (v, ids) in by_video.iter().enumerate() {
        if ids.is_empty() {
            continue;
        }
        let just_ids: Vec<u64> = ids.iter().map(|(id, _)| *id).collect();
        for seg in remove_unless_leased(&videos[v].name, &just_ids)? {
            let reason = ids.iter().find(|(id, _)| *id == seg.id).map_or(Reason::Age, |(_, r)| *r);
            removed_all.push((v, seg, reason));
        }
    }
    if removed_all.is_empty() {
        return Ok(report);
    }
    // Index first, durably: a crash before the unlink leaves an orphan file (adopted at the
    // next open), never an index entry without its file.
    index.flush()?;
    // Keep the decision order (oldest first within each rule).
    let order: HashMap<(usize, u64), usize> = plan.delete.iter().enumerate().map(|(i, (v, c, _))| ((*v, c.id), i)).collect();
    removed_all.sort_by_key(|(v, s, _)| order.get(&(*v, s.id)).copied().unwrap_or(usize::MAX));
    for (v, seg, reason) in removed_all {
        let path = videos[v].dir.join(&seg.file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.failed.push((path.clone(), e.to_string())),
        }
        report.deleted.push(Deleted {
            video: videos[v].name.clone(),
            id: seg.id,
            path,
            start: seg.start,
            end: seg.end,
            bytes: seg.indexed_len(),
            reason,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    /// Segments of 30 s and 100 bytes, starting at `from` seconds.
    fn segs(from: i64, n: usize) -> Vec<Candidate> {
        (0..n as i64)
            .map(|i| Candidate {
                id: (from + i * 30) as u64,
                start: (from + i * 30) * S,
                end: (from + i * 30 + 30) * S,
                bytes: 100,
                protected: false,
            })
            .collect()
    }

    fn video(
        segments: Vec<Candidate>,
        retention: Option<i64>,
        max_bytes: Option<u64>,
        fs: usize,
    ) -> VideoInput<std::vec::IntoIter<Candidate>> {
        let total_bytes = segments.iter().map(|c| c.bytes).sum();
        VideoInput { retention: retention.map(|r| r * S), max_bytes, total_bytes, fs, segments: segments.into_iter() }
    }

    fn ids(p: &Plan) -> Vec<(usize, u64, Reason)> {
        p.delete.iter().map(|(v, c, r)| (*v, c.id, *r)).collect()
    }

    #[test]
    fn age_deletes_segments_that_ended_before_the_cutoff() {
        // Segments 0..300 s; now 400 s, retention 200 s: cutoff 200 s; ends 30..=300.
        let p = plan(vec![video(segs(0, 10), Some(200), None, 0)], 400 * S, &StoreLimits::default(), &[None]);
        assert_eq!(ids(&p), (0..6).map(|i| (0, i * 30, Reason::Age)).collect::<Vec<_>>());
        assert_eq!(p.below_floor, vec![false]);
    }

    #[test]
    fn video_size_deletes_its_oldest_until_it_fits() {
        let p = plan(vec![video(segs(0, 10), None, Some(750), 0)], 0, &StoreLimits::default(), &[None]);
        assert_eq!(ids(&p), vec![(0, 0, Reason::VideoSize), (0, 30, Reason::VideoSize), (0, 60, Reason::VideoSize)]);
    }

    #[test]
    fn the_store_limit_takes_the_globally_oldest() {
        // Video 0 from 0 s, video 1 from 45 s: interleaved starts.
        let limits = StoreLimits { max_bytes: Some(1500), min_free_bytes: 0 };
        let p = plan(vec![video(segs(0, 10), None, None, 0), video(segs(45, 10), None, None, 0)], 0, &limits, &[None]);
        assert_eq!(
            ids(&p),
            vec![
                (0, 0, Reason::StoreSize),
                (0, 30, Reason::StoreSize),
                (1, 45, Reason::StoreSize),
                (0, 60, Reason::StoreSize),
                (1, 75, Reason::StoreSize)
            ]
        );
    }

    #[test]
    fn the_floor_applies_per_file_system_and_reports_when_it_cannot_be_met() {
        let limits = StoreLimits { max_bytes: None, min_free_bytes: 1000 };
        let videos = vec![video(segs(0, 3), None, None, 0), video(segs(10, 3), None, None, 1)];
        let p = plan(videos, 0, &limits, &[Some(850), Some(100)]);
        // fs 0 needs 150 bytes: two segments. fs 1 needs 900: all three, and is still short.
        assert_eq!(
            ids(&p),
            vec![
                (0, 0, Reason::FreeSpace),
                (0, 30, Reason::FreeSpace),
                (1, 10, Reason::FreeSpace),
                (1, 40, Reason::FreeSpace),
                (1, 70, Reason::FreeSpace)
            ]
        );
        assert_eq!(p.below_floor, vec![false, true]);
        assert_eq!(p.free_after, vec![Some(1050), Some(400)]);
        // Unknown free space: the floor is not applied.
        let p = plan(vec![video(segs(0, 3), None, None, 0)], 0, &limits, &[None]);
        assert!(p.delete.is_empty() && !p.below_floor[0]);
    }

    #[test]
    fn protected_segments_are_stepped_over_never_deleted() {
        let mut s = segs(0, 5);
        s[0].protected = true; // leased
        s[4].protected = true; // being written
        let p = plan(vec![video(s.clone(), Some(10), None, 0)], 1000 * S, &StoreLimits::default(), &[None]);
        assert_eq!(ids(&p), vec![(0, 30, Reason::Age), (0, 60, Reason::Age), (0, 90, Reason::Age)]);
        let p = plan(vec![video(s, None, None, 0)], 0, &StoreLimits { max_bytes: Some(0), min_free_bytes: 0 }, &[None]);
        assert_eq!(ids(&p).len(), 3);
    }

    #[test]
    fn rules_combine_and_each_segment_goes_once() {
        // Age removes 2, the video's size 1 more, the store limit 3 more: the globally oldest,
        // all of the first video (the second starts later).
        let limits = StoreLimits { max_bytes: Some(900), min_free_bytes: 0 };
        let p = plan(vec![video(segs(0, 10), Some(240), Some(700), 0), video(segs(1000, 5), None, None, 0)], 300 * S, &limits, &[None]);
        assert_eq!(
            ids(&p),
            vec![
                (0, 0, Reason::Age),
                (0, 30, Reason::Age),
                (0, 60, Reason::VideoSize),
                (0, 90, Reason::StoreSize),
                (0, 120, Reason::StoreSize),
                (0, 150, Reason::StoreSize)
            ]
        );
        let mut seen = std::collections::HashSet::new();
        assert!(p.delete.iter().all(|(v, c, _)| seen.insert((*v, c.id))));
    }

    #[test]
    fn a_pass_reads_only_the_oldest_segments() {
        let read = std::cell::Cell::new(0);
        let lazy = (0..1_000_000i64).map(|i| {
            read.set(read.get() + 1);
            Candidate { id: i as u64, start: i * 30 * S, end: (i + 1) * 30 * S, bytes: 100, protected: false }
        });
        let input = VideoInput { retention: Some(30_000 * S), max_bytes: None, total_bytes: 100_000_000, fs: 0, segments: lazy };
        let p = plan(vec![input], 30_300 * S, &StoreLimits::default(), &[None]);
        assert_eq!(p.delete.len(), 10);
        assert!(read.get() <= 12, "read {} segments", read.get());
    }

    #[test]
    fn free_space_of_a_real_directory() {
        assert!(free_space(Path::new("/")).is_some_and(|f| f > 0));
        assert_eq!(free_space(Path::new("/does/not/exist")), None);
    }
}
