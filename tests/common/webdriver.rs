//! A tiny W3C WebDriver client for headless Chromium: chromedriver on a free port, one session, JSON over `std::net::TcpStream`.
//!
//! Enough for page tests: navigate, find and click elements, pointer and key actions,
//! synchronous and asynchronous scripts, screenshots. Debian's `chromium` and
//! `chromium-driver` provide the browser and driver (`scripts/test` installs them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The W3C key code of Shift (WebDriver's "normalised key value" table).
pub const SHIFT: &str = "\u{E008}";

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error: the command, the `error` code and the message.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A browser session; chromedriver (and the browser) end when it drops.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

/// An element found on the page.
#[derive(Clone, Debug)]
pub struct Element(pub String);

impl Element {
    /// As a script argument (`arguments[i]` is the DOM element).
    pub fn arg(&self) -> Value {
        json!({ ELEMENT: self.0 })
    }
}

fn chromedriver_path() -> Option<PathBuf> {
    let candidates = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).or_else(|| {
        std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).map(|d| d.join("chromedriver")).find(|p| p.exists()))
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a fresh profile, a
    /// `width`×`height` window and autoplay allowed. Panics (the test fails) when Chromium
    /// or chromedriver is missing: `scripts/test` installs them.
    pub fn start(width: u32, height: u32) -> Browser {
        let driver_path = chromedriver_path();
        let (true, Some(driver_path)) = (std::path::Path::new(CHROMIUM).exists(), driver_path) else {
            panic!(
                "this test needs Debian's chromium ({CHROMIUM}) and chromium-driver (chromedriver): run scripts/test, \
                 which installs them, or apt-get install chromium chromium-driver"
            );
        };
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display()));
        static PROFILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PROFILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let profile = std::env::temp_dir().join(format!("vela-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut browser = Browser { driver, port, session: String::new(), profile };

        // chromedriver answers /status once it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match browser.http("GET", "/status", None) {
                Ok(v) if v["ready"] == true => break,
                _ if Instant::now() > deadline => panic!("chromedriver did not start listening on port {port}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            "--mute-audio".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser.profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "timeouts": {"script": 30_000, "pageLoad": 30_000, "implicit": 0},
        }}});
        let created = browser.http("POST", "/session", Some(&caps)).unwrap_or_else(|e| panic!("cannot start Chromium: {e}"));
        browser.session = created["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    /// One HTTP/1.1 request to chromedriver; the `value` of its JSON answer, or its error.
    fn http(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let what = || format!("{method} {path}");
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| Error(format!("{}: {e}", what())))?;
        s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| Error(format!("{}: {e}", what())))?;
        // chromedriver may keep the connection open whatever the request says: read the
        // head, then exactly the body it announces.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 << 10];
        let read_more = |s: &mut TcpStream, raw: &mut Vec<u8>, buf: &mut [u8]| -> Result<bool, Error> {
            let n = s.read(buf).map_err(|e| Error(format!("{}: {e}", what())))?;
            raw.extend_from_slice(&buf[..n]);
            Ok(n > 0)
        };
        let split = loop {
            if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            if !read_more(&mut s, &mut raw, &mut buf)? {
                return Err(Error(format!("{}: no HTTP answer", what())));
            }
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let body = &raw[split + 4..];
            let complete = match length {
                Some(n) => body.len() >= n,
                None if chunked => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if complete || !read_more(&mut s, &mut raw, &mut buf)? {
                break;
            }
        }
        let mut payload = raw[split + 4..].to_vec();
        if let Some(n) = length {
            payload.truncate(n);
        } else if chunked {
            payload = dechunk(&payload);
        }
        let v: Value =
            serde_json::from_slice(&payload).map_err(|e| Error(format!("{}: {e}: {}", what(), String::from_utf8_lossy(&payload))))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 {
            return Err(Error(format!("{}: {} ({status}): {}", what(), value["error"], value["message"])));
        }
        Ok(value)
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        self.http(method, &format!("/session/{}{path}", self.session), body.as_ref())
    }

    pub fn navigate(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url }))).unwrap();
    }

    /// The first element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        match self.command("POST", "/element", Some(json!({"using": "css selector", "value": css}))) {
            Ok(v) => Some(Element(v[ELEMENT].as_str().expect("an element reference").to_owned())),
            Err(e) if e.0.contains("no such element") => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub fn wait_for_element(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(Instant::now() < deadline, "no element {css} after {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// WebDriver's element click: scrolls it into view and clicks its centre.
    pub fn click(&self, e: &Element) -> Result<(), Error> {
        self.command("POST", &format!("/element/{}/click", e.0), Some(json!({}))).map(drop)
    }

    /// Runs `script` as a function body with `args`; its return value.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Runs `script` with a callback as the last argument; the value passed to it.
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.command("POST", "/execute/async", Some(json!({"script": script, "args": args})))
    }

    /// Input actions (W3C "perform actions"), then releases everything pressed.
    pub fn actions(&self, sources: Value) -> Result<(), Error> {
        let r = self.command("POST", "/actions", Some(json!({ "actions": sources })));
        self.command("DELETE", "/actions", None)?;
        r.map(drop)
    }

    /// A mouse click at viewport coordinates.
    pub fn click_at(&self, x: i64, y: i64) -> Result<(), Error> {
        self.actions(json!([{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "duration": 0, "x": x, "y": y, "origin": "viewport"},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]}]))
    }

    /// A mouse drag between viewport coordinates, holding Shift when `shift`.
    pub fn drag(&self, from: (i64, i64), to: (i64, i64), shift: bool) -> Result<(), Error> {
        let key = if shift { SHIFT } else { "" };
        let key_actions = if shift {
            json!([{"type": "keyDown", "value": key}, {"type": "pause"}, {"type": "pause"}, {"type": "pause"}, {"type": "pause"}, {"type": "keyUp", "value": key}])
        } else {
            json!([{"type": "pause"}])
        };
        self.actions(json!([
            {"type": "key", "id": "keyboard", "actions": key_actions},
            {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
                {"type": "pause"},
                {"type": "pointerMove", "duration": 0, "x": from.0, "y": from.1, "origin": "viewport"},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "duration": 150, "x": to.0, "y": to.1, "origin": "viewport"},
                {"type": "pointerUp", "button": 0},
            ]},
        ]))
    }

    /// Mouse wheel at viewport coordinates (positive `dy` scrolls down).
    pub fn wheel(&self, x: i64, y: i64, dy: i64) -> Result<(), Error> {
        self.actions(json!([{"type": "wheel", "id": "wheel", "actions": [
            {"type": "scroll", "x": x, "y": y, "deltaX": 0, "deltaY": dy, "duration": 0, "origin": "viewport"},
        ]}]))
    }

    /// Resizes the browser window (the viewport follows).
    pub fn set_window_size(&self, width: u32, height: u32) -> Result<(), Error> {
        self.command("POST", "/window/rect", Some(json!({"width": width, "height": height}))).map(drop)
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>, Error> {
        let v = self.command("GET", "/screenshot", None)?;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).map_err(|e| Error(format!("screenshot: {e}")))
    }

    /// Polls `script` (a function body) every 100 ms until it returns something other than
    /// null or false; returns that. On timeout, panics with `what` and the result of
    /// `diagnose` (a script describing the page's state).
    pub fn wait_until(&self, what: &str, timeout: Duration, script: &str, diagnose: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.execute(script, vec![]).unwrap_or_else(|e| panic!("{what}: {e}"));
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            if Instant::now() > deadline {
                let state = self.execute(diagnose, vec![]).map(|v| v.to_string()).unwrap_or_else(|e| e.0);
                panic!("timed out after {timeout:?} waiting for {what}; page state: {state}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Decodes a chunked HTTP body.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
