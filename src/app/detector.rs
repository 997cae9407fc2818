//! The detector module of `vela run`: the built-in NanoDet-m server started from a deployment entry and its desired properties.
//!
//! A deployment module whose image is `vela:detector` (or one of the samples' `yolov3`
//! extension images, whose role it plays) runs `vela detect` inside the appliance. Its
//! desired properties, all optional and case-insensitive:
//! `listen` ("127.0.0.1:7000"), `grpcListen` (none: the gRPC extension contract is served
//! only when set, e.g. "127.0.0.1:7001"), `model` (relative to the config folder),
//! `threshold` (0.45), `classes` (array or comma-separated COCO names; all when absent),
//! `threads` (1), `maxBatch` (4), `queue` (32).

use crate::modules::detector::{serve, DetectorConfig, ServerConfig, Serving};
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;

/// The model `vela run` uses unless `model` says otherwise, relative to the config folder.
pub const MODEL: &str = "models/nanodet-m/nanodet-m.onnx";

fn get<'a>(desired: &'a Value, key: &str) -> Option<&'a Value> {
    desired.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// Numbers may come as numbers or strings (twins written by hand often quote them).
fn number(desired: &Value, key: &str) -> anyhow::Result<Option<f64>> {
    match get(desired, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s.trim().parse().map(Some).with_context(|| format!("'{key}' is not a number: {s:?}")),
        Some(v) => bail!("'{key}' is not a number: {v}"),
    }
}

fn count(desired: &Value, key: &str, default: usize, max: usize) -> anyhow::Result<usize> {
    match number(desired, key)? {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && v >= 1.0 && v <= max as f64 => Ok(v as usize),
        Some(v) => bail!("'{key}' must be a whole number from 1 to {max}, not {v}"),
    }
}

/// The server settings a module's desired properties ask for; errors name the property.
pub fn server_config(desired: &Value, config_dir: &Path) -> anyhow::Result<ServerConfig> {
    let defaults = ServerConfig::default();
    let address = |key: &str| -> anyhow::Result<Option<String>> {
        match get(desired, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let addr: std::net::SocketAddr = s.parse().with_context(|| format!("'{key}' is not HOST:PORT: {s:?}"))?;
                if !addr.ip().is_loopback() {
                    // No authentication by default: the detector serves the appliance, not the LAN.
                    bail!("'{key}' {addr} is reachable from other machines; the detector listens on loopback only");
                }
                Ok(Some(s.clone()))
            }
            Some(v) => bail!("'{key}' is not a string: {v}"),
        }
    };
    let listen = address("listen")?.unwrap_or_else(|| defaults.listen.clone());
    let grpc_listen = address("grpcListen")?;
    let model = match get(desired, "model") {
        None | Some(Value::Null) => config_dir.join(MODEL),
        Some(Value::String(s)) => config_dir.join(s),
        Some(v) => bail!("'model' is not a path: {v}"),
    };
    let mut detector = DetectorConfig::default();
    if let Some(t) = number(desired, "threshold")? {
        if !(t > 0.0 && t <= 1.0) {
            bail!("'threshold' must be above 0 and at most 1, not {t}");
        }
        detector.threshold = t as f32;
    }
    detector.classes = match get(desired, "classes") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| c.as_str().map(|c| c.trim().to_owned()).with_context(|| format!("'classes' holds a non-string: {c}")))
            .collect::<anyhow::Result<_>>()?,
        Some(v) => bail!("'classes' is neither a list nor a comma-separated string: {v}"),
    };
    Ok(ServerConfig {
        listen,
        grpc_listen,
        model,
        detector,
        threads: count(desired, "threads", defaults.threads, 8)?,
        max_batch: count(desired, "maxBatch", defaults.max_batch, 16)?,
        queue: count(desired, "queue", defaults.queue, 1024)?,
        ..defaults
    })
}

/// A running detector module.
pub struct Detector {
    addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    grpc: Option<crate::modules::detector::grpc::GrpcServing>,
    detector: crate::modules::detector::Detector,
}

impl Detector {
    /// Loads the model and starts serving (on the caller's actix System).
    pub async fn start(desired: &Value, config_dir: &Path) -> anyhow::Result<Detector> {
        let config = server_config(desired, config_dir)?;
        let model = config.model.clone();
        let Serving { addr, handle, server, detector, grpc } =
            serve(config).await.with_context(|| format!("cannot serve the detector with {}", model.display()))?;
        actix_rt::spawn(server);
        Ok(Detector { addr, handle, grpc, detector })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> String {
        let grpc = self.grpc.as_ref().map(|g| format!(", gRPC extension on tcp://{}", g.addr)).unwrap_or_default();
        format!("{} on http://{}/ (score, image, health){grpc}", self.detector.model_path().display(), self.addr)
    }

    pub async fn stop(self) {
        if let Some(g) = &self.grpc {
            g.stop().await;
        }
        self.handle.stop(true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn desired_properties_in_any_case_with_checks() {
        let dir = Path::new("/cfg");
        let c = server_config(&json!({}), dir).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000");
        assert_eq!(c.model, dir.join(MODEL));
        assert!(c.detector.classes.is_empty());
        assert_eq!(c.grpc_listen, None);
        assert_eq!(server_config(&json!({"grpcListen": "127.0.0.1:7001"}), dir).unwrap().grpc_listen.as_deref(), Some("127.0.0.1:7001"));
        assert!(server_config(&json!({"grpclisten": "10.0.0.1:7001"}), dir).unwrap_err().to_string().contains("'grpcListen'"));
        let c = server_config(
            &json!({"Listen": "127.0.0.1:7100", "THRESHOLD": "0.6", "classes": "person, car", "threads": 2, "model": "m.onnx"}),
            dir,
        )
        .unwrap();
        assert_eq!((c.listen.as_str(), c.detector.threshold, c.threads), ("127.0.0.1:7100", 0.6, 2));
        assert_eq!(c.detector.classes, ["person", "car"]);
        assert_eq!(c.model, dir.join("m.onnx"));
        assert_eq!(server_config(&json!({"classes": ["person"]}), dir).unwrap().detector.classes, ["person"]);
        let e = |v: Value| server_config(&v, dir).unwrap_err().to_string();
        assert!(e(json!({"listen": "0.0.0.0:7000"})).contains("loopback"));
        assert!(e(json!({"listen": "nowhere"})).contains("'listen'"));
        assert!(e(json!({"threshold": 0})).contains("'threshold'"));
        assert!(e(json!({"threshold": "high"})).contains("'threshold'"));
        assert!(e(json!({"threads": 1.5})).contains("'threads'"));
        assert!(e(json!({"classes": [1]})).contains("'classes'"));
    }
}
