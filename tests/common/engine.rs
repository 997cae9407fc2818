//! The engine without MQTT for tests: a simulated camera at 4× real time, a runtime and a controller whose events are recorded, plus clip probing.
//!
//! Included with `#[path = "common/engine.rs"] mod engine;` by tests that also declare
//! `mod common;` (it uses `common::Recorder`).
#![allow(dead_code)]

use crate::common::Recorder;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vela::clock::SystemClock;
use vela::control::Controller;
use vela::runtime::events::{EventOutputs, Events, Identity};
use vela::runtime::inputs::HubInputs;
use vela::runtime::{Runtime, Services};
use vela::store::Store;

/// A fresh folder under the system temp dir; its owner removes it.
pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vela-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// ffprobe's view of a file: (errors printed, frame count, duration s, first frame is key).
pub fn probe(path: &Path) -> (String, u64, f64, bool) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed by scripts/test");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let packets: Vec<(f64, bool)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((it.next()?.parse().ok()?, it.next()?.contains('K')))
        })
        .collect();
    let duration = packets.last().map(|p| p.0).unwrap_or(0.0) - packets.first().map(|p| p.0).unwrap_or(0.0);
    (String::from_utf8_lossy(&out.stderr).to_string(), packets.len() as u64, duration, packets.first().is_some_and(|p| p.1))
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after `timeout`.
pub async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A simulated camera at 4× real time and an engine (runtime + controller) whose events
/// are recorded, without MQTT.
pub struct Rig {
    pub camera: vela::modules::rtspsim::Server,
    pub state: PathBuf,
    pub recorder: Arc<Recorder>,
    pub inputs: HubInputs,
    pub runtime: Arc<Runtime>,
    pub controller: Controller,
}

impl Rig {
    /// The camera's pace: media seconds per real second.
    pub const SPEED: f64 = 4.0;

    pub async fn start(tag: &str) -> Rig {
        let mut cfg =
            vela::modules::rtspsim::Config::new("127.0.0.1:0".parse().unwrap(), Path::new(env!("CARGO_MANIFEST_DIR")).join("config/media"));
        cfg.speed = Self::SPEED;
        let camera = vela::modules::rtspsim::serve(cfg).await.unwrap();
        let state = tempdir(tag);
        let recorder = Arc::new(Recorder::default());
        let events = Events::new(
            recorder.clone(),
            Identity { device: "dev".into(), module: "avaedge".into(), topic: "vela".into() },
            EventOutputs { diagnostics: "diagnostics".into(), operational: "operational".into() },
        );
        let inputs = HubInputs::default();
        let services = Services {
            events,
            inputs: inputs.clone(),
            state_dir: state.clone(),
            clock: Arc::new(SystemClock),
            recordings: None,
            detector_model: None,
        };
        let runtime = Arc::new(Runtime::new(services));
        let controller = Controller::new(Store::open(&state.join("db")).unwrap(), runtime.clone(), Arc::new(SystemClock));
        Rig { camera, state, recorder, inputs, runtime, controller }
    }
}
