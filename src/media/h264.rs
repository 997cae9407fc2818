//! H.264 bitstream helpers: NAL unit framing (AVCC and Annex B), avcC records, SPS parsing and SDP parameters.
//!
//! Everything here works on borrowed bytes and never panics on malformed input: camera
//! streams and files from power-cut recordings are routinely damaged, and one bad NAL
//! must cost an error, not the process.

use base64::Engine as _;
use thiserror::Error;

/// NAL unit types of ITU-T H.264 Table 7-1 that the appliance reasons about.
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const SLICE_DPA: u8 = 2;
    pub const SLICE_DPB: u8 = 3;
    pub const SLICE_DPC: u8 = 4;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const END_OF_SEQUENCE: u8 = 10;
    pub const END_OF_STREAM: u8 = 11;
    pub const FILLER: u8 = 12;
    pub const SPS_EXT: u8 = 13;
    pub const PREFIX: u8 = 14;
    pub const SUBSET_SPS: u8 = 15;
    pub const DPS: u8 = 16;
    pub const SLICE_AUX: u8 = 19;
    pub const SLICE_EXT: u8 = 20;
    pub const SLICE_EXT_DEPTH: u8 = 21;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum H264Error {
    #[error("NAL length size must be 1, 2 or 4 bytes, got {0}")]
    InvalidLengthSize(u8),
    #[error("AVCC data truncated at byte {offset}: NAL unit of {needed} bytes, {available} left")]
    TruncatedNal { offset: usize, needed: usize, available: usize },
    #[error("NAL unit of {len} bytes does not fit a {length_size}-byte length prefix")]
    NalTooLarge { len: usize, length_size: u8 },
    #[error("expected an SPS NAL unit (type 7), got type {0}")]
    NotSps(u8),
    #[error("SPS ends before {0}")]
    SpsTruncated(&'static str),
    #[error("invalid SPS: {0}")]
    InvalidSps(&'static str),
    #[error("invalid AVCDecoderConfigurationRecord: {0}")]
    InvalidAvcConfig(&'static str),
    #[error("unsupported AVCDecoderConfigurationRecord version {0}")]
    UnsupportedAvcConfigVersion(u8),
}

/// The type of a NAL unit (low five bits of its header byte); `None` for an empty slice.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// True for the NAL units that start a closed GOP (instantaneous decoder refresh).
pub fn is_idr(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(nal_type::IDR)
}

/// Human-readable name of a NAL unit type, for logs and diagnostics.
pub fn nal_type_name(t: u8) -> &'static str {
    match t {
        0 => "unspecified",
        nal_type::SLICE => "non-IDR slice",
        nal_type::SLICE_DPA => "slice data partition A",
        nal_type::SLICE_DPB => "slice data partition B",
        nal_type::SLICE_DPC => "slice data partition C",
        nal_type::IDR => "IDR slice",
        nal_type::SEI => "SEI",
        nal_type::SPS => "SPS",
        nal_type::PPS => "PPS",
        nal_type::AUD => "access unit delimiter",
        nal_type::END_OF_SEQUENCE => "end of sequence",
        nal_type::END_OF_STREAM => "end of stream",
        nal_type::FILLER => "filler data",
        nal_type::SPS_EXT => "SPS extension",
        nal_type::PREFIX => "prefix NAL unit",
        nal_type::SUBSET_SPS => "subset SPS",
        nal_type::DPS => "depth parameter set",
        17 | 18 | 22 | 23 => "reserved",
        nal_type::SLICE_AUX => "auxiliary slice",
        nal_type::SLICE_EXT => "slice extension",
        nal_type::SLICE_EXT_DEPTH => "depth view slice extension",
        _ => "unspecified",
    }
}

fn check_length_size(length_size: u8) -> Result<(), H264Error> {
    match length_size {
        1 | 2 | 4 => Ok(()),
        other => Err(H264Error::InvalidLengthSize(other)),
    }
}

/// Iterator over the NAL units of an AVCC (length-prefixed) access unit.
///
/// Zero-length units are skipped: they carry nothing, and in Annex B they would become a
/// bare start code that some decoders reject. After the first error the iterator ends.
pub struct AvccNals<'a> {
    data: &'a [u8],
    pos: usize,
    length_size: u8,
    failed: bool,
}

/// Iterates the NAL units of `data`, each preceded by a big-endian length of `length_size` bytes.
pub fn avcc_nals(data: &[u8], length_size: u8) -> AvccNals<'_> {
    AvccNals { data, pos: 0, length_size, failed: false }
}

impl<'a> Iterator for AvccNals<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Err(e) = check_length_size(self.length_size) {
            self.failed = true;
            return Some(Err(e));
        }
        let ls = usize::from(self.length_size);
        loop {
            if self.pos >= self.data.len() {
                return None;
            }
            let rest = &self.data[self.pos..];
            if rest.len() < ls {
                self.failed = true;
                return Some(Err(H264Error::TruncatedNal { offset: self.pos, needed: ls, available: rest.len() }));
            }
            let len = rest[..ls].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let body = &rest[ls..];
            if body.len() < len {
                self.failed = true;
                return Some(Err(H264Error::TruncatedNal { offset: self.pos, needed: len, available: body.len() }));
            }
            self.pos += ls + len;
            if len > 0 {
                return Some(Ok(&body[..len]));
            }
        }
    }
}

/// Iterator over the NAL units of an Annex B byte stream (start-code delimited).
///
/// Bytes before the first start code are not a NAL unit and are ignored; trailing zero
/// bytes of a unit belong to the next four-byte start code (or are trailing_zero_8bits)
/// and are trimmed.
pub struct AnnexBNals<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Iterates the NAL units of an Annex B stream.
pub fn annexb_nals(data: &[u8]) -> AnnexBNals<'_> {
    let pos = find_start_code(data, 0).map_or(data.len(), |(_, after)| after);
    AnnexBNals { data, pos }
}

/// Finds the next `00 00 01` at or after `from`; returns (start of the code, first byte after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 2 < data.len() {
        // Skipping by the third byte keeps the scan near one comparison per byte.
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.data.len() {
            let start = self.pos;
            let (end, next) = match find_start_code(self.data, start) {
                Some((code, after)) => (code, after),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            let mut nal = &self.data[start..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            if !nal.is_empty() {
                return Some(nal);
            }
        }
        None
    }
}

/// Appends the AVCC access unit `data` to `out` as Annex B with four-byte start codes.
pub fn avcc_to_annexb_into(data: &[u8], length_size: u8, out: &mut Vec<u8>) -> Result<(), H264Error> {
    for nal in avcc_nals(data, length_size) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal?);
    }
    Ok(())
}

/// Converts an AVCC access unit to Annex B with four-byte start codes.
pub fn avcc_to_annexb(data: &[u8], length_size: u8) -> Result<Vec<u8>, H264Error> {
    let mut out = Vec::with_capacity(data.len() + 16);
    avcc_to_annexb_into(data, length_size, &mut out)?;
    Ok(out)
}

/// Appends one NAL unit to `out` with a `length_size`-byte big-endian length prefix.
pub fn push_length_prefixed(nal: &[u8], length_size: u8, out: &mut Vec<u8>) -> Result<(), H264Error> {
    check_length_size(length_size)?;
    let max = if length_size == 4 { u32::MAX as usize } else { (1usize << (8 * usize::from(length_size))) - 1 };
    if nal.len() > max {
        return Err(H264Error::NalTooLarge { len: nal.len(), length_size });
    }
    let len = nal.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[4 - usize::from(length_size)..]);
    out.extend_from_slice(nal);
    Ok(())
}

/// Converts an Annex B access unit to AVCC with `length_size`-byte lengths.
pub fn annexb_to_avcc(data: &[u8], length_size: u8) -> Result<Vec<u8>, H264Error> {
    check_length_size(length_size)?;
    let mut out = Vec::with_capacity(data.len());
    for nal in annexb_nals(data) {
        push_length_prefixed(nal, length_size, &mut out)?;
    }
    Ok(out)
}

/// True when the AVCC access unit contains an IDR slice.
pub fn avcc_contains_idr(data: &[u8], length_size: u8) -> Result<bool, H264Error> {
    for nal in avcc_nals(data, length_size) {
        if is_idr(nal?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// True when the Annex B access unit contains an IDR slice.
pub fn annexb_contains_idr(data: &[u8]) -> bool {
    annexb_nals(data).any(is_idr)
}

/// The ISO/IEC 14496-15 fields that only High-family profiles carry in an avcC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcHighProfileExt {
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    pub sps_ext: Vec<Vec<u8>>,
}

/// An AVCDecoderConfigurationRecord (the `avcC` box body, Matroska's CodecPrivate for H.264).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_idc: u8,
    pub profile_compatibility: u8,
    pub level_idc: u8,
    pub nal_length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    /// Present only when the record carried it; many muxers omit it even for High profiles.
    pub high_profile_ext: Option<AvcHighProfileExt>,
}

/// Profiles for which ISO/IEC 14496-15 appends chroma format and bit depths to the avcC.
fn avcc_has_ext(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 144)
}

struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, H264Error> {
        let b = *self.data.get(self.pos).ok_or(H264Error::InvalidAvcConfig(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], H264Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(H264Error::InvalidAvcConfig(what))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16_prefixed(&mut self, what: &'static str) -> Result<Vec<u8>, H264Error> {
        let hi = self.u8(what)?;
        let lo = self.u8(what)?;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        Ok(self.bytes(len, what)?.to_vec())
    }
}

impl AvcDecoderConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    pub fn parse(data: &[u8]) -> Result<Self, H264Error> {
        let mut r = ByteReader { data, pos: 0 };
        let version = r.u8("record is empty")?;
        if version != 1 {
            return Err(H264Error::UnsupportedAvcConfigVersion(version));
        }
        let profile_idc = r.u8("record ends in its header")?;
        let profile_compatibility = r.u8("record ends in its header")?;
        let level_idc = r.u8("record ends in its header")?;
        let nal_length_size = (r.u8("record ends in its header")? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(H264Error::InvalidLengthSize(3));
        }
        let num_sps = r.u8("record ends before its SPS count")? & 0x1f;
        let mut sps = Vec::with_capacity(usize::from(num_sps));
        for _ in 0..num_sps {
            sps.push(r.u16_prefixed("record ends inside an SPS")?);
        }
        let num_pps = r.u8("record ends before its PPS count")?;
        let mut pps = Vec::with_capacity(usize::from(num_pps));
        for _ in 0..num_pps {
            pps.push(r.u16_prefixed("record ends inside a PPS")?);
        }
        // Old muxers wrote High-profile records without the extension, so a record that
        // ends here is accepted; one that starts the extension must complete it.
        let high_profile_ext = if avcc_has_ext(profile_idc) && r.pos + 4 <= data.len() {
            let chroma_format_idc = r.u8("extension")? & 0x03;
            let bit_depth_luma_minus8 = r.u8("extension")? & 0x07;
            let bit_depth_chroma_minus8 = r.u8("extension")? & 0x07;
            let n = r.u8("extension")?;
            let mut sps_ext = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                sps_ext.push(r.u16_prefixed("record ends inside an SPS extension")?);
            }
            Some(AvcHighProfileExt { chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8, sps_ext })
        } else {
            None
        };
        Ok(Self { profile_idc, profile_compatibility, level_idc, nal_length_size, sps, pps, high_profile_ext })
    }

    /// Builds a record from parameter sets (NAL units without start codes or length prefixes).
    ///
    /// Profile and level are copied from the first SPS; High-family profiles get the
    /// chroma/bit-depth extension that ISO/IEC 14496-15 requires for them.
    pub fn from_parameter_sets(sps: Vec<Vec<u8>>, pps: Vec<Vec<u8>>, nal_length_size: u8) -> Result<Self, H264Error> {
        check_length_size(nal_length_size)?;
        let first = sps.first().ok_or(H264Error::InvalidAvcConfig("at least one SPS is required"))?;
        let info = parse_sps(first)?;
        if pps.is_empty() {
            return Err(H264Error::InvalidAvcConfig("at least one PPS is required"));
        }
        let high_profile_ext = avcc_has_ext(info.profile_idc).then(|| AvcHighProfileExt {
            chroma_format_idc: info.chroma_format_idc as u8,
            bit_depth_luma_minus8: info.bit_depth_luma - 8,
            bit_depth_chroma_minus8: info.bit_depth_chroma - 8,
            sps_ext: Vec::new(),
        });
        let config = Self {
            profile_idc: info.profile_idc,
            profile_compatibility: info.constraint_flags,
            level_idc: info.level_idc,
            nal_length_size,
            sps,
            pps,
            high_profile_ext,
        };
        config.to_bytes()?; // Reject sets that cannot be serialised now rather than at mux time.
        Ok(config)
    }

    /// Serialises the record.
    pub fn to_bytes(&self) -> Result<Vec<u8>, H264Error> {
        check_length_size(self.nal_length_size)?;
        if self.sps.len() > 31 {
            return Err(H264Error::InvalidAvcConfig("more than 31 SPS"));
        }
        if self.pps.len() > 255 {
            return Err(H264Error::InvalidAvcConfig("more than 255 PPS"));
        }
        let mut out = vec![1, self.profile_idc, self.profile_compatibility, self.level_idc, 0xfc | (self.nal_length_size - 1)];
        out.push(0xe0 | self.sps.len() as u8);
        for s in &self.sps {
            push_length_prefixed(s, 2, &mut out)?;
        }
        out.push(self.pps.len() as u8);
        for p in &self.pps {
            push_length_prefixed(p, 2, &mut out)?;
        }
        if let Some(ext) = &self.high_profile_ext {
            if ext.sps_ext.len() > 255 {
                return Err(H264Error::InvalidAvcConfig("more than 255 SPS extensions"));
            }
            out.push(0xfc | (ext.chroma_format_idc & 0x03));
            out.push(0xf8 | (ext.bit_depth_luma_minus8 & 0x07));
            out.push(0xf8 | (ext.bit_depth_chroma_minus8 & 0x07));
            out.push(ext.sps_ext.len() as u8);
            for s in &ext.sps_ext {
                push_length_prefixed(s, 2, &mut out)?;
            }
        }
        Ok(out)
    }
}

/// What the appliance needs from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as the byte after profile_idc.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub sps_id: u32,
    pub chroma_format_idc: u32,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub frame_mbs_only: bool,
    pub max_num_ref_frames: u32,
    /// Coded width minus frame cropping: what a decoder outputs.
    pub width: u32,
    /// Coded height minus frame cropping.
    pub height: u32,
    /// Frame cropping in luma samples: left, right, top, bottom.
    pub crop: [u32; 4],
    /// VUI `max_num_reorder_frames`, when the SPS carries a bitstream restriction (or the
    /// VUI cannot be read, `None`).
    pub max_num_reorder_frames: Option<u32>,
}

impl SpsInfo {
    /// Whether pictures may leave the decoder in another order than they enter it, i.e.
    /// whether a decoder must hold pictures back. No when the VUI says so, or for Baseline
    /// (no B slices; encoders and cameras emit it in output order).
    pub fn may_reorder(&self) -> bool {
        match self.max_num_reorder_frames {
            Some(n) => n > 0,
            None => self.profile_idc != 66,
        }
    }
}

impl SpsInfo {
    /// RFC 6184 `profile-level-id`: profile_idc, constraint byte and level_idc as six hex digits.
    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

/// Removes emulation prevention bytes (the `03` in `00 00 03`) to recover the RBSP.
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits MSB-first from an RBSP.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn bit(&mut self, what: &'static str) -> Result<u32, H264Error> {
        let byte = *self.data.get(self.bit / 8).ok_or(H264Error::SpsTruncated(what))?;
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(u32::from(v))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, H264Error> {
        Ok(self.bit(what)? == 1)
    }

    fn bits(&mut self, n: u32, what: &'static str) -> Result<u32, H264Error> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit(what)?;
        }
        Ok(v)
    }

    /// Unsigned exp-Golomb; values beyond 32 bits are invalid in every SPS syntax element.
    fn ue(&mut self, what: &'static str) -> Result<u32, H264Error> {
        let mut zeros = 0u32;
        while self.bit(what)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(H264Error::InvalidSps("exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = u64::from(self.bits(zeros, what)?);
        u32::try_from((1u64 << zeros) - 1 + rest).map_err(|_| H264Error::InvalidSps("exp-Golomb value overflows 32 bits"))
    }

    fn se(&mut self, what: &'static str) -> Result<i32, H264Error> {
        let k = i64::from(self.ue(what)?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| H264Error::InvalidSps("signed exp-Golomb value out of range"))
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se("scaling list")?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::InvalidSps("delta_scale out of range"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1).
fn sps_has_chroma_info(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135)
}

/// Parses an SPS NAL unit (header byte included, emulation prevention still in place).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    let t = nal_unit_type(nal).ok_or(H264Error::SpsTruncated("the NAL header"))?;
    if t != nal_type::SPS {
        return Err(H264Error::NotSps(t));
    }
    let rbsp = nal_to_rbsp(&nal[1..]);
    let mut r = BitReader { data: &rbsp, bit: 0 };
    let profile_idc = r.bits(8, "profile_idc")? as u8;
    let constraint_flags = r.bits(8, "constraint flags")? as u8;
    let level_idc = r.bits(8, "level_idc")? as u8;
    let sps_id = r.ue("seq_parameter_set_id")?;
    if sps_id > 31 {
        return Err(H264Error::InvalidSps("seq_parameter_set_id above 31"));
    }
    let (mut chroma_format_idc, mut separate_colour_plane, mut bit_depth_luma, mut bit_depth_chroma) = (1, false, 8, 8);
    if sps_has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue("chroma_format_idc")?;
        if chroma_format_idc > 3 {
            return Err(H264Error::InvalidSps("chroma_format_idc above 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        let luma = r.ue("bit_depth_luma_minus8")?;
        let chroma = r.ue("bit_depth_chroma_minus8")?;
        if luma > 6 || chroma > 6 {
            return Err(H264Error::InvalidSps("bit depth above 14"));
        }
        bit_depth_luma = 8 + luma as u8;
        bit_depth_chroma = 8 + chroma as u8;
        r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue("log2_max_frame_num_minus4")?;
    match r.ue("pic_order_cnt_type")? {
        0 => {
            r.ue("log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            r.flag("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue("num_ref_frames_in_pic_order_cnt_cycle")?;
            if cycle > 255 {
                return Err(H264Error::InvalidSps("num_ref_frames_in_pic_order_cnt_cycle above 255"));
            }
            for _ in 0..cycle {
                r.se("offset_for_ref_frame")?;
            }
        }
        2 => {}
        _ => return Err(H264Error::InvalidSps("pic_order_cnt_type above 2")),
    }
    let max_num_ref_frames = r.ue("max_num_ref_frames")?;
    r.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = u64::from(r.ue("pic_width_in_mbs_minus1")?) + 1;
    let height_map_units = u64::from(r.ue("pic_height_in_map_units_minus1")?) + 1;
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        r.flag("mb_adaptive_frame_field_flag")?;
    }
    r.flag("direct_8x8_inference_flag")?;
    let mut crop = [0u32; 4];
    if r.flag("frame_cropping_flag")? {
        for c in &mut crop {
            *c = r.ue("frame crop offsets")?;
        }
    }
    // Crop units (equations 7-19 to 7-22): offsets count chroma samples, and field-coded
    // streams count pairs of lines.
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (crop_unit_x, crop_unit_y) = if separate_colour_plane || chroma_format_idc == 0 {
        (1u64, field_factor)
    } else {
        let sub_width = if chroma_format_idc == 3 { 1 } else { 2 };
        let sub_height = if chroma_format_idc == 1 { 2 } else { 1 };
        (sub_width, sub_height * field_factor)
    };
    let coded_width = width_mbs * 16;
    let coded_height = height_map_units * 16 * field_factor;
    let crop_x = crop_unit_x * (u64::from(crop[0]) + u64::from(crop[1]));
    let crop_y = crop_unit_y * (u64::from(crop[2]) + u64::from(crop[3]));
    if crop_x >= coded_width || crop_y >= coded_height {
        return Err(H264Error::InvalidSps("frame cropping removes the whole picture"));
    }
    let width = u32::try_from(coded_width - crop_x).map_err(|_| H264Error::InvalidSps("width overflows"))?;
    let height = u32::try_from(coded_height - crop_y).map_err(|_| H264Error::InvalidSps("height overflows"))?;
    let to_samples = |v: u32, unit: u64| u32::try_from(u64::from(v) * unit).unwrap_or(u32::MAX);
    // A damaged or truncated VUI only costs the reorder hint, never the SPS.
    let max_num_reorder_frames = match r.flag("vui_parameters_present_flag") {
        Ok(true) => vui_max_num_reorder_frames(&mut r).ok().flatten(),
        _ => None,
    };
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        sps_id,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma,
        bit_depth_chroma,
        frame_mbs_only,
        max_num_ref_frames,
        width,
        height,
        crop: [
            to_samples(crop[0], crop_unit_x),
            to_samples(crop[1], crop_unit_x),
            to_samples(crop[2], crop_unit_y),
            to_samples(crop[3], crop_unit_y),
        ],
        max_num_reorder_frames,
    })
}

/// Reads `vui_parameters()` (H.264 Annex E.1.1) up to `max_num_reorder_frames`.
fn vui_max_num_reorder_frames(r: &mut BitReader<'_>) -> Result<Option<u32>, H264Error> {
    if r.flag("aspect_ratio_info_present_flag")? && r.bits(8, "aspect_ratio_idc")? == 255 {
        r.bits(16, "sar_width")?;
        r.bits(16, "sar_height")?;
    }
    if r.flag("overscan_info_present_flag")? {
        r.flag("overscan_appropriate_flag")?;
    }
    if r.flag("video_signal_type_present_flag")? {
        r.bits(4, "video_format, video_full_range_flag")?;
        if r.flag("colour_description_present_flag")? {
            r.bits(24, "colour description")?;
        }
    }
    if r.flag("chroma_loc_info_present_flag")? {
        r.ue("chroma_sample_loc_type_top_field")?;
        r.ue("chroma_sample_loc_type_bottom_field")?;
    }
    if r.flag("timing_info_present_flag")? {
        r.bits(32, "num_units_in_tick")?;
        r.bits(32, "time_scale")?;
        r.flag("fixed_frame_rate_flag")?;
    }
    let nal_hrd = r.flag("nal_hrd_parameters_present_flag")?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.flag("vcl_hrd_parameters_present_flag")?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.flag("low_delay_hrd_flag")?;
    }
    r.flag("pic_struct_present_flag")?;
    if !r.flag("bitstream_restriction_flag")? {
        return Ok(None);
    }
    r.flag("motion_vectors_over_pic_boundaries_flag")?;
    r.ue("max_bytes_per_pic_denom")?;
    r.ue("max_bits_per_mb_denom")?;
    r.ue("log2_max_mv_length_horizontal")?;
    r.ue("log2_max_mv_length_vertical")?;
    Ok(Some(r.ue("max_num_reorder_frames")?))
}

/// Skips `hrd_parameters()` (E.1.2).
fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), H264Error> {
    let cpb_cnt = r.ue("cpb_cnt_minus1")?;
    if cpb_cnt > 31 {
        return Err(H264Error::InvalidSps("cpb_cnt_minus1 above 31"));
    }
    r.bits(8, "bit_rate_scale, cpb_size_scale")?;
    for _ in 0..=cpb_cnt {
        r.ue("bit_rate_value_minus1")?;
        r.ue("cpb_size_value_minus1")?;
        r.flag("cbr_flag")?;
    }
    r.bits(20, "delay and offset lengths")?;
    Ok(())
}

/// RFC 6184 `profile-level-id` read straight from the three bytes after an SPS header.
pub fn profile_level_id(sps: &[u8]) -> Option<String> {
    match sps {
        [h, p, c, l, ..] if h & 0x1f == nal_type::SPS => Some(format!("{p:02x}{c:02x}{l:02x}")),
        _ => None,
    }
}

/// RFC 6184 `sprop-parameter-sets`: base64 of each SPS then each PPS, comma-separated.
pub fn sprop_parameter_sets(sps: &[impl AsRef<[u8]>], pps: &[impl AsRef<[u8]>]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let sets: Vec<String> = sps.iter().map(|s| engine.encode(s)).chain(pps.iter().map(|p| engine.encode(p))).collect();
    sets.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // Parameter sets extracted with `ffmpeg -bsf:v h264_mp4toannexb` from the sample footage
    // and from libx264 encodes of `testsrc`; ffprobe's width/height are the expected values.
    const VTEST_SPS: &str = "674d401fd900c0126840000003004000000503c60c92";
    const VTEST_PPS: &str = "68ebc24b20";
    const BIKES_SPS: &str = "674d4015d900a023b011000003000100000300320f162e48";
    /// High 4:4:4 Predictive, 1920x1080 (coded 1088, cropped by 8 lines).
    const HI444_1080_SPS: &str = "67f40028919b280f0044fc4e0220000003002000000781e30632c0";
    /// High, interlaced (field pairs), 1920x1080.
    const INTERLACED_1080_SPS: &str = "67640028acd94078044fde0220000003002000000783e2c5b2c0";
    /// High 4:2:2, 350x202 (cropped in both directions).
    const HI422_350X202_SPS: &str = "677a000dbcd94161bea7c044000003000400000300f03c50a658";

    #[test]
    fn parses_sample_footage_sps() {
        let v = parse_sps(&hex(VTEST_SPS)).unwrap();
        assert_eq!((v.width, v.height, v.profile_idc, v.level_idc), (768, 576, 77, 31));
        assert_eq!(v.profile_level_id(), "4d401f");
        assert_eq!(v.crop, [0; 4]);
        let b = parse_sps(&hex(BIKES_SPS)).unwrap();
        assert_eq!((b.width, b.height, b.profile_idc, b.level_idc), (640, 272, 77, 21));
        assert_eq!(b.profile_level_id(), "4d4015");
        assert_eq!(profile_level_id(&hex(BIKES_SPS)).as_deref(), Some("4d4015"));
    }

    /// libx264 High 320x240, `-bf 0` and `-bf 3` (both with a VUI bitstream restriction).
    const X264_NO_B_SPS: &str = "6764000dacb20283f60220000003002000000641e28549";
    const X264_B3_SPS: &str = "6764000dacd94141fb011000000300100000030320f1429960";

    #[test]
    fn reads_the_reorder_depth_from_the_vui() {
        let no_b = parse_sps(&hex(X264_NO_B_SPS)).unwrap();
        assert_eq!((no_b.width, no_b.height, no_b.max_num_reorder_frames, no_b.may_reorder()), (320, 240, Some(0), false));
        let b = parse_sps(&hex(X264_B3_SPS)).unwrap();
        assert!(b.max_num_reorder_frames.is_some_and(|n| n > 0) && b.may_reorder(), "{b:?}");
        // The sample footage (Main, no B-frames) says so too.
        for sps in [VTEST_SPS, BIKES_SPS] {
            let s = parse_sps(&hex(sps)).unwrap();
            assert_eq!((s.max_num_reorder_frames, s.may_reorder()), (Some(0), false), "{s:?}");
        }
        // Without a bitstream restriction a Main or High stream may reorder, Baseline not.
        let mut s = parse_sps(&hex(VTEST_SPS)).unwrap();
        s.max_num_reorder_frames = None;
        assert!(s.may_reorder());
        s.profile_idc = 66;
        assert!(!s.may_reorder());
        // A VUI cut short loses the hint, not the SPS.
        let cut = &hex(X264_NO_B_SPS)[..12];
        let s = parse_sps(cut).unwrap();
        assert_eq!((s.width, s.max_num_reorder_frames, s.may_reorder()), (320, None, true));
    }

    #[test]
    fn parses_high_profiles_with_cropping_and_fields() {
        let s = parse_sps(&hex(HI444_1080_SPS)).unwrap();
        assert_eq!((s.width, s.height, s.profile_idc, s.chroma_format_idc), (1920, 1080, 244, 3));
        assert_eq!(s.crop, [0, 0, 0, 8]);
        let s = parse_sps(&hex(INTERLACED_1080_SPS)).unwrap();
        assert_eq!((s.width, s.height, s.profile_idc, s.frame_mbs_only), (1920, 1080, 100, false));
        assert_eq!(s.crop, [0, 0, 0, 8]);
        let s = parse_sps(&hex(HI422_350X202_SPS)).unwrap();
        assert_eq!((s.width, s.height, s.profile_idc, s.chroma_format_idc), (350, 202, 122, 2));
    }

    /// Writes SPS syntax the way an encoder would, for cases no sample covers.
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn bit(&mut self, b: u32) {
            if self.bits % 8 == 0 {
                self.bytes.push(0);
            }
            if b != 0 {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
        fn bits(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let n = 64 - x.leading_zeros();
            self.bits(0, n - 1);
            for i in (0..n).rev() {
                self.bit(((x >> i) & 1) as u32);
            }
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 { (2 * v - 1) as u32 } else { (-2 * v) as u32 });
        }
        /// Appends rbsp_trailing_bits and inserts emulation prevention.
        fn into_nal(mut self, header: u8) -> Vec<u8> {
            self.bit(1);
            let mut nal = vec![header];
            let mut zeros = 0;
            for b in self.bytes {
                if zeros >= 2 && b <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                nal.push(b);
            }
            nal
        }
    }

    #[test]
    fn parses_scaling_lists_and_poc_type_1() {
        let mut w = BitWriter { bytes: Vec::new(), bits: 0 };
        w.bits(100, 8); // High
        w.bits(0, 8);
        w.bits(40, 8);
        w.ue(0); // sps id
        w.ue(1); // 4:2:0
        w.ue(2); // 10-bit luma
        w.ue(2); // 10-bit chroma
        w.bit(0);
        w.bit(1); // seq_scaling_matrix_present_flag
        for i in 0..8 {
            w.bit(1);
            let size = if i < 6 { 16 } else { 64 };
            for j in 0..size {
                // A delta that ends the list early on one list exercises the nextScale == 0 path.
                w.se(if i == 2 && j == 3 { -11 } else { 1 }); // 8 + 3 - 11 = 0
                if i == 2 && j == 3 {
                    break;
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(1); // poc type 1
        w.bit(0);
        w.se(-2);
        w.se(3);
        w.ue(3);
        for o in [1, -1, 5] {
            w.se(o);
        }
        w.ue(4); // refs
        w.bit(0);
        w.ue(79); // 1280 wide
        w.ue(44); // 720 high
        w.bit(1); // frame_mbs_only
        w.bit(1);
        w.bit(1); // cropping
        for c in [2, 3, 1, 0] {
            w.ue(c);
        }
        let nal = w.into_nal(0x67);
        let s = parse_sps(&nal).unwrap();
        assert_eq!((s.width, s.height, s.bit_depth_luma, s.max_num_ref_frames), (1280 - 10, 720 - 2, 10, 4));
        assert_eq!(s.crop, [4, 6, 2, 0]);
        assert_eq!(s.profile_level_id(), "640028");
    }

    #[test]
    fn rejects_bad_sps() {
        assert_eq!(parse_sps(&[]), Err(H264Error::SpsTruncated("the NAL header")));
        assert_eq!(parse_sps(&hex(VTEST_PPS)), Err(H264Error::NotSps(8)));
        let sps = hex(VTEST_SPS);
        for cut in 1..sps.len() - 1 {
            // Every prefix that loses a field must fail cleanly; the last bytes are VUI.
            let r = parse_sps(&sps[..cut]);
            if cut < 9 {
                assert!(r.is_err(), "prefix of {cut} bytes parsed");
            }
        }
        // 40 zero bits: an exp-Golomb code longer than 32 bits.
        assert_eq!(parse_sps(&[0x67, 0x4d, 0, 0x1f, 0, 0, 0, 0, 0, 0]), Err(H264Error::InvalidSps("exp-Golomb code longer than 32 bits")));
    }

    #[test]
    fn avcc_and_annexb_round_trip() {
        let nals = [hex(VTEST_SPS), hex(VTEST_PPS), vec![0x65, 0x88, 0x84, 0x00, 0x00, 0x00], vec![0x41, 0x9a]];
        for ls in [1u8, 2, 4] {
            let mut avcc = Vec::new();
            for n in &nals {
                push_length_prefixed(n, ls, &mut avcc).unwrap();
            }
            let got: Vec<&[u8]> = avcc_nals(&avcc, ls).collect::<Result<_, _>>().unwrap();
            assert_eq!(got.len(), 4);
            assert_eq!(got[2], &nals[2][..]);
            assert!(avcc_contains_idr(&avcc, ls).unwrap());
            let annexb = avcc_to_annexb(&avcc, ls).unwrap();
            assert!(annexb.starts_with(&[0, 0, 0, 1, 0x67]));
            assert!(annexb_contains_idr(&annexb));
            // The IDR's trailing zeros are indistinguishable from a 4-byte start code in Annex B.
            let back: Vec<&[u8]> = annexb_nals(&annexb).collect();
            assert_eq!(back[2], &[0x65, 0x88, 0x84][..]);
            assert_eq!(back[3], &nals[3][..]);
            let avcc2 = annexb_to_avcc(&annexb, ls).unwrap();
            assert_eq!(avcc_nals(&avcc2, ls).count(), 4);
        }
    }

    #[test]
    fn annexb_handles_three_byte_codes_and_junk() {
        let data = [0xff, 0xfe, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0];
        let got: Vec<&[u8]> = annexb_nals(&data).collect();
        assert_eq!(got, vec![&[0x09, 0xf0][..], &[0x67, 1, 2][..], &[0x68, 3][..]]);
        assert_eq!(annexb_nals(&[1, 2, 3]).count(), 0);
        assert_eq!(annexb_nals(&[]).count(), 0);
        assert_eq!(annexb_nals(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn avcc_errors() {
        assert_eq!(avcc_nals(&[0, 0, 0, 5, 1], 4).next(), Some(Err(H264Error::TruncatedNal { offset: 0, needed: 5, available: 1 })));
        assert_eq!(avcc_nals(&[0, 0], 4).next(), Some(Err(H264Error::TruncatedNal { offset: 0, needed: 4, available: 2 })));
        assert_eq!(avcc_nals(&[1, 1], 3).next(), Some(Err(H264Error::InvalidLengthSize(3))));
        let mut it = avcc_nals(&[0, 1, 0x41, 0, 9], 2);
        assert_eq!(it.next(), Some(Ok(&[0x41][..])));
        assert!(matches!(it.next(), Some(Err(_))));
        assert_eq!(it.next(), None);
        // Zero-length units are skipped.
        assert_eq!(avcc_nals(&[0, 0, 1, 0x09], 1).collect::<Result<Vec<_>, _>>().unwrap(), vec![&[0x09][..]]);
        let mut out = Vec::new();
        assert_eq!(push_length_prefixed(&[0; 256], 1, &mut out), Err(H264Error::NalTooLarge { len: 256, length_size: 1 }));
    }

    #[test]
    fn avc_config_round_trip() {
        // vtest.mkv's CodecPrivate, as written by libavformat.
        let record = hex("014d401fffe10016674d401fd900c0126840000003004000000503c60c9201000568ebc24b20");
        let c = AvcDecoderConfig::parse(&record).unwrap();
        assert_eq!((c.profile_idc, c.profile_compatibility, c.level_idc, c.nal_length_size), (77, 0x40, 31, 4));
        assert_eq!(c.sps, vec![hex(VTEST_SPS)]);
        assert_eq!(c.pps, vec![hex(VTEST_PPS)]);
        assert_eq!(c.to_bytes().unwrap(), record);
        let built = AvcDecoderConfig::from_parameter_sets(vec![hex(VTEST_SPS)], vec![hex(VTEST_PPS)], 4).unwrap();
        assert_eq!(built.to_bytes().unwrap(), record);
        for cut in 0..record.len() {
            assert!(AvcDecoderConfig::parse(&record[..cut]).is_err(), "prefix {cut} parsed");
        }
        assert_eq!(AvcDecoderConfig::parse(&[2, 0, 0, 0, 0, 0]), Err(H264Error::UnsupportedAvcConfigVersion(2)));
    }

    #[test]
    fn high_profile_config_has_extension() {
        let c = AvcDecoderConfig::from_parameter_sets(vec![hex(INTERLACED_1080_SPS)], vec![vec![0x68, 0xfb]], 4).unwrap();
        let ext = c.high_profile_ext.clone().unwrap();
        assert_eq!((ext.chroma_format_idc, ext.bit_depth_luma_minus8), (1, 0));
        let bytes = c.to_bytes().unwrap();
        assert_eq!(AvcDecoderConfig::parse(&bytes).unwrap(), c);
        // A High record without the extension (older muxers) is still accepted.
        let short = &bytes[..bytes.len() - 4];
        assert_eq!(AvcDecoderConfig::parse(short).unwrap().high_profile_ext, None);
    }

    #[test]
    fn sprop_and_names() {
        let s = sprop_parameter_sets(&[hex(VTEST_SPS)], &[hex(VTEST_PPS)]);
        assert_eq!(s, "Z01AH9kAwBJoQAAAAwBAAAAFA8YMkg==,aOvCSyA=");
        assert_eq!(nal_type_name(5), "IDR slice");
        assert_eq!(nal_type_name(31), "unspecified");
        assert!(is_idr(&[0x65]));
        assert!(!is_idr(&[0x41]));
        assert_eq!(nal_unit_type(&[]), None);
    }

    #[test]
    fn rbsp_removes_emulation_prevention() {
        assert_eq!(nal_to_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]), vec![0, 0, 1, 0, 0, 0, 3]);
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
                let mut sps = vec![0x67];
                sps.extend_from_slice(&data);
                let _ = parse_sps(&sps);
                if let Ok(c) = AvcDecoderConfig::parse(&data) {
                    // Whatever parses re-serialises to something that parses the same.
                    let again = c.to_bytes().unwrap();
                    prop_assert_eq!(AvcDecoderConfig::parse(&again).unwrap(), c);
                }
                for ls in [1, 2, 3, 4] {
                    let total: usize = avcc_nals(&data, ls).map_while(Result::ok).map(<[u8]>::len).sum();
                    prop_assert!(total <= data.len());
                }
                prop_assert!(annexb_nals(&data).map(<[u8]>::len).sum::<usize>() <= data.len());
            }

            /// NAL units without zero bytes survive AVCC -> Annex B -> AVCC unchanged.
            #[test]
            fn framing_round_trips(nals in proptest::collection::vec(proptest::collection::vec(1u8..=255, 1..300), 1..6), ls in prop_oneof![Just(2u8), Just(4u8)]) {
                let mut avcc = Vec::new();
                for n in &nals {
                    push_length_prefixed(n, ls, &mut avcc).unwrap();
                }
                let annexb = avcc_to_annexb(&avcc, ls).unwrap();
                prop_assert_eq!(annexb_nals(&annexb).map(<[u8]>::to_vec).collect::<Vec<_>>(), nals.clone());
                prop_assert_eq!(annexb_to_avcc(&annexb, ls).unwrap(), avcc);
            }
        }
    }
}
