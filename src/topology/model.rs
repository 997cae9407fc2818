//! API generations, versions and the table of every `@type` discriminator of LVA 1.0/2.0 and AVA 1.0/1.1.

use serde::Serialize;
use std::fmt;

/// The four published API versions. The generation follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ApiVersion {
    Lva10,
    Lva20,
    Ava10,
    Ava11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum Generation {
    /// Live Video Analytics, `#Microsoft.Media.MediaGraph…`, `GraphTopology*` methods.
    Lva,
    /// Azure Video Analyzer, `#Microsoft.VideoAnalyzer.…`, `pipelineTopology*` methods.
    Ava,
}

impl ApiVersion {
    pub fn generation(&self) -> Generation {
        match self {
            ApiVersion::Lva10 | ApiVersion::Lva20 => Generation::Lva,
            ApiVersion::Ava10 | ApiVersion::Ava11 => Generation::Ava,
        }
    }

    pub fn is_ava(&self) -> bool {
        self.generation() == Generation::Ava
    }

    /// The `@apiVersion` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApiVersion::Lva10 | ApiVersion::Ava10 => "1.0",
            ApiVersion::Lva20 => "2.0",
            ApiVersion::Ava11 => "1.1",
        }
    }

    pub fn parse(generation: Generation, s: &str) -> Option<ApiVersion> {
        match (generation, s.trim()) {
            (Generation::Lva, "1.0") => Some(ApiVersion::Lva10),
            (Generation::Lva, "2.0") => Some(ApiVersion::Lva20),
            (Generation::Ava, "1.0") => Some(ApiVersion::Ava10),
            (Generation::Ava, "1.1") => Some(ApiVersion::Ava11),
            _ => None,
        }
    }

    pub fn supported(generation: Generation) -> &'static str {
        match generation {
            Generation::Lva => "1.0, 2.0",
            Generation::Ava => "1.0, 1.1",
        }
    }

    /// LVA 2.0 and AVA share the newer property set (samplingOptions, FileSink's
    /// baseDirectoryPath, eventAggregationWindow, extensionConfiguration).
    pub fn at_least_lva20(&self) -> bool {
        *self != ApiVersion::Lva10
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = if self.is_ava() { "AVA" } else { "LVA" };
        write!(f, "{g} {}", self.as_str())
    }
}

/// Every polymorphic type of the four API versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TypeName {
    RtspSource,
    IotHubMessageSource,
    VideoSource,
    MotionDetectionProcessor,
    FrameRateFilterProcessor,
    HttpExtension,
    GrpcExtension,
    CognitiveServicesVisionProcessor,
    SignalGateProcessor,
    ObjectTrackingProcessor,
    LineCrossingProcessor,
    EncoderProcessor,
    IotHubMessageSink,
    FileSink,
    AssetSink,
    VideoSink,
    UnsecuredEndpoint,
    TlsEndpoint,
    UsernamePasswordCredentials,
    HttpHeaderCredentials,
    SymmetricKeyCredentials,
    PemCertificateList,
    ImageFormatRaw,
    ImageFormatJpeg,
    ImageFormatBmp,
    ImageFormatPng,
    ImageFormatEncoded,
    NamedLineString,
    NamedPolygonString,
    SpatialAnalysisCustomOperation,
    SpatialAnalysisPersonCountOperation,
    SpatialAnalysisPersonZoneCrossingOperation,
    SpatialAnalysisPersonDistanceOperation,
    SpatialAnalysisPersonLineCrossingOperation,
    EncoderSystemPreset,
    SecureIotDeviceRemoteTunnel,
    VideoSequenceAbsoluteTimeMarkers,
}

/// Which versions know a type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avail {
    pub lva10: bool,
    pub lva20: bool,
    pub ava10: bool,
    pub ava11: bool,
}

const ALL: Avail = Avail { lva10: true, lva20: true, ava10: true, ava11: true };
const LVA10: Avail = Avail { lva10: true, lva20: false, ava10: false, ava11: false };
const NOT_LVA10: Avail = Avail { lva10: false, lva20: true, ava10: true, ava11: true };
const AVA: Avail = Avail { lva10: false, lva20: false, ava10: true, ava11: true };
const AVA11: Avail = Avail { lva10: false, lva20: false, ava10: false, ava11: true };
/// LVA spelled the spatial analysis node `MediaGraphCognitiveServicesVisionExtension` in both versions.
const CLOUD: Avail = AVA;

impl Avail {
    pub fn has(&self, v: ApiVersion) -> bool {
        match v {
            ApiVersion::Lva10 => self.lva10,
            ApiVersion::Lva20 => self.lva20,
            ApiVersion::Ava10 => self.ava10,
            ApiVersion::Ava11 => self.ava11,
        }
    }

    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        for (ok, n) in [(self.lva10, "LVA 1.0"), (self.lva20, "LVA 2.0"), (self.ava10, "AVA 1.0"), (self.ava11, "AVA 1.1")] {
            if ok {
                v.push(n);
            }
        }
        v.join(", ")
    }
}

pub(crate) struct TypeInfo {
    pub ty: TypeName,
    /// The LVA name after `#Microsoft.Media.` (without the `MediaGraph` prefix).
    pub lva: Option<&'static str>,
    /// The AVA name after `#Microsoft.VideoAnalyzer.`.
    pub ava: Option<&'static str>,
    pub avail: Avail,
    /// Types of the AVA cloud service that the edge module never ran.
    pub cloud: bool,
}

macro_rules! types {
    ($( $ty:ident, $lva:expr, $ava:expr, $avail:expr, $cloud:expr; )*) => {
        pub(crate) const TYPES: &[TypeInfo] = &[
            $( TypeInfo { ty: TypeName::$ty, lva: $lva, ava: $ava, avail: $avail, cloud: $cloud }, )*
        ];
    };
}

types! {
    RtspSource, Some("RtspSource"), Some("RtspSource"), ALL, false;
    IotHubMessageSource, Some("IoTHubMessageSource"), Some("IotHubMessageSource"), ALL, false;
    VideoSource, None, Some("VideoSource"), CLOUD, true;
    MotionDetectionProcessor, Some("MotionDetectionProcessor"), Some("MotionDetectionProcessor"), ALL, false;
    FrameRateFilterProcessor, Some("FrameRateFilterProcessor"), None, LVA10, false;
    HttpExtension, Some("HttpExtension"), Some("HttpExtension"), ALL, false;
    GrpcExtension, Some("GrpcExtension"), Some("GrpcExtension"), ALL, false;
    CognitiveServicesVisionProcessor, Some("CognitiveServicesVisionExtension"), Some("CognitiveServicesVisionProcessor"), ALL, false;
    SignalGateProcessor, Some("SignalGateProcessor"), Some("SignalGateProcessor"), ALL, false;
    ObjectTrackingProcessor, None, Some("ObjectTrackingProcessor"), AVA, false;
    LineCrossingProcessor, None, Some("LineCrossingProcessor"), AVA, false;
    EncoderProcessor, None, Some("EncoderProcessor"), CLOUD, true;
    IotHubMessageSink, Some("IoTHubMessageSink"), Some("IotHubMessageSink"), ALL, false;
    FileSink, Some("FileSink"), Some("FileSink"), ALL, false;
    AssetSink, Some("AssetSink"), None, ALL, false;
    VideoSink, None, Some("VideoSink"), AVA, false;
    UnsecuredEndpoint, Some("UnsecuredEndpoint"), Some("UnsecuredEndpoint"), ALL, false;
    TlsEndpoint, Some("TlsEndpoint"), Some("TlsEndpoint"), ALL, false;
    UsernamePasswordCredentials, Some("UsernamePasswordCredentials"), Some("UsernamePasswordCredentials"), ALL, false;
    HttpHeaderCredentials, Some("HttpHeaderCredentials"), Some("HttpHeaderCredentials"), ALL, false;
    SymmetricKeyCredentials, None, Some("SymmetricKeyCredentials"), AVA11, false;
    PemCertificateList, Some("PemCertificateList"), Some("PemCertificateList"), ALL, false;
    ImageFormatRaw, Some("ImageFormatRaw"), Some("ImageFormatRaw"), ALL, false;
    ImageFormatJpeg, Some("ImageFormatJpeg"), Some("ImageFormatJpeg"), NOT_LVA10, false;
    ImageFormatBmp, Some("ImageFormatBmp"), Some("ImageFormatBmp"), NOT_LVA10, false;
    ImageFormatPng, Some("ImageFormatPng"), Some("ImageFormatPng"), NOT_LVA10, false;
    ImageFormatEncoded, Some("ImageFormatEncoded"), None, LVA10, false;
    NamedLineString, None, Some("NamedLineString"), AVA, false;
    NamedPolygonString, None, Some("NamedPolygonString"), AVA, false;
    SpatialAnalysisCustomOperation, None, Some("SpatialAnalysisCustomOperation"), AVA, false;
    SpatialAnalysisPersonCountOperation, None, Some("SpatialAnalysisPersonCountOperation"), AVA, false;
    SpatialAnalysisPersonZoneCrossingOperation, None, Some("SpatialAnalysisPersonZoneCrossingOperation"), AVA, false;
    SpatialAnalysisPersonDistanceOperation, None, Some("SpatialAnalysisPersonDistanceOperation"), AVA, false;
    SpatialAnalysisPersonLineCrossingOperation, None, Some("SpatialAnalysisPersonLineCrossingOperation"), AVA, false;
    EncoderSystemPreset, None, Some("EncoderSystemPreset"), CLOUD, true;
    SecureIotDeviceRemoteTunnel, None, Some("SecureIotDeviceRemoteTunnel"), CLOUD, true;
    VideoSequenceAbsoluteTimeMarkers, None, Some("VideoSequenceAbsoluteTimeMarkers"), CLOUD, true;
}

pub(crate) const LVA_PREFIX: &str = "#Microsoft.Media.MediaGraph";
pub(crate) const AVA_PREFIX: &str = "#Microsoft.VideoAnalyzer.";

impl TypeName {
    pub(crate) fn info(&self) -> &'static TypeInfo {
        TYPES.iter().find(|t| t.ty == *self).expect("every TypeName is in TYPES")
    }

    /// The canonical `@type` string in the given generation.
    pub fn type_string(&self, generation: Generation) -> String {
        let i = self.info();
        match (generation, i.lva, i.ava) {
            (Generation::Lva, Some(n), _) => format!("{LVA_PREFIX}{n}"),
            (_, _, Some(n)) => format!("{AVA_PREFIX}{n}"),
            (_, Some(n), None) => format!("{LVA_PREFIX}{n}"),
            (_, None, None) => unreachable!("every type has a name in one generation"),
        }
    }

    /// The short, generation-neutral name used in messages and plan summaries.
    pub fn short(&self) -> &'static str {
        let i = self.info();
        i.ava.or(i.lva).unwrap_or("?")
    }

    /// Looks a `@type` string up, in any case. Returns the type and the generation its
    /// prefix names.
    pub fn lookup(s: &str) -> Option<(TypeName, Generation)> {
        let s = s.trim();
        let strip =
            |p: &str| (s.len() > p.len() && s.is_char_boundary(p.len()) && s[..p.len()].eq_ignore_ascii_case(p)).then(|| &s[p.len()..]);
        if let Some(rest) = strip(LVA_PREFIX) {
            return TYPES.iter().find(|t| t.lva.is_some_and(|n| n.eq_ignore_ascii_case(rest))).map(|t| (t.ty, Generation::Lva));
        }
        if let Some(rest) = strip(AVA_PREFIX) {
            return TYPES.iter().find(|t| t.ava.is_some_and(|n| n.eq_ignore_ascii_case(rest))).map(|t| (t.ty, Generation::Ava));
        }
        None
    }

    /// Every full `@type` spelling, for "did you mean" hints.
    pub(crate) fn all_strings() -> Vec<String> {
        let mut v = Vec::new();
        for t in TYPES {
            if let Some(n) = t.lva {
                v.push(format!("{LVA_PREFIX}{n}"));
            }
            if let Some(n) = t.ava {
                v.push(format!("{AVA_PREFIX}{n}"));
            }
        }
        v
    }
}

/// Where a node sits in the topology document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Role {
    Source,
    Processor,
    Sink,
}

impl Role {
    pub fn key(&self) -> &'static str {
        match self {
            Role::Source => "sources",
            Role::Processor => "processors",
            Role::Sink => "sinks",
        }
    }

    pub fn of(ty: TypeName) -> Option<Role> {
        use TypeName::*;
        Some(match ty {
            RtspSource | IotHubMessageSource | VideoSource => Role::Source,
            MotionDetectionProcessor
            | FrameRateFilterProcessor
            | HttpExtension
            | GrpcExtension
            | CognitiveServicesVisionProcessor
            | SignalGateProcessor
            | ObjectTrackingProcessor
            | LineCrossingProcessor
            | EncoderProcessor => Role::Processor,
            IotHubMessageSink | FileSink | AssetSink | VideoSink => Role::Sink,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_knows_both_prefixes() {
        assert_eq!(TypeName::lookup("#Microsoft.Media.MediaGraphRtspSource"), Some((TypeName::RtspSource, Generation::Lva)));
        assert_eq!(TypeName::lookup("#microsoft.videoanalyzer.rtspsource"), Some((TypeName::RtspSource, Generation::Ava)));
        assert_eq!(TypeName::lookup("#Microsoft.Media.MediaGraphIotHubMessageSink"), Some((TypeName::IotHubMessageSink, Generation::Lva)));
        assert_eq!(TypeName::lookup("#Microsoft.VideoAnalyzer.MediaGraphRtspSource"), None);
        assert_eq!(TypeName::lookup("#Microsoft.Media.MediaGraph"), None);
        assert_eq!(TypeName::lookup("#Microsoft.Media.MediaGraphé"), None);
    }

    #[test]
    fn canonical_strings_follow_the_generation() {
        assert_eq!(TypeName::IotHubMessageSink.type_string(Generation::Lva), "#Microsoft.Media.MediaGraphIoTHubMessageSink");
        assert_eq!(TypeName::IotHubMessageSink.type_string(Generation::Ava), "#Microsoft.VideoAnalyzer.IotHubMessageSink");
        assert_eq!(
            TypeName::CognitiveServicesVisionProcessor.type_string(Generation::Lva),
            "#Microsoft.Media.MediaGraphCognitiveServicesVisionExtension"
        );
    }

    #[test]
    fn every_type_round_trips_through_its_strings() {
        for t in TYPES {
            for g in [Generation::Lva, Generation::Ava] {
                let s = t.ty.type_string(g);
                assert_eq!(TypeName::lookup(&s).map(|x| x.0), Some(t.ty), "{s}");
            }
        }
    }
}
