//! Crash recovery at open: indexes segment files the index does not know (the segment being written at the crash) up to their last complete fragment, truncates partial tails.
//!
//! What a crash can leave, given the write order (file created, its init written and
//! fsync'd; each fragment written and fsync'd, then indexed in memory; the segment stored
//! in the index when it closes; removal from the index flushed before the file is deleted):
//! - a file the index does not know: the segment that was being written (or one whose
//!   close had not reached sled's log), or one retention was deleting between its index
//!   removal and the unlink. It is adopted with its complete fragments and a partial
//!   fragment after them is cut off, so no finished media is ever lost — retention deletes
//!   it again if it is still due. A file without a complete fragment holds no playable
//!   media and is deleted;
//! - a segment stored still marked open (an index written by a writer that stores open
//!   segments): its file is re-read the same way and the segment closed;
//! - an index entry whose file is gone (deleted by hand): the entry is removed. A video
//!   whose whole directory is missing is left alone (an unmounted disk is more likely).
//!
//! Fragment times: the segment's start plus each moof's tfdt and durations, exactly as the
//! writer computes them ([`add_moof`] is shared), so a recovered index equals what the
//! writer would have written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::Path;

use super::encoding::id_start;
use super::fragmenter::ticks_to_nanos;
use super::index::{Index, VideoRecord};
use super::names;
use super::scan::{self, Moof, Scan, ScanError};
use super::{Fragment, Nanos, Segment, StoreError};
use crate::media::h264::{self, AvcDecoderConfig};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found open (their writer did not close them) and closed.
    pub segments_closed: u32,
    /// Complete moof+mdat pairs found in files beyond what the index held.
    pub fragments_added: u32,
    /// Bytes of partial fragments cut off file ends.
    pub bytes_truncated: u64,
    /// Files the index did not know, now indexed.
    pub orphans_adopted: u32,
    /// Files without a single complete fragment, deleted.
    pub empty_removed: u32,
    /// Index entries whose file was gone, removed.
    pub missing_files: u32,
    /// Indexed fragments the file did not hold (a storage that lost fsync'd data); dropped
    /// from the index.
    pub fragments_dropped: u32,
    /// Anything else worth an operator's attention.
    pub problems: Vec<String>,
}

/// Adds one moof to a segment's fragment list: a moof starting with a keyframe starts a
/// fragment (a GOP); one that does not (a long GOP split every 2 s) extends the last.
pub fn add_moof(fragments: &mut Vec<Fragment>, base: Nanos, m: &Moof) {
    let tfdt = i64::try_from(m.tfdt).unwrap_or(i64::MAX);
    let start = base.saturating_add(ticks_to_nanos(tfdt));
    let end = base.saturating_add(ticks_to_nanos(tfdt.saturating_add(i64::try_from(m.duration).unwrap_or(i64::MAX))));
    match fragments.last_mut() {
        Some(last) if !m.keyframe && last.offset + last.len == m.offset => {
            last.len = m.end() - last.offset;
            last.duration = end - last.start;
            last.frames = last.frames.saturating_add(m.frames);
        }
        _ => fragments.push(Fragment { offset: m.offset, len: m.len, start, duration: end - start, frames: m.frames }),
    }
}

/// A segment's fragments as the file holds them.
pub fn fragments_of(scan: &Scan, base: Nanos) -> Vec<Fragment> {
    let mut out = Vec::new();
    for m in &scan.moofs {
        add_moof(&mut out, base, m);
    }
    out
}

/// RFC 6381 codec string and picture size from an avcC.
pub fn describe_avcc(avcc: &[u8]) -> Option<(String, u32, u32)> {
    let config = AvcDecoderConfig::parse(avcc).ok()?;
    let info = h264::parse_sps(config.sps.first()?).ok()?;
    Some((format!("avc1.{}", info.profile_level_id()), info.width, info.height))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Scans a file; `Ok(None)` when it is not a complete init segment (nothing playable).
fn scan_file(path: &Path) -> Result<Option<(File, Scan)>, StoreError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    match scan::scan(&mut file, len) {
        Ok(s) => Ok(Some((file, s))),
        Err(ScanError::NoInit(_)) => Ok(None),
        Err(ScanError::Io(e)) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
    }
}

/// Cuts a partial fragment off the end of a file.
fn truncate_tail(file: &File, path: &Path, scan: &Scan, report: &mut RecoveryReport) -> Result<(), StoreError> {
    if scan.file_len > scan.complete_len {
        file.set_len(scan.complete_len).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
        report.bytes_truncated += scan.file_len - scan.complete_len;
    }
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        _ => Ok(()),
    }
}

/// Recovers every video's segments; see the module comment.
pub(crate) fn recover(index: &Index, videos: &[(String, VideoRecord)], report: &mut RecoveryReport) -> Result<(), StoreError> {
    for (name, rec) in videos {
        recover_video(index, name, &rec.dir, report)?;
    }
    index.flush()
}

fn recover_video(index: &Index, name: &str, dir: &Path, report: &mut RecoveryReport) -> Result<(), StoreError> {
    // A missing directory is more likely an unmounted disk than deleted media: leave the
    // index alone (its files are adopted again if they come back under another index).
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report.problems.push(format!("video '{name}': cannot read {}: {e}; its index is left as is", dir.display()));
            return Ok(());
        }
    };
    let mut files: BTreeMap<u64, std::path::PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(names::parse_segment_file_name) {
            files.insert(id, entry.path());
        }
    }
    let mut missing = Vec::new();
    let mut open = Vec::new();
    for seg in index.iter_segments(name) {
        let seg = seg?;
        if files.remove(&seg.id).is_none() {
            missing.push(seg.id);
        } else if seg.open {
            open.push(seg);
        }
    }
    if !missing.is_empty() {
        report.missing_files += missing.len() as u32;
        report.problems.push(format!("video '{name}': {} indexed segment file(s) missing; their entries were removed", missing.len()));
        index.remove_segments(name, &missing)?;
    }
    for seg in open {
        recover_open(index, dir, seg, report)?;
    }
    for (id, path) in files {
        adopt(index, name, id, &path, report)?;
    }
    Ok(())
}

fn recover_open(index: &Index, dir: &Path, seg: Segment, report: &mut RecoveryReport) -> Result<(), StoreError> {
    let path = dir.join(&seg.file);
    report.segments_closed += 1;
    let Some((file, scan)) = scan_file(&path)? else {
        report.fragments_dropped += seg.fragments.len() as u32;
        report.empty_removed += 1;
        index.remove_segments(&seg.video, &[seg.id])?;
        index.flush()?;
        return remove_file(&path);
    };
    let fragments = fragments_of(&scan, seg.start);
    let indexed_moofs_end = seg.indexed_len();
    // The index must be a prefix of the file; if storage lost fsync'd bytes it is not, and
    // the file wins (never index bytes that are not there).
    let consistent = scan.init_len == seg.init_len
        && seg.fragments.len() <= fragments.len()
        && seg.fragments.iter().zip(&fragments).enumerate().all(|(i, (a, b))| {
            a.offset == b.offset && a.start == b.start && if i + 1 == seg.fragments.len() { a.len <= b.len } else { a == b }
        })
        && indexed_moofs_end <= scan.complete_len;
    if !consistent {
        report.fragments_dropped += seg.fragments.len() as u32;
        report.problems.push(format!("video '{}': segment {} held less than its index; re-indexed from the file", seg.video, seg.file));
    }
    report.fragments_added += scan.moofs.iter().filter(|m| m.offset >= indexed_moofs_end || !consistent).count() as u32;
    if fragments.is_empty() {
        report.empty_removed += 1;
        index.remove_segments(&seg.video, &[seg.id])?;
        index.flush()?;
        return remove_file(&path);
    }
    let end = fragments.last().map_or(seg.start, Fragment::end);
    index.put_segment(&Segment { init_len: scan.init_len, end, fragments, open: false, ..seg })?;
    truncate_tail(&file, &path, &scan, report)
}

fn adopt(index: &Index, video: &str, id: u64, path: &Path, report: &mut RecoveryReport) -> Result<(), StoreError> {
    let scanned = scan_file(path)?;
    let Some((file, scan)) = scanned.filter(|(_, s)| !s.moofs.is_empty()) else {
        report.empty_removed += 1;
        return remove_file(path);
    };
    let start = id_start(id);
    let fragments = fragments_of(&scan, start);
    let (codec, width, height) = describe_avcc(&scan.avcc).unwrap_or_else(|| {
        report.problems.push(format!("video '{video}': {} has no readable avcC", path.display()));
        ("avc1".into(), 0, 0)
    });
    report.orphans_adopted += 1;
    report.fragments_added += scan.moofs.len() as u32;
    index.put_segment(&Segment {
        video: video.to_string(),
        id,
        file: names::segment_file_name(id),
        init_len: scan.init_len,
        codec,
        width,
        height,
        start,
        end: fragments.last().map_or(start, Fragment::end),
        fragments,
        open: false,
    })?;
    truncate_tail(&file, path, &scan, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moof(offset: u64, len: u64, tfdt: u64, duration: u64, keyframe: bool) -> Moof {
        Moof { offset, len, tfdt, duration, frames: 10, keyframe }
    }

    #[test]
    fn long_gops_become_one_fragment_and_times_tile() {
        let mut f = Vec::new();
        let base = 1_000_000_000;
        add_moof(&mut f, base, &moof(100, 50, 0, 180_000, true));
        add_moof(&mut f, base, &moof(150, 40, 180_000, 90_000, false));
        add_moof(&mut f, base, &moof(190, 60, 270_000, 1, true));
        assert_eq!(
            f,
            vec![
                Fragment { offset: 100, len: 90, start: base, duration: 3_000_000_000, frames: 20 },
                Fragment { offset: 190, len: 60, start: base + 3_000_000_000, duration: 11_111, frames: 10 },
            ]
        );
        // A first moof without a keyframe still starts a fragment: nothing to extend.
        let mut g = Vec::new();
        add_moof(&mut g, 0, &moof(0, 10, 0, 9, false));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn vtest_avcc_is_described() {
        let avcc = crate::media::mkv::read_h264_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media/vtest.mkv")).unwrap().avcc;
        assert_eq!(describe_avcc(&avcc), Some(("avc1.4d401f".to_string(), 768, 576)));
        assert_eq!(describe_avcc(&[1, 2, 3]), None);
    }
}
