//! Building blocks shared by several node kinds: endpoints, credentials, image and sampling settings, named geometry.

use crate::topology::error::{Code, JsonPath};
use crate::topology::model::TypeName;
use crate::topology::reader::{check_range, text_enum, typed_of, Ctx, Field, Need, Obj, Text};
use serde::Serialize;
use std::fmt;
use url::Url;

/// A credential or secret value: never shown in logs, events, messages or summaries.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

/// A value that is secret only when a `SecretString` parameter went into it (a user
/// name, an extension configuration): shown redacted then, as is otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct MaybeSecret {
    value: String,
    secret: bool,
}

impl MaybeSecret {
    pub fn new(value: impl Into<String>, secret: bool) -> Self {
        MaybeSecret { value: value.into(), secret }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for MaybeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            fmt::Debug::fmt(&self.value, f)
        }
    }
}

impl Serialize for MaybeSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.secret { "<secret>" } else { &self.value })
    }
}

/// Where a node connects to: camera, inference server.
/// Serialises as a redacted view (`display_url`, secrets masked): plans are shown to people.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub url: Url,
    /// The URL came (partly) from a `SecretString` parameter: show it redacted.
    pub url_is_secret: bool,
    pub credentials: Option<Credentials>,
    /// Present for `TlsEndpoint`.
    pub tls: Option<TlsOptions>,
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Endpoint", 3)?;
        st.serialize_field("url", &self.display_url())?;
        st.serialize_field("credentials", &self.credentials)?;
        st.serialize_field("tls", &self.tls)?;
        st.end()
    }
}

impl Endpoint {
    /// The URL as it may be shown: without user info, and fully redacted when a
    /// secret parameter went into it.
    pub fn display_url(&self) -> String {
        if self.url_is_secret {
            return "<secret url>".to_string();
        }
        let mut u = self.url.clone();
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_username("");
            let _ = u.set_password(None);
        }
        u.to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsOptions {
    /// PEM certificates to trust instead of the system's list.
    pub trusted_certificates: Option<Vec<String>>,
    pub ignore_hostname: bool,
    pub ignore_signature: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Credentials {
    UsernamePassword { username: MaybeSecret, password: Secret },
    HttpHeader { header_name: String, header_value: Secret },
}

/// What an endpoint is for: decides the URL schemes and credentials it may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointUse {
    Rtsp,
    Http,
    Grpc,
}

impl EndpointUse {
    fn schemes(&self, tls: bool) -> &'static [&'static str] {
        match (self, tls) {
            (EndpointUse::Rtsp, _) => &["rtsp"],
            (EndpointUse::Http, false) => &["http", "https"],
            (EndpointUse::Http, true) => &["https"],
            (EndpointUse::Grpc, _) => &["tcp"],
        }
    }
}

pub(crate) fn endpoint(parent: &Obj, cx: &mut Ctx, usage: EndpointUse) -> Option<Endpoint> {
    let allowed = [TypeName::UnsecuredEndpoint, TypeName::TlsEndpoint];
    let (ty, o) = parent.typed(cx, "endpoint", Need::Required, &allowed, "endpoint")??;
    o.skip(cx, "@type");
    let tls = ty == TypeName::TlsEndpoint;
    if o.get(cx, "tunnel").is_some() {
        cx.error(
            Code::CloudTopologyNotSupported,
            &o.path.key("tunnel"),
            "'tunnel' (SecureIotDeviceRemoteTunnel) is for cameras reached by the Azure Video Analyzer cloud service; on the edge, give the camera's RTSP URL directly",
        );
    }
    let url = cx.with_secrets(|cx| o.scalar::<Text>(cx, "url", Need::Required));
    let url = match url {
        Field::Value(t, path) => parse_url(cx, &t, &path, usage, tls),
        _ => None,
    };
    let credentials = credentials(&o, cx, usage);
    let tls_opts = if tls {
        if usage == EndpointUse::Rtsp {
            cx.error(
                Code::TypeNotAllowedHere,
                &o.path.key("@type"),
                "RTSP over TLS (rtsps) is not supported: cameras are reached with an UnsecuredEndpoint and rtsp:// URLs",
            );
        }
        tls_options(&o, cx, usage)
    } else {
        Some(None)
    };
    o.finish(cx);
    let (url, url_is_secret) = url?;
    Some(Endpoint { url, url_is_secret, credentials: credentials?, tls: tls_opts? })
}

fn parse_url(cx: &mut Ctx, t: &Text, path: &JsonPath, usage: EndpointUse, tls: bool) -> Option<(Url, bool)> {
    let shown = if t.secret { "the URL".to_string() } else { format!("'{}'", t.value) };
    let schemes = usage.schemes(tls);
    // "admin:pw@camera/stream" parses as a URL with scheme "admin": say what is wrong
    // instead, and never echo any part of a secret value.
    if !t.value.contains("://") {
        cx.error(
            Code::PropertyValueInvalid,
            path,
            format!("{shown}{} is not a URL: it does not start with {}://", t.origin(), schemes.join("://, ")),
        );
        return None;
    }
    let url = match Url::parse(t.value.trim()) {
        Ok(u) => u,
        Err(e) => {
            cx.error(Code::PropertyValueInvalid, path, format!("{shown}{} is not a valid URL: {e}", t.origin()));
            return None;
        }
    };
    if !schemes.contains(&url.scheme()) {
        let (code, what) = match usage {
            EndpointUse::Rtsp => (Code::RtspEndpointUrlInvalidScheme, "an RTSP source endpoint"),
            EndpointUse::Http => {
                (Code::EndpointUrlInvalidScheme, if tls { "a TLS HTTP extension endpoint" } else { "an HTTP extension endpoint" })
            }
            EndpointUse::Grpc => (Code::EndpointUrlInvalidScheme, "a gRPC endpoint (tcp://host:port)"),
        };
        let scheme = if t.secret { "of the URL".to_string() } else { format!("'{}'", url.scheme()) };
        cx.error(
            code,
            path,
            format!("Uri scheme {scheme} is not valid for {what}. Valid values are: {}{}", schemes.join(", "), t.origin()),
        );
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        cx.error(Code::PropertyValueInvalid, path, format!("{shown}{} has no host", t.origin()));
        return None;
    }
    if usage == EndpointUse::Grpc && url.port().is_none() {
        cx.error(Code::PropertyValueInvalid, path, format!("{shown}{} has no port; gRPC endpoints are tcp://host:port", t.origin()));
        return None;
    }
    Some((url, t.secret))
}

fn credentials(o: &Obj, cx: &mut Ctx, usage: EndpointUse) -> Option<Option<Credentials>> {
    let allowed: &[TypeName] = match usage {
        EndpointUse::Rtsp => &[TypeName::UsernamePasswordCredentials],
        _ => &[TypeName::UsernamePasswordCredentials, TypeName::HttpHeaderCredentials],
    };
    let Some((ty, c)) = o.typed(cx, "credentials", Need::Optional, allowed, "credentials")? else {
        return Some(None);
    };
    c.skip(cx, "@type");
    let creds = if ty == TypeName::UsernamePasswordCredentials {
        let username = cx.with_secrets(|cx| c.req::<Text>(cx, "username")).map(|t| MaybeSecret::new(t.value, t.secret));
        // LVA 1.0 declared the password optional; an empty one is what it meant.
        let password = if cx.api == crate::topology::model::ApiVersion::Lva10 {
            cx.with_secrets(|cx| c.opt_or::<String>(cx, "password", String::new()))
        } else {
            cx.with_secrets(|cx| c.req::<String>(cx, "password"))
        };
        Some(Credentials::UsernamePassword { username: username?, password: Secret(password?) })
    } else {
        let name = c.req::<String>(cx, "headerName");
        let value = cx.with_secrets(|cx| c.req::<String>(cx, "headerValue"));
        if let Some(n) = &name {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b)) {
                cx.error(Code::PropertyValueInvalid, &c.path.key("headerName"), format!("'{n}' is not a valid HTTP header name"));
            }
        }
        Some(Credentials::HttpHeader { header_name: name?, header_value: Secret(value?) })
    };
    c.finish(cx);
    creds.map(Some)
}

fn tls_options(o: &Obj, cx: &mut Ctx, usage: EndpointUse) -> Option<Option<TlsOptions>> {
    let trusted = match o.typed(cx, "trustedCertificates", Need::Optional, &[TypeName::PemCertificateList], "certificate source")? {
        Some((_, c)) => {
            c.skip(cx, "@type");
            let items = c.array(cx, "certificates", Need::Required);
            let mut pems = Vec::new();
            let mut ok = items.is_some();
            for (v, path) in items.unwrap_or_default() {
                match cx.text(v, &path) {
                    Some(t) if t.value.contains("-----BEGIN CERTIFICATE-----") => pems.push(t.value),
                    Some(_) => {
                        cx.error(Code::PropertyValueInvalid, &path, "not a PEM certificate (no '-----BEGIN CERTIFICATE-----')");
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            c.finish(cx);
            if !ok {
                return None;
            }
            Some(pems)
        }
        None => None,
    };
    let (mut ih, mut is) = (Some(false), Some(false));
    if let Some(v) = o.object(cx, "validationOptions", Need::Optional)? {
        ih = v.opt_or(cx, "ignoreHostname", false);
        is = v.opt_or(cx, "ignoreSignature", false);
        if usage == EndpointUse::Grpc && (ih == Some(true) || is == Some(true)) {
            cx.error(
                Code::PropertyValueInvalid,
                &v.path,
                "gRPC over TLS does not support ignoreHostname or ignoreSignature: the server certificate must match the host in the URL",
            );
        }
        v.finish(cx);
    }
    Some(Some(TlsOptions { trusted_certificates: trusted, ignore_hostname: ih?, ignore_signature: is? }))
}

text_enum! {
    /// How a frame is fitted to the requested size (SPEC §1.3).
    pub enum ScaleMode { PreserveAspectRatio = "preserveAspectRatio", Pad = "pad", Stretch = "stretch" }
}

text_enum! {
    pub enum PixelFormat {
        Yuv420p = "yuv420p", Rgb565be = "rgb565be", Rgb565le = "rgb565le", Rgb555be = "rgb555be", Rgb555le = "rgb555le",
        Rgb24 = "rgb24", Bgr24 = "bgr24", Argb = "argb", Rgba = "rgba", Abgr = "abgr", Bgra = "bgra",
    }
}

text_enum! {
    /// LVA 1.0's `MediaGraphImageFormatEncoded.encoding`.
    pub enum Encoding { Jpeg = "jpeg", Bmp = "bmp", Png = "png" }
}

/// Largest width or height a frame may be scaled to (8K).
pub const MAX_SCALE_SIDE: u32 = 8192;
/// JPEG quality when the topology names none.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageScale {
    pub mode: ScaleMode,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageFormat {
    Raw(PixelFormat),
    Jpeg { quality: u8 },
    Bmp,
    Png,
}

/// How frames are prepared before they go to an extension.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// `None`: the frame keeps its native size.
    pub scale: Option<ImageScale>,
    pub format: ImageFormat,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec { scale: None, format: ImageFormat::Jpeg { quality: DEFAULT_JPEG_QUALITY } }
    }
}

pub(crate) fn image(parent: &Obj, cx: &mut Ctx, need: Need) -> Option<ImageSpec> {
    let Some(o) = parent.object(cx, "image", need)? else {
        return Some(ImageSpec::default());
    };
    let scale = match o.object(cx, "scale", Need::Optional)? {
        Some(s) => {
            let mode = s.opt_or(cx, "mode", ScaleMode::Pad);
            let width = s.scalar::<u32>(cx, "width", Need::Optional);
            let height = s.scalar::<u32>(cx, "height", Need::Optional);
            let mut ok = mode.is_some();
            let mut side = |cx: &mut Ctx, f: Field<u32>, name: &str| match f {
                Field::Value(v, p) => {
                    ok &= check_range(cx, &p, name, v, 1, MAX_SCALE_SIDE, " px");
                    Some(v)
                }
                Field::Absent => None,
                Field::Failed => {
                    ok = false;
                    None
                }
            };
            let (w, h) = (side(cx, width, "width"), side(cx, height, "height"));
            if let (Some(m), true) = (mode, ok) {
                match (m, w, h) {
                    (ScaleMode::PreserveAspectRatio, None, None) => {
                        cx.error(Code::PropertyRequired, &s.path, "preserveAspectRatio needs a width, a height, or both");
                        ok = false;
                    }
                    (ScaleMode::Pad | ScaleMode::Stretch, w, h) if w.is_none() || h.is_none() => {
                        cx.error(Code::PropertyRequired, &s.path, format!("scale mode '{}' needs both width and height", m.as_str()));
                        ok = false;
                    }
                    _ => {}
                }
            }
            s.finish(cx);
            if !ok {
                None
            } else {
                Some(Some(ImageScale { mode: mode?, width: w, height: h }))
            }
        }
        None => Some(None),
    };
    let format = image_format(&o, cx);
    o.finish(cx);
    Some(ImageSpec { scale: scale?, format: format? })
}

fn image_format(o: &Obj, cx: &mut Ctx) -> Option<ImageFormat> {
    use TypeName::*;
    let allowed = [ImageFormatRaw, ImageFormatJpeg, ImageFormatBmp, ImageFormatPng, ImageFormatEncoded];
    let Some((ty, f)) = o.typed(cx, "format", Need::Optional, &allowed, "image format")? else {
        return Some(ImageFormat::Jpeg { quality: DEFAULT_JPEG_QUALITY });
    };
    f.skip(cx, "@type");
    let quality = |f: &Obj, cx: &mut Ctx| -> Option<u8> {
        match f.scalar::<u32>(cx, "quality", Need::Optional) {
            Field::Value(q, p) => check_range(cx, &p, "quality", q, 0, 100, "").then_some(q as u8),
            Field::Absent => Some(DEFAULT_JPEG_QUALITY),
            Field::Failed => None,
        }
    };
    let out = match ty {
        ImageFormatRaw => f.req::<PixelFormat>(cx, "pixelFormat").map(ImageFormat::Raw),
        ImageFormatJpeg => quality(&f, cx).map(|quality| ImageFormat::Jpeg { quality }),
        ImageFormatBmp => Some(ImageFormat::Bmp),
        ImageFormatPng => Some(ImageFormat::Png),
        _ => {
            let enc = f.opt_or(cx, "encoding", Encoding::Jpeg);
            // quality applies to JPEG only; LVA 1.0 accepted and ignored it otherwise.
            let q = quality(&f, cx);
            match enc? {
                Encoding::Jpeg => q.map(|quality| ImageFormat::Jpeg { quality }),
                Encoding::Bmp => Some(ImageFormat::Bmp),
                Encoding::Png => Some(ImageFormat::Png),
            }
        }
    };
    f.finish(cx);
    out
}

/// Which frames go to an extension (LVA 2.0+, AVA).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SamplingOptions {
    /// Upper bound on frames per second submitted; `None`: every frame.
    pub maximum_samples_per_second: Option<f64>,
    /// Submit only frames that already carry inferences from upstream.
    pub skip_samples_without_annotation: bool,
}

pub(crate) fn sampling(parent: &Obj, cx: &mut Ctx) -> Option<SamplingOptions> {
    if !cx.api.at_least_lva20() {
        parent.gate(cx, "samplingOptions", "LVA 2.0 (use a FrameRateFilterProcessor in 1.0)");
        return Some(SamplingOptions { maximum_samples_per_second: None, skip_samples_without_annotation: false });
    }
    let Some(o) = parent.object(cx, "samplingOptions", Need::Optional)? else {
        return Some(SamplingOptions { maximum_samples_per_second: None, skip_samples_without_annotation: false });
    };
    let max = match o.scalar::<f64>(cx, "maximumSamplesPerSecond", Need::Optional) {
        Field::Value(v, p) => check_range(cx, &p, "maximumSamplesPerSecond", v, 0.0001, 1000.0, "").then_some(Some(v)),
        Field::Absent => Some(None),
        Field::Failed => None,
    };
    let skip = o.opt_or(cx, "skipSamplesWithoutAnnotation", false);
    o.finish(cx);
    Some(SamplingOptions { maximum_samples_per_second: max?, skip_samples_without_annotation: skip? })
}

/// A point in normalised frame coordinates: `[left, top]`, `[0,0]` top-left, each in 0..1.
pub type Point = [f64; 2];

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedLine {
    pub name: String,
    pub from: Point,
    pub to: Point,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedPolygon {
    pub name: String,
    pub points: Vec<Point>,
}

/// Parses `"[[x,y],…]"` and checks the coordinates.
fn points(cx: &mut Ctx, t: &Text, path: &JsonPath) -> Option<Vec<Point>> {
    let pts: Vec<Point> = match serde_json::from_str(&t.value) {
        Ok(p) => p,
        Err(_) => {
            cx.error(
                Code::PropertyValueInvalid,
                path,
                format!("{}{} is not a list of points like [[0.1,0.2],[0.3,0.4]]", t.shown(), t.origin()),
            );
            return None;
        }
    };
    for p in &pts {
        if !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]) {
            cx.error(
                Code::PropertyValueOutOfRange,
                path,
                format!("point [{}, {}] is outside the frame; coordinates are ratios from 0 to 1", p[0], p[1]),
            );
            return None;
        }
    }
    Some(pts)
}

pub(crate) fn named_line(v: &serde_json::Value, path: JsonPath, cx: &mut Ctx) -> Option<NamedLine> {
    let o = Obj::new(v, path, cx, "a line")?;
    let _ = typed_of(&o, cx, &[TypeName::NamedLineString], "line")?;
    let name = o.req::<String>(cx, "name");
    let line = match o.scalar::<Text>(cx, "line", Need::Required) {
        Field::Value(t, p) => match points(cx, &t, &p)? {
            pts if pts.len() == 2 && pts[0] != pts[1] => Some((pts[0], pts[1])),
            pts => {
                cx.error(Code::PropertyValueInvalid, &p, format!("a line is two distinct points; found {} point(s)", pts.len()));
                None
            }
        },
        _ => None,
    };
    o.finish(cx);
    let (from, to) = line?;
    Some(NamedLine { name: name?, from, to })
}

pub(crate) fn named_polygon(v: &serde_json::Value, path: JsonPath, cx: &mut Ctx) -> Option<NamedPolygon> {
    let o = Obj::new(v, path, cx, "a zone")?;
    let _ = typed_of(&o, cx, &[TypeName::NamedPolygonString], "zone")?;
    let name = o.req::<String>(cx, "name");
    let poly = match o.scalar::<Text>(cx, "polygon", Need::Required) {
        Field::Value(t, p) => {
            let mut pts = points(cx, &t, &p)?;
            // Published zones repeat the first point at the end to close the ring.
            if pts.len() > 1 && pts.first() == pts.last() {
                pts.pop();
            }
            if pts.len() < 3 {
                cx.error(Code::PropertyValueInvalid, &p, format!("a polygon needs at least 3 distinct corners; found {}", pts.len()));
                None
            } else {
                Some(pts)
            }
        }
        _ => None,
    };
    o.finish(cx);
    Some(NamedPolygon { name: name?, points: poly? })
}

/// Checks that names in a list are unique; reports the repeats.
pub(crate) fn unique_names<'n>(cx: &mut Ctx, items: impl IntoIterator<Item = (&'n str, JsonPath)>, what: &str) {
    let mut seen: Vec<&str> = Vec::new();
    for (n, p) in items {
        if seen.contains(&n) {
            cx.error(Code::PropertyValueInvalid, &p, format!("{what} name '{n}' is used more than once"));
        }
        seen.push(n);
    }
}

/// An edge hub input or output name: it becomes part of MQTT topics, so it may not
/// contain topic separators or wildcards. At most 50 characters (VSC-RULES).
pub(crate) fn hub_name(o: &Obj, cx: &mut Ctx, key: &'static str, required: bool) -> Option<Option<String>> {
    let need = if required { Need::Required } else { Need::Optional };
    match o.scalar::<String>(cx, key, need) {
        Field::Value(n, p) => {
            if n.is_empty() || n.len() > 50 || !n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                cx.error(
                    Code::PropertyValueInvalidPattern,
                    &p,
                    format!(
                        "'{n}' is not a valid hub {}: 1 to 50 letters, digits, '_', '-' or '.'",
                        if key == "hubInputName" { "input name" } else { "output name" }
                    ),
                );
                None
            } else {
                Some(Some(n))
            }
        }
        Field::Absent => Some(None),
        Field::Failed => None,
    }
}

/// Whether a raw (unsubstituted) string names a `${System.*}` variable.
pub(crate) fn has_system_variable(raw: &serde_json::Value) -> bool {
    match raw {
        serde_json::Value::String(s) => crate::topology::params::tokenize(s)
            .map(|t| t.iter().any(|t| matches!(t, crate::topology::params::Token::System(_))))
            .unwrap_or(false),
        _ => false,
    }
}
