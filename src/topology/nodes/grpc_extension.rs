//! GrpcExtension: streams sampled frames to an inference server over the published gRPC contract (SPEC §5.2).

use super::common::EndpointUse;
use super::extension::{base, ExtensionBase};
use crate::topology::error::Code;
use crate::topology::reader::{check_range, text_enum, Ctx, Field, Need, Obj};
use serde::Serialize;

text_enum! {
    pub enum TransferMode { Embedded = "embedded", SharedMemory = "sharedMemory" }
}

/// Shared memory size when `sharedMemory` names none (undocumented upstream).
pub const DEFAULT_SHARED_MEMORY_MIB: u32 = 64;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcExtension {
    #[serde(flatten)]
    pub base: ExtensionBase,
    pub mode: TransferMode,
    /// Size of the `/dev/shm` ring for `sharedMemory`; `None` for `embedded`.
    #[serde(rename = "sharedMemorySizeMiB")]
    pub shared_memory_size_mib: Option<u32>,
    /// Opaque text forwarded to the server in the stream descriptor.
    pub extension_configuration: Option<super::common::MaybeSecret>,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<GrpcExtension> {
    let base = base(o, cx, EndpointUse::Grpc, Need::Required);
    let transfer = match o.object(cx, "dataTransfer", Need::Required) {
        Some(Some(d)) => {
            let mode = d.req::<TransferMode>(cx, "mode");
            let size = d.scalar::<u32>(cx, "sharedMemorySizeMiB", Need::Optional);
            let size = match (mode, size) {
                (_, Field::Failed) | (None, _) => None,
                (Some(TransferMode::Embedded), Field::Value(_, p)) => {
                    cx.error(Code::PropertyValueInvalid, &p, "sharedMemorySizeMiB is only valid with mode 'sharedMemory'");
                    None
                }
                (Some(TransferMode::Embedded), Field::Absent) => Some(None),
                (Some(TransferMode::SharedMemory), Field::Value(v, p)) => {
                    check_range(cx, &p, "sharedMemorySizeMiB", v, 1, 4096, " MiB").then_some(Some(v))
                }
                (Some(TransferMode::SharedMemory), Field::Absent) => Some(Some(DEFAULT_SHARED_MEMORY_MIB)),
            };
            d.finish(cx);
            mode.zip(size)
        }
        _ => None,
    };
    let config = if cx.api.at_least_lva20() {
        cx.with_secrets(|cx| o.opt::<crate::topology::reader::Text>(cx, "extensionConfiguration"))
            .map(|t| t.map(|t| super::common::MaybeSecret::new(t.value, t.secret)))
    } else {
        o.gate(cx, "extensionConfiguration", "LVA 2.0");
        Some(None)
    };
    let (mode, shared_memory_size_mib) = transfer?;
    Some(GrpcExtension { base: base?, mode, shared_memory_size_mib, extension_configuration: config? })
}
