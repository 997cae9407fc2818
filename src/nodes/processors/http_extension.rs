//! HttpExtension: posts sampled frames to an inference server (SPEC §5.1), publishes its answers as Inference events and attaches them to the frame.
//!
//! One request in flight per node (SPEC, inferred): a sampled frame that arrives while a
//! request is pending, or during a 503 back-off, is not sent — it goes on downstream
//! un-annotated and is counted (Diagnostics.DataDropped, at most every 10 s). Frames that
//! are not sampled go on at once; a sampled frame goes on when its answer is in, annotated
//! with the inferences (appended to what upstream attached). Images are prepared off the
//! instance's thread, once per picture and spec however many nodes ask
//! ([`Picture::image`](crate::runtime::packet::Picture::image)).
//!
//! Choices where SPEC is silent: request timeout [`TIMEOUT`]; 503 without `Retry-After`
//! backs off [`DEFAULT_RETRY_AFTER`](super::extension_core::DEFAULT_RETRY_AFTER); 400/500
//! and network errors drop the sample with a diagnostic (rate-limited) and the next sample
//! is sent normally.
//!
//! `https` endpoints go through rustls with the trust rules of
//! [`extension_tls`](super::extension_tls) (a TlsEndpoint's, or the default trust for an
//! `https` URL on an UnsecuredEndpoint); a server whose certificate is refused costs its
//! samples, reported as `NetworkError` `TlsHandshakeFailed`.

use super::extension_core::{inference_event, interpret, sample_to_send, Content, Outcome, Reporter};
use super::extension_tls::{tls_failure, Tls, TlsError};
use super::motion_core::pts_90khz;
use super::sampling::FrameSampling;
use crate::runtime::node::{Feeder, Node, NodeCtx, NodeEnv};
use crate::runtime::packet::{Frame, Packet};
use crate::topology::nodes::common::{Credentials, ImageSpec};
use crate::topology::nodes::http_extension::HttpExtension as Settings;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What the node needs to send a request; built once at activation.
pub struct Request {
    pub url: String,
    /// Extra headers: credentials (never logged).
    pub headers: Vec<(String, String)>,
    pub image: ImageSpec,
    /// For `https` URLs: the client's TLS configuration, and what it does not check.
    pub tls: Option<(Arc<rustls::ClientConfig>, Option<&'static str>)>,
}

impl Request {
    /// Fails only on TLS settings that cannot be used (a bad trusted certificate).
    pub fn from_settings(s: &Settings) -> Result<Request, TlsError> {
        let e = &s.base.endpoint;
        let tls = if e.url.scheme() == "https" {
            let tls = Tls::from_options(e.tls.as_ref())?;
            Some((tls.client_config(&[b"h2", b"http/1.1"])?, tls.weakened()))
        } else {
            None
        };
        let headers = match &e.credentials {
            None => vec![],
            Some(Credentials::UsernamePassword { username, password }) => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", username.as_str(), password.expose()));
                vec![("Authorization".into(), format!("Basic {token}"))]
            }
            Some(Credentials::HttpHeader { header_name, header_value }) => vec![(header_name.clone(), header_value.expose().to_string())],
        };
        Ok(Request { url: e.url.to_string(), headers, image: s.base.image.clone(), tls })
    }
}

#[derive(Default)]
struct Shared {
    busy: bool,
    backoff_until: Option<Instant>,
    reporter: Reporter,
    client: Option<awc::Client>,
}

pub struct HttpExtension {
    request: Arc<Request>,
    sampling: FrameSampling,
    shared: Rc<RefCell<Shared>>,
}

impl HttpExtension {
    pub fn new(request: Arc<Request>, settings: &Settings) -> Self {
        HttpExtension { request, sampling: FrameSampling::new(&settings.base.sampling), shared: Rc::default() }
    }

    fn drop_sample(&self, ctx: &mut NodeCtx<'_>, why: &str) {
        self.shared.borrow_mut().reporter.dropped(ctx.env, why);
    }
}

impl Node for HttpExtension {
    fn start(&mut self, ctx: &mut NodeCtx<'_>) {
        let builder = awc::Client::builder().timeout(TIMEOUT).disable_redirects();
        let client = match &self.request.tls {
            None => builder.finish(),
            Some((config, weakened)) => {
                if let Some(what) = weakened {
                    tracing::warn!(node = ctx.env.name(), "TLS validation of the extension's certificate is weakened by {what}");
                }
                builder.connector(awc::Connector::new().rustls_0_23(config.clone())).finish()
            }
        };
        self.shared.borrow_mut().client = Some(client);
    }

    fn on_packet(&mut self, p: Packet, ctx: &mut NodeCtx<'_>) {
        let Some(f) = sample_to_send(&mut self.sampling, p, ctx) else { return };
        let (busy, backoff) = {
            let s = self.shared.borrow();
            (s.busy, s.backoff_until.is_some_and(|t| Instant::now() < t))
        };
        if busy || backoff {
            self.drop_sample(ctx, if busy { "a request is in flight" } else { "the extension asked to back off (503)" });
            ctx.emit(Packet::Frame(f));
            return;
        }
        self.shared.borrow_mut().busy = true;
        let job = Job { request: self.request.clone(), shared: self.shared.clone(), feeder: ctx.feeder(), env: ctx.env.clone() };
        ctx.spawn(job.run(f));
    }
}

struct Job {
    request: Arc<Request>,
    shared: Rc<RefCell<Shared>>,
    feeder: Feeder,
    env: NodeEnv,
}

impl Job {
    async fn run(self, frame: Arc<Frame>) {
        let out = self.exchange(&frame).await;
        self.shared.borrow_mut().busy = false;
        let mut annotated = (*frame).clone();
        match out {
            Ok(Outcome::Results(inferences)) => {
                let wall = frame.picture.wall;
                self.feeder.produced(Packet::Event(Arc::new(inference_event(&self.env, pts_90khz(wall), wall, &inferences))));
                annotated.inferences.extend(inferences);
                annotated.analysed = true;
            }
            Ok(Outcome::Nothing) => annotated.analysed = true,
            Ok(Outcome::Dropped { status, message }) => {
                self.report("ProtocolError", json!({ "code": "ExtensionError", "status": status, "message": message }))
            }
            Ok(Outcome::BackOff(d)) => {
                self.shared.borrow_mut().backoff_until = Some(Instant::now() + d);
                tracing::info!(node = self.env.name(), seconds = d.as_secs_f64(), "extension busy (503): backing off");
            }
            Err((ty, body)) => self.report(ty, body),
        }
        self.feeder.produced(Packet::Frame(Arc::new(annotated)));
    }

    async fn exchange(&self, frame: &Frame) -> Result<Outcome, (&'static str, serde_json::Value)> {
        let picture = frame.picture.clone();
        let spec = self.request.image.clone();
        let prepared = actix_rt::task::spawn_blocking(move || picture.image(&spec))
            .await
            .map_err(|e| ("RuntimeError", json!({ "code": "ImagePreparationFailed", "message": e.to_string() })))?
            .map_err(|e| ("MediaFormatError", json!({ "code": "ImagePreparationFailed", "message": e.to_string() })))?;
        let client = self.shared.borrow().client.clone().expect("started");
        let mut req = client
            .post(&self.request.url)
            .insert_header(("Accept", "application/json"))
            .insert_header(("Content-Type", prepared.content_type))
            .insert_header(("User-Agent", "Azure Media Services"))
            .insert_header(("x-ms-client-request-id", uuid::Uuid::new_v4().to_string()));
        for (k, v) in &self.request.headers {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        let mut res = req.send_body(prepared.bytes.clone()).await.map_err(|e| ("NetworkError", send_failure(&e)))?;
        let body: Bytes = res
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| ("ProtocolError", json!({ "code": "InvalidResponse", "message": e.to_string() })))?;
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let r = &prepared.content;
        let content = Content::centred(r.width, r.height, prepared.width, prepared.height);
        Ok(interpret(res.status().as_u16(), header("content-type").as_deref(), header("retry-after").as_deref(), &body, content))
    }

    fn report(&self, ty: &str, body: serde_json::Value) {
        self.shared.borrow_mut().reporter.error(&self.env, ty, body);
    }
}

/// A `NetworkError`'s body for a request that could not be sent.
fn send_failure(e: &awc::error::SendRequestError) -> serde_json::Value {
    use awc::error::{ConnectError, SendRequestError};
    let tls = match e {
        SendRequestError::Connect(ConnectError::Io(io)) => tls_failure(io),
        _ => None,
    };
    match (tls, e) {
        (Some(t), _) => json!({ "code": "TlsHandshakeFailed", "message": format!("TLS with the extension failed: {t}") }),
        (None, SendRequestError::Timeout) => json!({ "code": "Timeout", "message": e.to_string() }),
        (None, _) => json!({ "code": "ConnectionFailed", "message": e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::nodes::common::{Endpoint, SamplingOptions, TlsOptions};
    use crate::topology::nodes::extension::ExtensionBase;

    fn settings(url: &str, tls: Option<TlsOptions>) -> Settings {
        Settings {
            base: ExtensionBase {
                endpoint: Endpoint { url: url.parse().unwrap(), url_is_secret: false, credentials: None, tls },
                image: ImageSpec::default(),
                sampling: SamplingOptions { maximum_samples_per_second: None, skip_samples_without_annotation: false },
            },
        }
    }

    #[test]
    fn https_urls_get_tls_strict_unless_the_endpoint_says_otherwise() {
        assert!(Request::from_settings(&settings("http://x/score", None)).unwrap().tls.is_none());
        // An https URL on an UnsecuredEndpoint: the default trust, strictly.
        let r = Request::from_settings(&settings("https://x/score", None)).unwrap();
        let (config, weakened) = r.tls.unwrap();
        assert!(weakened.is_none());
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        let lax = TlsOptions { trusted_certificates: None, ignore_hostname: true, ignore_signature: false };
        let r = Request::from_settings(&settings("https://x/score", Some(lax))).unwrap();
        assert!(r.tls.unwrap().1.is_some_and(|w| w.contains("ignoreHostname")));
        let bad = TlsOptions { trusted_certificates: Some(vec!["junk".into()]), ignore_hostname: false, ignore_signature: false };
        let e = Request::from_settings(&settings("https://x/score", Some(bad))).err().unwrap();
        assert!(e.to_string().contains("certificates[0]"), "{e}");
    }
}
