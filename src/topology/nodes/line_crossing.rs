//! LineCrossingProcessor (AVA): counts tracked objects crossing named lines.

use super::common::{named_line, unique_names, NamedLine};
use crate::topology::error::Code;
use crate::topology::reader::{Ctx, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineCrossing {
    pub lines: Vec<NamedLine>,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<LineCrossing> {
    let items = o.array(cx, "lines", Need::Required)?;
    if items.is_empty() {
        cx.error(Code::PropertyRequired, &o.path.key("lines"), "at least one line is needed");
        return None;
    }
    let parsed: Vec<_> = items.into_iter().map(|(v, p)| (named_line(v, p.clone(), cx), p)).collect();
    unique_names(cx, parsed.iter().filter_map(|(l, p)| l.as_ref().map(|l| (l.name.as_str(), p.key("name")))), "line");
    let lines: Option<Vec<_>> = parsed.into_iter().map(|(l, _)| l).collect();
    Some(LineCrossing { lines: lines? })
}
