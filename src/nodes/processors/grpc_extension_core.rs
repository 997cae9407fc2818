//! The pure part of the GrpcExtension node (SPEC §5.2): the stream descriptor built from the image spec, sample messages, what a server message means, and the requests awaiting their acks.
//!
//! The async shell (`grpc_extension.rs`) owns the connection and the shared-memory ring;
//! everything it decides about numbering, acks, timeouts and regions is here, so that it can
//! be tested without a server.

use super::extension_core::{map_boxes, Content};
use crate::grpc::inference::{from_json, to_json};
use crate::grpc::pb;
use crate::grpc::shm::Region;
use crate::media::image::bytes_per_pixel;
use crate::topology::nodes::common::{ImageFormat, PixelFormat};
use pb::media_stream_message::Payload;
use pb::video_frame_sample_format::{Encoding, PixelFormat as PbPixel};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The media clock of every stream: 90 kHz, the clock of the events' `timestamp`.
pub const TIMESCALE: u32 = 90_000;
/// Requests a node keeps unacknowledged (SPEC encourages pipelining but names no bound): a
/// few, so a server that processes asynchronously is kept busy, while a slow one costs at
/// most this many frames of latency and of shared memory. Sampled frames beyond it are
/// passed on un-annotated and counted as dropped.
pub const MAX_IN_FLIGHT: usize = 4;
/// How long a request may wait for its ack before its frame goes on without an answer.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Who opens the stream: `graph_identifier` and `extension_configuration` of the descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamIdentity {
    /// The ARM id the module is bound to, or "" when it has none.
    pub arm_id: String,
    pub instance: String,
    pub node: String,
    pub extension_configuration: String,
}

/// What the server is told about the frames: SPEC's `video_frame_sample_format`. The size is
/// the prepared image's; `stride_bytes` is set for raw images only (bytes per row of the Y
/// plane for yuv420p).
pub fn sample_format(format: ImageFormat, width: u32, height: u32) -> pb::VideoFrameSampleFormat {
    let (encoding, pixel, stride) = match format {
        ImageFormat::Jpeg { .. } => (Encoding::Jpg, PbPixel::None, 0),
        ImageFormat::Png => (Encoding::Png, PbPixel::None, 0),
        ImageFormat::Bmp => (Encoding::Bmp, PbPixel::None, 0),
        ImageFormat::Raw(p) => (Encoding::Raw, pixel_format(p), width * bytes_per_pixel(p) as u32),
    };
    pb::VideoFrameSampleFormat {
        encoding: encoding as i32,
        pixel_format: pixel as i32,
        dimensions: Some(pb::Dimensions { width, height }),
        stride_bytes: stride,
    }
}

fn pixel_format(p: PixelFormat) -> PbPixel {
    match p {
        PixelFormat::Yuv420p => PbPixel::Yuv420p,
        PixelFormat::Rgb565be => PbPixel::Rgb565be,
        PixelFormat::Rgb565le => PbPixel::Rgb565le,
        PixelFormat::Rgb555be => PbPixel::Rgb555be,
        PixelFormat::Rgb555le => PbPixel::Rgb555le,
        PixelFormat::Rgb24 => PbPixel::Rgb24,
        PixelFormat::Bgr24 => PbPixel::Bgr24,
        PixelFormat::Argb => PbPixel::Argb,
        PixelFormat::Rgba => PbPixel::Rgba,
        PixelFormat::Abgr => PbPixel::Abgr,
        PixelFormat::Bgra => PbPixel::Bgra,
    }
}

/// The client's first message (sequence 1, nothing acknowledged). `shared_memory` is the
/// ring's name and size when frames travel through `/dev/shm`.
pub fn descriptor(id: &StreamIdentity, format: pb::VideoFrameSampleFormat, shared_memory: Option<(&str, u64)>) -> pb::MediaStreamMessage {
    use pb::media_stream_descriptor::{DataTransferProperties, StreamIdentifier};
    let d = pb::MediaStreamDescriptor {
        stream_identifier: Some(StreamIdentifier::GraphIdentifier(pb::GraphIdentifier {
            media_services_arm_id: id.arm_id.clone(),
            graph_instance_name: id.instance.clone(),
            graph_node_name: id.node.clone(),
        })),
        extension_configuration: id.extension_configuration.clone(),
        media_descriptor: Some(pb::MediaDescriptor {
            timescale: TIMESCALE,
            media_sample_format: Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(format)),
        }),
        data_transfer_properties: shared_memory.map(|(name, len)| {
            DataTransferProperties::SharedMemoryBufferTransferProperties(pb::SharedMemoryBufferTransferProperties {
                handle_name: name.to_string(),
                length_bytes: len,
            })
        }),
    };
    pb::MediaStreamMessage { sequence_number: 1, ack_sequence_number: 0, payload: Some(Payload::MediaStreamDescriptor(d)) }
}

/// Where a sample's bytes are.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleContent {
    Embedded(Vec<u8>),
    Shared(Region),
}

/// A sample request. Upstream inferences (SPEC JSON) travel along; those that do not fit the
/// proto schema are left out, and their number is returned.
pub fn sample(seq: u64, timestamp: u64, content: SampleContent, upstream: &[Value]) -> (pb::MediaStreamMessage, usize) {
    use pb::media_sample::Content as C;
    let converted: Vec<pb::Inference> = upstream.iter().filter_map(|v| from_json(v).ok()).collect();
    let skipped = upstream.len() - converted.len();
    let content = match content {
        SampleContent::Embedded(bytes) => C::ContentBytes(pb::ContentBytes { bytes }),
        SampleContent::Shared(r) => C::ContentReference(pb::ContentReference { address_offset: r.offset, length_bytes: r.len }),
    };
    let s = pb::MediaSample { timestamp, inferences: converted, content: Some(content) };
    (pb::MediaStreamMessage { sequence_number: seq, ack_sequence_number: 0, payload: Some(Payload::MediaSample(s)) }, skipped)
}

/// What a message from the server means once the handshake is done.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A descriptor: only the first message may be one.
    Descriptor,
    /// Request `ack` is done; `inferences` are its results (none: nothing found).
    Ack { ack: u64, inferences: Vec<pb::Inference> },
    /// Results that acknowledge no request (ack 0), for the media time `timestamp`.
    Unsolicited { timestamp: u64, inferences: Vec<pb::Inference> },
    /// Neither an ack nor results.
    Empty,
}

pub fn classify(m: pb::MediaStreamMessage) -> Incoming {
    // Ack 1 acknowledges our descriptor, which needs no bookkeeping: the same as no ack.
    let ack = if m.ack_sequence_number <= 1 { 0 } else { m.ack_sequence_number };
    match (ack, m.payload) {
        (_, Some(Payload::MediaStreamDescriptor(_))) => Incoming::Descriptor,
        (0, Some(Payload::MediaSample(s))) if !s.inferences.is_empty() => {
            Incoming::Unsolicited { timestamp: s.timestamp, inferences: s.inferences }
        }
        (0, _) => Incoming::Empty,
        (ack, Some(Payload::MediaSample(s))) => Incoming::Ack { ack, inferences: s.inferences },
        (ack, None) => Incoming::Ack { ack, inferences: vec![] },
    }
}

/// Whether the server's first message opens the stream: a descriptor (SPEC §5.2: "the first
/// message in each direction must be a MediaStreamDescriptor"). Its content is not checked:
/// the samples send only a timescale, and an extension identifier is as good as none.
pub fn is_handshake(m: &pb::MediaStreamMessage) -> bool {
    matches!(m.payload, Some(Payload::MediaStreamDescriptor(_)))
}

/// The SPEC JSON of a server's inferences with boxes mapped back from the padding; those
/// without a value are left out (counted in the second field).
pub fn results(inferences: &[pb::Inference], content: Content) -> (Vec<Value>, usize) {
    let mut out: Vec<Value> = inferences.iter().filter_map(to_json).collect();
    let skipped = inferences.len() - out.len();
    map_boxes(&mut out, content);
    (out, skipped)
}

struct Request<T> {
    item: T,
    region: Option<Region>,
    deadline: Instant,
    /// Its frame already went on without an answer; the region stays held until the ack.
    timed_out: bool,
}

/// An ack matched against what was sent.
#[derive(Debug, PartialEq)]
pub enum Acked<T> {
    /// The request was waiting: its item, and its region to give back to the ring.
    Answered { item: T, region: Option<Region> },
    /// It had timed out (its frame went on); only the region is left to give back.
    Late { item: T, region: Option<Region> },
    /// No request with this number is waiting (never sent, or acked already).
    Unknown,
}

/// The requests of one stream: numbering from 2 (1 is the descriptor), acks in any order,
/// timeouts, and which shared-memory regions are still held.
pub struct Pipeline<T> {
    next: u64,
    pending: BTreeMap<u64, Request<T>>,
    timeout: Duration,
}

impl<T: Clone> Pipeline<T> {
    pub fn new(timeout: Duration) -> Self {
        Pipeline { next: 2, pending: BTreeMap::new(), timeout }
    }

    /// Requests waiting for their ack that have not timed out: what [`MAX_IN_FLIGHT`] bounds.
    pub fn live(&self) -> usize {
        self.pending.values().filter(|r| !r.timed_out).count()
    }

    /// Requests that timed out and are still unacknowledged.
    pub fn timed_out(&self) -> usize {
        self.pending.values().filter(|r| r.timed_out).count()
    }

    /// Records a request about to be sent and returns its sequence number.
    pub fn sent(&mut self, item: T, region: Option<Region>, now: Instant) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.pending.insert(seq, Request { item, region, deadline: now + self.timeout, timed_out: false });
        seq
    }

    pub fn ack(&mut self, seq: u64) -> Acked<T> {
        match self.pending.remove(&seq) {
            Some(r) if r.timed_out => Acked::Late { item: r.item, region: r.region },
            Some(r) => Acked::Answered { item: r.item, region: r.region },
            None => Acked::Unknown,
        }
    }

    /// Requests whose deadline passed at `now`, oldest first. They stay pending (their region
    /// is still the server's until it acks) but no longer count as live.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        for (seq, r) in self.pending.iter_mut() {
            if !r.timed_out && r.deadline <= now {
                r.timed_out = true;
                out.push((*seq, r.item.clone()));
            }
        }
        out
    }

    /// When the next live request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().filter(|r| !r.timed_out).map(|r| r.deadline).min()
    }

    /// The stream is gone: the items whose frames have not gone on yet, in sending order.
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.pending).into_values().filter(|r| !r.timed_out).map(|r| r.item).collect()
    }

    /// Regions the server may still be reading.
    pub fn held_regions(&self) -> impl Iterator<Item = Region> + '_ {
        self.pending.values().filter_map(|r| r.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::shm::RingAlloc;
    use pb::media_stream_descriptor::{DataTransferProperties, StreamIdentifier};
    use serde_json::json;

    fn id() -> StreamIdentity {
        StreamIdentity {
            arm_id: String::new(),
            instance: "cam".into(),
            node: "grpcExtension".into(),
            extension_configuration: "cfg".into(),
        }
    }

    #[test]
    fn the_descriptor_says_who_we_are_and_what_the_frames_are() {
        let fmt = sample_format(ImageFormat::Raw(PixelFormat::Bgr24), 416, 416);
        let m = descriptor(&id(), fmt, Some(("inference_client_share_memory_x", 20 << 20)));
        assert_eq!((m.sequence_number, m.ack_sequence_number), (1, 0));
        let Some(Payload::MediaStreamDescriptor(d)) = m.payload else { panic!() };
        let Some(StreamIdentifier::GraphIdentifier(g)) = d.stream_identifier else { panic!() };
        assert_eq!(
            (g.media_services_arm_id.as_str(), g.graph_instance_name.as_str(), g.graph_node_name.as_str()),
            ("", "cam", "grpcExtension")
        );
        assert_eq!(d.extension_configuration, "cfg");
        let md = d.media_descriptor.unwrap();
        assert_eq!(md.timescale, 90_000);
        let Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(f)) = md.media_sample_format else { panic!() };
        // SPEC's example: 416 × 3 = 1248.
        assert_eq!((f.encoding, f.pixel_format, f.stride_bytes), (Encoding::Raw as i32, PbPixel::Bgr24 as i32, 1248));
        assert_eq!(f.dimensions, Some(pb::Dimensions { width: 416, height: 416 }));
        let Some(DataTransferProperties::SharedMemoryBufferTransferProperties(s)) = d.data_transfer_properties else { panic!() };
        assert_eq!((s.handle_name.as_str(), s.length_bytes), ("inference_client_share_memory_x", 20_971_520));

        let m = descriptor(&id(), sample_format(ImageFormat::Jpeg { quality: 90 }, 640, 480), None);
        let Some(Payload::MediaStreamDescriptor(d)) = m.payload else { panic!() };
        assert!(d.data_transfer_properties.is_none(), "embedded: no transfer properties");
    }

    #[test]
    fn every_format_maps_to_its_encoding_pixel_format_and_stride() {
        let cases = [
            (ImageFormat::Jpeg { quality: 50 }, Encoding::Jpg, PbPixel::None, 0),
            (ImageFormat::Png, Encoding::Png, PbPixel::None, 0),
            (ImageFormat::Bmp, Encoding::Bmp, PbPixel::None, 0),
            (ImageFormat::Raw(PixelFormat::Yuv420p), Encoding::Raw, PbPixel::Yuv420p, 320),
            (ImageFormat::Raw(PixelFormat::Rgb565be), Encoding::Raw, PbPixel::Rgb565be, 640),
            (ImageFormat::Raw(PixelFormat::Rgb555le), Encoding::Raw, PbPixel::Rgb555le, 640),
            (ImageFormat::Raw(PixelFormat::Rgb24), Encoding::Raw, PbPixel::Rgb24, 960),
            (ImageFormat::Raw(PixelFormat::Abgr), Encoding::Raw, PbPixel::Abgr, 1280),
            (ImageFormat::Raw(PixelFormat::Bgra), Encoding::Raw, PbPixel::Bgra, 1280),
        ];
        for (format, enc, pix, stride) in cases {
            let f = sample_format(format, 320, 240);
            assert_eq!((f.encoding, f.pixel_format, f.stride_bytes), (enc as i32, pix as i32, stride), "{format:?}");
        }
    }

    #[test]
    fn samples_carry_their_content_and_the_upstream_inferences_that_fit() {
        let upstream = [json!({"type": "motion", "motion": {"box": {"l": 0.1, "t": 0.2, "w": 0.3, "h": 0.4}}}), json!({"predictions": []})];
        let (m, skipped) = sample(7, 123, SampleContent::Shared(Region { offset: 4096, len: 100 }), &upstream);
        assert_eq!((m.sequence_number, m.ack_sequence_number, skipped), (7, 0, 1));
        let Some(Payload::MediaSample(s)) = m.payload else { panic!() };
        assert_eq!(s.timestamp, 123);
        assert_eq!(s.inferences.len(), 1);
        assert_eq!(
            s.content,
            Some(pb::media_sample::Content::ContentReference(pb::ContentReference { address_offset: 4096, length_bytes: 100 }))
        );
        let (m, _) = sample(2, 0, SampleContent::Embedded(vec![1, 2, 3]), &[]);
        let Some(Payload::MediaSample(s)) = m.payload else { panic!() };
        assert_eq!(s.content, Some(pb::media_sample::Content::ContentBytes(pb::ContentBytes { bytes: vec![1, 2, 3] })));
    }

    fn entity(l: f32, t: f32, w: f32, h: f32) -> pb::Inference {
        pb::Inference {
            r#type: pb::inference::InferenceType::Entity as i32,
            value: Some(pb::inference::Value::Entity(pb::Entity {
                tag: Some(pb::Tag { value: "person".into(), confidence: 0.5 }),
                r#box: Some(pb::Rectangle { l, t, w, h }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn msg(seq: u64, ack: u64, payload: Option<Payload>) -> pb::MediaStreamMessage {
        pb::MediaStreamMessage { sequence_number: seq, ack_sequence_number: ack, payload }
    }

    #[test]
    fn server_messages_are_acks_results_or_protocol_errors() {
        let with =
            |ts, inf: Vec<pb::Inference>| Some(Payload::MediaSample(pb::MediaSample { timestamp: ts, inferences: inf, content: None }));
        assert!(is_handshake(&msg(1, 1, Some(Payload::MediaStreamDescriptor(Default::default())))));
        assert!(!is_handshake(&msg(1, 1, with(5, vec![]))));
        assert_eq!(classify(msg(2, 3, None)), Incoming::Ack { ack: 3, inferences: vec![] });
        assert_eq!(classify(msg(2, 3, with(9, vec![]))), Incoming::Ack { ack: 3, inferences: vec![] });
        assert_eq!(
            classify(msg(2, 3, with(9, vec![entity(0., 0., 1., 1.)]))),
            Incoming::Ack { ack: 3, inferences: vec![entity(0., 0., 1., 1.)] }
        );
        assert_eq!(
            classify(msg(2, 0, with(9, vec![entity(0., 0., 1., 1.)]))),
            Incoming::Unsolicited { timestamp: 9, inferences: vec![entity(0., 0., 1., 1.)] }
        );
        assert_eq!(classify(msg(2, 0, with(9, vec![]))), Incoming::Empty);
        assert_eq!(classify(msg(2, 1, None)), Incoming::Empty, "a late ack of our descriptor");
        assert_eq!(classify(msg(2, 0, Some(Payload::MediaStreamDescriptor(Default::default())))), Incoming::Descriptor);
    }

    #[test]
    fn results_map_boxes_back_and_skip_inferences_without_a_value() {
        let none = pb::Inference { r#type: pb::inference::InferenceType::Entity as i32, ..Default::default() };
        // 768×576 padded into 416×416: the picture is rows 52..364.
        let (r, skipped) = results(&[entity(0.0, 0.125, 1.0, 0.75), none], Content::centred(416, 312, 416, 416));
        assert_eq!(skipped, 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["entity"]["box"], json!({"l": 0.0, "t": 0.0, "w": 1.0, "h": 1.0}));
        assert_eq!(r[0]["type"], "entity");
    }

    #[test]
    fn acks_in_any_order_give_back_their_items_and_regions_once() {
        let t0 = Instant::now();
        let mut p: Pipeline<&str> = Pipeline::new(ACK_TIMEOUT);
        let r = |o| Some(Region { offset: o, len: 10 });
        assert_eq!(p.sent("a", r(0), t0), 2, "1 is the descriptor");
        assert_eq!(p.sent("b", r(10), t0), 3);
        assert_eq!(p.sent("c", r(20), t0), 4);
        assert_eq!(p.live(), 3);
        assert_eq!(p.ack(3), Acked::Answered { item: "b", region: r(10) });
        assert_eq!(p.ack(3), Acked::Unknown, "a second ack");
        assert_eq!(p.ack(99), Acked::Unknown, "never sent");
        assert_eq!(p.ack(0), Acked::Unknown);
        assert_eq!(p.ack(4), Acked::Answered { item: "c", region: r(20) });
        assert_eq!(p.held_regions().collect::<Vec<_>>(), vec![r(0).unwrap()]);
        assert_eq!(p.sent("d", None, t0), 5, "numbering never goes back");
        assert_eq!(p.drain(), vec!["a", "d"]);
        assert_eq!(p.live(), 0);
    }

    #[test]
    fn a_request_without_ack_times_out_but_keeps_its_region_until_acked() {
        let t0 = Instant::now();
        let mut p: Pipeline<u32> = Pipeline::new(Duration::from_secs(10));
        p.sent(1, Some(Region { offset: 0, len: 5 }), t0);
        p.sent(2, None, t0 + Duration::from_secs(3));
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(p.expire(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(p.expire(t0 + Duration::from_secs(10)), vec![(2, 1)]);
        assert_eq!(p.expire(t0 + Duration::from_secs(11)), vec![], "once");
        assert_eq!((p.live(), p.timed_out()), (1, 1));
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(13)));
        assert_eq!(p.held_regions().count(), 1, "the server may still read it");
        assert_eq!(p.ack(2), Acked::Late { item: 1, region: Some(Region { offset: 0, len: 5 }) });
        assert_eq!(p.timed_out(), 0);
        // A timed-out request's frame already went on: draining does not hand it out again.
        p.sent(3, None, t0);
        p.expire(t0 + Duration::from_secs(12));
        assert_eq!(p.drain(), vec![2]);
    }

    #[test]
    fn regions_freed_on_ack_are_never_handed_out_while_held() {
        // The shell's discipline with the ring: put on send, free on ack, in any order.
        let mut ring = RingAlloc::new(100);
        let mut p: Pipeline<u64> = Pipeline::new(ACK_TIMEOUT);
        let now = Instant::now();
        let mut order = vec![];
        for round in 0..50u64 {
            while p.live() < MAX_IN_FLIGHT {
                let Some(r) = ring.alloc(20 + round % 7) else { break };
                assert!(p.held_regions().all(|h| h.offset + h.len <= r.offset || r.offset + r.len <= h.offset));
                let seq = p.sent(round, Some(r), now);
                order.push(seq);
            }
            // Ack the newest first, then the oldest.
            for seq in [order.pop(), (!order.is_empty()).then(|| order.remove(0))].into_iter().flatten() {
                let Acked::Answered { region: Some(r), .. } = p.ack(seq) else { panic!("{seq}") };
                assert!(ring.free(r));
            }
        }
    }
}
