//! Which nodes listen on which hub inputs: messages routed to the module's inputs reach every IotHubMessageSource that names them.

use super::packet::Packet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Deliver = Box<dyn Fn(Packet) + Send + Sync>;

#[derive(Clone, Default)]
pub struct HubInputs {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    by_input: HashMap<String, Vec<(u64, Deliver)>>,
}

/// Unregisters on drop, so a stopped or rebuilt node stops receiving.
pub struct Registration {
    inputs: HubInputs,
    input: String,
    id: u64,
}

impl HubInputs {
    pub fn register(&self, input: &str, deliver: impl Fn(Packet) + Send + Sync + 'static) -> Registration {
        let mut r = self.inner.lock().expect("inputs lock");
        r.next_id += 1;
        let id = r.next_id;
        r.by_input.entry(input.to_string()).or_default().push((id, Box::new(deliver)));
        Registration { inputs: self.clone(), input: input.to_string(), id }
    }

    /// Delivers a message to every listener of `input`; returns how many there were.
    pub fn deliver(&self, input: &str, p: Packet) -> usize {
        let r = self.inner.lock().expect("inputs lock");
        let listeners = r.by_input.get(input).map(Vec::as_slice).unwrap_or_default();
        for (_, d) in listeners {
            d(p.clone());
        }
        listeners.len()
    }

    pub fn listeners(&self, input: &str) -> usize {
        self.inner.lock().expect("inputs lock").by_input.get(input).map_or(0, Vec::len)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = self.inputs.inner.lock().expect("inputs lock");
        if let Some(v) = r.by_input.get_mut(&self.input) {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                r.by_input.remove(&self.input);
            }
        }
    }
}
