//! MQTT test kit: a real mosquitto on a free loopback port with its own config, killed on drop, and `mosquitto_sub`/`mosquitto_pub` helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Debian puts mosquitto in /usr/sbin, which is not always on a test's PATH.
fn program(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    name.to_string()
}

/// A unique scratch directory under the system temp dir, removed by its owner.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = std::env::temp_dir().join(format!("vela-{tag}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A mosquitto broker of our own: `listener PORT 127.0.0.1`, anonymous, no persistence.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts mosquitto on a free port; panics with the reason (and its log) if it can't.
    pub fn start() -> Mosquitto {
        let mut m = Mosquitto { port: 0, dir: scratch_dir("mosquitto"), child: None };
        for _ in 0..5 {
            m.port = free_port();
            if m.spawn() {
                return m;
            }
        }
        let log = std::fs::read_to_string(m.dir.join("mosquitto.log")).unwrap_or_default();
        panic!("mosquitto did not start; log: {log}");
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> bool {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n", self.port)).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("mosquitto.log")).unwrap();
        let child = Command::new(program("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mosquitto (apt-get install mosquitto): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("mosquitto on port {} exited with {status}", self.port);
                self.child = None;
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    /// Kills the broker (SIGKILL: clients see their connection drop, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "mosquitto did not restart on port {}", self.port);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `mosquitto_sub` on a filter, printing `topic payload` lines; killed on drop. Returns
/// once the broker has acknowledged the subscription.
pub struct MosquittoSub {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl MosquittoSub {
    pub fn start(port: u16, filter: &str) -> MosquittoSub {
        // stdbuf: mosquitto_sub flushes messages but not its `-d` lines, and the SUBACK
        // line is how we know the subscription is in place.
        let mut child = Command::new(program("stdbuf"))
            .args(["-oL", &program("mosquitto_sub"), "-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-v", "-d", "-t", filter])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mosquitto_sub (apt-get install mosquitto-clients): {e}"));
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Built before waiting, so that a failed wait still kills the child (Drop).
        let sub = MosquittoSub { child, lines: rx };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match sub.lines.recv_timeout(left) {
                Ok(line) if line.contains("received SUBACK") => break,
                Ok(_) => {}
                Err(_) => panic!("mosquitto_sub got no SUBACK for {filter}"),
            }
        }
        sub
    }

    /// The next message as (topic, payload), skipping `-d` debug lines.
    pub fn next(&self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if line.starts_with("Client ") || line.starts_with("Subscribed") {
                continue;
            }
            let (topic, payload) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            return Some((topic.to_string(), payload.to_string()));
        }
    }
}

impl Drop for MosquittoSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_pub -t topic -m payload` at QoS 1; panics if it fails.
pub fn mosquitto_pub(port: u16, topic: &str, payload: &str) {
    let out = Command::new(program("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload])
        .output()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_pub (apt-get install mosquitto-clients): {e}"));
    assert!(out.status.success(), "mosquitto_pub failed: {}", String::from_utf8_lossy(&out.stderr));
}
