//! FileSink: writes one MP4 file per signal-gate activation into a directory, within a size quota.

use super::common::has_system_variable;
use crate::topology::error::Code;
use crate::topology::params::NamePattern;
use crate::topology::reader::{check_range, Ctx, Field, Need, Obj};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSink {
    /// Relative paths resolve under the appliance's state directory.
    pub base_directory_path: String,
    /// The file name without `.mp4`, which is appended.
    pub file_name_pattern: NamePattern,
    /// Oldest files are deleted past this; `None` (LVA 1.0 only) means no quota.
    #[serde(rename = "maximumSizeMiB")]
    pub maximum_size_mib: Option<u64>,
}

pub(crate) fn parse(o: &Obj, cx: &mut Ctx) -> Option<FileSink> {
    if !cx.api.at_least_lva20() {
        for k in ["baseDirectoryPath", "fileNamePattern", "maximumSizeMiB"] {
            o.gate(cx, k, "LVA 2.0 (LVA 1.0 uses filePathPattern)");
        }
        return lva10(o, cx);
    }
    o.gate(cx, "filePathPattern", "LVA 1.0 only (use baseDirectoryPath and fileNamePattern)");
    let dir = o.scalar::<String>(cx, "baseDirectoryPath", Need::Required);
    let dir = match dir {
        Field::Value(d, p) if d.trim().is_empty() => {
            cx.error(Code::PropertyValueInvalid, &p, "baseDirectoryPath is empty");
            None
        }
        f => f.value(),
    };
    let pattern = name_pattern(o, cx, "fileNamePattern");
    let size = match o.scalar::<u64>(cx, "maximumSizeMiB", Need::Required) {
        Field::Value(v, p) => check_range(cx, &p, "maximumSizeMiB", v, 1, 1 << 30, " MiB").then_some(v),
        _ => None,
    };
    Some(FileSink { base_directory_path: dir?, file_name_pattern: pattern?, maximum_size_mib: Some(size?) })
}

/// LVA 1.0: one absolute `filePathPattern`, split into directory and file name.
fn lva10(o: &Obj, cx: &mut Ctx) -> Option<FileSink> {
    let pattern = name_pattern(o, cx, "filePathPattern")?;
    let mut dir = String::new();
    let mut segments = pattern.segments.clone();
    // The directory is the literal text before the last '/'; variables may follow.
    if let Some(crate::topology::params::PatternSegment::Lit(first)) = segments.first_mut() {
        if let Some(pos) = first.rfind('/') {
            dir = first[..=pos].to_string();
            *first = first[pos + 1..].to_string();
        }
    }
    if dir.is_empty() {
        cx.error(
            Code::PropertyValueInvalid,
            &o.path.key("filePathPattern"),
            "filePathPattern must be a path with a directory, such as /var/media/clip-${System.DateTime}",
        );
        return None;
    }
    segments.retain(|s| !matches!(s, crate::topology::params::PatternSegment::Lit(l) if l.is_empty()));
    Some(FileSink { base_directory_path: dir, file_name_pattern: NamePattern { segments }, maximum_size_mib: None })
}

/// A file name pattern: 1–260 characters, at least one system variable (so that each
/// activation gets its own file), and no path separators in the file-name part.
fn name_pattern(o: &Obj, cx: &mut Ctx, key: &'static str) -> Option<NamePattern> {
    let (raw, path) = o.need(cx, key, Need::Required).ok()??;
    let (pattern, text) = cx.pattern(raw, &path)?;
    let mut ok = true;
    if !has_system_variable(raw) {
        cx.error(
            Code::PropertyValueInvalidPattern,
            &path,
            format!(
                "{key} must include at least one system variable, such as ${{System.DateTime}}, so that each recording gets its own file"
            ),
        );
        ok = false;
    } else if !pattern.has_runtime_variable() {
        // SPEC §1.4 asks only for "a system variable"; without a date-time one every
        // recording of an instance gets the same name. The file sink never overwrites
        // (it numbers the files), but the user should know.
        cx.warn(
            Code::PropertyValueInvalidPattern,
            &path,
            format!(
                "{key} has no date-time variable: every recording gets the same name, so Vela numbers them (name-1.mp4, name-2.mp4, …)"
            ),
        );
    }
    let len = text.value.chars().count();
    if len == 0 || len > 260 {
        cx.error(Code::PropertyValueOutOfRange, &path, format!("{key} must be 1 to 260 characters long, not {len}"));
        ok = false;
    }
    let literal = pattern.literal_text();
    let name_part = if key == "filePathPattern" { literal.rsplit('/').next().unwrap_or("") } else { literal.as_str() };
    if let Some(c) = name_part.chars().find(|c| matches!(c, '/' | '\\' | '\0' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control())
    {
        cx.error(
            Code::PropertyValueInvalidPattern,
            &path,
            format!("the file name '{}' contains '{}', which is not allowed in file names", name_part, c.escape_default()),
        );
        ok = false;
    }
    if name_part.split(['/']).any(|seg| seg == "..") {
        cx.error(Code::PropertyValueInvalidPattern, &path, "'..' is not allowed in file names");
        ok = false;
    }
    ok.then_some(pattern)
}
