//! The SDP (RFC 4566) a simulated camera answers DESCRIBE with: one H.264 video track (RFC 6184 section 8.2).

use super::packetize::PAYLOAD_TYPE;
use crate::media::h264;
use std::fmt::Write as _;
use std::net::IpAddr;

/// What the session description says about one file.
#[derive(Clone, Debug)]
pub struct SdpInfo<'a> {
    /// Shown as the session name (`s=`).
    pub name: &'a str,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub sps: &'a [Vec<u8>],
    pub pps: &'a [Vec<u8>],
    /// Average bit rate in kbit/s (`b=AS:`), 0 to omit.
    pub kbps: u64,
}

/// Builds the session description. `origin` is the server address the client connected to
/// (the `o=` line must name a host; RFC 4566 section 5.2). `session_id` should be unique
/// per description (NTP-like, RFC 4566 recommends it).
pub fn describe(info: &SdpInfo<'_>, origin: IpAddr, session_id: u64) -> String {
    let ip = match origin {
        IpAddr::V4(a) => format!("IP4 {a}"),
        IpAddr::V6(a) => format!("IP6 {a}"),
    };
    let any = if origin.is_ipv4() { "IP4 0.0.0.0" } else { "IP6 ::" };
    let mut s = String::with_capacity(512);
    let name = sanitize(info.name);
    let _ = write!(s, "v=0\r\no=- {session_id} 1 IN {ip}\r\ns={name}\r\ni=Vela rtspsim looping {name}\r\nc=IN {any}\r\nt=0 0\r\n");
    // Live source: an open-ended range tells clients there is no seeking.
    s.push_str("a=tool:Vela rtspsim\r\na=type:broadcast\r\na=control:*\r\na=range:npt=0-\r\n");
    let _ = write!(s, "m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\n");
    if info.kbps > 0 {
        let _ = write!(s, "b=AS:{}\r\n", info.kbps);
    }
    let _ = write!(s, "a=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n");
    let mut fmtp = format!("a=fmtp:{PAYLOAD_TYPE} packetization-mode=1");
    if let Some(pli) = info.sps.first().and_then(|sps| h264::profile_level_id(sps)) {
        let _ = write!(fmtp, ";profile-level-id={}", pli.to_ascii_uppercase());
    }
    if !info.sps.is_empty() && !info.pps.is_empty() {
        let _ = write!(fmtp, ";sprop-parameter-sets={}", h264::sprop_parameter_sets(info.sps, info.pps));
    }
    s.push_str(&fmtp);
    s.push_str("\r\n");
    if info.width > 0 && info.height > 0 {
        let _ = write!(s, "a=framesize:{PAYLOAD_TYPE} {}-{}\r\n", info.width, info.height);
    }
    if info.fps > 0.0 {
        let _ = write!(s, "a=framerate:{}\r\n", format_fps(info.fps));
    }
    s.push_str("a=control:trackID=0\r\n");
    s
}

/// SDP text fields end at CR/LF; a file name with control characters must not inject lines.
fn sanitize(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_control() { '_' } else { c }).collect();
    if cleaned.trim().is_empty() {
        "-".to_owned()
    } else {
        cleaned
    }
}

fn format_fps(fps: f64) -> String {
    if (fps - fps.round()).abs() < 1e-6 {
        format!("{}", fps.round() as u64)
    } else {
        format!("{fps:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VTEST_SPS: [u8; 22] = [
        0x67, 0x4d, 0x40, 0x1f, 0xd9, 0x00, 0xc0, 0x12, 0x68, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x05, 0x03, 0xc6, 0x0c, 0x92,
    ];
    const VTEST_PPS: [u8; 5] = [0x68, 0xeb, 0xc2, 0x4b, 0x20];

    fn vtest() -> String {
        let sps = vec![VTEST_SPS.to_vec()];
        let pps = vec![VTEST_PPS.to_vec()];
        let info = SdpInfo { name: "vtest.mkv", width: 768, height: 576, fps: 10.0, sps: &sps, pps: &pps, kbps: 500 };
        describe(&info, "127.0.0.1".parse().unwrap(), 42)
    }

    #[test]
    fn h264_track_fields() {
        let s = vtest();
        assert!(s.starts_with("v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=vtest.mkv\r\n"), "{s}");
        assert!(s.contains("\r\nm=video 0 RTP/AVP 96\r\nb=AS:500\r\na=rtpmap:96 H264/90000\r\n"), "{s}");
        assert!(
            s.contains(
                "a=fmtp:96 packetization-mode=1;profile-level-id=4D401F;sprop-parameter-sets=Z01AH9kAwBJoQAAAAwBAAAAFA8YMkg==,aOvCSyA=\r\n"
            ),
            "{s}"
        );
        assert!(s.contains("a=framesize:96 768-576\r\na=framerate:10\r\n"), "{s}");
        assert!(s.ends_with("a=control:trackID=0\r\n"));
        assert!(s.contains("a=control:*\r\n"));
    }

    #[test]
    fn parses_with_sdp_types() {
        let s = vtest();
        let sess = sdp_types::Session::parse(s.as_bytes()).expect("valid SDP");
        assert_eq!(sess.medias.len(), 1);
        let m = &sess.medias[0];
        assert_eq!(m.media, "video");
        assert_eq!(m.fmt, "96");
        let control: Vec<_> = m.attributes.iter().filter(|a| a.attribute == "control").collect();
        assert_eq!(control[0].value.as_deref(), Some("trackID=0"));
    }

    #[test]
    fn ipv6_origin_and_hostile_names() {
        let sps = vec![VTEST_SPS.to_vec()];
        let pps = vec![VTEST_PPS.to_vec()];
        let info = SdpInfo { name: "a\r\nm=audio", width: 0, height: 0, fps: 29.97, sps: &sps, pps: &pps, kbps: 0 };
        let s = describe(&info, "::1".parse().unwrap(), 1);
        assert!(s.contains("o=- 1 1 IN IP6 ::1\r\ns=a__m=audio\r\n"), "{s}");
        assert!(s.contains("c=IN IP6 ::\r\n"));
        assert!(s.contains("a=framerate:29.970\r\n"));
        assert!(!s.contains("framesize") && !s.contains("b=AS"));
        sdp_types::Session::parse(s.as_bytes()).expect("valid SDP");
    }
}
