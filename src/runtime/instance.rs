//! One supervisor actor per active instance: starts its node actors wired as the plan says, restarts the whole instance when a node keeps failing, stops them cleanly.

use super::backoff::{Backoff, FailureWindow};
use super::events::{EventClass, Subject};
use super::node::{NodeActor, NodeEnv, NodeFailed, NodeStats, Output, StopNode};
use super::Services;
use crate::control::InstanceKey;
use crate::topology::{Flow, GraphPlan, NodeSettings};
use actix::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stops every node, sources first; resolves when all have finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopInstance;

/// Per-node counters, for status and benchmarks.
#[derive(Message)]
#[rtype(result = "HashMap<String, Arc<NodeStats>>")]
pub struct GetStats;

pub struct InstanceSupervisor {
    key: InstanceKey,
    plan: GraphPlan,
    services: Services,
    nodes: Vec<(String, Addr<NodeActor>)>,
    stats: HashMap<String, Arc<NodeStats>>,
    failures: FailureWindow,
    backoff: Backoff,
    since: Instant,
    restarting: bool,
}

impl InstanceSupervisor {
    pub fn new(key: InstanceKey, plan: GraphPlan, services: Services) -> Self {
        InstanceSupervisor {
            key,
            plan,
            services,
            nodes: Vec::new(),
            stats: HashMap::new(),
            failures: FailureWindow::new(5, Duration::from_secs(120)),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            since: Instant::now(),
            restarting: false,
        }
    }

    fn subject(&self, node: Option<(crate::topology::Role, String)>) -> Subject {
        Subject { generation: self.key.0, instance: self.key.1.clone(), node }
    }

    /// Starts the node actors, downstream first so that every output has an address.
    fn start_nodes(&mut self, ctx: &mut Context<Self>) {
        let order = topological(&self.plan);
        let mut addrs: HashMap<String, Addr<NodeActor>> = HashMap::new();
        for i in order.into_iter().rev() {
            let node = &self.plan.nodes[i];
            let outputs: Vec<Output> = self
                .plan
                .outputs_of(&node.name)
                .filter_map(|e| addrs.get(&e.to).map(|a| Output { to: a.clone().recipient(), flow: e.flow, media: e.media }))
                .collect();
            let stats = self.stats.entry(node.name.clone()).or_default().clone();
            let color = sends_images_downstream(&self.plan, &node.name);
            let env =
                NodeEnv { subject: self.subject(Some((node.role, node.name.clone()))), events: self.services.events.clone(), stats, color };
            let factory = match crate::nodes::factory(node, &self.plan, &self.key, &self.services) {
                Ok(f) => f,
                Err(e) => {
                    // Checked at activation; a failure here is a bug, reported not panicked.
                    tracing::error!(node = %node.name, error = ?e, "node cannot be built");
                    continue;
                }
            };
            let addr = NodeActor::new(factory, outputs, env, ctx.address().recipient()).start();
            addrs.insert(node.name.clone(), addr);
        }
        // Keep them in start (upstream-first) order for stopping.
        self.nodes = topological(&self.plan)
            .into_iter()
            .filter_map(|i| addrs.remove(&self.plan.nodes[i].name).map(|a| (self.plan.nodes[i].name.clone(), a)))
            .collect();
        self.since = Instant::now();
    }

    fn stop_nodes(&mut self) -> impl ActorFuture<Self, Output = ()> {
        let nodes = std::mem::take(&mut self.nodes);
        async move {
            for (_, addr) in nodes {
                let _ = addr.send(StopNode).await;
            }
        }
        .into_actor(self)
    }
}

/// Node indices, every node after the nodes it takes input from.
pub(crate) fn topological(plan: &GraphPlan) -> Vec<usize> {
    let n = plan.nodes.len();
    let index = |name: &str| plan.nodes.iter().position(|x| x.name == name);
    let mut indegree = vec![0usize; n];
    for e in &plan.edges {
        if let Some(t) = index(&e.to) {
            indegree[t] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        out.push(i);
        for e in plan.edges.iter().filter(|e| e.from == plan.nodes[i].name) {
            if let Some(t) = index(&e.to) {
                indegree[t] -= 1;
                if indegree[t] == 0 {
                    ready.push(t);
                }
            }
        }
    }
    out
}

impl Actor for InstanceSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(instance = %self.key.1, topology = %self.plan.topology_name, nodes = self.plan.nodes.len(), "instance starting");
        self.start_nodes(ctx);
    }
}

impl Handler<NodeFailed> for InstanceSupervisor {
    type Result = ();

    fn handle(&mut self, f: NodeFailed, ctx: &mut Context<Self>) {
        if self.restarting || !self.failures.record(self.since.elapsed()) {
            return;
        }
        // The node keeps failing on its own: restart the whole instance.
        self.restarting = true;
        self.failures.clear();
        let delay = self.backoff.next_delay();
        tracing::warn!(instance = %self.key.1, node = %f.node, retry_in = ?delay, "instance restarting");
        self.services.events.emit(
            &self.subject(None),
            EventClass::Diagnostics,
            "RuntimeError",
            json!({ "code": "InstanceRestarting", "message": format!("node '{}' keeps failing: {}", f.node, f.reason), "restartInSeconds": delay.as_secs_f64() }),
        );
        ctx.wait(self.stop_nodes());
        ctx.run_later(delay, |act, ctx| {
            act.restarting = false;
            act.start_nodes(ctx);
        });
    }
}

impl Handler<StopInstance> for InstanceSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopInstance, _ctx: &mut Context<Self>) -> Self::Result {
        tracing::info!(instance = %self.key.1, "instance stopping");
        Box::pin(self.stop_nodes().map(|_, _act, ctx: &mut Context<Self>| ctx.stop()))
    }
}

impl Handler<GetStats> for InstanceSupervisor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

/// Whether frames leaving `node` reach, through frames edges, a node that sends images.
fn sends_images_downstream(plan: &GraphPlan, node: &str) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        for e in plan.outputs_of(n).filter(|e| e.flow == Flow::Frames) {
            if !seen.insert(e.to.as_str()) {
                continue;
            }
            let images = plan.node(&e.to).is_some_and(|t| {
                matches!(
                    t.settings,
                    NodeSettings::HttpExtension(_) | NodeSettings::GrpcExtension(_) | NodeSettings::CognitiveServicesVision(_)
                )
            });
            if images {
                return true;
            }
            stack.push(&e.to);
        }
    }
    false
}
