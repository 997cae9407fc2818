//! The actor that runs one node: moves packets in and out, catches panics, and rebuilds the node after a capped backoff.
//!
//! actix's own `Supervisor` restarts an actor whenever it stops while addresses to it
//! are alive, which fights clean deactivation; and a panic would kill the arbiter
//! thread. So the actor never stops on failure: it drops the failed node (aborting its
//! tasks), waits, and builds a new one from its factory, keeping its address, so its
//! neighbours need no rewiring.

use super::backoff::Backoff;
use super::events::{EventClass, Events, Subject};
use super::frames::FrameTap;
use super::packet::Packet;
use crate::topology::{Flow, MediaTypes, Role};
use actix::prelude::*;
use serde_json::json;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

impl Message for Packet {
    type Result = ();
}

/// A runnable node. Implementations hold the node's state; the actor calls them on
/// its own thread, one call at a time.
pub trait Node: 'static {
    /// After construction (and after every rebuild): connect, spawn tasks.
    fn start(&mut self, _ctx: &mut NodeCtx<'_>) {}
    fn on_packet(&mut self, packet: Packet, ctx: &mut NodeCtx<'_>);
    /// Deactivation: finish files, send final events. Called once, before the actor stops.
    fn stop(&mut self, _ctx: &mut NodeCtx<'_>) {}
}

/// Builds the node (again, after a failure).
pub type NodeFactory = Box<dyn Fn() -> Box<dyn Node>>;

/// Where a node's output goes.
#[derive(Clone)]
pub struct Output {
    pub to: Recipient<Packet>,
    pub flow: Flow,
    pub media: MediaTypes,
}

/// Counters an instance reports (drops on analytics branches, restarts, decoding).
#[derive(Default, Debug)]
pub struct NodeStats {
    pub dropped: AtomicU64,
    pub restarts: AtomicU64,
    pub packets_in: AtomicU64,
    /// A source's decoder (when the graph needs pixels): pictures, failed access units,
    /// restarts at a keyframe.
    pub decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    pub resyncs: AtomicU64,
}

/// Identity and services of a node.
#[derive(Clone)]
pub struct NodeEnv {
    pub subject: Subject,
    pub events: Events,
    pub stats: Arc<NodeStats>,
    /// A source whose frames reach a node that sends images: its pictures keep their
    /// colour planes (others carry only the reduced luma motion needs).
    pub color: bool,
}

impl NodeEnv {
    pub fn name(&self) -> &str {
        self.subject.node.as_ref().map(|n| n.1.as_str()).unwrap_or("")
    }

    pub fn role(&self) -> Role {
        self.subject.node.as_ref().map(|n| n.0).unwrap_or(Role::Processor)
    }
}

/// What a node may do while handling a call.
pub struct NodeCtx<'a> {
    outputs: &'a [Output],
    tap: &'a mut Option<FrameTap>,
    pub env: &'a NodeEnv,
    addr: Addr<NodeActor>,
    tasks: &'a mut Vec<tokio::task::JoinHandle<()>>,
    failure: Option<String>,
}

impl NodeCtx<'_> {
    /// Sends a packet downstream, on the edges that carry its kind: encoded media and
    /// clip boundaries on media edges, frames on frames edges, events on event edges. A
    /// source's samples also go to its decoder when the graph needs pixels. Analytics
    /// branches (frames) drop when they fall behind and count it; media and events are
    /// never dropped.
    pub fn emit(&mut self, p: Packet) {
        if let (Packet::Video(v), Some(tap)) = (&p, self.tap.as_mut()) {
            tap.feed(v);
        }
        for o in self.outputs {
            let carries = match &p {
                Packet::Video(_) => o.flow == Flow::EncodedMedia && o.media.video,
                Packet::ClipStart { .. } | Packet::ClipEnd { .. } => o.flow == Flow::EncodedMedia,
                Packet::Frame(_) => o.flow == Flow::Frames,
                Packet::Event(_) => o.flow == Flow::Events,
            };
            if !carries {
                continue;
            }
            if o.flow == Flow::Frames {
                if o.to.try_send(p.clone()).is_err() {
                    self.env.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                o.to.do_send(p.clone());
            }
        }
    }

    /// Runs a task on the instance's thread; it is aborted when the node stops or is
    /// rebuilt. Tasks feed the node through `feeder()`.
    pub fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + 'static) {
        use futures::FutureExt;
        let feeder = self.feeder();
        self.tasks.push(actix_rt::spawn(async move {
            // A panicking task fails its node like a panicking handler does.
            if let Err(panic) = std::panic::AssertUnwindSafe(fut).catch_unwind().await {
                feeder.failed(format!("task panicked: {}", panic_message(&panic)));
            }
        }));
    }

    /// A handle tasks use to hand packets (and failures) to this node.
    pub fn feeder(&self) -> Feeder {
        Feeder { addr: self.addr.clone() }
    }

    /// The node cannot go on: it is rebuilt after a backoff.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.failure = Some(reason.into());
    }

    pub fn diagnostic(&self, ty: &str, body: serde_json::Value) {
        self.env.events.emit(&self.env.subject, EventClass::Diagnostics, ty, body);
    }

    pub fn operational(&self, ty: &str, body: serde_json::Value) {
        self.env.events.emit(&self.env.subject, EventClass::Operational, ty, body);
    }
}

/// Sends what a node's task produced back into the node.
#[derive(Clone)]
pub struct Feeder {
    addr: Addr<NodeActor>,
}

impl Feeder {
    /// Hands a packet to the node's `on_packet` (sources use `Produced` to emit it as is).
    pub fn produced(&self, p: Packet) {
        self.addr.do_send(Produced(p));
    }

    pub fn failed(&self, reason: String) {
        self.addr.do_send(TaskFailed(reason));
    }

    pub fn is_connected(&self) -> bool {
        self.addr.connected()
    }
}

/// A packet produced by one of the node's tasks, to be emitted downstream.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Produced(pub Packet);

#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskFailed(pub String);

/// Stops the node for good (deactivation); resolves when it has finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopNode;

/// Reported to the instance supervisor after each failure.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct NodeFailed {
    pub node: String,
    pub reason: String,
}

pub struct NodeActor {
    factory: NodeFactory,
    node: Option<Box<dyn Node>>,
    outputs: Vec<Output>,
    /// The decoder of a source that feeds frames edges.
    tap: Option<FrameTap>,
    env: NodeEnv,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    backoff: Backoff,
    supervisor: Recipient<NodeFailed>,
}

impl NodeActor {
    pub fn new(factory: NodeFactory, outputs: Vec<Output>, env: NodeEnv, supervisor: Recipient<NodeFailed>) -> Self {
        NodeActor {
            factory,
            node: None,
            outputs,
            tap: None,
            env,
            tasks: Vec::new(),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            supervisor,
        }
    }

    /// Runs `f` on the node, catching panics; handles a failure it reports.
    fn with_node(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut dyn Node, &mut NodeCtx<'_>)) {
        let Some(node) = self.node.as_mut() else { return };
        let mut nctx = NodeCtx {
            outputs: &self.outputs,
            tap: &mut self.tap,
            env: &self.env,
            addr: ctx.address(),
            tasks: &mut self.tasks,
            failure: None,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(node.as_mut(), &mut nctx)));
        let failure = match result {
            Ok(()) => nctx.failure.take(),
            Err(panic) => Some(format!("panicked: {}", panic_message(&panic))),
        };
        if let Some(reason) = failure {
            self.failed(ctx, reason);
        }
    }

    fn build(&mut self, ctx: &mut Context<Self>) {
        let factory = &self.factory;
        match catch_unwind(AssertUnwindSafe(factory)) {
            Ok(node) => {
                self.node = Some(node);
                self.with_node(ctx, |n, c| n.start(c));
            }
            Err(panic) => self.failed(ctx, format!("could not be built: {}", panic_message(&panic))),
        }
    }

    fn failed(&mut self, ctx: &mut Context<Self>, reason: String) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.node = None;
        if let Some(tap) = self.tap.as_mut() {
            tap.interrupted();
        }
        let delay = self.backoff.next_delay();
        self.env.stats.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(node = self.env.name(), instance = %self.env.subject.instance, %reason, retry_in = ?delay, "node failed");
        self.env.events.emit(
            &self.env.subject,
            EventClass::Diagnostics,
            "RuntimeError",
            json!({ "code": "NodeFailed", "message": reason, "restartInSeconds": delay.as_secs_f64() }),
        );
        self.supervisor.do_send(NodeFailed { node: self.env.name().to_string(), reason });
        ctx.run_later(delay, |act, ctx| act.build(ctx));
    }

    /// Sources whose frames edges need pixels get their decoder (pixel consumers are only
    /// ever fed by a source or by another frames node, which passes frames on).
    fn start_tap(&mut self) {
        let consumers: Vec<Recipient<Packet>> = self.outputs.iter().filter(|o| o.flow == Flow::Frames).map(|o| o.to.clone()).collect();
        if self.env.role() != Role::Source || consumers.is_empty() {
            return;
        }
        match FrameTap::start(consumers, self.env.clone()) {
            Ok(tap) => self.tap = Some(tap),
            // Without a thread the analytics of this source cannot run; recording can.
            Err(e) => self.env.events.emit(
                &self.env.subject,
                EventClass::Diagnostics,
                "RuntimeError",
                json!({"code": "DecoderFailed", "message": format!("cannot start the video decoder: {e}")}),
            ),
        }
    }

    /// A node that has run for a while without failing starts its backoff afresh.
    fn healthy(&mut self) {
        if self.backoff.attempts() > 0 {
            self.backoff.reset();
        }
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Recording branches must not lose samples to a full mailbox; do_send bypasses
        // the capacity, try_send (analytics) respects it.
        ctx.set_mailbox_capacity(64);
        self.start_tap();
        self.build(ctx);
        ctx.run_interval(Duration::from_secs(60), |act, _| act.healthy());
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Handler<Packet> for NodeActor {
    type Result = ();

    fn handle(&mut self, p: Packet, ctx: &mut Context<Self>) {
        self.env.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        self.with_node(ctx, |n, c| n.on_packet(p, c));
    }
}

impl Handler<Produced> for NodeActor {
    type Result = ();

    fn handle(&mut self, p: Produced, ctx: &mut Context<Self>) {
        // Produced packets belong to the current node only; a rebuilt node's old
        // tasks were aborted, but a message may still be queued.
        if self.node.is_some() {
            let mut nctx = NodeCtx {
                outputs: &self.outputs,
                tap: &mut self.tap,
                env: &self.env,
                addr: ctx.address(),
                tasks: &mut self.tasks,
                failure: None,
            };
            nctx.emit(p.0);
        }
    }
}

impl Handler<TaskFailed> for NodeActor {
    type Result = ();

    fn handle(&mut self, f: TaskFailed, ctx: &mut Context<Self>) {
        if self.node.is_some() {
            self.failed(ctx, f.0);
        }
    }
}

impl Handler<StopNode> for NodeActor {
    type Result = ();

    fn handle(&mut self, _: StopNode, ctx: &mut Context<Self>) {
        self.with_node(ctx, |n, c| n.stop(c));
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.node = None;
        if let Some(mut tap) = self.tap.take() {
            tap.stop();
        }
        ctx.stop();
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
