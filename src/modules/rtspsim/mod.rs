//! `rtspsim`: an RTSP server that loops the media files of a folder as simulated live cameras.
//!
//! Replaces the live555-based rtspsim module of the Azure samples: every file of the media
//! folder is a camera at `rtsp://ADDR/media/FILENAME`, streamed as RTP/H.264 (RFC 2326,
//! RFC 6184) over TCP-interleaved or UDP transport, optionally behind Basic and Digest
//! authentication. Frames go out at their real pace (or `speed` times faster for tests),
//! RTP timestamps are the file's own, and the loop continues the timeline seamlessly.
//!
//! For robustness tests a client can ask for a damaged stream, per session, with query
//! parameters on the URL: `rtsp://ADDR/media/FILE?damage=flip:0.01,drop:0.01,reorder:0.02,truncate:0.01&seed=7`
//! flips payload bits, drops and reorders RTP packets and truncates access units,
//! deterministically from the seed ([`damage`] has the syntax). An invalid spec is refused
//! with 400 and the reason; a URL without a query streams exactly as it always did.
//!
//! Layout: pure cores — [`rtsp`] (wire format), [`sdp`], [`packetize`] (RTP/RTCP),
//! [`auth`], [`clock`] (loop schedule), [`damage`] — and thin async shells: [`library`] (file cache),
//! [`camera`] (one paced broadcast per file), [`session`] (one task per connection).

pub mod auth;
pub mod camera;
pub mod clock;
pub mod damage;
pub mod library;
pub mod packetize;
pub mod rtsp;
pub mod sdp;
mod session;

pub use auth::{AuthSchemes, Credentials};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the simulator runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Every file directly inside is served as `/media/FILENAME`.
    pub media_dir: PathBuf,
    /// `None`: no authentication.
    pub credentials: Option<Credentials>,
    pub auth_schemes: AuthSchemes,
    /// Pacing factor: 1.0 is real time, 4.0 sends four times faster. RTP timestamps stay
    /// media-correct at any speed; only the sending pace changes.
    pub speed: f64,
    /// Inactivity after which a session (and its connection) is dropped; announced in `Session: id;timeout=N`.
    pub session_timeout: Duration,
}

impl Config {
    pub fn new(listen: SocketAddr, media_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen,
            media_dir: media_dir.into(),
            credentials: None,
            auth_schemes: AuthSchemes::default(),
            speed: 1.0,
            session_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Error)]
pub enum RtspSimError {
    #[error("speed must be a positive finite number, got {0}")]
    InvalidSpeed(f64),
    #[error("session timeout must be at least one second")]
    InvalidTimeout,
    #[error("media folder {path:?} is not a readable directory: {source}")]
    MediaDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for Ctrl-C failed: {0}")]
    Signal(#[source] std::io::Error),
}

/// A running simulator. Dropping it without [`Server::shutdown`] leaves it running until
/// the runtime stops.
pub struct Server {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    cameras: Arc<camera::Cameras>,
}

impl Server {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `rtsp://ADDR/media/FILE` for a file of the media folder (no percent-encoding applied).
    pub fn url(&self, file: &str) -> String {
        format!("rtsp://{}/media/{file}", self.local_addr)
    }

    /// Cameras currently streaming (files with at least one viewer, or whose last viewer just left).
    pub fn running_cameras(&self) -> usize {
        self.cameras.running()
    }

    /// Stops accepting, closes every connection and stops the cameras.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
    }
}

/// Starts the simulator and returns once it listens.
pub async fn serve(config: Config) -> Result<Server, RtspSimError> {
    if !(config.speed.is_finite() && config.speed > 0.0) {
        return Err(RtspSimError::InvalidSpeed(config.speed));
    }
    if config.session_timeout < Duration::from_secs(1) {
        return Err(RtspSimError::InvalidTimeout);
    }
    match tokio::fs::metadata(&config.media_dir).await {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory");
            return Err(RtspSimError::MediaDir { path: config.media_dir.clone(), source });
        }
        Err(source) => return Err(RtspSimError::MediaDir { path: config.media_dir.clone(), source }),
    }
    let listener = TcpListener::bind(config.listen).await.map_err(|source| RtspSimError::Bind { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| RtspSimError::Bind { addr: config.listen, source })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let cameras = camera::Cameras::new(config.speed, shutdown_rx.clone());
    let shared = Arc::new(session::Shared {
        library: library::Library::new(config.media_dir.clone(), packetize::MAX_PAYLOAD),
        cameras: cameras.clone(),
        auth: config.credentials.clone().map(|c| auth::Authenticator::new(c, config.auth_schemes)),
        session_timeout: config.session_timeout,
    });
    tracing::info!(
        addr = %local_addr,
        media_dir = %config.media_dir.display(),
        speed = config.speed,
        auth = config.credentials.is_some(),
        "rtspsim listening; files are served at rtsp://{local_addr}/media/FILENAME"
    );
    let accept = tokio::spawn(accept_loop(listener, shared, shutdown_rx));
    Ok(Server { local_addr, shutdown: shutdown_tx, accept, cameras })
}

async fn accept_loop(listener: TcpListener, shared: Arc<session::Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    connections.spawn(session::serve_connection(stream, shared.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning on a full descriptor table.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    // Connections watch the same signal and end on their own; wait for them briefly.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drain).await.is_err() {
        connections.shutdown().await;
    }
    tracing::info!("rtspsim stopped");
}

/// Entry point for `vela rtspsim --listen ADDR --media DIR [--user U --password P]`:
/// serves until Ctrl-C. With credentials, both Basic and Digest are offered.
pub async fn run(listen: SocketAddr, media_dir: PathBuf, credentials: Option<(String, String)>, speed: f64) -> Result<(), RtspSimError> {
    let mut config = Config::new(listen, media_dir);
    config.credentials = credentials.map(|(username, password)| Credentials { username, password });
    config.speed = speed;
    let server = serve(config).await?;
    let signal = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    signal.map_err(RtspSimError::Signal)
}
