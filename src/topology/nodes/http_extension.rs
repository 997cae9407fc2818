//! HttpExtension: posts each sampled frame to an inference server (SPEC §5.1).

use super::common::EndpointUse;
use super::extension::{base, ExtensionBase};
use crate::topology::reader::{Ctx, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpExtension {
    #[serde(flatten)]
    pub base: ExtensionBase,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<HttpExtension> {
    Some(HttpExtension { base: base(o, cx, EndpointUse::Http, Need::Required)? })
}
