//! The embedded MQTT broker: rumqttd on 127.0.0.1, on its own thread, checked ready before `start` returns.
//!
//! rumqttd's `Broker::start` blocks forever and cannot be stopped, so the broker is
//! assembled from its parts instead: a `Router` (its own thread) and a v4 `Server` whose
//! accept loop runs on a current-thread tokio runtime on a thread of ours. Dropping
//! [`EmbeddedBroker`] stops that runtime, which closes the listening socket and every
//! client connection, so the port is free again at once. What rumqttd does not let us
//! stop is the router thread: it keeps a sender to its own channel and never sees it
//! close, so each stopped broker leaves one idle thread and its in-memory state until
//! the process exits. The appliance starts one broker per process, so that is accepted.
//!
//! rumqttd is vendored with two small patches (vendor/rumqttd/PATCHES.md): it no longer
//! caches every publish topic forever (ours are unique per message, so that grew
//! without bound), and it sets TCP_NODELAY on the connections it accepts.

use super::client::Password;
use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How the embedded broker is set up.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Port on 127.0.0.1; 0 picks a free one ([`EmbeddedBroker::port`] tells which).
    pub port: u16,
    /// Largest MQTT packet a client may send. Clients that exceed it are disconnected
    /// by rumqttd (it has no way to refuse one message), which is why our clients check
    /// sizes themselves against far smaller limits first.
    pub max_packet_bytes: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// When set, clients must log in with this user name and password.
    pub credentials: Option<(String, Password)>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig { port: 0, max_packet_bytes: super::MAX_PACKET_BYTES, max_connections: 256, credentials: None }
    }
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker: cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("embedded broker: cannot start its thread: {0}")]
    Thread(std::io::Error),
    #[error("embedded broker on {addr} did not answer an MQTT CONNECT within {waited:?}: {last_error}")]
    NotReady { addr: SocketAddr, waited: Duration, last_error: String },
}

/// A running rumqttd listening on 127.0.0.1. Stops (socket and connections closed) when
/// dropped.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// How long `start` waits for the broker to answer, and how often it tries.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
const READY_POLL: Duration = Duration::from_millis(5);

impl EmbeddedBroker {
    /// Starts the broker and returns once it has answered an MQTT CONNECT. Blocks the
    /// calling thread for that long (a few milliseconds).
    pub fn start(config: BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
        let router_config = RouterConfig {
            max_connections: config.max_connections,
            // Packets per connection per router round; rumqttd's sample value.
            max_outgoing_packet_count: 200,
            // Each subscription filter gets a commit log of up to (count + 1) segments.
            // rumqttd keeps a segment after every subscriber has read it, so this is
            // steady-state memory per busy filter (~4 MiB), and how far a slow
            // subscriber may lag before it misses messages.
            max_segment_size: 1024 * 1024,
            max_segment_count: 3,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = Router::new(0, router_config).spawn();
        // With port 0 another process may grab the port between our probe and rumqttd's
        // bind; a failed bind is then retried on a new port.
        let attempts = if config.port == 0 { 5 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let port = if config.port == 0 { free_port()? } else { config.port };
            let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
            let settings = ServerSettings {
                name: format!("vela-hub-{port}"),
                listen: addr,
                tls: None,
                next_connection_delay_ms: 0,
                connections: ConnectionSettings {
                    connection_timeout_ms: 5_000,
                    max_payload_size: config.max_packet_bytes,
                    // Packets read from one connection before the router gets them.
                    max_inflight_count: 100,
                    auth: config.credentials.as_ref().map(|(u, p)| HashMap::from([(u.clone(), p.expose().to_string())])),
                    external_auth: None,
                    // In rumqttd 0.20 a publish nobody subscribes to is dropped either
                    // way (`DataLog::matches` never returns None); `true` would create a
                    // commit log per such topic if that changed, and our topics are
                    // unique per message (message id and `$rid` in the topic).
                    dynamic_filters: false,
                },
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (err_tx, err_rx) = mpsc::channel::<String>();
            let mut server = Server::new(settings, router_tx.clone(), V4);
            let thread = std::thread::Builder::new()
                .name(format!("vela-broker-{port}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = err_tx.send(format!("cannot build its runtime: {e}"));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        tokio::select! {
                            result = server.start(LinkType::Remote) => {
                                let reason = match result {
                                    Ok(()) => "the server stopped".to_string(),
                                    Err(e) => e.to_string(),
                                };
                                let _ = err_tx.send(reason);
                            }
                            _ = stop_rx => {}
                        }
                    });
                    // Dropping the runtime here cancels every connection task.
                })
                .map_err(BrokerError::Thread)?;
            let mut broker = EmbeddedBroker { addr, stop: Some(stop_tx), thread: Some(thread) };
            match wait_ready(addr, &config, &err_rx) {
                Ok(()) => {
                    info!(%addr, max_packet_bytes = config.max_packet_bytes, auth = config.credentials.is_some(), "embedded MQTT broker ready");
                    return Ok(broker);
                }
                Err(Ready::Failed(reason)) => {
                    broker.shutdown();
                    warn!(%addr, %reason, "embedded broker could not listen");
                    last = Some(BrokerError::Listen { addr, reason });
                }
                Err(Ready::Timeout(last_error)) => {
                    broker.shutdown();
                    return Err(BrokerError::NotReady { addr, waited: READY_TIMEOUT, last_error });
                }
            }
        }
        Err(last.expect("at least one attempt was made"))
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `mqtt://127.0.0.1:{port}`, for [`super::ClientOptions`].
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            debug!(addr = %self.addr, "embedded MQTT broker stopped");
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn free_port() -> Result<u16, BrokerError> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let l = TcpListener::bind(addr).map_err(|e| BrokerError::Listen { addr, reason: e.to_string() })?;
    l.local_addr().map(|a| a.port()).map_err(|e| BrokerError::Listen { addr, reason: e.to_string() })
}

enum Ready {
    Failed(String),
    Timeout(String),
}

/// Waits until the broker answers CONNECT with CONNACK accepted, or its server ends.
fn wait_ready(addr: SocketAddr, config: &BrokerConfig, err_rx: &mpsc::Receiver<String>) -> Result<(), Ready> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(reason) = err_rx.try_recv() {
            return Err(Ready::Failed(reason));
        }
        let last_error = match handshake(addr, config) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(Ready::Timeout(last_error));
        }
        std::thread::sleep(READY_POLL);
    }
}

/// One MQTT 3.1.1 CONNECT / CONNACK exchange. A bare TCP probe would make
/// rumqttd log an error for a connection that never sent CONNECT.
fn handshake(addr: SocketAddr, config: &BrokerConfig) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(500))).map_err(|e| e.to_string())?;
    s.write_all(&connect_packet("vela-broker-ready-check", config.credentials.as_ref())).map_err(|e| e.to_string())?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).map_err(|e| format!("no CONNACK: {e}"))?;
    if ack != [0x20, 0x02, 0x00, 0x00] {
        return Err(format!("unexpected CONNACK {ack:02x?}"));
    }
    // Closed without DISCONNECT: rumqttd 0.20 handles a DISCONNECT and the socket
    // closing as two disconnections and logs an ERROR ("no-connection id … is already
    // gone") for the second; a bare close is logged at INFO.
    Ok(())
}

fn connect_packet(client_id: &str, credentials: Option<&(String, Password)>) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
    }
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    let flags = 0x02 | if credentials.is_some() { 0xC0 } else { 0 };
    body.push(flags);
    body.extend_from_slice(&10u16.to_be_bytes()); // keep-alive: rumqttd refuses 0
    string(&mut body, client_id.as_bytes());
    if let Some((user, password)) = credentials {
        string(&mut body, user.as_bytes());
        string(&mut body, password.expose().as_bytes());
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packet_layout() {
        let p = connect_packet("c", None);
        assert_eq!(p, [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 1, b'c']);
        let p = connect_packet("c", Some(&("u".to_string(), Password::new("p"))));
        assert_eq!(&p[..2], &[0x10, 19]);
        assert_eq!(p[9], 0xC2);
        assert_eq!(&p[15..], &[0, 1, b'u', 0, 1, b'p']);
        let long = connect_packet(&"x".repeat(200), None);
        assert_eq!(&long[..3], &[0x10, 0xD4, 0x01]);
    }

    #[test]
    fn starts_answers_and_frees_its_port_when_dropped() {
        let broker = EmbeddedBroker::start(BrokerConfig::default()).unwrap();
        let addr = broker.addr();
        assert_ne!(addr.port(), 0);
        assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", addr.port()));
        handshake(addr, &BrokerConfig::default()).unwrap();
        drop(broker);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(), "still listening after drop");
        // The same port can be used again right away.
        let again = EmbeddedBroker::start(BrokerConfig { port: addr.port(), ..Default::default() }).unwrap();
        assert_eq!(again.port(), addr.port());
    }

    /// The accepted (server-side) sockets live in this process too, so the test can
    /// look at them: they must have TCP_NODELAY, which the vendored rumqttd sets in its
    /// accept loop (vendor/rumqttd/PATCHES.md). Without it, writes to clients wait for
    /// the client's delayed ACK (40 ms on Linux) whenever an earlier segment is
    /// unacknowledged: routing 100-message bursts ran at 2,600 messages/s instead of
    /// 20,000+.
    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_sockets_have_nodelay() {
        use std::mem::ManuallyDrop;
        use std::os::fd::{FromRawFd, RawFd};
        let broker = EmbeddedBroker::start(BrokerConfig::default()).unwrap();
        let client = TcpStream::connect(broker.addr()).unwrap();
        let client_addr = client.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut found = None;
            for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
                let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
                if !std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")) {
                    continue;
                }
                // SAFETY: `fd` is a socket of this process; ManuallyDrop makes sure it is
                // only borrowed, never closed. If it was closed or reused meanwhile, the
                // calls below fail or find another socket, which does not match.
                let s = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
                if s.local_addr().is_ok_and(|a| a == broker.addr()) && s.peer_addr().is_ok_and(|p| p == client_addr) {
                    found = Some(s.nodelay().unwrap());
                }
            }
            match found {
                Some(nodelay) => {
                    assert!(nodelay, "the accepted socket has Nagle on");
                    return;
                }
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => panic!("accepted socket not found"),
            }
        }
    }

    #[test]
    fn taken_port_is_a_clear_error() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let err = EmbeddedBroker::start(BrokerConfig { port, ..Default::default() }).err().expect("port is taken");
        assert!(matches!(err, BrokerError::Listen { .. }), "{err}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
    }

    #[test]
    fn credentials_are_enforced() {
        let creds = ("vela".to_string(), Password::new("s3cret"));
        let broker = EmbeddedBroker::start(BrokerConfig { credentials: Some(creds.clone()), ..Default::default() }).unwrap();
        handshake(broker.addr(), &BrokerConfig { credentials: Some(creds), ..Default::default() }).unwrap();
        let wrong = BrokerConfig { credentials: Some(("vela".to_string(), Password::new("nope"))), ..Default::default() };
        assert!(handshake(broker.addr(), &wrong).is_err());
        assert!(handshake(broker.addr(), &BrokerConfig::default()).is_err());
    }
}
