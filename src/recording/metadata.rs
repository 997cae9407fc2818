//! Inference metadata recorded with a video: what an analytics node published about the pictures, kept by wall-clock time beside the segments.
//!
//! AVA recorded the inference events a topology routes into a video sink "along with the
//! media" so that a player can overlay them; Vela keeps them in their own sled tree of the
//! index database, not in the MP4 files: segment files stay plain H.264 that any player
//! and `ffmpeg -c copy` take, exports need no metadata track, and the player asks for a
//! window of metadata as it asks for a window of media.
//!
//! Keys are `name NUL time source` (time with the sign bit flipped, big-endian, so key order
//! is time order; the source node's name last, so two nodes publishing about the same
//! picture keep both). Values are the event's `inferences` array as compact JSON, exactly
//! as published, deflated: a tracker publishing six people ten times a second writes
//! 56 MB of JSON per hour, mostly ids and 17-digit coordinates; deflated about a third.
//! Entries go when retention deletes the segments they describe (see
//! [`Metadata::remove_before`]).

use super::{Nanos, StoreError};
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use serde_json::Value;
use std::io::{Read, Write};

/// Value formats (first byte), so another encoding can be read beside this one.
const RAW_JSON: u8 = 0;
const DEFLATED_JSON: u8 = 1;

/// One entry is at most this big: an extension answering megabytes per picture must not
/// swell the index (the sink counts and reports what it skips).
pub const MAX_ENTRY_BYTES: usize = 64 << 10;

/// What was recorded about one picture by one node.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub time: Nanos,
    /// The node that published it (the last part of the event's subject).
    pub source: String,
    pub inferences: Value,
}

/// A window of entries, at most the limit asked for; `next` is where to go on from when
/// more remain.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next: Option<Nanos>,
}

pub struct Metadata {
    tree: sled::Tree,
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Index(e.to_string())
}

fn prefix(video: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(video.len() + 17);
    k.extend_from_slice(video.as_bytes());
    k.push(0);
    k
}

fn time_key(video: &str, time: Nanos) -> Vec<u8> {
    let mut k = prefix(video);
    k.extend_from_slice(&((time as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn decode_key(video: &str, key: &[u8]) -> Result<(Nanos, String), StoreError> {
    let corrupt = || StoreError::Index(format!("corrupt metadata key of video '{video}'"));
    let rest = key.get(video.len() + 1..).ok_or_else(corrupt)?;
    let (time, source) = rest.split_at_checked(8).ok_or_else(corrupt)?;
    let time = (u64::from_be_bytes(time.try_into().map_err(|_| corrupt())?) ^ (1 << 63)) as i64;
    Ok((time, String::from_utf8(source.to_vec()).map_err(|_| corrupt())?))
}

/// Deflated unless that would not save anything (a short entry).
fn encode(json: &[u8]) -> Vec<u8> {
    let mut z = DeflateEncoder::new(vec![DEFLATED_JSON], flate2::Compression::fast());
    let deflated = z.write_all(json).and_then(|_| z.finish());
    match deflated {
        Ok(d) if d.len() < json.len() + 1 => d,
        _ => [&[RAW_JSON][..], json].concat(),
    }
}

fn decode(v: &[u8]) -> Option<Value> {
    match v.split_first()? {
        (&RAW_JSON, json) => serde_json::from_slice(json).ok(),
        (&DEFLATED_JSON, z) => {
            // Bounded like the input was: a corrupt value cannot inflate without end.
            let mut json = Vec::new();
            DeflateDecoder::new(z).take(MAX_ENTRY_BYTES as u64 + 1).read_to_end(&mut json).ok()?;
            serde_json::from_slice(&json).ok()
        }
        _ => None,
    }
}

impl Metadata {
    pub(crate) fn open(db: &sled::Db) -> Result<Metadata, StoreError> {
        Ok(Metadata { tree: db.open_tree("inferences").map_err(sled_err)? })
    }

    /// Records what `source` published about the picture at `time`; `inferences` must be a
    /// JSON array. Returns the bytes stored.
    pub fn put(&self, video: &str, time: Nanos, source: &str, inferences: &Value) -> Result<usize, StoreError> {
        if !inferences.is_array() {
            return Err(StoreError::Invalid("inference metadata must be a JSON array".into()));
        }
        let value = serde_json::to_vec(inferences).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if value.len() > MAX_ENTRY_BYTES {
            return Err(StoreError::Invalid(format!(
                "inference metadata of {} bytes is over the {MAX_ENTRY_BYTES} bytes kept per picture",
                value.len()
            )));
        }
        let value = encode(&value);
        let mut key = time_key(video, time);
        key.extend_from_slice(source.as_bytes());
        let n = key.len() + value.len();
        self.tree.insert(key, value).map_err(sled_err)?;
        Ok(n)
    }

    /// Entries with `start <= time < end`, in time order, at most `limit`.
    pub fn page(&self, video: &str, start: Nanos, end: Nanos, limit: usize) -> Result<Page, StoreError> {
        let mut page = Page::default();
        if end <= start {
            return Ok(page);
        }
        for kv in self.tree.range(time_key(video, start)..time_key(video, end)) {
            let (k, v) = kv.map_err(sled_err)?;
            let (time, source) = decode_key(video, &k)?;
            if page.entries.len() == limit {
                page.next = Some(time);
                break;
            }
            let inferences = decode(&v).ok_or_else(|| StoreError::Index(format!("corrupt metadata of video '{video}' at {time}")))?;
            page.entries.push(Entry { time, source, inferences });
        }
        Ok(page)
    }

    /// Removes the entries before `time` (all of them with `None`): what retention deleted
    /// the media of. Returns how many went.
    pub fn remove_before(&self, video: &str, time: Option<Nanos>) -> Result<usize, StoreError> {
        let range = match time {
            Some(t) => self.tree.range(prefix(video)..time_key(video, t)),
            None => self.tree.scan_prefix(prefix(video)),
        };
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in range {
            let (k, _) = kv.map_err(sled_err)?;
            batch.remove(k);
            n += 1;
        }
        if n > 0 {
            self.tree.apply_batch(batch).map_err(sled_err)?;
        }
        Ok(n)
    }

    /// Entries and bytes (keys + values) of a video's metadata; a scan, for reports and tests.
    pub fn usage(&self, video: &str) -> Result<(usize, u64), StoreError> {
        let mut out = (0, 0);
        for kv in self.tree.scan_prefix(prefix(video)) {
            let (k, v) = kv.map_err(sled_err)?;
            out.0 += 1;
            out.1 += (k.len() + v.len()) as u64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree() -> (Metadata, sled::Db) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        (Metadata::open(&db).unwrap(), db)
    }

    fn person(id: &str) -> Value {
        json!([{"type": "entity", "sequenceId": id, "entity": {"tag": {"value": "person", "confidence": 0.9}, "box": {"l": 0.1, "t": 0.2, "w": 0.3, "h": 0.4}}}])
    }

    #[test]
    fn entries_come_back_in_time_order_per_video_as_published() {
        let (m, _db) = tree();
        for t in [300, -5, 100, 200] {
            m.put("cam", t, "tracker", &person(&t.to_string())).unwrap();
        }
        // Another video whose name extends this one's never leaks in.
        m.put("cam2", 150, "tracker", &person("x")).unwrap();
        m.put("cam", 100, "motion", &json!([{"type": "motion"}])).unwrap();
        let page = m.page("cam", -10, 301, 100).unwrap();
        let got: Vec<(Nanos, &str)> = page.entries.iter().map(|e| (e.time, e.source.as_str())).collect();
        assert_eq!(got, vec![(-5, "tracker"), (100, "motion"), (100, "tracker"), (200, "tracker"), (300, "tracker")]);
        assert_eq!(page.entries[4].inferences, person("300"));
        assert_eq!(page.next, None);
        // Half-open windows.
        let times: Vec<Nanos> = m.page("cam", 100, 300, 100).unwrap().entries.iter().map(|e| e.time).collect();
        assert_eq!(times, vec![100, 100, 200]);
        assert!(m.page("cam", 300, 300, 100).unwrap().entries.is_empty());
    }

    #[test]
    fn a_long_window_comes_in_pages() {
        let (m, _db) = tree();
        for t in 0..25 {
            m.put("cam", t * 10, "n", &person("a")).unwrap();
        }
        let (mut start, mut seen) = (0, Vec::new());
        loop {
            let page = m.page("cam", start, 1000, 10).unwrap();
            assert!(page.entries.len() <= 10);
            seen.extend(page.entries.iter().map(|e| e.time));
            match page.next {
                Some(n) => start = n,
                None => break,
            }
        }
        assert_eq!(seen, (0..25).map(|t| t * 10).collect::<Vec<_>>());
    }

    #[test]
    fn retention_removes_what_came_before_the_oldest_media() {
        let (m, _db) = tree();
        for t in 0..10 {
            m.put("cam", t, "n", &person("a")).unwrap();
            m.put("cam2", t, "n", &person("a")).unwrap();
        }
        assert_eq!(m.remove_before("cam", Some(4)).unwrap(), 4);
        assert_eq!(m.page("cam", 0, 100, 100).unwrap().entries.first().map(|e| e.time), Some(4));
        assert_eq!(m.remove_before("cam", None).unwrap(), 6);
        assert_eq!(m.usage("cam").unwrap(), (0, 0));
        assert_eq!(m.usage("cam2").unwrap().0, 10);
    }

    #[test]
    fn values_are_deflated_when_it_saves_and_read_back_either_way() {
        let (m, _db) = tree();
        let six: Value = Value::Array((0..6).flat_map(|i| person(&format!("{i:032x}")).as_array().unwrap().clone()).collect());
        let raw = serde_json::to_vec(&six).unwrap().len();
        let stored = m.put("cam", 1, "tracker", &six).unwrap();
        assert!(stored < raw / 2, "{stored} of {raw}");
        let tiny = json!([]);
        m.put("cam", 2, "n", &tiny).unwrap();
        let page = m.page("cam", 0, 10, 10).unwrap();
        assert_eq!((&page.entries[0].inferences, &page.entries[1].inferences), (&six, &tiny));
        // An unknown format or a corrupt value is an error, not a panic.
        for bad in [&[9u8, 1, 2][..], &[DEFLATED_JSON, 0xff, 0x00], &[RAW_JSON, b'{']] {
            m.tree.insert([&time_key("cam", 5)[..], b"x"].concat(), bad).unwrap();
            assert!(matches!(m.page("cam", 0, 10, 10), Err(StoreError::Index(_))));
        }
    }

    #[test]
    fn non_arrays_and_oversized_entries_are_refused() {
        let (m, _db) = tree();
        assert!(matches!(m.put("cam", 0, "n", &json!({"a": 1})), Err(StoreError::Invalid(_))));
        let huge = json!([{"blob": "x".repeat(MAX_ENTRY_BYTES)}]);
        let e = m.put("cam", 0, "n", &huge).unwrap_err().to_string();
        assert!(e.contains("65536"), "{e}");
        assert_eq!(m.usage("cam").unwrap(), (0, 0));
    }
}
