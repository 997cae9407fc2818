//! Errors of the hub's clients and router (the broker, routes and deployment have their own).

use super::message::BagError;
use std::time::Duration;

/// What can go wrong talking to the hub. URLs in messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("invalid hub URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "{url}: this build has no TLS (rumqttc is built without its TLS features); use mqtt:// on loopback or a trusted \
         network, or put a TLS-terminating proxy in front of the broker"
    )]
    TlsNotSupported { url: String },
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName { kind: &'static str, value: String, reason: &'static str },
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge { what: &'static str, size: usize, limit: usize },
    #[error("topic of {len} bytes exceeds MQTT's limit of 65535 bytes (too many or too long message properties)")]
    TopicTooLong { len: usize },
    #[error("not connected to the hub at {url}; the message was not sent")]
    NotConnected { url: String },
    #[error("could not connect to the hub at {url} within {timeout:?}: {last_error}")]
    ConnectTimeout { url: String, timeout: Duration, last_error: String },
    #[error("the hub client is shut down")]
    Closed,
    #[error("the broker did not acknowledge the subscription to {filters:?} within {timeout:?}")]
    SubscribeTimeout { filters: Vec<String>, timeout: Duration },
    #[error("the broker refused the subscription to {filters:?}")]
    SubscribeRejected { filters: Vec<String> },
    #[error("inputs() was already called on this client; its receiver is the only one")]
    InputsTaken,
    #[error("direct method {method} on {device}/{module} got no answer within {timeout:?}")]
    MethodTimeout { device: String, module: String, method: String, timeout: Duration },
    #[error("direct method {method} on {device}/{module} answered status {status} with a payload that is not JSON: {reason}")]
    InvalidMethodResponse { device: String, module: String, method: String, status: u16, reason: String },
    #[error(transparent)]
    Bag(#[from] BagError),
}
