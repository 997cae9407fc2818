//! The LVA/AVA gRPC extension contract (SPEC §5.2): generated messages and service, inferences to and from JSON, and the shared-memory ring.
//!
//! One contract for both ends: the GrpcExtension node is its client, the detector module
//! serves it. The types come from the published protos (src/grpc/protos, see NOTICE.md),
//! compiled by build.rs.

pub mod inference;
pub mod shm;

/// The generated contract (package `microsoft.azure.media.live_video_analytics.extensibility.grpc.v1`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("microsoft.azure.media.live_video_analytics.extensibility.grpc.v1");
}

/// The request metadata key that carries credentials (`Basic base64(user:password)`).
pub const AUTH_METADATA: &str = "x-ms-authentication";
