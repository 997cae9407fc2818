//! The edge hub: embedded MQTT broker, module client, IoT Edge routes, message property bags and module twins.
//!
//! Modules talk only through an MQTT broker, in the topic layout of IoT Edge's edgeHub
//! (SPEC §7) with one deliberate change: direct methods and twin topics are scoped per
//! module (`devices/{d}/modules/{m}/$iothub/…`) because a plain broker cannot scope
//! `$iothub/…` per connection the way edgeHub does. `docs/hub.md` is the reference for
//! every topic, the property bag, the method and twin flows and the limits.
//!
//! Pure parts (no I/O): [`routes`], [`message`], [`topics`], [`twin`], [`deployment`].
//! Thin async shells: [`broker`] (rumqttd), [`client`] (rumqttc) and [`router`] (the hub).

pub mod broker;
pub mod client;
mod connection;
pub mod deployment;
pub mod error;
pub mod message;
pub mod router;
pub mod routes;
pub mod topics;
pub mod twin;

pub use broker::{BrokerConfig, BrokerError, EmbeddedBroker};
pub use client::{ClientOptions, MethodResponse, ModuleClient, Password};
pub use deployment::{Deployment, DeploymentError};
pub use error::HubError;
pub use message::{BagError, HubMessage};
pub use router::{EdgeHub, HubStats};
pub use routes::{targets, Route, RouteError, Sink, Source};

/// Largest message body a module may send to an output (IoT Hub's device-to-cloud limit,
/// 256 KB). Checked by our code before publishing, so an oversized message is refused
/// with [`HubError::PayloadTooLarge`] instead of the broker dropping the connection.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Largest direct-method request or response payload (IoT Hub's platform limit, SPEC §3.1).
pub const MAX_METHOD_PAYLOAD_BYTES: usize = 128 * 1024;

/// Largest MQTT packet (topic + payload + header) our clients send and the embedded broker
/// accepts. It sits well above the body limits plus a long property bag, so the broker's
/// own limit is never what refuses one of our messages.
pub const MAX_PACKET_BYTES: usize = 512 * 1024;

/// Largest packet our clients accept from the broker. Higher than [`MAX_PACKET_BYTES`]
/// because an external broker (mosquitto allows 256 MB by default) may deliver a big
/// message from a foreign publisher: rumqttc drops the whole connection on an oversized
/// packet, and a persistent session would redeliver it forever.
pub const MAX_INCOMING_PACKET_BYTES: usize = 16 * 1024 * 1024;
