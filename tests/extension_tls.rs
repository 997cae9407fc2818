//! TlsEndpoints of the HTTP and gRPC extension nodes against independent TLS servers (Python's ssl around http.server, grpcio), with certificates made here: a listed CA is trusted, a self-signed certificate is not unless ignoreSignature, a wrong name is refused unless ignoreHostname, a gRPC stream runs over TLS and an untrusted gRPC server gets no sample, and a bad PEM refuses the activation.
//!
//! Every case is a live pipeline of one appliance, all running side by side, so the test
//! takes about as long as its slowest case.

#[path = "common/appliance.rs"]
mod appliance;

use appliance::{Appliance, Setup};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Python with Debian's grpcio (the PATH one may be a pyenv without it).
const GRPC_PYTHON: &str = "/usr/bin/python3";

/// HTTPS inference servers, one per entry of argv[1] (`[{name, port, cert, key}]`), each in
/// its own thread: every POST is logged as a JSON line and answered with one person.
const HTTPS_SERVERS: &str = r#"
import http.server, json, ssl, sys, threading, time
BOX = {"inferences": [{"type": "entity", "entity": {"tag": {"value": "person", "confidence": 0.9},
       "box": {"l": 0.25, "t": 0.25, "w": 0.5, "h": 0.5}}}]}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        print(json.dumps({"server": self.server.label, "path": self.path, "t": time.time()}), flush=True)
        data = json.dumps(BOX).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def log_message(self, *a): pass
for s in json.loads(sys.argv[1]):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", s["port"]), H)
    srv.label = s["name"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(s["cert"], s["key"])
    # A refused handshake fails accept() with an SSLError (an OSError): socketserver drops it.
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print(json.dumps({"listening": True}), flush=True)
threading.Event().wait()
"#;

/// A server process and the JSON lines it printed so far.
struct Process {
    child: Child,
    lines: mpsc::Receiver<Value>,
    log: Vec<Value>,
}

impl Process {
    fn spawn(cmd: &mut Command, ready: impl Fn(&Value) -> bool, what: &str) -> Process {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("server line {l:?}: {e}")));
            }
        });
        let mut p = Process { child, lines, log: vec![] };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.log.iter().any(&ready) {
            assert!(Instant::now() < deadline, "the {what} did not start");
            p.poll(Duration::from_millis(50));
        }
        p
    }

    fn poll(&mut self, wait: Duration) {
        if let Ok(v) = self.lines.recv_timeout(wait) {
            self.log.push(v);
        }
        while let Ok(v) = self.lines.try_recv() {
            self.log.push(v);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate and its key, as PEM files.
struct Pem {
    cert: PathBuf,
    key: PathBuf,
}

fn write_pem(dir: &Path, name: &str, cert: &str, key: &KeyPair) -> Pem {
    let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    Pem { cert: c, key: k }
}

fn leaf(dir: &Path, name: &str, sans: &[&str], issuer: Option<&CertifiedIssuer<'static, KeyPair>>) -> Pem {
    let params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(ca) => params.signed_by(&key, ca).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    write_pem(dir, name, &cert.pem(), &key)
}

const RTSP: &str = "#Microsoft.VideoAnalyzer.RtspSource";
const TLS: &str = "#Microsoft.VideoAnalyzer.TlsEndpoint";
const PEMS: &str = "#Microsoft.VideoAnalyzer.PemCertificateList";

/// A small JPEG twice a second (the HTTP and gRPC extensions take the same settings).
fn extension(ty: &str, endpoint: Value) -> Value {
    let mut node = json!({
        "@type": ty, "name": "extension",
        "inputs": [{"nodeName": "rtspSource", "outputSelectors": [{"property": "mediaType", "operator": "is", "value": "video"}]}],
        "endpoint": endpoint,
        "image": {"scale": {"mode": "stretch", "width": "160", "height": "120"}, "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg"}},
        "samplingOptions": {"maximumSamplesPerSecond": "2"}
    });
    if ty.ends_with("GrpcExtension") {
        node["dataTransfer"] = json!({"mode": "embedded"});
    }
    node
}

fn topology(name: &str, node: Value) -> Value {
    json!({
        "@apiVersion": "1.1", "name": name,
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}],
            "sources": [{"@type": RTSP, "name": "rtspSource", "transport": "tcp",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
            "processors": [node],
            "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hubSink",
                "inputs": [{"nodeName": "extension"}], "hubOutputName": "inferenceOutput"}]
        }
    })
}

fn tls_endpoint(url: String, trusted: Option<&str>, ignore_hostname: bool, ignore_signature: bool) -> Value {
    let mut e = json!({"@type": TLS, "url": url,
        "validationOptions": {"ignoreHostname": ignore_hostname.to_string(), "ignoreSignature": ignore_signature.to_string()}});
    if let Some(pem) = trusted {
        e["trustedCertificates"] = json!({"@type": PEMS, "certificates": [pem]});
    }
    e
}

/// Events by pipeline: (type as `Class.Type`, body).
#[derive(Default)]
struct Events(HashMap<String, Vec<(String, Value)>>);

impl Events {
    fn add(&mut self, m: &vela::hub::HubMessage) {
        let subject = m.property("subject").unwrap_or("");
        let Some(pipeline) = subject.split("/livePipelines/").nth(1).and_then(|r| r.split('/').next()) else { return };
        let ty = m.property("eventType").unwrap_or("").rsplit('.').take(2).collect::<Vec<_>>();
        let ty = format!("{}.{}", ty.get(1).unwrap_or(&""), ty[0]);
        self.0.entry(pipeline.to_string()).or_default().push((ty, m.body_json().unwrap_or(Value::Null)));
    }

    fn of(&self, pipeline: &str, ty: &str) -> Vec<&Value> {
        self.0.get(pipeline).map(|v| v.iter().filter(|e| e.0 == ty).map(|e| &e.1).collect()).unwrap_or_default()
    }

    /// The TLS failures reported by a pipeline's extension.
    fn tls_failures(&self, pipeline: &str) -> Vec<&Value> {
        self.of(pipeline, "Diagnostics.NetworkError")
            .into_iter()
            .filter(|b| b.get("code").or_else(|| b.get("errorCode")) == Some(&json!("TlsHandshakeFailed")))
            .collect()
    }
}

#[test]
fn extensions_reach_tls_servers_by_the_endpoints_trust_and_validation_rules() {
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("vela-exttls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Vela test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ca_pem = ca.pem();
    let trusted = leaf(&dir, "trusted", &["127.0.0.1", "localhost"], Some(&ca));
    let selfsigned = leaf(&dir, "selfsigned", &["127.0.0.1"], None);
    let misnamed = leaf(&dir, "misnamed", &["example.test"], Some(&ca));

    // Three HTTPS servers in one process: CA-signed for 127.0.0.1, self-signed, CA-signed for
    // another name. Each case's URL carries its name, so the log tells who got through.
    let ports: HashMap<&str, u16> =
        [("trusted", appliance::free_port()), ("selfsigned", appliance::free_port()), ("misnamed", appliance::free_port())].into();
    let servers: Vec<Value> = [("trusted", &trusted), ("selfsigned", &selfsigned), ("misnamed", &misnamed)]
        .iter()
        .map(|(n, p)| json!({"name": n, "port": ports[n], "cert": p.cert, "key": p.key}))
        .collect();
    let mut https = Process::spawn(
        Command::new("python3").arg("-c").arg(HTTPS_SERVERS).arg(Value::Array(servers).to_string()),
        |l| l["listening"] == true,
        "HTTPS servers",
    );

    // A grpcio server over TLS with the CA-signed certificate.
    let pydir = dir.join("py");
    std::fs::create_dir_all(&pydir).unwrap();
    let protos = appliance::repo().join("src/grpc/protos");
    let out = Command::new(GRPC_PYTHON)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&protos)
        .arg(format!("--python_out={}", pydir.display()))
        .arg(format!("--grpc_python_out={}", pydir.display()))
        .args(["extension.proto", "inferencing.proto", "media.proto"].map(|f| protos.join(f)))
        .output()
        .expect("python3-grpc-tools (installed by scripts/test)");
    assert!(out.status.success(), "protoc: {}", String::from_utf8_lossy(&out.stderr));
    let grpc_port = appliance::free_port();
    let grpc_out = dir.join("grpc");
    std::fs::create_dir_all(&grpc_out).unwrap();
    let mut grpc = Process::spawn(
        Command::new(GRPC_PYTHON)
            .arg(appliance::repo().join("tests/fixtures/grpc/server.py"))
            .arg(grpc_port.to_string())
            .arg(&grpc_out)
            .arg(&pydir)
            .arg(json!({"default": {"answers": ["result"]}}).to_string())
            .arg(json!({"cert": trusted.cert, "key": trusted.key}).to_string()),
        |l| l["ev"] == "listening",
        "gRPC server",
    );

    let http = "#Microsoft.VideoAnalyzer.HttpExtension";
    let url = |server: &str, case: &str| format!("https://127.0.0.1:{}/score?case={case}", ports[server]);
    let grpc_url = format!("tcp://127.0.0.1:{grpc_port}");
    // (pipeline, extension node): the cases.
    let cases = [
        // The server's CA listed: trusted.
        ("caTrusted", extension(http, tls_endpoint(url("trusted", "caTrusted"), Some(&ca_pem), false, false))),
        // Self-signed, default trust: refused before any request.
        ("selfSigned", extension(http, tls_endpoint(url("selfsigned", "selfSigned"), None, false, false))),
        // Self-signed, ignoreSignature: accepted.
        ("selfSignedIgnored", extension(http, tls_endpoint(url("selfsigned", "selfSignedIgnored"), None, false, true))),
        // A certificate for example.test at 127.0.0.1, CA listed: refused, unless ignoreHostname.
        ("misnamed", extension(http, tls_endpoint(url("misnamed", "misnamed"), Some(&ca_pem), false, false))),
        ("misnamedIgnored", extension(http, tls_endpoint(url("misnamed", "misnamedIgnored"), Some(&ca_pem), true, false))),
        // gRPC: the CA listed, then the default trust (which does not know it).
        ("grpcTrusted", extension("#Microsoft.VideoAnalyzer.GrpcExtension", tls_endpoint(grpc_url.clone(), Some(&ca_pem), false, false))),
        ("grpcUntrusted", extension("#Microsoft.VideoAnalyzer.GrpcExtension", tls_endpoint(grpc_url, None, false, false))),
    ];

    let mut app = Appliance::new(&Setup { camera_speed: 1.0, ..Setup::empty() });
    app.start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let camera = format!("rtsp://127.0.0.1:{}/media/vtest.mkv", app.camera_port);
    let (_observer, mut rx) = rt.block_on(async {
        let caller = app.client("caller").await;
        let observer = app.client("observer").await;
        let rx = observer.inputs().await.unwrap();
        let set = |name: &str, node: &Value| {
            let (caller, topology, camera) = (&caller, topology(&format!("Tls{name}"), node.clone()), camera.clone());
            let name = name.to_string();
            async move {
                let (s, p) = Appliance::call(caller, "pipelineTopologySet", topology).await;
                assert!(s < 300, "{name}: {s} {p:?}");
                let instance = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": format!("Tls{name}"),
                    "parameters": [{"name": "rtspUrl", "value": camera}]}});
                let (s, p) = Appliance::call(caller, "livePipelineSet", instance).await;
                assert!(s < 300, "{name}: {s} {p:?}");
                Appliance::call(caller, "livePipelineActivate", json!({"@apiVersion": "1.1", "name": name})).await
            }
        };
        for (name, node) in &cases {
            let (s, p) = set(name, node).await;
            assert_eq!(s, 200, "{name}: {p:?}");
        }
        // A trusted certificate that is not one: the activation is refused, naming the node
        // and the entry, and nothing of the value.
        let bad = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----";
        let node = extension(http, tls_endpoint(url("trusted", "badPem"), Some(bad), false, false));
        let (s, p) = set("badPem", &node).await;
        let text = p.map(|p| p.to_string()).unwrap_or_default();
        assert_eq!(s, 400, "{text}");
        assert!(text.contains("node 'extension'") && text.contains("trustedCertificates.certificates[0]"), "{text}");
        assert!(!text.contains("bm90IGEgY2VydGlmaWNhdGU"), "the certificate is not echoed: {text}");
        (observer, rx)
    });

    // Until every case has shown its outcome.
    let mut events = Events::default();
    let requests = |https: &Process, case: &str| https.log.iter().filter(|l| l["path"] == format!("/score?case={case}")).count();
    let grpc_acks = |grpc: &Process| grpc.log.iter().filter(|l| l["ev"] == "ack").count();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        https.poll(Duration::from_millis(30));
        grpc.poll(Duration::ZERO);
        rt.block_on(async {
            while let Ok(Some((_, m))) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                events.add(&m);
            }
        });
        let served = ["caTrusted", "selfSignedIgnored", "misnamedIgnored"].iter().all(|c| requests(&https, c) >= 2)
            && ["caTrusted", "selfSignedIgnored", "misnamedIgnored", "grpcTrusted"]
                .iter()
                .all(|p| events.of(p, "Analytics.Inference").len() >= 2)
            && grpc_acks(&grpc) >= 2;
        let refused = ["selfSigned", "misnamed", "grpcUntrusted"].iter().all(|p| !events.tls_failures(p).is_empty());
        if served && refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cases unfinished after 60 s: requests {:?}, gRPC acks {}, events {:?}",
            https.log,
            grpc_acks(&grpc),
            events.0.iter().map(|(p, e)| (p, e.iter().map(|e| &e.0).collect::<Vec<_>>())).collect::<Vec<_>>()
        );
    }

    // Refused: a diagnostic that says why, and not one request reached the server.
    for (pipeline, why) in [("selfSigned", "UnknownIssuer"), ("misnamed", "not valid for name"), ("grpcUntrusted", "UnknownIssuer")] {
        let failure = events.tls_failures(pipeline)[0];
        let message = failure["message"].as_str().unwrap();
        assert!(message.contains("invalid peer certificate") && message.contains(why), "{pipeline}: {failure}");
        assert!(events.of(pipeline, "Analytics.Inference").is_empty(), "{pipeline}");
    }
    assert_eq!(requests(&https, "selfSigned"), 0, "no request through a refused handshake");
    assert_eq!(requests(&https, "misnamed"), 0, "no request through a refused handshake");
    // The gRPC server saw streams from the trusted pipeline only, with samples.
    let instances: Vec<&str> = grpc.log.iter().filter(|l| l["ev"] == "descriptor").map(|l| l["instance"].as_str().unwrap()).collect();
    assert!(!instances.is_empty() && instances.iter().all(|i| *i == "grpcTrusted"), "{instances:?}");
    assert!(grpc.log.iter().any(|l| l["ev"] == "sample" && l["kind"] == "content_bytes"));
    // Accepted: answers came back as events.
    for pipeline in ["caTrusted", "selfSignedIgnored", "misnamedIgnored", "grpcTrusted"] {
        let e = events.of(pipeline, "Analytics.Inference")[0];
        assert_eq!(e["inferences"][0]["entity"]["tag"]["value"], "person", "{pipeline}: {e}");
        assert!(events.tls_failures(pipeline).is_empty(), "{pipeline}");
    }
    eprintln!("TLS cases ran in {:.1?}", t0.elapsed());
    drop(app);
    std::fs::remove_dir_all(&dir).ok();
}
