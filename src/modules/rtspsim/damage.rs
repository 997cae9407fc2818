//! Damaged streams on request: bit flips, dropped, reordered and truncated RTP, per session and deterministic from a seed.
//!
//! A client asks for damage with query parameters on the camera URL:
//! `rtsp://HOST/media/FILE?damage=flip:0.01,drop:0.01,reorder:0.02,truncate:0.01&seed=7`.
//! Every kind is optional and its rate is a probability in `[0, 1]`:
//!
//! - `flip:P` — each RTP packet, with probability P, gets one bit of its payload flipped.
//!   The RTP header is never touched (sequence numbers and timestamps stay sane, as they do
//!   when a radio link garbles a payload protected only by a weak checksum), but the NAL
//!   and FU headers at the start of the payload can be hit.
//! - `drop:P` — each packet is lost with probability P (its sequence number goes missing).
//! - `reorder:P` — each packet, with probability P, is held back and sent after the next
//!   1 to [`REORDER_WINDOW`] packets, possibly those of the next access unit.
//! - `truncate:P` — each access unit, with probability P, is cut at a random byte: the packet
//!   holding the cut loses its end, the packets after it (tail FU-A fragments, later NAL
//!   units) are never sent, and the shortened packet carries the marker. Sequence numbers
//!   stay contiguous: the receiver gets a complete-looking but short access unit.
//!
//! `seed` (default 0) makes the damage reproducible: the same spec and seed damage the same
//! packets of the same stream of packets. The pure core is [`Damage`] (the parsed spec) and
//! [`Damager`] (an adapter from one access unit's payloads to the RTP packets to send).

use super::packetize::RtpHeader;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use thiserror::Error;
use url::Url;

/// Longest a reordered packet is held back, in later packets.
pub const REORDER_WINDOW: u64 = 3;

/// The kinds of damage in spec order.
const KINDS: [&str; 4] = ["flip", "drop", "reorder", "truncate"];

/// What damage a session gets (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Damage {
    pub flip: f64,
    pub drop: f64,
    pub reorder: f64,
    pub truncate: f64,
    pub seed: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DamageError {
    #[error("damage spec is empty (expected e.g. damage=flip:0.01,drop:0.01,reorder:0.02,truncate:0.01)")]
    Empty,
    #[error("damage item {0:?} is not KIND:RATE (e.g. drop:0.01)")]
    NotKindRate(String),
    #[error("unknown damage kind {0:?} (known: flip, drop, reorder, truncate)")]
    UnknownKind(String),
    #[error("damage kind {0:?} is given twice")]
    Repeated(String),
    #[error("damage rate {rate:?} of {kind} is not a probability between 0 and 1")]
    BadRate { kind: String, rate: String },
    #[error("seed {0:?} is not an unsigned 64-bit integer")]
    BadSeed(String),
    #[error("seed is given without damage")]
    SeedWithoutDamage,
    #[error("query parameter {0:?} given twice")]
    RepeatedParameter(String),
    #[error("unknown query parameter {0:?} (the camera URL takes only damage and seed)")]
    UnknownParameter(String),
}

impl Damage {
    /// Parses `KIND:RATE[,KIND:RATE…]`.
    pub fn parse(spec: &str, seed: u64) -> Result<Damage, DamageError> {
        if spec.trim().is_empty() {
            return Err(DamageError::Empty);
        }
        let mut d = Damage { seed, ..Damage::default() };
        let mut seen = [false; KINDS.len()];
        for item in spec.split(',').map(str::trim) {
            let (kind, rate) = item.split_once(':').ok_or_else(|| DamageError::NotKindRate(item.to_owned()))?;
            let (kind, rate) = (kind.trim(), rate.trim());
            let k = KINDS.iter().position(|&k| k.eq_ignore_ascii_case(kind)).ok_or_else(|| DamageError::UnknownKind(kind.to_owned()))?;
            if std::mem::replace(&mut seen[k], true) {
                return Err(DamageError::Repeated(KINDS[k].to_owned()));
            }
            let p: f64 = rate
                .parse()
                .ok()
                .filter(|p: &f64| (0.0..=1.0).contains(p))
                .ok_or_else(|| DamageError::BadRate { kind: KINDS[k].to_owned(), rate: rate.to_owned() })?;
            *[&mut d.flip, &mut d.drop, &mut d.reorder, &mut d.truncate][k] = p;
        }
        Ok(d)
    }

    /// The damage a request URL asks for: `Ok(None)` when its query names none.
    pub fn from_url(url: &Url) -> Result<Option<Damage>, DamageError> {
        if url.query().is_none() {
            return Ok(None);
        }
        let (mut spec, mut seed) = (None, None);
        for (k, v) in url.query_pairs() {
            let slot = match k.as_ref() {
                "damage" => &mut spec,
                "seed" => &mut seed,
                // A typo must not pass for a clean stream.
                _ => return Err(DamageError::UnknownParameter(k.into_owned())),
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(DamageError::RepeatedParameter(k.into_owned()));
            }
        }
        let Some(spec) = spec else {
            return if seed.is_some() { Err(DamageError::SeedWithoutDamage) } else { Ok(None) };
        };
        let seed = match seed {
            None => 0,
            Some(s) => s.trim().parse().map_err(|_| DamageError::BadSeed(s))?,
        };
        Damage::parse(&spec, seed).map(Some)
    }
}

impl fmt::Display for Damage {
    /// The canonical spec, for logs: `flip:0.01,drop:0,reorder:0,truncate:0.5 seed=7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flip:{},drop:{},reorder:{},truncate:{} seed={}", self.flip, self.drop, self.reorder, self.truncate, self.seed)
    }
}

/// What a [`Damager`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DamageStats {
    /// Packets that were given sequence numbers (sent or lost).
    pub packets: u64,
    pub flipped: u64,
    pub dropped: u64,
    pub reordered: u64,
    /// Access units cut short.
    pub truncated: u64,
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, and fixed here so that a seed means the same
/// damage across dependency upgrades.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`. Always draws, so that the sequence of draws does not
    /// depend on the rates (a spec with one rate changed damages the same packets otherwise).
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Applies a [`Damage`] to a session's outgoing packets.
#[derive(Debug)]
pub struct Damager {
    damage: Damage,
    rng: Rng,
    /// Reordered packets waiting: (packets still to go out before it, packet).
    held: Vec<(u64, Bytes)>,
    stats: DamageStats,
}

impl Damager {
    pub fn new(damage: Damage) -> Self {
        Damager { damage, rng: Rng(damage.seed), held: Vec::new(), stats: DamageStats::default() }
    }

    pub fn damage(&self) -> &Damage {
        &self.damage
    }

    pub fn stats(&self) -> DamageStats {
        self.stats
    }

    /// Forgets held-back packets (the client paused: they would arrive stale after PLAY).
    pub fn reset(&mut self) {
        self.held.clear();
    }

    /// The RTP packets (header and payload) to send now for one access unit whose first
    /// packet is numbered `first.sequence`, and how many sequence numbers it used. The
    /// marker bit of `first` is ignored: the access unit's last packet carries it.
    pub fn access_unit(&mut self, payloads: &[Bytes], first: RtpHeader) -> (Vec<Bytes>, u16) {
        let payloads = self.truncate(payloads);
        let count = payloads.len();
        let mut out = Vec::with_capacity(count + self.held.len());
        let mut header = first;
        for (i, p) in payloads.iter().enumerate() {
            header.marker = i + 1 == count;
            let flip = self.rng.chance(self.damage.flip);
            let at = self.rng.next();
            let mut packet = BytesMut::with_capacity(super::packetize::RTP_HEADER_LEN + p.len());
            header.write(&mut packet);
            packet.put_slice(p);
            if flip && !p.is_empty() {
                let bit = at % (p.len() as u64 * 8);
                packet[super::packetize::RTP_HEADER_LEN + (bit / 8) as usize] ^= 1 << (bit % 8);
                self.stats.flipped += 1;
            }
            header.sequence = header.sequence.wrapping_add(1);
            self.stats.packets += 1;
            self.schedule(packet.freeze(), &mut out);
        }
        (out, count as u16)
    }

    /// Drops or holds back one numbered packet; sends it and whatever held packet is due.
    fn schedule(&mut self, packet: Bytes, out: &mut Vec<Bytes>) {
        let drop = self.rng.chance(self.damage.drop);
        let reorder = self.rng.chance(self.damage.reorder);
        let delay = 1 + self.rng.below(REORDER_WINDOW);
        if drop {
            self.stats.dropped += 1;
            return;
        }
        if reorder {
            self.stats.reordered += 1;
            self.held.push((delay, packet));
            return;
        }
        out.push(packet);
        for h in &mut self.held {
            h.0 -= 1;
        }
        // In the order they were held: two packets due together keep their own order.
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 == 0 {
                out.push(self.held.remove(i).1);
            } else {
                i += 1;
            }
        }
    }

    /// The access unit, possibly cut at a random byte (see the module doc).
    fn truncate<'a>(&mut self, payloads: &'a [Bytes]) -> std::borrow::Cow<'a, [Bytes]> {
        let cut = self.rng.chance(self.damage.truncate);
        let at = self.rng.next();
        let total: usize = payloads.iter().map(Bytes::len).sum();
        if !cut || total < 2 {
            return payloads.into();
        }
        // Keep bytes 0..keep, at least one.
        let keep = 1 + (at % (total as u64 - 1)) as usize;
        let mut out = Vec::new();
        let mut offset = 0;
        for p in payloads {
            if offset + p.len() >= keep {
                out.push(p.slice(..keep - offset));
                break;
            }
            out.push(p.clone());
            offset += p.len();
        }
        self.stats.truncated += 1;
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::rtspsim::packetize::packetize_access_unit;

    fn url(q: &str) -> Url {
        Url::parse(&format!("rtsp://h/media/vtest.mkv{q}")).unwrap()
    }

    #[test]
    fn spec_parses_every_kind_in_any_order_and_case() {
        let d = Damage::parse("truncate:0.01, FLIP:0.5,drop:0,reorder:1", 7).unwrap();
        assert_eq!(d, Damage { flip: 0.5, drop: 0.0, reorder: 1.0, truncate: 0.01, seed: 7 });
        assert_eq!(Damage::parse("drop:0.25", 0).unwrap(), Damage { drop: 0.25, ..Damage::default() });
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        use DamageError::*;
        assert_eq!(Damage::parse("", 0), Err(Empty));
        assert_eq!(Damage::parse("drop", 0), Err(NotKindRate("drop".into())));
        assert_eq!(Damage::parse("drop:0.1,", 0), Err(NotKindRate("".into())));
        assert_eq!(Damage::parse("flop:0.1", 0), Err(UnknownKind("flop".into())));
        assert_eq!(Damage::parse("drop:0.1,drop:0.2", 0), Err(Repeated("drop".into())));
        for rate in ["1.5", "-0.1", "NaN", "1%", ""] {
            assert_eq!(Damage::parse(&format!("flip:{rate}"), 0), Err(BadRate { kind: "flip".into(), rate: rate.into() }), "{rate}");
        }
        let msg = Damage::parse("flop:0.1", 0).unwrap_err().to_string();
        assert!(msg.contains("flop") && msg.contains("flip, drop, reorder, truncate"), "{msg}");
    }

    #[test]
    fn urls_without_damage_are_clean_and_typos_are_refused() {
        assert_eq!(Damage::from_url(&url("")), Ok(None));
        assert_eq!(Damage::from_url(&url("?")), Ok(None));
        assert_eq!(
            Damage::from_url(&url("?damage=flip:0.01,drop:0.02&seed=7")),
            Ok(Some(Damage { flip: 0.01, drop: 0.02, seed: 7, ..Damage::default() }))
        );
        // Percent-encoded, as some clients send it.
        assert_eq!(Damage::from_url(&url("?damage=reorder%3A0.5")), Ok(Some(Damage { reorder: 0.5, ..Damage::default() })));
        assert_eq!(Damage::from_url(&url("?damge=drop:0.1")), Err(DamageError::UnknownParameter("damge".into())));
        assert_eq!(Damage::from_url(&url("?damage=drop:0.1&seed=x")), Err(DamageError::BadSeed("x".into())));
        assert_eq!(Damage::from_url(&url("?seed=3")), Err(DamageError::SeedWithoutDamage));
        assert_eq!(Damage::from_url(&url("?damage=drop:0.1&damage=flip:0.1")), Err(DamageError::RepeatedParameter("damage".into())));
        assert_eq!(Damage::from_url(&url("?damage=")), Err(DamageError::Empty));
    }

    /// Access units of `sizes` bytes each, as the simulator packetizes them.
    fn stream(sizes: &[usize]) -> Vec<Vec<Bytes>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let nal: Vec<u8> = std::iter::once(0x65).chain((1..n).map(|j| (i * 31 + j) as u8)).collect();
                packetize_access_unit([&nal[..]], 1400)
            })
            .collect()
    }

    fn header(sequence: u16, timestamp: u32) -> RtpHeader {
        RtpHeader { marker: false, payload_type: 96, sequence, timestamp, ssrc: 0xabcd }
    }

    /// Sends `aus` through a damager; returns every packet sent, parsed.
    fn run(d: Damage, aus: &[Vec<Bytes>]) -> (Vec<(RtpHeader, Vec<u8>)>, DamageStats) {
        let mut dm = Damager::new(d);
        let mut seq = 65_530u16; // across the wrap
        let mut sent = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            let (packets, used) = dm.access_unit(au, header(seq, i as u32 * 9000));
            seq = seq.wrapping_add(used);
            sent.extend(packets.iter().map(|p| {
                let (h, body) = RtpHeader::parse(p).unwrap();
                (h, body.to_vec())
            }));
        }
        (sent, dm.stats())
    }

    #[test]
    fn no_damage_sends_exactly_the_clean_packets() {
        let aus = stream(&[5000, 300, 1400, 1401]);
        let (sent, stats) = run(Damage::default(), &aus);
        let clean: Vec<_> = aus
            .iter()
            .enumerate()
            .flat_map(|(i, au)| au.iter().enumerate().map(move |(j, p)| (i, j == au.len() - 1, p.to_vec())))
            .collect();
        assert_eq!(sent.len(), clean.len());
        for (n, ((h, body), (au, last, p))) in sent.iter().zip(&clean).enumerate() {
            assert_eq!(h.sequence, 65_530u16.wrapping_add(n as u16));
            assert_eq!((h.timestamp, h.marker, h.ssrc), (*au as u32 * 9000, *last, 0xabcd));
            assert_eq!(body, p);
        }
        assert_eq!(stats, DamageStats { packets: clean.len() as u64, ..DamageStats::default() });
    }

    #[test]
    fn flips_change_one_payload_bit_and_never_the_header() {
        let aus = stream(&[20_000; 10]);
        let clean = run(Damage::default(), &aus).0;
        let (sent, stats) = run(Damage { flip: 0.3, ..Damage::default() }, &aus);
        assert_eq!(sent.len(), clean.len());
        let mut changed = 0;
        for ((h, body), (ch, cbody)) in sent.iter().zip(&clean) {
            assert_eq!(h, ch, "headers untouched");
            let bits: u32 = body.iter().zip(cbody).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert!(bits <= 1);
            changed += bits as u64;
        }
        assert_eq!(changed, stats.flipped);
        let rate = changed as f64 / sent.len() as f64;
        assert!((0.2..0.4).contains(&rate), "{changed} of {} packets flipped", sent.len());
    }

    #[test]
    fn drops_leave_gaps_in_the_sequence() {
        let aus = stream(&[20_000; 10]);
        let (sent, stats) = run(Damage { drop: 0.1, ..Damage::default() }, &aus);
        assert!(stats.dropped > 0 && stats.dropped < stats.packets / 4, "{stats:?}");
        assert_eq!(sent.len() as u64, stats.packets - stats.dropped);
        // Still ascending (no reordering), with as many numbers skipped as packets dropped.
        let gaps: u64 = sent.windows(2).map(|w| u64::from(w[1].0.sequence.wrapping_sub(w[0].0.sequence)) - 1).sum();
        let first = u64::from(sent[0].0.sequence.wrapping_sub(65_530));
        let last = u64::from(65_530u16.wrapping_add(stats.packets as u16 - 1).wrapping_sub(sent.last().unwrap().0.sequence));
        assert_eq!(gaps + first + last, stats.dropped);
    }

    #[test]
    fn reordered_packets_arrive_late_within_the_window_and_none_is_lost() {
        let aus = stream(&[20_000; 10]);
        let (sent, stats) = run(Damage { reorder: 0.1, ..Damage::default() }, &aus);
        assert!(stats.reordered > 0, "{stats:?}");
        // Every packet but those still held at the end arrives once.
        let mut seqs: Vec<u16> = sent.iter().map(|(h, _)| h.sequence.wrapping_sub(65_530)).collect();
        let late = seqs.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(late > 0);
        // A packet is late by at most the window (plus other held packets released with it).
        for (pos, s) in seqs.iter().enumerate() {
            assert!(pos as i64 - i64::from(*s) <= REORDER_WINDOW as i64 * 2, "packet {s} at {pos}");
        }
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), sent.len(), "no duplicates");
        assert!(stats.packets - sent.len() as u64 <= 2 * REORDER_WINDOW, "{stats:?}");
    }

    #[test]
    fn truncated_access_units_are_short_contiguous_and_marked() {
        let aus = stream(&[20_000; 20]);
        let (sent, stats) = run(Damage { truncate: 0.5, ..Damage::default() }, &aus);
        assert!(stats.truncated > 3 && stats.truncated < 17, "{stats:?}");
        // Contiguous numbering: the short access unit looks complete on the wire.
        for w in sent.windows(2) {
            assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
        }
        let mut short = 0;
        for (i, au) in aus.iter().enumerate() {
            let got: Vec<&(RtpHeader, Vec<u8>)> = sent.iter().filter(|(h, _)| h.timestamp == i as u32 * 9000).collect();
            assert!(got.last().unwrap().0.marker && got.iter().filter(|(h, _)| h.marker).count() == 1, "AU {i} marked once at its end");
            let bytes: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
            let clean: Vec<u8> = au.iter().flat_map(|p| p.to_vec()).collect();
            assert!(!bytes.is_empty() && clean.starts_with(&bytes), "AU {i} is a prefix of itself");
            short += usize::from(bytes.len() < clean.len());
        }
        assert_eq!(short as u64, stats.truncated);
    }

    #[test]
    fn the_seed_decides_and_repeats_the_damage() {
        let aus = stream(&[20_000, 900, 900, 20_000, 900]);
        let d = Damage { flip: 0.1, drop: 0.1, reorder: 0.1, truncate: 0.3, seed: 7 };
        assert_eq!(run(d, &aus), run(d, &aus));
        assert_ne!(run(d, &aus).0, run(Damage { seed: 8, ..d }, &aus).0);
    }

    #[test]
    fn tiny_payloads_survive_every_kind() {
        let aus = vec![vec![Bytes::from_static(&[0x41])], vec![Bytes::from_static(&[0x41, 0x9a])], vec![Bytes::new()]];
        let d = Damage { flip: 1.0, drop: 0.0, reorder: 0.0, truncate: 1.0, seed: 1 };
        let (sent, _) = run(d, &aus);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[1].1.len(), 1, "cut to one byte, never to nothing");
    }
}
