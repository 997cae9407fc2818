//! The `vela` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vela", version, about = "Live video analytics appliance: runs LVA/AVA media graphs at the edge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: edge hub, the modules of config/deployment.json, the engine.
    Run {
        /// Configuration folder (appliance.toml, deployment.json, topologies/, instances/, media/).
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// State folder (database, recordings); relative paths in topologies resolve under it.
        #[arg(long, default_value = "state")]
        state: PathBuf,
        /// Address of the embedded MQTT broker (overrides appliance.toml).
        #[arg(long)]
        hub_listen: Option<SocketAddr>,
    },
    /// Validate topology files (and an instance with its topology) without running them.
    Check {
        /// Topology or instance JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// An instance (live pipeline) file to apply to the single topology given.
        #[arg(long)]
        instance: Option<PathBuf>,
        /// Treat warnings (such as parameters declared but never used) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Serve every file of a folder as a looping RTSP camera at rtsp://ADDR/media/FILE.
    Rtspsim {
        #[arg(long, default_value = "127.0.0.1:8554")]
        listen: SocketAddr,
        #[arg(long, default_value = "config/media")]
        media: PathBuf,
        #[arg(long, requires = "password")]
        user: Option<String>,
        #[arg(long, requires = "user")]
        password: Option<String>,
        /// Pace: 1 is real time; 4 sends four times faster (timestamps stay correct).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Serve the built-in object detector (NanoDet-m, COCO-80) over HTTP: the LVA/AVA HTTP
    /// extension contract at /score, Custom Vision's /image, GET /health; and, with
    /// --grpc-listen, the LVA/AVA gRPC extension contract (docs/detector.md).
    Detect {
        #[arg(long, default_value = vela::modules::detector::server::DEFAULT_LISTEN)]
        listen: String,
        /// An ONNX model with NanoDet-m's layout.
        #[arg(long, default_value = vela::modules::detector::DEFAULT_MODEL)]
        model: PathBuf,
        /// Minimum confidence reported, 0 to 1.
        #[arg(long, default_value_t = vela::modules::detector::DEFAULT_THRESHOLD)]
        threshold: f32,
        /// Boxes of one class overlapping by more than this IoU are merged (NMS).
        #[arg(long, default_value_t = vela::modules::detector::DEFAULT_NMS_IOU)]
        nms_iou: f32,
        /// COCO classes to report, comma-separated (e.g. person,car); all 80 when omitted.
        #[arg(long, value_delimiter = ',')]
        classes: Vec<String>,
        /// Model threads (each runs the model on one core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Pictures run through the model together at most (1: no batching).
        #[arg(long, default_value_t = vela::modules::detector::server::DEFAULT_MAX_BATCH)]
        max_batch: usize,
        /// Pictures that may wait for the model; more are answered 503 with Retry-After.
        #[arg(long, default_value_t = vela::modules::detector::server::DEFAULT_QUEUE)]
        queue: usize,
        /// Path of the HTTP extension route (repeat for several).
        #[arg(long = "path", default_value = vela::modules::detector::server::DEFAULT_SCORE_PATH)]
        paths: Vec<String>,
        /// Size of image/x-raw bodies whose request does not give it (WIDTHxHEIGHT).
        #[arg(long, default_value = "416x416")]
        raw_size: String,
        /// Pixel format of image/x-raw bodies whose request does not give it (LVA's names).
        #[arg(long, default_value = "bgr24")]
        raw_format: String,
        /// Also serve the LVA/AVA gRPC extension contract at HOST:PORT (a GrpcExtension's
        /// endpoint tcp://HOST:PORT), on the same model threads and queue.
        #[arg(long)]
        grpc_listen: Option<String>,
        /// gRPC streams must present this user and --grpc-password (x-ms-authentication: Basic).
        #[arg(long, requires = "grpc_password", requires = "grpc_listen")]
        grpc_user: Option<String>,
        #[arg(long, requires = "grpc_user")]
        grpc_password: Option<String>,
    },
    /// Run an operations.json (the samples' console app) against a running appliance.
    Ops {
        /// The hub, as mqtt://HOST:PORT.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        hub: String,
        #[arg(long, default_value = "vela")]
        device: String,
        /// The engine module to call.
        #[arg(long, default_value = "avaedge")]
        module: String,
        /// Do not wait for Enter at WaitForInput steps.
        #[arg(long)]
        no_wait: bool,
        /// Exit with status 1 when any call answered 400 or more.
        #[arg(long)]
        fail_on_error: bool,
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    // rumqttd logs ERROR on every ordinary client disconnect; the hub reports real
    // broker trouble itself. VELA_LOG overrides (e.g. VELA_LOG=info,rumqttd=warn).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VELA_LOG").unwrap_or_else(|_| "warn,rumqttd=off".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // `vela check … | head` must end quietly, not panic on a closed pipe.
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vela: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Run { config, state, hub_listen } => {
            drop(out);
            vela::app::run(vela::app::RunOptions { config_dir: config, state_dir: state, hub_listen })?;
            Ok(true)
        }
        Command::Check { files, instance, strict } => {
            let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            if let Some(inst) = instance {
                anyhow::ensure!(files.len() == 1, "--instance applies to exactly one topology file");
                let r = vela::check::check_with_instance(
                    &files[0].display().to_string(),
                    &read(&files[0])?,
                    &inst.display().to_string(),
                    &read(&inst)?,
                    strict,
                );
                writeln!(out, "{}", r.text)?;
                return Ok(r.ok);
            }
            let mut all_ok = true;
            for f in &files {
                let r = vela::check::check_file(&f.display().to_string(), &read(f)?, strict);
                writeln!(out, "{}", r.text)?;
                all_ok &= r.ok;
            }
            Ok(all_ok)
        }
        Command::Rtspsim { listen, media, user, password, speed } => {
            drop(out);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(vela::modules::rtspsim::run(listen, media, user.zip(password), speed))?;
            Ok(true)
        }
        Command::Detect {
            listen,
            model,
            threshold,
            nms_iou,
            classes,
            threads,
            max_batch,
            queue,
            paths,
            raw_size,
            raw_format,
            grpc_listen,
            grpc_user,
            grpc_password,
        } => {
            use vela::modules::detector::{body, serve, Credentials, DetectorConfig, ServerConfig};
            let (width, height) = body::parse_size(&raw_size).with_context(|| format!("--raw-size {raw_size:?} is not WIDTHxHEIGHT"))?;
            let format =
                body::pixel_format(&raw_format).with_context(|| format!("--raw-format {raw_format:?} is not an LVA pixel format"))?;
            let classes = classes.into_iter().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect();
            let config = ServerConfig {
                listen,
                model,
                detector: DetectorConfig { threshold, nms_iou, classes, ..DetectorConfig::default() },
                threads,
                max_batch,
                queue,
                score_paths: paths,
                raw: body::RawSpec { width, height, format, stride: None },
                grpc_listen,
                grpc_credentials: grpc_user.zip(grpc_password).map(|(u, p)| Credentials::new(u, p)),
                ..ServerConfig::default()
            };
            let auth = config.grpc_credentials.is_some();
            actix_rt::System::new().block_on(async move {
                let serving = serve(config).await?;
                let d = &serving.detector;
                let batching = if d.batching() { "batches in one model call" } else { "batches run picture by picture" };
                let grpc = match &serving.grpc {
                    Some(g) if auth => format!(" and tcp://{} (gRPC extension, credentials required)", g.addr),
                    Some(g) => format!(" and tcp://{} (gRPC extension)", g.addr),
                    None => String::new(),
                };
                writeln!(
                    out,
                    "detector: {} loaded in {} ms ({batching}); listening on http://{}/ (score, image, health){grpc}",
                    d.model_path().display(),
                    d.load_time().as_millis(),
                    serving.addr
                )?;
                drop(out);
                serving.server.await?;
                anyhow::Ok(true)
            })
        }
        Command::Ops { hub, device, module, no_wait, fail_on_error, file } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let opts = vela::app::ops::OpsOptions { hub, device, module, file, no_wait };
            let steps = rt.block_on(vela::app::ops::run(&opts, &mut out))?;
            let failed = steps.iter().any(|s| matches!(s, vela::app::ops::Step::Called { status, .. } if *status >= 400));
            Ok(!(fail_on_error && failed))
        }
    }
}
