//! The shared-memory transfer of the gRPC extension (SPEC §5.2): a ring in `/dev/shm` the client writes frames into, and the server's read-only view.
//!
//! The client keeps every region until the server acknowledges the request that carried
//! it; regions are freed on ack, in any order, and never reused before. The ring hands
//! out space after the newest region, wrapping to the start when the end is too short,
//! and never past the oldest region still held: contiguous regions, no fragmentation
//! bookkeeping, and a full ring simply means "drop this frame".

use memmap2::{Mmap, MmapMut};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// Where POSIX shared memory lives on Linux (`shm_open` names are files here).
pub const SHM_DIR: &str = "/dev/shm";

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("shared memory {name}: {source}")]
    Io { name: String, source: std::io::Error },
    #[error("shared memory {name}: [{offset}, {offset}+{len}) lies outside its {size} bytes")]
    OutOfBounds { name: String, offset: u64, len: u64, size: u64 },
    #[error("shared memory name {0:?} is not a plain file name")]
    BadName(String),
}

fn path_of(name: &str) -> Result<PathBuf, ShmError> {
    // The name comes from the other end of a stream: never let it leave /dev/shm.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(ShmError::BadName(name.into()));
    }
    Ok(PathBuf::from(SHM_DIR).join(name))
}

/// A region of the ring: what a `ContentReference` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub offset: u64,
    pub len: u64,
}

/// Pure allocation logic of the ring, kept apart from the mapping so that it can be tested
/// exhaustively.
#[derive(Debug)]
pub struct RingAlloc {
    size: u64,
    /// Live regions in allocation order, with whether they were freed (freed regions in the
    /// middle wait for the older ones before their space comes back).
    live: VecDeque<(Region, bool)>,
}

impl RingAlloc {
    pub fn new(size: u64) -> Self {
        RingAlloc { size, live: VecDeque::new() }
    }

    /// A region of `len` bytes that overlaps no region still held, or `None` when the ring
    /// has no contiguous room for it now.
    pub fn alloc(&mut self, len: u64) -> Option<Region> {
        if len == 0 || len > self.size {
            return None;
        }
        let offset = match (self.live.front(), self.live.back()) {
            (None, _) | (_, None) => 0,
            (Some(&(oldest, _)), Some(&(newest, _))) => {
                let end = newest.offset + newest.len;
                if newest.offset >= oldest.offset {
                    // Not wrapped: free space is [end, size) then [0, oldest).
                    if self.size - end >= len {
                        end
                    } else if oldest.offset >= len {
                        0
                    } else {
                        return None;
                    }
                } else if oldest.offset - end >= len {
                    // Wrapped: free space is [end, oldest).
                    end
                } else {
                    return None;
                }
            }
        };
        let r = Region { offset, len };
        self.live.push_back((r, false));
        Some(r)
    }

    /// Gives a region back (on ack). Unknown or already freed regions are ignored (a server
    /// may ack twice); returns whether it was live.
    pub fn free(&mut self, r: Region) -> bool {
        let Some(slot) = self.live.iter_mut().find(|(x, freed)| *x == r && !freed) else { return false };
        slot.1 = true;
        while self.live.front().is_some_and(|(_, freed)| *freed) {
            self.live.pop_front();
        }
        true
    }

    /// Bytes held by regions not yet given back (freed ones behind an older live one count).
    pub fn held(&self) -> u64 {
        self.live.iter().map(|(r, _)| r.len).sum()
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The client's ring: a file in `/dev/shm` it creates, maps and removes when dropped.
pub struct ShmRing {
    name: String,
    map: MmapMut,
    alloc: RingAlloc,
    _file: File,
}

impl ShmRing {
    /// Creates `/dev/shm/<name>` of `size` bytes (refusing to take over an existing one).
    pub fn create(name: &str, size: u64) -> Result<ShmRing, ShmError> {
        let io = |source| ShmError::Io { name: name.into(), source };
        let path = path_of(name)?;
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io)?;
        let mapped = file.set_len(size).and_then(|_| {
            // SAFETY: the file was created here, exclusively, and is only ever written
            // through this mapping; the server maps it read-only.
            unsafe { MmapMut::map_mut(&file) }
        });
        match mapped {
            Ok(map) => Ok(ShmRing { name: name.into(), map, alloc: RingAlloc::new(size), _file: file }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(io(e))
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn size(&self) -> u64 {
        self.alloc.size()
    }

    /// Copies `bytes` into a free region and returns it; `None` when the ring is full.
    pub fn put(&mut self, bytes: &[u8]) -> Option<Region> {
        let r = self.alloc.alloc(bytes.len() as u64)?;
        self.map[r.offset as usize..(r.offset + r.len) as usize].copy_from_slice(bytes);
        Some(r)
    }

    /// The server is done with `r` (it acknowledged the request that carried it).
    pub fn free(&mut self, r: Region) -> bool {
        self.alloc.free(r)
    }

    pub fn held(&self) -> u64 {
        self.alloc.held()
    }
}

impl Drop for ShmRing {
    fn drop(&mut self) {
        if let Ok(p) = path_of(&self.name) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The server's read-only view of a client's ring.
pub struct ShmView {
    name: String,
    map: Mmap,
}

impl ShmView {
    /// Maps `/dev/shm/<name>`; `len` is what the descriptor announced (at most the file).
    pub fn open(name: &str, len: u64) -> Result<ShmView, ShmError> {
        let io = |source| ShmError::Io { name: name.into(), source };
        let file = File::open(path_of(name)?).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if len > size {
            return Err(ShmError::OutOfBounds { name: name.into(), offset: 0, len, size });
        }
        // SAFETY: read-only; the client promises not to write a region before its ack, and a
        // misbehaving client can only change the bytes we read, not their bounds.
        let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(&file) }.map_err(io)?;
        Ok(ShmView { name: name.into(), map })
    }

    /// The bytes of `[offset, offset + len)`, checked against the mapping.
    pub fn read(&self, offset: u64, len: u64) -> Result<&[u8], ShmError> {
        let size = self.map.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(&self.map[offset as usize..end as usize]),
            _ => Err(ShmError::OutOfBounds { name: self.name.clone(), offset, len, size }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: Region, b: Region) -> bool {
        a.offset < b.offset + b.len && b.offset < a.offset + a.len
    }

    #[test]
    fn regions_wrap_and_come_back_only_when_freed() {
        let mut r = RingAlloc::new(100);
        let a = r.alloc(40).unwrap();
        let b = r.alloc(40).unwrap();
        assert_eq!((a.offset, b.offset), (0, 40));
        assert_eq!(r.alloc(30), None, "20 left at the end, none before the oldest");
        // Freeing the newer one first gives nothing back: the older one still holds the start.
        assert!(r.free(b));
        assert_eq!(r.alloc(30), None);
        assert!(r.free(a));
        assert_eq!(r.held(), 0);
        let c = r.alloc(70).unwrap();
        assert_eq!(c.offset, 0);
        let d = r.alloc(30).unwrap();
        assert_eq!(d.offset, 70);
        assert!(r.free(c));
        // Wraps to the start, in front of d.
        let e = r.alloc(50).unwrap();
        assert_eq!(e.offset, 0);
        assert_eq!(r.alloc(21), None, "[50, 70) is 20 bytes");
        assert_eq!(r.alloc(20).unwrap().offset, 50);
        assert!(!r.free(c), "a second ack is ignored");
        assert_eq!(r.alloc(0), None);
        assert_eq!(r.alloc(101), None);
    }

    #[test]
    fn no_live_region_is_ever_handed_out_again() {
        // A random walk of allocations and out-of-order frees, checked against every live region.
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut ring = RingAlloc::new(1000);
        let mut live: Vec<Region> = vec![];
        let (mut allocated, mut refused) = (0, 0);
        for _ in 0..20_000 {
            if live.is_empty() || rnd(3) > 0 {
                match ring.alloc(1 + rnd(300)) {
                    Some(r) => {
                        assert!(r.offset + r.len <= 1000);
                        assert!(live.iter().all(|l| !overlaps(*l, r)), "{r:?} overlaps {live:?}");
                        live.push(r);
                        allocated += 1;
                    }
                    None => refused += 1,
                }
            } else {
                let r = live.swap_remove(rnd(live.len() as u64) as usize);
                assert!(ring.free(r));
            }
            assert!(ring.held() >= live.iter().map(|r| r.len).sum::<u64>());
        }
        assert!(allocated > 5_000 && refused > 100, "{allocated} allocated, {refused} refused");
    }

    #[test]
    fn the_server_reads_what_the_client_wrote_and_bounds_are_checked() {
        let name = format!("vela_test_ring_{}", std::process::id());
        let mut ring = ShmRing::create(&name, 4096).unwrap();
        assert!(ShmRing::create(&name, 4096).is_err(), "an existing ring is not taken over");
        let r = ring.put(b"hello frame").unwrap();
        let view = ShmView::open(&name, 4096).unwrap();
        assert_eq!(view.read(r.offset, r.len).unwrap(), b"hello frame");
        assert!(view.read(4090, 10).is_err());
        assert!(view.read(u64::MAX, 2).is_err());
        assert!(ShmView::open(&name, 8192).is_err(), "longer than the file");
        assert!(matches!(ShmView::open("../etc/passwd", 1), Err(ShmError::BadName(_))));
        drop(view);
        drop(ring);
        assert!(!std::path::Path::new(SHM_DIR).join(&name).exists(), "removed with the ring");
    }
}
