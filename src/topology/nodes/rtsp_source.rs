//! RtspSource: the camera, reached over RTSP with interleaved RTP.

use super::common::{endpoint, Endpoint, EndpointUse};
use crate::topology::reader::{text_enum, Ctx, Obj};
use serde::Serialize;

text_enum! {
    /// `tcp` (RTP interleaved on the RTSP connection) or `http` (RTSP tunnelled in HTTP).
    /// `udp` (RTP over UDP) is a Vela extension for cameras on the same LAN.
    pub enum Transport { Tcp = "tcp", Http = "http", Udp = "udp" }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RtspSource {
    /// Default `tcp`: every published sample sets it or leaves it out.
    pub transport: Transport,
    pub endpoint: Endpoint,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<RtspSource> {
    let transport = o.opt_or(cx, "transport", Transport::Tcp);
    let endpoint = endpoint(o, cx, EndpointUse::Rtsp);
    Some(RtspSource { transport: transport?, endpoint: endpoint? })
}
