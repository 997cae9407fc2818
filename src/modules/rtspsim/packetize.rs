//! RFC 6184 H.264 packetization (single NAL unit and FU-A) and RFC 3550 RTP/RTCP headers, as pure functions.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest RTP payload we emit. 1400 + 12 (RTP) + 8 (UDP) + 20 (IPv4) stays under a 1500-byte
/// Ethernet MTU with room for a tunnel or VLAN header, so UDP packets are never IP-fragmented.
pub const MAX_PAYLOAD: usize = 1400;

/// Dynamic payload type announced in the SDP for H.264.
pub const PAYLOAD_TYPE: u8 = 96;

/// RTP header length without CSRCs or extensions.
pub const RTP_HEADER_LEN: usize = 12;

/// NAL unit type of a FU-A fragmentation unit (RFC 6184 section 5.8).
const FU_A: u8 = 28;

/// Appends the RTP payloads for one NAL unit to `out`: the NAL itself when it fits in
/// `max_payload`, otherwise FU-A fragments. Empty NAL units are dropped (they carry no header).
pub fn packetize_nal(nal: &[u8], max_payload: usize, out: &mut Vec<Bytes>) {
    // Two bytes of FU indicator and header plus at least one byte of data per fragment.
    assert!(max_payload >= 3, "max_payload {max_payload} cannot hold a FU-A fragment");
    let Some((&header, body)) = nal.split_first() else { return };
    if nal.len() <= max_payload {
        out.push(Bytes::copy_from_slice(nal));
        return;
    }
    // The FU indicator keeps F and NRI of the original header so that a receiver (or a
    // middlebox dropping by priority) sees the same importance; the FU header carries the type.
    let indicator = (header & 0xe0) | FU_A;
    let nal_type = header & 0x1f;
    let chunk = max_payload - 2;
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let mut fu_header = nal_type;
        if i == 0 {
            fu_header |= 0x80;
        }
        if i + 1 == count {
            fu_header |= 0x40;
        }
        let mut p = BytesMut::with_capacity(2 + part.len());
        p.put_u8(indicator);
        p.put_u8(fu_header);
        p.put_slice(part);
        out.push(p.freeze());
    }
}

/// The RTP payloads of one access unit in sending order. The caller sets the marker bit on
/// the last one (RFC 6184 section 5.1: the marker flags the last packet of an access unit).
pub fn packetize_access_unit<'a>(nals: impl IntoIterator<Item = &'a [u8]>, max_payload: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    for nal in nals {
        packetize_nal(nal, max_payload, &mut out);
    }
    out
}

/// The fixed part of an RTP header (RFC 3550 section 5.1); version 2, no padding, extension or CSRCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    pub fn write(&self, out: &mut BytesMut) {
        out.put_u8(0x80);
        out.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
    }

    /// Parses the fixed header of an RTP packet (used by tests and by the RTCP demultiplexing guard).
    pub fn parse(packet: &[u8]) -> Option<(RtpHeader, &[u8])> {
        if packet.len() < RTP_HEADER_LEN || packet[0] >> 6 != 2 {
            return None;
        }
        let csrc = usize::from(packet[0] & 0x0f) * 4;
        let start = RTP_HEADER_LEN + csrc;
        if packet.len() < start {
            return None;
        }
        let h = RtpHeader {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        };
        Some((h, &packet[start..]))
    }
}

/// What an RTCP sender report states about one RTP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high word) of the report.
    pub ntp: u64,
    /// The RTP timestamp that corresponds to `ntp` on the stream's media clock.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// A compound RTCP packet: SR without report blocks, then SDES with a CNAME, because RFC 3550
/// section 6.1 requires every compound packet to carry a CNAME and strict receivers drop
/// compound packets without one.
pub fn sender_report(sr: &SenderReport, cname: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(28 + 12 + cname.len());
    out.put_u8(0x80); // V=2, P=0, RC=0
    out.put_u8(200); // SR
    out.put_u16(6); // length in 32-bit words minus one: 7 words
    out.put_u32(sr.ssrc);
    out.put_u64(sr.ntp);
    out.put_u32(sr.rtp_timestamp);
    out.put_u32(sr.packet_count);
    out.put_u32(sr.octet_count);

    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // SSRC + item (type, length, text) + at least one null terminator, padded to 32 bits.
    let chunk_len = 4 + 2 + cname.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    out.put_u8(0x81); // V=2, SC=1
    out.put_u8(202); // SDES
    out.put_u16((padded / 4) as u16);
    out.put_u32(sr.ssrc);
    out.put_u8(1); // CNAME
    out.put_u8(cname.len() as u8);
    out.put_slice(cname);
    out.put_bytes(0, padded - (chunk_len - 1));
    out.freeze()
}

/// The 64-bit NTP timestamp of `t` (RFC 3550 section 4): seconds since 1900-01-01 and a binary fraction.
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    const UNIX_TO_NTP_SECS: u64 = 2_208_988_800;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + UNIX_TO_NTP_SECS;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Writes the 4-byte RTSP interleaved frame header (RFC 2326 section 10.12) for a packet of `len` bytes.
pub fn put_interleaved_header(out: &mut BytesMut, channel: u8, len: usize) {
    debug_assert!(len <= usize::from(u16::MAX));
    out.put_u8(b'$');
    out.put_u8(channel);
    out.put_u16(len as u16);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reassembles NAL units from RFC 6184 payloads (single NAL and FU-A), as a receiver would.
    fn depacketize(payloads: &[Bytes]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut partial: Option<Vec<u8>> = None;
        for p in payloads {
            let t = p[0] & 0x1f;
            if t == FU_A {
                let (start, end) = (p[1] & 0x80 != 0, p[1] & 0x40 != 0);
                if start {
                    assert!(partial.is_none(), "FU-A start inside a fragmented NAL");
                    partial = Some(vec![(p[0] & 0xe0) | (p[1] & 0x1f)]);
                }
                let buf = partial.as_mut().expect("FU-A continuation without start");
                buf.extend_from_slice(&p[2..]);
                if end {
                    nals.push(partial.take().unwrap());
                }
            } else {
                assert!(partial.is_none(), "single NAL inside a fragmented NAL");
                nals.push(p.to_vec());
            }
        }
        assert!(partial.is_none(), "unterminated FU-A");
        nals
    }

    #[test]
    fn small_nal_is_sent_whole() {
        let nal = [0x65, 1, 2, 3];
        let p = packetize_access_unit([&nal[..]], MAX_PAYLOAD);
        assert_eq!(p, vec![Bytes::copy_from_slice(&nal)]);
    }

    #[test]
    fn nal_of_exactly_max_payload_is_not_fragmented() {
        let mut nal = vec![0x41u8; MAX_PAYLOAD];
        nal[0] = 0x41;
        let p = packetize_access_unit([&nal[..]], MAX_PAYLOAD);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn large_nal_becomes_fu_a_with_start_and_end_bits() {
        let mut nal = vec![0x65u8];
        nal.extend((0..3000u32).map(|i| i as u8));
        let p = packetize_access_unit([&nal[..]], 1000);
        // 2999 body bytes in chunks of 998.
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|x| x.len() <= 1000));
        assert_eq!(p[0][0], 0x60 | FU_A, "F and NRI kept, type 28");
        assert_eq!(p[0][1], 0x80 | 5);
        assert_eq!(p[1][1], 5);
        assert_eq!(p[3][1], 0x40 | 5);
        assert_eq!(depacketize(&p), vec![nal]);
    }

    #[test]
    fn empty_nals_are_dropped() {
        assert!(packetize_access_unit([&[][..]], MAX_PAYLOAD).is_empty());
    }

    #[test]
    fn rtp_header_round_trips() {
        let h = RtpHeader { marker: true, payload_type: 96, sequence: 65535, timestamp: 0xdead_beef, ssrc: 0x1234_5678 };
        let mut b = BytesMut::new();
        h.write(&mut b);
        assert_eq!(&b[..2], &[0x80, 0x80 | 96]);
        b.put_slice(b"xy");
        assert_eq!(RtpHeader::parse(&b), Some((h, &b"xy"[..])));
    }

    #[test]
    fn sender_report_layout() {
        let sr = SenderReport { ssrc: 7, ntp: 0x0102_0304_0506_0708, rtp_timestamp: 9, packet_count: 10, octet_count: 11 };
        let b = sender_report(&sr, "vela");
        // SR: 28 bytes; SDES: 4 + 4 (ssrc) + 2 + 4 ("vela") + 1 null, padded to 16.
        assert_eq!(b.len(), 28 + 16);
        assert_eq!(&b[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&b[8..16], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&b[28..32], &[0x81, 202, 0, 3]);
        assert_eq!(&b[36..42], &[1, 4, b'v', b'e', b'l', b'a']);
        assert!(b[42..].iter().all(|&x| x == 0));
        // Every compound part's length field matches its size.
        let mut off = 0;
        while off < b.len() {
            let words = u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize + 1;
            off += words * 4;
        }
        assert_eq!(off, b.len());
    }

    #[test]
    fn sender_report_padding_when_cname_fills_a_word() {
        // chunk = 4 + 2 + 2 + 1 = 9 → 12 bytes.
        let b = sender_report(&SenderReport { ssrc: 1, ntp: 0, rtp_timestamp: 0, packet_count: 0, octet_count: 0 }, "ab");
        assert_eq!(b.len(), 28 + 4 + 12);
        assert_eq!(u16::from_be_bytes([b[30], b[31]]), 3);
    }

    #[test]
    fn ntp_epoch_offset() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH) >> 32, 2_208_988_800);
        let half = UNIX_EPOCH + std::time::Duration::from_millis(500);
        assert_eq!(ntp_timestamp(half) & 0xffff_ffff, 1 << 31);
    }

    proptest! {
        #[test]
        fn packetization_round_trips(
            nals in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..5000), 1..6),
            max_payload in 3usize..1500,
        ) {
            // F bit must be zero in valid NAL headers; type 28 would be mistaken for FU-A by the test depacketizer.
            let nals: Vec<Vec<u8>> = nals.into_iter().map(|mut n| { n[0] = (n[0] & 0x60) | 1; n }).collect();
            let p = packetize_access_unit(nals.iter().map(|n| &n[..]), max_payload);
            prop_assert!(p.iter().all(|x| x.len() <= max_payload));
            prop_assert_eq!(depacketize(&p), nals);
        }
    }
}
