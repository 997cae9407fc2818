//! Runs `vela run` as a real process on a private copy of config/, on free ports, for appliance tests.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vela::hub::{ClientOptions, HubMessage, ModuleClient};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How a test wants the appliance set up.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Copy config/topologies and config/instances (the demo graph).
    pub demo_graph: bool,
    /// Run the demo instance `camera-1` on this topology of config/topologies instead of
    /// the shipped one (the motion demo), e.g. the hub-triggered recorder.
    pub demo_topology: Option<&'static str>,
    /// The simulated camera's pace.
    pub camera_speed: f64,
    /// An external broker URL instead of the embedded one.
    pub external_hub: Option<String>,
    /// Also run the demo's continuous recording (config/instances/cvr-camera-1.json).
    pub cvr: bool,
    /// Run the demo's AI graph (config/instances/camera-1-people.json with the detector and
    /// objectCounter modules) instead of the motion demo `camera-1`. Without it the
    /// deployment has neither module.
    pub ai: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { demo_graph: true, demo_topology: None, camera_speed: 4.0, external_hub: None, cvr: false, ai: false }
    }
}

/// The demo's continuous recording instance file.
pub const CVR_INSTANCE: &str = "cvr-camera-1.json";
/// The demo's AI instance file (person-triggered clips).
pub const AI_INSTANCE: &str = "camera-1-people.json";
/// The motion demo's instance file.
pub const MOTION_INSTANCE: &str = "camera-1.json";
/// Where the shipped config has the detector listen (the AI topology's default URL).
const DETECTOR_LISTEN: &str = "127.0.0.1:7000";

/// The hub-triggered recorder (config/topologies/evr-hub-trigger.json).
pub const HUB_TRIGGER: &str = "EVRtoFilesOnHubTrigger";

impl Setup {
    /// The demo camera recording only when a message reaches `recordingTrigger`, for tests
    /// that must know when clips start (vtest.mkv has motion nearly all the time).
    pub fn hub_trigger() -> Setup {
        Setup { demo_topology: Some(HUB_TRIGGER), ..Setup::default() }
    }

    /// No topology or instance: the test sets its own.
    pub fn empty() -> Setup {
        Setup { demo_graph: false, ..Setup::default() }
    }
}

/// A `vela run` process with its own config and state folders.
pub struct Appliance {
    pub root: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub hub_port: u16,
    pub camera_port: u16,
    pub playback_port: u16,
    /// The detector module's HTTP port (with `Setup::ai`).
    pub detector_port: u16,
    pub hub_url: String,
    child: Option<Child>,
    lines: Option<mpsc::Receiver<String>>,
}

impl Appliance {
    /// Writes the config folder; `start` runs it.
    pub fn new(setup: &Setup) -> Appliance {
        let root = std::env::temp_dir().join(format!("vela-appliance-{}", uuid::Uuid::new_v4()));
        let config = root.join("config");
        let state = root.join("state");
        std::fs::create_dir_all(config.join("topologies")).unwrap();
        std::fs::create_dir_all(config.join("instances")).unwrap();
        std::os::unix::fs::symlink(repo().join("config/media"), config.join("media")).unwrap();
        std::os::unix::fs::symlink(repo().join("config/models"), config.join("models")).unwrap();
        let hub_port = free_port();
        let detector_port = free_port();
        let detector_listen = format!("127.0.0.1:{detector_port}");
        let camera_port = free_port();
        let playback_port = free_port();
        let hub_url = setup.external_hub.clone().unwrap_or(format!("mqtt://127.0.0.1:{hub_port}"));
        let hub = match &setup.external_hub {
            Some(url) => format!("[hub]\nurl = \"{url}\"\n"),
            None => format!("[hub]\nlisten = \"127.0.0.1:{hub_port}\"\n"),
        };
        let playback = format!("[playback]\nlisten = \"127.0.0.1:{playback_port}\"\n");
        // Retention every second: tests see its effects without waiting a minute.
        let recording = "[recording]\nmin_free_mib = 0\nretention_interval_seconds = 1\n";
        std::fs::write(config.join("appliance.toml"), format!("device_id = \"vela\"\n{hub}{playback}{recording}")).unwrap();
        let mut deployment: Value = serde_json::from_slice(&std::fs::read(repo().join("config/deployment.json")).unwrap()).unwrap();
        deployment["modulesContent"]["rtspsim"]["properties.desired"]["listen"] = json!(format!("127.0.0.1:{camera_port}"));
        deployment["modulesContent"]["rtspsim"]["properties.desired"]["speed"] = json!(setup.camera_speed);
        // Tests watch the engine's events as a module would: through a route.
        deployment["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]["ToObserver"] =
            json!("FROM /messages/modules/avaedge/outputs/* INTO BrokeredEndpoint(\"/modules/observer/inputs/events\")");
        // And trigger it as objectCounter would: module `trigger`'s outputs reach the
        // engine's recordingTrigger input.
        deployment["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]["FromTrigger"] =
            json!("FROM /messages/modules/trigger/outputs/* INTO BrokeredEndpoint(\"/modules/avaedge/inputs/recordingTrigger\")");
        let mc = deployment["modulesContent"].as_object_mut().unwrap();
        if setup.ai {
            mc.get_mut("detector").unwrap()["properties.desired"]["listen"] = json!(detector_listen);
        } else {
            for module in ["detector", "objectCounter"] {
                mc.remove(module);
                mc["$edgeAgent"]["properties.desired"]["modules"].as_object_mut().unwrap().remove(module);
            }
        }
        std::fs::write(config.join("deployment.json"), serde_json::to_vec_pretty(&deployment).unwrap()).unwrap();
        if setup.demo_graph {
            for d in ["topologies", "instances"] {
                for e in std::fs::read_dir(repo().join("config").join(d)).unwrap() {
                    let p = e.unwrap().path();
                    let file = p.file_name().unwrap();
                    let skip =
                        (file == CVR_INSTANCE && !setup.cvr) || (file == AI_INSTANCE && !setup.ai) || (file == MOTION_INSTANCE && setup.ai);
                    if d == "instances" && skip {
                        continue;
                    }
                    let mut text = std::fs::read_to_string(&p)
                        .unwrap()
                        .replace("127.0.0.1:8554", &format!("127.0.0.1:{camera_port}"))
                        .replace(DETECTOR_LISTEN, &detector_listen);
                    if let (Some(t), "instances", true) = (setup.demo_topology, d, p.file_name().unwrap() != CVR_INSTANCE) {
                        let mut v: Value = serde_json::from_str(&text).unwrap();
                        v["properties"]["topologyName"] = json!(t);
                        text = serde_json::to_string_pretty(&v).unwrap();
                    }
                    std::fs::write(config.join(d).join(p.file_name().unwrap()), text).unwrap();
                }
            }
        }
        Appliance { root, config, state, hub_port, camera_port, playback_port, detector_port, hub_url, child: None, lines: None }
    }

    /// Starts `vela run` and waits until the engine serves direct methods.
    pub fn start(&mut self) -> Duration {
        let t0 = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vela"))
            .args(["run", "--config"])
            .arg(&self.config)
            .arg("--state")
            .arg(&self.state)
            .env("VELA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("engine serving direct methods") => break,
                Ok(_) => {}
                Err(_) => panic!("vela run did not come up within 60 s"),
            }
        }
        self.lines = Some(rx);
        t0.elapsed()
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the graceful stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "vela run did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A module client for the test (`observer` receives the engine's routed events).
    pub async fn client(&self, module: &str) -> ModuleClient {
        ModuleClient::connect(ClientOptions::new(self.hub_url.clone(), "vela", module)).await.unwrap()
    }

    /// Calls a direct method on the engine.
    pub async fn call(client: &ModuleClient, method: &str, payload: Value) -> (u16, Option<Value>) {
        client.invoke_method("vela", "avaedge", method, &payload, Duration::from_secs(30)).await.unwrap()
    }

    /// Publishes to the engine's routed input `input`, as objectCounter would.
    pub async fn trigger(client: &ModuleClient, output: &str) {
        client.send_output(output, HubMessage::json(&json!({ "trigger": "test" }))).await.unwrap();
    }

    /// Finished clips (.mp4) under the state's media folder.
    pub fn clips(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let media = self.state.join("media");
        if let Ok(dirs) = std::fs::read_dir(&media) {
            for d in dirs.flatten() {
                if let Ok(files) = std::fs::read_dir(d.path()) {
                    out.extend(files.flatten().map(|f| f.path()).filter(|p| p.extension().is_some_and(|x| x == "mp4")));
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill9();
        std::fs::remove_dir_all(&self.root).ok();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// Waits for the next routed event whose eventType ends with `suffix`.
pub async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<(String, HubMessage)>, suffix: &str, timeout: Duration) -> HubMessage {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((_, m))) if m.property("eventType").is_some_and(|t| t.ends_with(suffix)) => return m,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream closed"),
            Err(_) => panic!("no {suffix} event within {timeout:?}"),
        }
    }
}

/// ffprobe's verdict on a file: (stderr with -v error, packet count, first packet is a keyframe).
pub fn probe(path: &Path) -> (String, usize, bool) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (installed by scripts/test)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let flags: Vec<&str> = text.lines().collect();
    (String::from_utf8_lossy(&out.stderr).to_string(), flags.len(), flags.first().is_some_and(|f| f.contains('K')))
}

/// A plain HTTP/1.1 GET to the appliance (the playback API): status and body.
pub fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[line_end + 4 + size..];
    }
}

/// A GET that must answer 200 with JSON.
pub fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = get(port, path);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}
