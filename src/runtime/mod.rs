//! The engine: runs active instances as supervised actors, each instance on its own actix arbiter (thread).

pub mod backoff;
pub mod events;
pub mod frames;
pub mod inputs;
pub mod instance;
pub mod node;
pub mod packet;

use crate::clock::Clock;
use crate::control::{ActivationError, Engine, InstanceKey};
use crate::topology::GraphPlan;
use actix::prelude::*;
use futures::future::BoxFuture;
use instance::{InstanceSupervisor, StopInstance};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What nodes need from the appliance.
#[derive(Clone)]
pub struct Services {
    pub events: events::Events,
    pub inputs: inputs::HubInputs,
    /// Relative paths in topologies resolve under it.
    pub state_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    /// Where video and asset sinks record; `None` refuses them at activation.
    pub recordings: Option<crate::recording::VideoStore>,
    /// The built-in detector's model, for the processors Vela runs itself (spatial
    /// analysis); `None` refuses them at activation.
    pub detector_model: Option<PathBuf>,
}

impl Services {
    /// A path from a topology: absolute as given, relative under the state directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.state_dir.join(path)
        }
    }
}

struct Running {
    arbiter: Arbiter,
    addr: Addr<InstanceSupervisor>,
}

pub struct Runtime {
    services: Services,
    system: System,
    running: Mutex<HashMap<InstanceKey, Running>>,
}

impl Runtime {
    /// Must be called inside the actix `System` the instances will run in.
    pub fn new(services: Services) -> Self {
        Runtime { services, system: System::current(), running: Mutex::new(HashMap::new()) }
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The supervisors of running instances (for status and tests).
    pub fn supervisor(&self, key: &InstanceKey) -> Option<Addr<InstanceSupervisor>> {
        self.running.lock().expect("running lock").get(key).map(|r| r.addr.clone())
    }

    /// Stops every instance (finishing files) without touching what the controller
    /// persisted: at shutdown, so that they come back on the next start.
    pub async fn stop_all(&self) {
        let keys: Vec<InstanceKey> = self.running.lock().expect("running lock").keys().cloned().collect();
        for k in keys {
            self.deactivate(k).await;
        }
    }

    pub fn active_count(&self) -> usize {
        self.running.lock().expect("running lock").len()
    }
}

impl Engine for Runtime {
    fn activate(&self, key: InstanceKey, plan: GraphPlan) -> BoxFuture<'static, Result<(), ActivationError>> {
        // Refuse before anything starts: every node must be runnable and its
        // resources usable.
        for node in &plan.nodes {
            if let Err(e) = crate::nodes::factory(node, &plan, &key, &self.services) {
                return Box::pin(async move { Err(e) });
            }
        }
        let mut running = self.running.lock().expect("running lock");
        if running.contains_key(&key) {
            return Box::pin(async { Ok(()) });
        }
        // Arbiter::new needs to know its System on this (tokio worker) thread.
        System::set_current(self.system.clone());
        let arbiter = Arbiter::new();
        let services = self.services.clone();
        let k = key.clone();
        let addr = InstanceSupervisor::start_in_arbiter(&arbiter.handle(), move |_| InstanceSupervisor::new(k, plan, services));
        running.insert(key, Running { arbiter, addr });
        Box::pin(async { Ok(()) })
    }

    fn deactivate(&self, key: InstanceKey) -> BoxFuture<'static, ()> {
        let r = self.running.lock().expect("running lock").remove(&key);
        Box::pin(async move {
            let Some(r) = r else { return };
            let _ = r.addr.send(StopInstance).await;
            r.arbiter.stop();
            // The thread is gone before deactivation answers: no task, socket or file
            // of the instance outlives it.
            let _ = tokio::task::spawn_blocking(move || r.arbiter.join()).await;
        })
    }
}
