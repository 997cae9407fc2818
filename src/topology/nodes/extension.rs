//! What HTTP, gRPC and spatial-analysis extension processors share: endpoint, image preparation, sampling.

use super::common::{endpoint, image, sampling, Endpoint, EndpointUse, ImageSpec, SamplingOptions};
use crate::topology::reader::{Ctx, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionBase {
    pub endpoint: Endpoint,
    pub image: ImageSpec,
    pub sampling: SamplingOptions,
}

pub(crate) fn base(o: &Obj, cx: &mut Ctx, usage: EndpointUse, image_need: Need) -> Option<ExtensionBase> {
    let endpoint = endpoint(o, cx, usage);
    let image = image(o, cx, image_need);
    let sampling = sampling(o, cx);
    Some(ExtensionBase { endpoint: endpoint?, image: image?, sampling: sampling? })
}
