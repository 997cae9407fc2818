//! The appliance as a process: hub round trips, CPU per recorded camera, restart time.
//!
//! 1. `latency`: direct-method round trip over the hub — `GraphTopologyList` from a
//!    `ModuleClient` to the engine (`device vela, module avaedge`) of a `vela run` process,
//!    with the embedded broker and again with mosquitto as external broker (when
//!    installed). A trivial in-bench module (`echo`) on the same broker is the reference:
//!    the difference is what the engine adds.
//! 2. `cpu`: 16 cameras from one `vela rtspsim` process (real time), 16 live pipelines of
//!    `config/topologies/evr-hub-trigger.json` (RtspSource → SignalGate ← IotHubMessageSource
//!    → FileSink); the appliance's CPU (utime+stime from /proc) over a window with the gate
//!    closed, then with all 16 recording; then 16 `ffmpeg -c copy` RTSP→MP4 recorders over
//!    the same window, as the yardstick. CPU seconds per camera-minute and ratios.
//! 3. `restart`: `kill -9` of the appliance, start again on the same state folder; time
//!    until `livePipelineList` says all 16 are active (and until the 16 RTSP sessions are
//!    back at the camera).
//!
//! Numbers and ratios measured side by side in one run; it never fails on timing, only when
//! something cannot start.
//!
//! `cargo bench --bench appliance [-- latency|cpu|restart ...] [--calls N] [--window SECS] [--cameras N]`

mod common;

use common::*;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};
use vela::hub::{HubMessage, ModuleClient};

const REPRO: &str = "cargo bench --bench appliance --";

// ---------------------------------------------------------------------------------------
// Options

struct Opts {
    sections: Vec<String>,
    calls: usize,
    window: Duration,
    cameras: usize,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts { sections: Vec::new(), calls: 1000, window: Duration::from_secs(20), cameras: 16 };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = |name: &str| -> anyhow::Result<u64> {
                args.next().and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("{name} needs a positive number"))
            };
            match a.as_str() {
                "--bench" => {} // cargo passes it to harness = false benches
                "--calls" => o.calls = value("--calls")?.max(1) as usize,
                "--window" => o.window = Duration::from_secs(value("--window")?.max(1)),
                "--cameras" => o.cameras = value("--cameras")?.clamp(1, 99) as usize,
                "latency" | "cpu" | "restart" => o.sections.push(a),
                other => {
                    bail!("unknown argument {other:?}; usage: {REPRO} [latency|cpu|restart ...] [--calls N] [--window SECS] [--cameras N]")
                }
            }
        }
        Ok(o)
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }
}

// ---------------------------------------------------------------------------------------
// 1. Direct-method latency

#[derive(Clone, Copy)]
struct Latency {
    p50: Duration,
    p99: Duration,
    mean: Duration,
    max: Duration,
    errors: usize,
}

impl Latency {
    fn show(&self) -> String {
        let e = if self.errors > 0 { format!("  ({} calls not 200)", self.errors) } else { String::new() };
        format!(
            "p50 {:>7.0} µs  p99 {:>7.0} µs  mean {:>7.0} µs  max {:>7.0} µs{e}",
            us(self.p50),
            us(self.p99),
            us(self.mean),
            us(self.max)
        )
    }
}

async fn round_trips(c: &ModuleClient, module: &str, calls: usize) -> anyhow::Result<Latency> {
    let payload = json!({"@apiVersion": "2.0"});
    let mut errors = 0;
    for _ in 0..calls.div_ceil(20).max(20) {
        c.invoke_method("vela", module, "GraphTopologyList", &payload, Duration::from_secs(10)).await?;
    }
    let mut v = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = c.invoke_method("vela", module, "GraphTopologyList", &payload, Duration::from_secs(10)).await;
        v.push(t.elapsed());
        if !matches!(r, Ok((200, _))) {
            errors += 1;
        }
    }
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    v.sort();
    Ok(Latency { p50: quantile(&v, 0.5), p99: quantile(&v, 0.99), mean, max: *v.last().unwrap(), errors })
}

struct LatencyRow {
    broker: String,
    engine: Latency,
    echo: Latency,
}

async fn latency_on(bin: &Path, external: Option<(&str, String)>, calls: usize) -> anyhow::Result<LatencyRow> {
    let mut v = Vela::new(bin, external.as_ref().map(|(_, u)| u.clone()))?;
    let broker = match &external {
        Some((name, url)) => format!("{name} ({url})"),
        None => format!("embedded ({})", v.hub_url),
    };
    let up = v.start()?;
    println!("  broker {broker}: appliance up in {:.0} ms", up.as_secs_f64() * 1e3);
    let caller = v.client("bench").await?;
    let engine = round_trips(&caller, "avaedge", calls).await?;
    println!("    engine avaedge  {}", engine.show());
    // The reference: a module that answers at once, on the same broker.
    let echo = v.client("echo").await?;
    echo.serve_methods(|_, _| async { (200, Some(json!({"value": []}))) }).await?;
    let echo_lat = round_trips(&caller, "echo", calls).await?;
    println!("    in-bench echo   {}", echo_lat.show());
    echo.disconnect().await;
    caller.disconnect().await;
    v.stop();
    Ok(LatencyRow { broker, engine, echo: echo_lat })
}

// ---------------------------------------------------------------------------------------
// 2. CPU per camera

/// A scratch media folder of `cameras` symlinks to vtest.mkv (one camera each).
fn vtest_cameras(cameras: usize) -> anyhow::Result<PathBuf> {
    let media = mqtt::scratch_dir("bench-media");
    let source = repo().join("config/media/vtest.mkv");
    for i in 1..=cameras {
        std::os::unix::fs::symlink(&source, media.join(cam_file(i)))?;
    }
    Ok(media)
}

fn cam_file(i: usize) -> String {
    format!("cam{i:02}.mkv")
}

fn cam_name(i: usize) -> String {
    format!("cam{i:02}")
}

/// CPU of a set of processes over a window.
struct Window {
    seconds: f64,
    /// CPU seconds of the measured processes (appliance or ffmpegs).
    cpu: f64,
    /// CPU seconds of rtspsim in the same window.
    sim: f64,
    /// Bytes written by the recorders in the window.
    written: u64,
    threads: Vec<(String, usize, f64)>,
}

impl Window {
    fn per_camera_minute(&self, cameras: usize) -> f64 {
        self.cpu / (cameras as f64 * self.seconds / 60.0)
    }

    fn sim_per_camera_minute(&self, cameras: usize) -> f64 {
        self.sim / (cameras as f64 * self.seconds / 60.0)
    }
}

/// Measures CPU of `pids` (and their threads when `threads`), rtspsim's and bytes under
/// `written` for `window`.
async fn measure(pids: &[u32], sim: u32, written: &Path, window: Duration, hz: f64, threads: bool) -> anyhow::Result<Window> {
    let total =
        |pids: &[u32]| -> anyhow::Result<u64> { pids.iter().map(|p| proc_ticks(*p).ok_or_else(|| anyhow!("process {p} is gone"))).sum() };
    let th0 = if threads { thread_ticks(pids[0]) } else { BTreeMap::new() };
    let (c0, s0, b0, t0) = (total(pids)?, proc_ticks(sim).unwrap_or(0), bytes_under(written), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, s1, b1, seconds) = (total(pids)?, proc_ticks(sim).unwrap_or(0), bytes_under(written), t0.elapsed().as_secs_f64());
    let threads = if threads { thread_groups(&th0, &thread_ticks(pids[0]), hz) } else { Vec::new() };
    Ok(Window {
        seconds,
        cpu: c1.saturating_sub(c0) as f64 / hz,
        sim: s1.saturating_sub(s0) as f64 / hz,
        written: b1.saturating_sub(b0),
        threads,
    })
}

fn show_window(label: &str, w: &Window, cameras: usize) {
    println!(
        "  {label:<22} {:>6.2} CPU-s in {:.1} s = {:.3} CPU-s per camera-minute ({:>5.1} % of one core); rtspsim {:.2} CPU-s ({:.3}/camera-minute); written {:.1} MB ({:.0} kB/s per camera)",
        w.cpu,
        w.seconds,
        w.per_camera_minute(cameras),
        100.0 * w.cpu / w.seconds,
        w.sim,
        w.sim_per_camera_minute(cameras),
        w.written as f64 / 1e6,
        w.written as f64 / 1e3 / w.seconds / cameras as f64,
    );
    if !w.threads.is_empty() {
        let top: Vec<String> = w.threads.iter().take(6).map(|(n, k, s)| format!("{n}×{k} {s:.2}s")).collect();
        println!("  {:<22} threads: {}", "", top.join(", "));
    }
}

/// Sets the topology and `cameras` live pipelines and activates them.
async fn set_up_pipelines(c: &ModuleClient, sim: &RtspSim, cameras: usize) -> anyhow::Result<()> {
    let mut topology: Value = serde_json::from_slice(&std::fs::read(repo().join("config/topologies/evr-hub-trigger.json"))?)?;
    // Keep the gates open for the whole window once triggered (the maximum is capped at 1 h).
    let gate = topology["properties"]["processors"]
        .as_array_mut()
        .and_then(|p| p.iter_mut().find(|n| n["name"] == "signalGate"))
        .context("evr-hub-trigger.json: no signalGate")?;
    gate["minimumActivationTime"] = json!("PT60S");
    gate["maximumActivationTime"] = json!("PT120S");
    let name = topology["name"].as_str().context("topology without a name")?.to_string();
    call_ok(c, "pipelineTopologySet", topology).await?;
    for i in 1..=cameras {
        let instance = json!({
            "@apiVersion": "1.1",
            "name": cam_name(i),
            "properties": { "topologyName": name, "parameters": [{ "name": "rtspUrl", "value": sim.url(&cam_file(i)) }] }
        });
        call_ok(c, "livePipelineSet", instance).await?;
        call_ok(c, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": cam_name(i)})).await?;
    }
    Ok(())
}

/// How many live pipelines `livePipelineList` says are active (None: no answer).
async fn active_count(c: &ModuleClient) -> Option<usize> {
    let (status, body) =
        c.invoke_method("vela", "avaedge", "livePipelineList", &json!({"@apiVersion": "1.1"}), Duration::from_millis(500)).await.ok()?;
    if status != 200 {
        return None;
    }
    let list = body?;
    Some(list["value"].as_array()?.iter().filter(|p| p["properties"]["state"] == "active").count())
}

struct CpuResult {
    closed: Option<Window>,
    open: Option<Window>,
    ffmpeg: Option<Window>,
    recordings_started: usize,
    restart: Option<Restart>,
    log: (usize, Vec<String>),
}

struct Restart {
    kill_to_spawn: Duration,
    engine_ready: Duration,
    first_answer: Option<Duration>,
    all_active: Option<Duration>,
    sessions_back: Option<Duration>,
}

async fn cpu_and_restart(bin: &Path, o: &Opts, hz: f64) -> anyhow::Result<CpuResult> {
    let n = o.cameras;
    let sim = RtspSim::start(bin, vtest_cameras(n)?, 1.0)?;
    println!("  cameras: {}", sim.command);
    let mut v = Vela::new(bin, None)?;
    v.start()?;
    println!("  appliance: {} (pid {})", v.command_line(), v.pid());
    let c = v.client("bench").await?;
    set_up_pipelines(&c, &sim, n).await?;
    if !sim.wait_sessions(n, Duration::from_secs(30)) {
        println!("  only {} of {n} RTSP sessions established after 30 s", sim.sessions());
    }
    let media = v.state.join("media");
    let mut result = CpuResult { closed: None, open: None, ffmpeg: None, recordings_started: 0, restart: None, log: (0, vec![]) };

    if o.wants("cpu") {
        // Past the 5 s pre-roll, so the gates' buffers are in steady state.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let w = measure(&[v.pid()], sim.pid(), &media, o.window, hz, true).await?;
        show_window("vela, gates closed", &w, n);
        result.closed = Some(w);

        let observer = v.client("observer").await?;
        let mut events = observer.inputs().await?;
        let trigger = v.client("trigger").await?;
        trigger.send_output("objectCountTrigger", HubMessage::json(&json!({"trigger": "bench"}))).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while result.recordings_started < n {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some((_, m))) if m.property("eventType").is_some_and(|t| t.ends_with("Operational.RecordingStarted")) => {
                    result.recordings_started += 1
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        drop(events);
        observer.disconnect().await;
        trigger.disconnect().await;
        println!("  trigger sent: {} of {n} RecordingStarted events within 10 s", result.recordings_started);
        // Past the burst of pre-roll frames written at once.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let w = measure(&[v.pid()], sim.pid(), &media, o.window, hz, true).await?;
        show_window("vela, gates open", &w, n);
        result.open = Some(w);
    }

    if o.wants("restart") {
        let before = active_count(&c).await.unwrap_or(0);
        let t0 = Instant::now();
        v.kill9();
        let kill_to_spawn = t0.elapsed();
        v.start()?;
        let engine_ready = t0.elapsed();
        let (mut first_answer, mut all_active, mut sessions_back) = (None, None, None);
        let deadline = t0 + Duration::from_secs(60);
        while Instant::now() < deadline && (all_active.is_none() || sessions_back.is_none()) {
            if sessions_back.is_none() && sim.sessions() >= n {
                sessions_back = Some(t0.elapsed());
            }
            if all_active.is_none() {
                if let Some(k) = active_count(&c).await {
                    first_answer.get_or_insert(t0.elapsed());
                    if k >= n {
                        all_active = Some(t0.elapsed());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ms = |d: Option<Duration>| d.map_or("not within 60 s".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
        println!("  kill -9 with {before} active; restarted (pid {}):", v.pid());
        println!(
            "    process reaped after {:.0} ms; engine serving after {:.0} ms",
            kill_to_spawn.as_secs_f64() * 1e3,
            engine_ready.as_secs_f64() * 1e3
        );
        println!("    first livePipelineList answer {}; all {n} active {}", ms(first_answer), ms(all_active));
        println!("    all {n} RTSP sessions re-established at the camera {}", ms(sessions_back));
        result.restart = Some(Restart { kill_to_spawn, engine_ready, first_answer, all_active, sessions_back });
    }
    c.disconnect().await;
    v.stop();
    result.log = v.log_summary();
    drop(v);

    if o.wants("cpu") {
        match find_program("ffmpeg") {
            None => println!("  ffmpeg not installed: no yardstick (apt-get install ffmpeg)"),
            Some(ffmpeg) => {
                let w = ffmpeg_window(&ffmpeg, &sim, o, hz).await?;
                show_window("ffmpeg -c copy", &w, n);
                result.ffmpeg = Some(w);
            }
        }
    }
    Ok(result)
}

/// `n` ffmpeg RTSP→MP4 stream copies, measured like the appliance.
async fn ffmpeg_window(ffmpeg: &Path, sim: &RtspSim, o: &Opts, hz: f64) -> anyhow::Result<Window> {
    let n = o.cameras;
    // Let the previous sessions go (the camera restarts its files for new viewers).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.sessions() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = mqtt::scratch_dir("bench-ffmpeg");
    struct Kids(Vec<Child>, PathBuf);
    impl Drop for Kids {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
            if keep() {
                println!("  (kept {})", self.1.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.1);
            }
        }
    }
    let mut kids = Kids(Vec::new(), out.clone());
    for i in 1..=n {
        let file = out.join(format!("{}.mp4", cam_name(i)));
        let err = std::fs::File::create(out.join(format!("{}.err", cam_name(i))))?;
        let child = Command::new(ffmpeg)
            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", &sim.url(&cam_file(i)), "-c", "copy", "-f", "mp4", "-y"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .context("cannot run ffmpeg")?;
        kids.0.push(child);
    }
    println!(
        "  yardstick: {n} × {} -v error -rtsp_transport tcp -i {} -c copy -f mp4 -y {}/camNN.mp4",
        ffmpeg.display(),
        sim.url(&cam_file(1)).replace("cam01", "camNN"),
        out.display()
    );
    if !sim.wait_sessions(n, Duration::from_secs(20)) {
        bail!("only {} of {n} ffmpeg RTSP sessions established after 20 s", sim.sessions());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids: Vec<u32> = kids.0.iter().map(Child::id).collect();
    let w = measure(&pids, sim.pid(), &out, o.window, hz, false).await?;
    for c in &kids.0 {
        sigterm(c.id());
    }
    for c in &mut kids.0 {
        wait_or_kill(c, Duration::from_secs(5));
    }
    let mut errors = String::new();
    for i in 1..=n {
        errors += &std::fs::read_to_string(out.join(format!("{}.err", cam_name(i)))).unwrap_or_default();
    }
    let errors: Vec<&str> = errors.lines().filter(|l| !l.contains("Exiting normally") && !l.trim().is_empty()).collect();
    if !errors.is_empty() {
        println!("  ffmpeg said ({} lines), e.g.: {}", errors.len(), errors[0]);
    }
    Ok(w)
}

// ---------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let o = Opts::parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(o))
}

async fn run(o: Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = vela_binary()?;
    let hz = clock_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("vela appliance benchmark — {} ({cores} cores, CPU times in {hz} Hz ticks)", bin.display());
    let mut latency = Vec::new();
    if o.wants("latency") {
        println!(
            "\n== 1. Direct-method round trip: {} × GraphTopologyList {{\"@apiVersion\":\"2.0\"}} → device vela, module avaedge ({REPRO} latency --calls {})",
            o.calls, o.calls
        );
        latency.push(latency_on(&bin, None, o.calls).await?);
        match find_program("mosquitto") {
            None => println!("  mosquitto not installed: external-broker row skipped (apt-get install mosquitto)"),
            Some(p) => {
                let m = mqtt::Mosquitto::start();
                println!("  mosquitto: {} -c <listener {} 127.0.0.1, allow_anonymous true, persistence false>", p.display(), m.port);
                latency.push(latency_on(&bin, Some(("mosquitto", m.url())), o.calls).await?);
            }
        }
    }
    let mut cpu = None;
    if o.wants("cpu") || o.wants("restart") {
        println!(
            "\n== 2. CPU per camera (EVR, {} cameras of vtest.mkv 768x576 at real time, {} s windows) ({REPRO} cpu --cameras {} --window {})\n== 3. kill -9 → all active again ({REPRO} restart)",
            o.cameras,
            o.window.as_secs(),
            o.cameras,
            o.window.as_secs()
        );
        cpu = Some(cpu_and_restart(&bin, &o, hz).await?);
    }

    println!("\n== Summary ({:.1} s in all; CPU resolution one tick = {:.3} s)", started.elapsed().as_secs_f64(), 1.0 / hz);
    println!("{:<52} {:<58} reproduce", "measurement", "result");
    let row = |m: &str, r: String, how: &str| println!("{m:<52} {r:<58} {REPRO} {how}");
    for l in &latency {
        let short = l.broker.split(' ').next().unwrap_or("");
        let lat = |x: &Latency| {
            let e = if x.errors > 0 { format!(" ({} errors)", x.errors) } else { String::new() };
            format!("p50 {:.0} µs, p99 {:.0} µs, mean {:.0} µs{e}", us(x.p50), us(x.p99), us(x.mean))
        };
        row(&format!("round trip to the engine, {short} broker"), lat(&l.engine), "latency");
        row(&format!("  reference: in-bench echo module, {short} broker"), lat(&l.echo), "latency");
    }
    if let Some(c) = &cpu {
        let n = o.cameras;
        let pcm =
            |w: &Option<Window>| w.as_ref().map_or("n/a".to_string(), |w| format!("{:.3} CPU-s per camera-minute", w.per_camera_minute(n)));
        let how = format!("cpu --cameras {n} --window {}", o.window.as_secs());
        if c.closed.is_some() {
            row("vela run, gates closed", pcm(&c.closed), &how);
            row("vela run, gates open (recording)", pcm(&c.open), &how);
            row("ffmpeg -c copy RTSP→MP4", pcm(&c.ffmpeg), &how);
            let ratio = |a: &Option<Window>| match (a, &c.ffmpeg) {
                (Some(a), Some(f)) if f.cpu > 0.0 => format!("{:.2}×", a.cpu / a.seconds / (f.cpu / f.seconds)),
                _ => "n/a".to_string(),
            };
            row("ratio vela gates closed / ffmpeg", ratio(&c.closed), &how);
            row("ratio vela gates open / ffmpeg", ratio(&c.open), &how);
            let sims: Vec<String> = [("closed", &c.closed), ("open", &c.open), ("ffmpeg", &c.ffmpeg)]
                .iter()
                .filter_map(|(k, w)| w.as_ref().map(|w| format!("{k} {:.3}", w.sim_per_camera_minute(n))))
                .collect();
            row("rtspsim (separate process), per camera-minute", sims.join(", "), &how);
        }
        if let Some(r) = &c.restart {
            let ms = |d: Option<Duration>| d.map_or("not within 60 s".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
            row(&format!("kill -9 → all {n} live pipelines active"), ms(r.all_active), "restart");
            row(
                "  (reaped / engine serving / list answer / RTSP back)",
                format!("{} / {} / {} / {}", ms(Some(r.kill_to_spawn)), ms(Some(r.engine_ready)), ms(r.first_answer), ms(r.sessions_back)),
                "restart",
            );
        }
        if c.log.0 > 0 {
            println!("\nthe appliance logged {} WARN/ERROR lines, e.g.:", c.log.0);
            for k in &c.log.1 {
                println!("  {k}");
            }
        }
    }
    Ok(())
}
