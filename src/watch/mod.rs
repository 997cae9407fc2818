//! Hot reload: `config/topologies/*.json` and `config/instances/*.json` applied at start and whenever they change.
//!
//! The watcher only says "something changed"; after a short quiet period the whole
//! folder pair is rescanned and compared by content with what was last applied, so
//! editors' save-by-rename, bursts and missed notifications all end the same way.
//! Changes go through the controller exactly like direct methods; an instance is
//! restarted only when its compiled graph changed. A broken file changes nothing
//! that runs and is reported as a diagnostics event with the compiler's errors.

use crate::control::{Controller, Response, State};
use crate::runtime::events::{EventClass, Events, Subject};
use crate::store::Origin;
use crate::topology::{self, ApiVersion, Generation};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last notification before the folders are rescanned.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What was applied from one file.
#[derive(Clone, Debug, PartialEq)]
struct Applied {
    content: Vec<u8>,
    generation: Generation,
    name: String,
}

/// The outcome of one file, for logs and tests.
#[derive(Clone, Debug, PartialEq)]
pub enum FileOutcome {
    Applied { file: PathBuf, status: u16 },
    Unchanged { file: PathBuf },
    Rejected { file: PathBuf, errors: Value },
    Removed { file: PathBuf, status: u16 },
}

pub struct ConfigSync {
    controller: Arc<Controller>,
    events: Events,
    topologies: PathBuf,
    instances: PathBuf,
    applied_topologies: BTreeMap<PathBuf, Applied>,
    applied_instances: BTreeMap<PathBuf, Applied>,
}

fn json_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        // Editors' temporary and backup files are not configuration.
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.extension().is_some_and(|x| x == "json") && !name.starts_with('.') && p.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p, bytes);
            }
        }
    }
    out
}

use crate::topology::get_ci;

impl ConfigSync {
    pub fn new(controller: Arc<Controller>, events: Events, config_dir: &Path) -> Self {
        ConfigSync {
            controller,
            events,
            topologies: config_dir.join("topologies"),
            instances: config_dir.join("instances"),
            applied_topologies: BTreeMap::new(),
            applied_instances: BTreeMap::new(),
        }
    }

    fn reject(&self, generation: Generation, file: &Path, errors: Value) -> FileOutcome {
        tracing::warn!(file = %file.display(), %errors, "configuration file rejected; what runs is unchanged");
        self.events.emit(
            &Subject { generation, instance: String::new(), node: None },
            EventClass::Diagnostics,
            "ConfigurationError",
            json!({ "file": file.display().to_string(), "errors": errors }),
        );
        FileOutcome::Rejected { file: file.to_path_buf(), errors }
    }

    /// Rescans both folders and applies the differences: topologies first (instances
    /// need them), removals of instances before removals of topologies.
    pub async fn sync(&mut self) -> Vec<FileOutcome> {
        let mut out = Vec::new();
        let topologies = json_files(&self.topologies);
        let instances = json_files(&self.instances);
        for (file, bytes) in &topologies {
            if self.applied_topologies.get(file).is_some_and(|a| &a.content == bytes) {
                continue;
            }
            out.push(self.apply_topology(file, bytes).await);
        }
        for (file, bytes) in &instances {
            if self.applied_instances.get(file).is_some_and(|a| &a.content == bytes) {
                continue;
            }
            out.push(self.apply_instance(file, bytes).await);
        }
        let gone: Vec<PathBuf> = self.applied_instances.keys().filter(|f| !instances.contains_key(*f)).cloned().collect();
        for file in gone {
            let a = self.applied_instances.remove(&file).expect("listed");
            self.controller.deactivate(a.generation, &a.name).await;
            let r = self.controller.delete_instance(a.generation, &a.name).await;
            out.push(FileOutcome::Removed { file, status: r.status });
        }
        let gone: Vec<PathBuf> = self.applied_topologies.keys().filter(|f| !topologies.contains_key(*f)).cloned().collect();
        for file in gone {
            let a = self.applied_topologies.get(&file).cloned().expect("listed");
            let r = self.controller.delete_topology(a.generation, &a.name).await;
            if r.status == 409 {
                // Still used by instances: keep it, and keep tracking the file so that a
                // later sync retries once they are gone.
                out.push(self.reject(a.generation, &file, r.payload.unwrap_or(Value::Null)));
            } else {
                self.applied_topologies.remove(&file);
                out.push(FileOutcome::Removed { file, status: r.status });
            }
        }
        out
    }

    async fn apply_topology(&mut self, file: &Path, bytes: &[u8]) -> FileOutcome {
        let doc = match topology::parse_json(bytes) {
            Ok(d) => d,
            Err(e) => return self.reject(Generation::Ava, file, e.to_odata()),
        };
        let plan = match topology::check_topology(&doc, None) {
            Ok(p) => p,
            Err(e) => return self.reject(if e.ava { Generation::Ava } else { Generation::Lva }, file, e.to_odata()),
        };
        let (g, api, name) = (plan.api_version.generation(), plan.api_version, plan.topology_name.clone());
        // Running instances whose graph this change alters are stopped, updated, and
        // started again; the others keep running.
        let restart = self.instances_to_restart(g, &name, |inst| {
            let inst_doc = crate::control::instance_doc(inst);
            topology::compile_instance(&doc, &inst_doc, None).ok()
        });
        for i in &restart {
            self.controller.deactivate(g, i).await;
        }
        let r = self.controller.set_topology(g, api, doc, Origin::File(file.display().to_string())).await;
        for i in &restart {
            self.controller.activate(g, i).await;
        }
        self.record(r, file, bytes, g, name, true)
    }

    async fn apply_instance(&mut self, file: &Path, bytes: &[u8]) -> FileOutcome {
        let mut doc = match topology::parse_json(bytes) {
            Ok(d) => d,
            Err(e) => return self.reject(Generation::Ava, file, e.to_odata()),
        };
        if let Err(e) = topology::check_instance_document(&doc) {
            return self.reject(if e.ava { Generation::Ava } else { Generation::Lva }, file, e.to_odata());
        }
        let name = get_ci(&doc, "name").and_then(Value::as_str).unwrap_or_default().to_string();
        let topo_name =
            get_ci(&doc, "properties").and_then(|p| get_ci(p, "topologyName")).and_then(Value::as_str).unwrap_or_default().to_string();
        // A file says whether it should run: `properties.state` ("inactive" keeps it
        // stopped); dropping a file in the folder runs it by default.
        let want_active = !get_ci(&doc, "properties")
            .and_then(|p| get_ci(p, "state"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("inactive"));
        let store = self.controller.store();
        let g = match (store.topology(Generation::Lva, &topo_name), store.topology(Generation::Ava, &topo_name)) {
            (Ok(Some(_)), _) => Generation::Lva,
            (_, Ok(Some(_))) => Generation::Ava,
            _ => {
                let errors = json!({ "error": { "code": "InvalidResource", "message": "The resource format is invalid.", "details": [
                    { "code": "TopologyNotFound", "target": "$.Properties.TopologyName", "message": format!("topology '{topo_name}' does not exist (add its file to config/topologies)") }
                ] } });
                return self.reject(Generation::Ava, file, errors);
            }
        };
        let api = get_ci(&doc, "@apiVersion")
            .and_then(Value::as_str)
            .and_then(|v| ApiVersion::parse(g, v))
            .unwrap_or(if g == Generation::Lva { ApiVersion::Lva20 } else { ApiVersion::Ava11 });
        if let Some(m) = doc.as_object_mut() {
            m.insert("@apiVersion".into(), json!(api.as_str()));
        }
        let key = (g, name.clone());
        let state = self.controller.state(&key);
        if state == State::Active {
            // Unchanged graph (a description edit, say): nothing to restart.
            let same = self.controller.store().topology(g, &topo_name).ok().flatten().and_then(|t| {
                let tdoc = crate::control::topology_doc(&t.api_version, &t.name, &t.properties);
                let new = topology::compile_instance(&tdoc, &doc, None).ok()?;
                Some(self.controller.running_plan(&key).is_some_and(|running| running.same_graph(&new)))
            });
            if same == Some(true) && want_active {
                // Same graph: keep it running, but store what the file says (description).
                let r = self.controller.update_running_instance(g, api, doc, Origin::File(file.display().to_string())).await;
                if !r.is_success() {
                    return self.reject(g, file, r.payload.unwrap_or(Value::Null));
                }
                self.applied_instances.insert(file.to_path_buf(), Applied { content: bytes.to_vec(), generation: g, name });
                return FileOutcome::Unchanged { file: file.to_path_buf() };
            }
            // Validate before stopping anything: a broken edit must not stop the instance.
            let check = self.controller.store().topology(g, &topo_name).ok().flatten().map(|t| {
                let tdoc = crate::control::topology_doc(&t.api_version, &t.name, &t.properties);
                topology::compile_instance(&tdoc, &doc, None)
            });
            if let Some(Err(e)) = check {
                return self.reject(g, file, e.to_odata());
            }
            self.controller.deactivate(g, &name).await;
        }
        let r = self.controller.set_instance(g, api, doc, Origin::File(file.display().to_string())).await;
        if r.is_success() && want_active {
            let a = self.controller.activate(g, &name).await;
            if !a.is_success() {
                return self.record(a, file, bytes, g, name, false);
            }
        }
        self.record(r, file, bytes, g, name, false)
    }

    fn instances_to_restart(
        &self,
        g: Generation,
        topology_name: &str,
        compile: impl Fn(&crate::store::StoredInstance) -> Option<topology::GraphPlan>,
    ) -> Vec<String> {
        let Ok(instances) = self.controller.store().instances(g) else { return vec![] };
        instances
            .iter()
            .filter(|i| i.topology_name == topology_name)
            .filter(|i| self.controller.state(&(g, i.name.clone())) == State::Active)
            .filter(|i| {
                let running = self.controller.running_plan(&(g, i.name.clone()));
                match (compile(i), running) {
                    (Some(new), Some(old)) => !new.same_graph(&old),
                    // Invalid with the new topology: the Set is refused and it keeps running.
                    (None, _) => false,
                    (Some(_), None) => true,
                }
            })
            .map(|i| i.name.clone())
            .collect()
    }

    fn record(&mut self, r: Response, file: &Path, bytes: &[u8], g: Generation, name: String, topology: bool) -> FileOutcome {
        if !r.is_success() {
            return self.reject(g, file, r.payload.unwrap_or(Value::Null));
        }
        let applied = Applied { content: bytes.to_vec(), generation: g, name };
        if topology {
            self.applied_topologies.insert(file.to_path_buf(), applied);
        } else {
            self.applied_instances.insert(file.to_path_buf(), applied);
        }
        tracing::info!(file = %file.display(), status = r.status, "configuration applied");
        FileOutcome::Applied { file: file.to_path_buf(), status: r.status }
    }

    /// Syncs now (returning once the folders are applied, so that a caller reporting
    /// "ready" means it), then again after every burst of changes, until the returned
    /// task is aborted. The watch starts before the first sync: nothing is missed.
    pub async fn watch(mut self) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
        use notify::{RecursiveMode, Watcher};
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Reading the files (our own rescans included) raises access events on
            // Linux; acting on them would rescan forever.
            if res.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                let _ = tx.send(());
            }
        })?;
        for dir in [&self.topologies, &self.instances] {
            std::fs::create_dir_all(dir).ok();
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        self.sync().await;
        Ok(tokio::spawn(async move {
            let _watcher = watcher; // dropped (and unwatched) with the task
            while rx.recv().await.is_some() {
                // Debounce: wait until the folder has been quiet for a moment.
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                self.sync().await;
            }
        }))
    }
}
