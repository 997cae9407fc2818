//! `config/appliance.toml` and the module list of `config/deployment.json`: what `vela run` starts.

use serde::Deserialize;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Appliance {
    #[serde(default = "default_device")]
    pub device_id: String,
    #[serde(default)]
    pub hub: HubConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default)]
    pub playback: PlaybackConfig,
}

/// The video store's appliance-wide limits (per-video limits come from the sinks).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// All videos together stay below this; oldest segments go first. None: no cap.
    pub max_size_mib: Option<u64>,
    /// Oldest segments go first while the disk holding a video has less free space.
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
    /// How often retention runs.
    #[serde(default = "default_retention_interval")]
    pub retention_interval_seconds: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            max_size_mib: None,
            min_free_mib: default_min_free_mib(),
            retention_interval_seconds: default_retention_interval(),
        }
    }
}

fn default_min_free_mib() -> u64 {
    1024
}

fn default_retention_interval() -> u64 {
    60
}

/// The playback API and player page.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlaybackConfig {
    /// Where the player page and the API listen; port 0 picks a free one.
    #[serde(default = "default_playback_listen")]
    pub listen: SocketAddr,
    /// A bearer token every API request must present; none by default (loopback only).
    pub token: Option<String>,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        PlaybackConfig { listen: default_playback_listen(), token: None }
    }
}

fn default_playback_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid address")
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Where the embedded broker listens.
    #[serde(default = "default_hub_listen")]
    pub listen: SocketAddr,
    /// An external broker (`mqtt://host:port`); the embedded one is not started.
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig { listen: default_hub_listen(), url: None, username: None, password: None }
    }
}

fn default_device() -> String {
    "vela".into()
}

fn default_hub_listen() -> SocketAddr {
    "127.0.0.1:1883".parse().expect("valid address")
}

impl Appliance {
    /// Reads `appliance.toml` from the config folder; a missing file means the defaults.
    pub fn load(config_dir: &Path) -> Result<Appliance, ConfigError> {
        let path = config_dir.join("appliance.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Appliance {
                    device_id: default_device(),
                    hub: HubConfig::default(),
                    recording: RecordingConfig::default(),
                    playback: PlaybackConfig::default(),
                })
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let a: Appliance = toml::from_str(&text).map_err(|e| ConfigError::Invalid { path: path.clone(), message: e.to_string() })?;
        if a.recording.retention_interval_seconds == 0 {
            return Err(ConfigError::Invalid { path, message: "recording.retention_interval_seconds must be at least 1".into() });
        }
        if !a.playback.listen.ip().is_loopback() && a.playback.token.as_deref().unwrap_or("").is_empty() {
            return Err(ConfigError::Invalid {
                path,
                message: format!(
                    "playback.listen {} is reachable from other machines: set playback.token, or listen on 127.0.0.1",
                    a.playback.listen
                ),
            });
        }
        Ok(a)
    }
}

/// Which Vela module a deployment entry runs, from its image name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleKind {
    /// The media graph engine (LVA `lvaEdge`, AVA `avaedge`).
    Engine,
    /// The simulated camera.
    RtspSim,
    /// The tutorial's objectCounter: inference events in, recording triggers out.
    ObjectCounter,
    /// The built-in object detector (an HTTP extension server), also in place of the
    /// samples' `yolov3` extension.
    Detector,
}

/// Vela's own image names, and the Microsoft images whose role Vela plays.
pub fn module_kind(image: &str) -> Option<ModuleKind> {
    let i = image.to_ascii_lowercase();
    if i.starts_with("vela:engine") || i.contains("media/live-video-analytics") || i.contains("media/video-analyzer") {
        Some(ModuleKind::Engine)
    } else if i.starts_with("vela:rtspsim") || i.contains("rtspsim") {
        Some(ModuleKind::RtspSim)
    } else if i.starts_with("vela:objectcounter") || i.contains("objectcounter") {
        Some(ModuleKind::ObjectCounter)
    } else if i.starts_with("vela:detector") || i.contains("lva-utilities/yolov3") || i.contains("ava-utilities/yolov3") {
        Some(ModuleKind::Detector)
    } else {
        None
    }
}

/// `(module name, image)` of every module under `$edgeAgent`, in manifest order.
pub fn deployment_modules(manifest: &Value) -> Vec<(String, String)> {
    let agent = manifest.get("modulesContent").and_then(|m| m.get("$edgeAgent"));
    let desired = agent.and_then(|a| a.get("properties.desired").or_else(|| a.get("properties").and_then(|p| p.get("desired"))));
    let Some(modules) = desired.and_then(|d| d.get("modules")).and_then(Value::as_object) else { return vec![] };
    modules
        .iter()
        .map(|(name, m)| (name.clone(), m.pointer("/settings/image").and_then(Value::as_str).unwrap_or_default().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let a = Appliance::load(&dir).unwrap();
        assert_eq!(a.device_id, "vela");
        assert_eq!(a.hub.listen.port(), 1883);
        let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("deployment.json")).unwrap()).unwrap();
        let mods = deployment_modules(&manifest);
        assert_eq!(
            mods.iter().map(|(n, i)| (n.as_str(), module_kind(i))).collect::<Vec<_>>(),
            [
                ("avaedge", Some(ModuleKind::Engine)),
                ("rtspsim", Some(ModuleKind::RtspSim)),
                ("detector", Some(ModuleKind::Detector)),
                ("objectCounter", Some(ModuleKind::ObjectCounter))
            ]
        );
    }

    #[test]
    fn unknown_settings_are_refused_with_the_file_name() {
        let dir = std::env::temp_dir().join(format!("vela-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("appliance.toml"), "device_id = \"x\"\n[hub]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n").unwrap();
        let e = Appliance::load(&dir).unwrap_err().to_string();
        assert!(e.contains("appliance.toml") && e.contains("listne"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn recording_and_playback_settings_have_safe_defaults_and_checks() {
        let dir = std::env::temp_dir().join(format!("vela-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |text: &str| {
            std::fs::write(dir.join("appliance.toml"), text).unwrap();
            Appliance::load(&dir)
        };
        let a = load("").unwrap();
        assert_eq!(a.recording, RecordingConfig { max_size_mib: None, min_free_mib: 1024, retention_interval_seconds: 60 });
        assert_eq!(a.playback.listen, "127.0.0.1:8080".parse().unwrap());
        let a = load("[recording]\nmax_size_mib = 2048\n[playback]\nlisten = \"0.0.0.0:80\"\ntoken = \"s3cret\"\n").unwrap();
        assert_eq!(a.recording.max_size_mib, Some(2048));
        // Reachable from the network without a token: refused, saying what to do.
        let e = load("[playback]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err().to_string();
        assert!(e.contains("playback.token"), "{e}");
        let e = load("[recording]\nretention_interval_seconds = 0\n").unwrap_err().to_string();
        assert!(e.contains("retention_interval_seconds"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn microsoft_images_map_to_the_modules_vela_plays() {
        assert_eq!(module_kind("mcr.microsoft.com/media/video-analyzer:1"), Some(ModuleKind::Engine));
        assert_eq!(module_kind("mcr.microsoft.com/media/live-video-analytics:2"), Some(ModuleKind::Engine));
        assert_eq!(module_kind("mcr.microsoft.com/lva-utilities/rtspsim-live555:1.2"), Some(ModuleKind::RtspSim));
        assert_eq!(module_kind("vela:objectCounter"), Some(ModuleKind::ObjectCounter));
        assert_eq!(module_kind("vela:detector"), Some(ModuleKind::Detector));
        assert_eq!(module_kind("mcr.microsoft.com/lva-utilities/yolov3-onnx:1.0"), Some(ModuleKind::Detector));
        assert_eq!(module_kind("${MODULES.objectCounter}"), Some(ModuleKind::ObjectCounter));
        assert_eq!(module_kind("myregistry/yolov3:latest"), None);
    }
}
