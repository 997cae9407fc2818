//! `vela ops`: runs an `operations.json` (SPEC §10) against a running appliance over MQTT, like the samples' console app.

use crate::hub::{ClientOptions, ModuleClient};
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The console app's response timeout.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct OpsOptions {
    pub hub: String,
    pub device: String,
    pub module: String,
    pub file: PathBuf,
    /// Do not wait for Enter at `WaitForInput`.
    pub no_wait: bool,
}

/// What one operation turned into.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Waited,
    Called { method: String, status: u16, payload: Option<Value> },
}

/// Reads the operations file and turns one operation into a method call (name and
/// payload), resolving topology files; `None` for `WaitForInput`.
pub fn prepare(op: &Value, api_version: &str, base: &Path) -> anyhow::Result<Option<(String, Value)>> {
    let name = op.get("opName").and_then(Value::as_str).context("an operation has no 'opName'")?;
    let params = op.get("opParams").cloned().unwrap_or(Value::Object(Map::new()));
    if name == "WaitForInput" {
        return Ok(None);
    }
    let is_topology_set = name.eq_ignore_ascii_case("GraphTopologySet") || name.eq_ignore_ascii_case("pipelineTopologySet");
    if is_topology_set {
        // The whole topology document is sent verbatim (its own @apiVersion included).
        let get = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_string);
        let source = get("topologyUrl")
            .or_else(|| get("pipelineTopologyUrl"))
            .or_else(|| get("topologyFile"))
            .or_else(|| get("pipelineTopologyFile"));
        let Some(source) = source else {
            bail!("{name}: opParams needs topologyUrl, pipelineTopologyUrl, topologyFile or pipelineTopologyFile");
        };
        let path = if let Some(p) = source.strip_prefix("file://") {
            PathBuf::from(p)
        } else if source.starts_with("http://") || source.starts_with("https://") {
            bail!("{name}: '{source}' is a web address; this appliance has no network access for it — download the topology and give its local path or a file:// URL");
        } else {
            base.join(&source)
        };
        let text = std::fs::read(&path).with_context(|| format!("{name}: cannot read the topology {}", path.display()))?;
        let doc: Value = serde_json::from_slice(&text).with_context(|| format!("{name}: {} is not JSON", path.display()))?;
        return Ok(Some((name.to_string(), doc)));
    }
    // Other methods: opParams with "@apiVersion" first, as the C# console app sends them.
    let mut payload = Map::new();
    payload.insert("@apiVersion".into(), Value::String(api_version.to_string()));
    if let Value::Object(m) = params {
        for (k, v) in m {
            if k != "@apiVersion" {
                payload.insert(k, v);
            }
        }
    }
    Ok(Some((name.to_string(), Value::Object(payload))))
}

/// Runs every operation in order; returns what happened. Stops at the first call that
/// got no answer.
pub async fn run(opts: &OpsOptions, out: &mut dyn Write) -> anyhow::Result<Vec<Step>> {
    let text = std::fs::read(&opts.file).with_context(|| format!("cannot read {}", opts.file.display()))?;
    let doc: Value = serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", opts.file.display()))?;
    let api = doc.get("apiVersion").and_then(Value::as_str).context("operations file: 'apiVersion' is missing")?.to_string();
    let ops = doc.get("operations").and_then(Value::as_array).context("operations file: 'operations' must be an array")?.clone();
    let base = opts.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let me = format!("ops-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let client = ModuleClient::connect(ClientOptions::new(opts.hub.clone(), opts.device.clone(), me))
        .await
        .with_context(|| format!("cannot connect to {}", opts.hub))?;
    let color = std::io::stdout().is_terminal();
    let mut steps = Vec::new();
    for op in &ops {
        match prepare(op, &api, &base)? {
            None => {
                let msg = op.pointer("/opParams/message").and_then(Value::as_str).unwrap_or("Press Enter to continue");
                writeln!(out, "{msg}")?;
                if !opts.no_wait {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                }
                steps.push(Step::Waited);
            }
            Some((method, payload)) => {
                writeln!(out, "-----------------------  Request: {method}  --------------------------------------------------")?;
                writeln!(out, "{}", serde_json::to_string_pretty(&payload)?)?;
                let (status, answer) = client
                    .invoke_method(&opts.device, &opts.module, &method, &payload, RESPONSE_TIMEOUT)
                    .await
                    .with_context(|| format!("{method}: no answer from {}/{}", opts.device, opts.module))?;
                let (on, off) = if color && status >= 400 { ("\x1b[31m", "\x1b[0m") } else { ("", "") };
                writeln!(out, "{on}---------------  Response: {method} - Status: {status}  ---------------{off}")?;
                match &answer {
                    Some(v) => writeln!(out, "{on}{}{off}", serde_json::to_string_pretty(v)?)?,
                    None => writeln!(out, "null")?,
                }
                steps.push(Step::Called { method, status, payload: answer });
            }
        }
    }
    client.disconnect().await;
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_get_the_api_version_first_and_topologies_are_sent_verbatim() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
        let (m, p) = prepare(&json!({"opName": "livePipelineActivate", "opParams": {"name": "p1"}}), "1.1", &base).unwrap().unwrap();
        assert_eq!(m, "livePipelineActivate");
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"@apiVersion":"1.1","name":"p1"}"#);
        let op =
            json!({"opName": "pipelineTopologySet", "opParams": {"pipelineTopologyUrl": "ava-topologies/cvr-video-sink/topology.json"}});
        let (_, doc) = prepare(&op, "1.1", &base).unwrap().unwrap();
        assert_eq!(doc["name"], "CVRToVideoSink");
        let op = json!({"opName": "GraphTopologySet", "opParams": {"topologyUrl": "https://example.invalid/t.json"}});
        assert!(prepare(&op, "2.0", &base).unwrap_err().to_string().contains("local path"));
        assert_eq!(prepare(&json!({"opName": "WaitForInput", "opParams": {"message": "x"}}), "1.1", &base).unwrap(), None);
    }
}
