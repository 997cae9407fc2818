//! `vela run`: the appliance — edge hub, the modules of `config/deployment.json`, the engine with its store and hot reload.

pub mod config;
pub mod detector;
pub mod ops;
pub mod recording;

use crate::clock::{parse_rfc3339, unix_nanos, SystemClock};
use crate::control::Controller;
use crate::hub::{BrokerConfig, ClientOptions, Deployment, EdgeHub, EmbeddedBroker, HubMessage, ModuleClient, Password};
use crate::runtime::events::{EventOutputs, Events, Identity, OutMessage, Outbox};
use crate::runtime::inputs::HubInputs;
use crate::runtime::packet::{Event, Packet};
use crate::runtime::{Runtime, Services};
use crate::store::Store;
use crate::topology::Generation;
use anyhow::{bail, Context};
use config::{deployment_modules, module_kind, Appliance, ModuleKind};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `vela run` options.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Overrides `[hub] listen` of appliance.toml.
    pub hub_listen: Option<SocketAddr>,
}

/// A running appliance: what `vela run` holds until it is told to stop.
pub struct Running {
    pub hub_url: String,
    _broker: Option<EmbeddedBroker>,
    hub: Option<EdgeHub>,
    engines: Vec<Engine>,
    cameras: Vec<crate::modules::rtspsim::Server>,
    counters: Vec<crate::modules::object_counter::ObjectCounter>,
    detectors: Vec<detector::Detector>,
    recordings: Option<recording::Recordings>,
}

struct Engine {
    runtime: Arc<Runtime>,
    events: Events,
    /// Events handed to the outbox and not yet given to the hub client: a stop waits for
    /// them, so the RecordingStopped of a graceful stop is not lost with the connection.
    unsent: Arc<std::sync::atomic::AtomicUsize>,
    watcher: tokio::task::JoinHandle<()>,
    client: ModuleClient,
}

/// Runs the appliance until Ctrl-C or SIGTERM.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let system = actix::System::with_tokio_rt(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime"));
    system.block_on(async move {
        let app = start(&opts).await?;
        wait_for_stop().await;
        println!("stopping");
        app.stop().await;
        Ok(())
    })
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Starts everything; must run inside an actix System on a multi-thread tokio runtime.
pub async fn start(opts: &RunOptions) -> anyhow::Result<Running> {
    let appliance = Appliance::load(&opts.config_dir)?;
    let manifest_path = opts.config_dir.join("deployment.json");
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest: Value = serde_json::from_str(&manifest_text).with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    let deployment = Deployment::from_value(&manifest).map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
    std::fs::create_dir_all(&opts.state_dir).with_context(|| format!("cannot create the state directory {}", opts.state_dir.display()))?;

    let device = appliance.device_id.clone();
    let (broker, hub_url) = match &appliance.hub.url {
        Some(url) => (None, url.clone()),
        None => {
            let listen = opts.hub_listen.unwrap_or(appliance.hub.listen);
            if !listen.ip().is_loopback() {
                bail!("the embedded broker listens on loopback only; use an external broker to serve {listen}");
            }
            let b = EmbeddedBroker::start(BrokerConfig { port: listen.port(), ..Default::default() })
                .context("cannot start the embedded MQTT broker")?;
            let url = b.url();
            (Some(b), url)
        }
    };
    println!("edge hub: {hub_url} (device '{device}')");
    let options = |module: &str| {
        let mut o = ClientOptions::new(hub_url.clone(), device.clone(), module.to_string());
        o.username = appliance.hub.username.clone();
        o.password = appliance.hub.password.clone().map(Password::new);
        o
    };
    let mut hub_options = ClientOptions::hub(hub_url.clone(), device.clone());
    hub_options.username = appliance.hub.username.clone();
    hub_options.password = appliance.hub.password.clone().map(Password::new);
    let hub = EdgeHub::start(hub_options, deployment.clone()).await.context("cannot start the edge hub")?;

    // Cameras first: the engine re-activates its instances right away.
    let modules = deployment_modules(&manifest);
    let mut cameras = Vec::new();
    for (name, image) in &modules {
        if module_kind(image) == Some(ModuleKind::RtspSim) {
            let desired = deployment.desired.get(name).cloned().unwrap_or_default();
            let listen: SocketAddr = desired
                .get("listen")
                .and_then(Value::as_str)
                .unwrap_or("127.0.0.1:8554")
                .parse()
                .with_context(|| format!("module '{name}': 'listen' is not an address"))?;
            let media = opts.config_dir.join(desired.get("mediaDirectory").and_then(Value::as_str).unwrap_or("media"));
            let mut cfg = crate::modules::rtspsim::Config::new(listen, media.clone());
            // Faster than real time for tests and demos; timestamps stay media-correct.
            cfg.speed = desired.get("speed").and_then(Value::as_f64).unwrap_or(1.0);
            let server = crate::modules::rtspsim::serve(cfg).await.with_context(|| format!("module '{name}'"))?;
            println!("module {name}: simulated cameras at rtsp://{}/media/<file> from {}", server.local_addr(), media.display());
            cameras.push(server);
        }
    }
    // Extension servers before the engine, so that its first frames find them serving.
    let mut detectors = Vec::new();
    for (name, image) in &modules {
        if module_kind(image) == Some(ModuleKind::Detector) {
            let desired = deployment.desired.get(name).cloned().unwrap_or_default();
            let d =
                detector::Detector::start(&Value::Object(desired), &opts.config_dir).await.with_context(|| format!("module '{name}'"))?;
            println!("module {name}: object detector {}", d.describe());
            detectors.push(d);
        }
    }
    let recordings = recording::start(&appliance, &opts.state_dir).await?;
    let mut engines = Vec::new();
    let mut counters = Vec::new();
    for (name, image) in &modules {
        match module_kind(image) {
            Some(ModuleKind::Engine) => {
                let engine = start_engine(name, options(name), opts, recordings.store.clone()).await?;
                let generation =
                    if image.to_ascii_lowercase().contains("live-video-analytics") { Generation::Lva } else { Generation::Ava };
                recordings.alert_to(engine.events.clone(), generation);
                engines.push(engine);
            }
            Some(ModuleKind::ObjectCounter) => {
                let client =
                    ModuleClient::connect(options(name)).await.with_context(|| format!("module '{name}' cannot connect to the hub"))?;
                counters.push(crate::modules::object_counter::start(client).await.with_context(|| format!("module '{name}'"))?);
                println!(
                    "module {name}: objectCounter (twin objectTag/objectConfidence; triggers on output {})",
                    crate::modules::object_counter::OUTPUT
                );
            }
            Some(ModuleKind::RtspSim) | Some(ModuleKind::Detector) => {}
            None => println!("module {name}: image '{image}' is not one Vela runs; start it yourself against {hub_url}"),
        }
    }
    Ok(Running { hub_url, _broker: broker, hub: Some(hub), engines, cameras, counters, detectors, recordings: Some(recordings) })
}

impl Running {
    /// Where the player page and the playback API listen.
    pub fn playback_addr(&self) -> Option<SocketAddr> {
        self.recordings.as_ref().map(|r| r.playback_addr)
    }

    /// Stops instances (finishing their files) without changing their desired state:
    /// they come back on the next start.
    pub async fn stop(mut self) {
        for e in self.engines.drain(..) {
            e.watcher.abort();
            e.runtime.stop_all().await;
            // The last events (RecordingStopped above all) go out before the connection.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
            while e.unsent.load(std::sync::atomic::Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            e.client.disconnect().await;
        }
        if let Some(r) = self.recordings.take() {
            r.stop().await;
        }
        for c in self.counters.drain(..) {
            c.shutdown().await;
        }
        for c in self.cameras.drain(..) {
            c.shutdown().await;
        }
        for d in self.detectors.drain(..) {
            d.stop().await;
        }
        if let Some(h) = self.hub.take() {
            h.shutdown().await;
        }
    }
}

/// Sends events through the module's hub client without blocking media threads.
struct HubOutbox {
    tx: tokio::sync::mpsc::UnboundedSender<OutMessage>,
    unsent: Arc<std::sync::atomic::AtomicUsize>,
}

impl Outbox for HubOutbox {
    fn send(&self, msg: OutMessage) {
        self.unsent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.tx.send(msg).is_err() {
            self.unsent.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn event_outputs(desired: &Value) -> EventOutputs {
    let get = |k: &str| {
        desired
            .as_object()
            .and_then(|m| m.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    EventOutputs { diagnostics: get("diagnosticsEventsOutputName"), operational: get("operationalEventsOutputName") }
}

async fn start_engine(
    name: &str,
    options: ClientOptions,
    opts: &RunOptions,
    recordings: crate::recording::VideoStore,
) -> anyhow::Result<Engine> {
    let client = ModuleClient::connect(options).await.with_context(|| format!("module '{name}' cannot connect to the hub"))?;
    let mut twin = client.twin_desired().await.with_context(|| format!("module '{name}': no twin"))?;
    let desired = twin.borrow().clone();
    let topic = desired
        .get("azureMediaServicesArmId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("vela/{}/{name}", client.device_id()));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<OutMessage>();
    let sender = client.clone();
    let unsent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent = unsent.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let mut msg = HubMessage::new(m.body);
            msg.properties = m.properties;
            msg.message_id = Some(uuid::Uuid::new_v4().to_string());
            msg.content_type = Some("application/json".into());
            msg.content_encoding = Some("utf-8".into());
            if let Err(e) = sender.send_output(&m.output, msg).await {
                tracing::warn!(output = %m.output, error = %e, "event not sent");
            }
            sent.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let events = Events::new(
        Arc::new(HubOutbox { tx, unsent: unsent.clone() }),
        Identity { device: client.device_id().to_string(), module: name.to_string(), topic },
        event_outputs(&desired),
    );
    {
        // Event outputs are dynamic twin properties.
        let events = events.clone();
        tokio::spawn(async move {
            while twin.changed().await.is_ok() {
                let d = twin.borrow().clone();
                events.set_outputs(event_outputs(&d));
            }
        });
    }

    let inputs = HubInputs::default();
    let services = Services {
        events: events.clone(),
        inputs: inputs.clone(),
        state_dir: opts.state_dir.clone(),
        clock: Arc::new(SystemClock),
        recordings: Some(recordings),
        detector_model: Some(opts.config_dir.join(detector::MODEL)),
    };
    let runtime = Arc::new(Runtime::new(services));
    let store = Store::open(&opts.state_dir.join("db"))
        .with_context(|| format!("cannot open the state database in {}", opts.state_dir.display()))?;
    let controller = Arc::new(Controller::new(store, runtime.clone(), Arc::new(SystemClock)));

    let c = controller.clone();
    client
        .serve_methods(move |method, payload| {
            let c = c.clone();
            async move {
                let bytes = serde_json::to_vec(&payload.unwrap_or(Value::Null)).expect("json");
                let r = c.invoke(&method, &bytes).await;
                (r.status, r.payload)
            }
        })
        .await
        .with_context(|| format!("module '{name}' cannot serve direct methods"))?;

    let mut rx = client.inputs().await.with_context(|| format!("module '{name}' cannot receive hub inputs"))?;
    tokio::spawn(async move {
        while let Some((input, msg)) = rx.recv().await {
            let time = msg.property("eventTime").and_then(parse_rfc3339).map(unix_nanos);
            let n = inputs.deliver(&input, Packet::Event(Arc::new(Event { time, body: msg.body, properties: msg.properties })));
            tracing::debug!(input = %input, listeners = n, "hub input");
        }
    });

    for ((g, instance), r) in controller.restore().await {
        tracing::warn!(?g, %instance, status = r.status, payload = ?r.payload, "instance could not be re-activated");
    }
    let watcher = crate::watch::ConfigSync::new(controller.clone(), events.clone(), &opts.config_dir)
        .watch()
        .await
        .context("cannot watch the config folder")?;
    println!(
        "module {name}: engine serving direct methods; config from {}, state in {}",
        opts.config_dir.display(),
        opts.state_dir.display()
    );
    Ok(Engine { runtime, events, unsent, watcher, client })
}

/// `config/` and `state/` next to the working directory, as the README's run command expects.
pub fn default_dirs() -> (PathBuf, PathBuf) {
    (Path::new("config").to_path_buf(), Path::new("state").to_path_buf())
}
