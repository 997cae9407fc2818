//! What the process benchmarks share: the `vela` binary, `vela run` and `vela rtspsim` as child processes, CPU from /proc, quantiles.
#![allow(dead_code)]

#[path = "../../tests/common/mqtt.rs"]
pub mod mqtt;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vela::hub::{ClientOptions, ModuleClient};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// Programs

/// The `vela` binary of this build: cargo sets CARGO_BIN_EXE_vela for benches (it builds the
/// binary first); otherwise `target/release/vela`, built on demand.
pub fn vela_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = option_env!("CARGO_BIN_EXE_vela") {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    let bin = target.join("release/vela");
    if !bin.exists() {
        println!("building {} (cargo build --release --bin vela)", bin.display());
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--bin", "vela"])
            .current_dir(repo())
            .status()
            .context("cannot run cargo")?;
        if !status.success() || !bin.exists() {
            bail!("cargo build --release --bin vela failed ({status})");
        }
    }
    Ok(bin)
}

/// A program on PATH or in the sbin/bin folders Debian uses (mosquitto lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Waits up to `timeout` for a child to exit; kills it if it does not.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

// ---------------------------------------------------------------------------------------
// /proc

pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime+stime in ticks from a /proc/…/stat file (all threads, dead ones included, for a process).
pub fn stat_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn proc_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&PathBuf::from(format!("/proc/{pid}/stat")))
}

/// Per thread: tid → (name, ticks).
pub fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
        if let Some(t) = stat_ticks(&e.path().join("stat")) {
            out.insert(tid, (name, t));
        }
    }
    out
}

/// Thread CPU over a window, grouped by thread name with digits dropped (arbiter-3 →
/// arbiter-#), biggest first: (name, threads, seconds).
pub fn thread_groups(before: &BTreeMap<u32, (String, u64)>, after: &BTreeMap<u32, (String, u64)>, hz: f64) -> Vec<(String, usize, f64)> {
    let mut groups: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (tid, (name, t)) in after {
        let t0 = before.get(tid).map_or(0, |(_, t0)| *t0);
        let key: String = name.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += t.saturating_sub(t0);
    }
    let mut v: Vec<(String, usize, f64)> = groups.into_iter().map(|(k, (n, t))| (k, n, t as f64 / hz)).collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}

/// Established server-side TCP connections on a local port (IPv4 and IPv6).
pub fn established_on(port: u16) -> usize {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "01"
        })
        .count()
}

pub fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

// ---------------------------------------------------------------------------------------
// `vela run` as a process (modelled on tests/common/appliance.rs, with the pid exposed)

pub struct Vela {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub hub_url: String,
    /// The player page and playback API.
    pub playback_port: u16,
    pub log: PathBuf,
    child: Option<Child>,
    lines: Option<mpsc::Receiver<String>>,
}

impl Vela {
    /// A private config: device `vela`, the engine module only (no embedded rtspsim), the
    /// given broker, and routes for a `trigger` module and an `observer` module.
    pub fn new(bin: &Path, external_hub: Option<String>) -> anyhow::Result<Vela> {
        let root = mqtt::scratch_dir("bench-appliance");
        let config = root.join("config");
        let state = root.join("state");
        std::fs::create_dir_all(&config)?;
        let hub_port = mqtt::free_port();
        let hub_url = external_hub.clone().unwrap_or(format!("mqtt://127.0.0.1:{hub_port}"));
        let hub = match &external_hub {
            Some(url) => format!("[hub]\nurl = \"{url}\"\n"),
            None => format!("[hub]\nlisten = \"127.0.0.1:{hub_port}\"\n"),
        };
        let playback_port = mqtt::free_port();
        let playback = format!("[playback]\nlisten = \"127.0.0.1:{playback_port}\"\n");
        std::fs::write(config.join("appliance.toml"), format!("device_id = \"vela\"\n{hub}{playback}"))?;
        let mut d: Value = serde_json::from_slice(&std::fs::read(repo().join("config/deployment.json"))?)?;
        let mc = &mut d["modulesContent"];
        // Benchmarks bring their own cameras and extensions.
        for module in ["rtspsim", "detector", "objectCounter"] {
            mc["$edgeAgent"]["properties.desired"]["modules"].as_object_mut().context("deployment.json: no modules")?.remove(module);
            mc.as_object_mut().context("deployment.json: no modulesContent")?.remove(module);
        }
        let routes = &mut mc["$edgeHub"]["properties.desired"]["routes"];
        routes["ToObserver"] = json!("FROM /messages/modules/avaedge/outputs/* INTO BrokeredEndpoint(\"/modules/observer/inputs/events\")");
        routes["FromTrigger"] =
            json!("FROM /messages/modules/trigger/outputs/* INTO BrokeredEndpoint(\"/modules/avaedge/inputs/recordingTrigger\")");
        std::fs::write(config.join("deployment.json"), serde_json::to_vec_pretty(&d)?)?;
        let log = root.join("vela.log");
        Ok(Vela { bin: bin.to_path_buf(), root, config, state, hub_url, playback_port, log, child: None, lines: None })
    }

    /// The command a reader would type.
    pub fn command_line(&self) -> String {
        format!("VELA_LOG=warn {} run --config {} --state {}", self.bin.display(), self.config.display(), self.state.display())
    }

    /// Starts `vela run`; returns once the engine serves direct methods.
    pub fn start(&mut self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .arg("--state")
            .arg(&self.state)
            .env("VELA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
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
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("engine serving direct methods") => break,
                Ok(_) => {}
                Err(_) => {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    bail!("vela run did not come up within 60 s ({}); its log:\n{log}", self.command_line());
                }
            }
        }
        self.lines = Some(rx);
        Ok(t0.elapsed())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (the graceful stop), SIGKILL after 30 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            if !wait_or_kill(&mut c, Duration::from_secs(30)) {
                println!("  (vela run did not stop within 30 s of SIGTERM; killed)");
            }
        }
    }

    pub async fn client(&self, module: &str) -> anyhow::Result<ModuleClient> {
        let mut o = ClientOptions::new(self.hub_url.clone(), "vela", module);
        o.reconnect_min = Duration::from_millis(10);
        o.reconnect_max = Duration::from_millis(100);
        ModuleClient::connect(o).await.with_context(|| format!("module '{module}' cannot connect to {}", self.hub_url))
    }

    /// WARN/ERROR lines the appliance logged, with a few examples.
    pub fn log_summary(&self) -> (usize, Vec<String>) {
        let text = strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let bad: Vec<&str> = text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked")).collect();
        // One example per kind of message (timestamp dropped, numbers ignored), with its count.
        let mut kinds: Vec<(String, String, usize)> = Vec::new();
        for l in &bad {
            let msg = l.split_once(' ').map_or(*l, |(_, m)| m).trim();
            let key: String = msg.chars().filter(|c| !c.is_ascii_digit()).take(90).collect();
            match kinds.iter_mut().find(|(k, _, _)| *k == key) {
                Some(k) => k.2 += 1,
                None => kinds.push((key, msg.chars().take(240).collect(), 1)),
            }
        }
        (bad.len(), kinds.into_iter().take(8).map(|(_, m, n)| format!("{n}× {m}")).collect())
    }
}

impl Drop for Vela {
    fn drop(&mut self) {
        self.kill9();
        if keep() {
            println!("  (kept {})", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// `VELA_BENCH_KEEP=1` keeps the scratch folders (config, state, logs, recordings).
pub fn keep() -> bool {
    std::env::var_os("VELA_BENCH_KEEP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A log line without its ANSI colours (the appliance colours its log even into a file).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub async fn call(c: &ModuleClient, method: &str, payload: Value) -> anyhow::Result<(u16, Option<Value>)> {
    c.invoke_method("vela", "avaedge", method, &payload, Duration::from_secs(30)).await.with_context(|| format!("{method} failed"))
}

pub async fn call_ok(c: &ModuleClient, method: &str, payload: Value) -> anyhow::Result<Option<Value>> {
    let (status, body) = call(c, method, payload).await?;
    if !(200..300).contains(&status) {
        bail!("{method} answered {status}: {}", body.map(|b| b.to_string()).unwrap_or_default());
    }
    Ok(body)
}

pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `vela rtspsim` as its own process, so that its CPU is not the measured process's.
pub struct RtspSim {
    pub media: PathBuf,
    pub port: u16,
    child: Child,
    pub command: String,
}

impl RtspSim {
    /// Serves every file of `media` (a scratch folder, removed afterwards) at `speed`.
    pub fn start(bin: &Path, media: PathBuf, speed: f64) -> anyhow::Result<RtspSim> {
        let port = mqtt::free_port();
        let command = format!("{} rtspsim --listen 127.0.0.1:{port} --media {} --speed {speed}", bin.display(), media.display());
        let child = Command::new(bin)
            .args(["rtspsim", "--listen", &format!("127.0.0.1:{port}"), "--media"])
            .arg(&media)
            .args(["--speed", &speed.to_string()])
            .env("VELA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot run vela rtspsim")?;
        let sim = RtspSim { media, port, child, command };
        if !wait_port(port, Duration::from_secs(10)) {
            bail!("vela rtspsim did not listen on {port} within 10 s ({})", sim.command);
        }
        Ok(sim)
    }

    pub fn url(&self, file: &str) -> String {
        format!("rtsp://127.0.0.1:{}/media/{file}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sessions(&self) -> usize {
        established_on(self.port)
    }

    /// Waits until `n` RTSP connections are established; returns whether they were.
    pub fn wait_sessions(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.sessions() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RtspSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The media folder is the bench's scratch copy; never anything outside the temp dir
        // (a bench once handed it config/media, which this then deleted).
        if !keep() && self.media.starts_with(std::env::temp_dir()) {
            let _ = std::fs::remove_dir_all(&self.media);
        }
    }
}
