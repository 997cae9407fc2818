//! Parameter declarations, `${name}` / `${System.*}` references and their substitution.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// Declared type of a topology parameter (LVA `String`…, AVA `string`…; any case accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ParamType {
    String,
    SecretString,
    Int,
    Double,
    Bool,
}

impl ParamType {
    pub const ALL: [(&'static str, ParamType); 5] = [
        ("string", ParamType::String),
        ("secretString", ParamType::SecretString),
        ("int", ParamType::Int),
        ("double", ParamType::Double),
        ("bool", ParamType::Bool),
    ];

    /// Checks that a value (an instance's or a default) fits the declared type.
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self {
            ParamType::String | ParamType::SecretString => Ok(()),
            ParamType::Int => value
                .trim()
                .parse::<i32>()
                .map(|_| ())
                .map_err(|_| format!("'{value}' is not a whole number from -2147483648 to 2147483647")),
            ParamType::Double => match value.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(()),
                _ => Err(format!("'{value}' is not a number")),
            },
            ParamType::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => Err(format!("'{value}' is not true or false")),
            },
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, ParamType::SecretString)
    }

    /// The type's name as the generation spells it (LVA `Int`, AVA `int`).
    pub fn name(&self, ava: bool) -> &'static str {
        match (self, ava) {
            (ParamType::String, false) => "String",
            (ParamType::SecretString, false) => "SecretString",
            (ParamType::Int, false) => "Int",
            (ParamType::Double, false) => "Double",
            (ParamType::Bool, false) => "Bool",
            (t, true) => ParamType::ALL.iter().find(|(_, x)| x == t).map(|(n, _)| *n).unwrap_or("string"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterDeclaration {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Variables the module resolves itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemVar {
    /// `yyyyMMddTHHmmssZ`, evaluated when a file or asset is created.
    DateTime,
    /// `yyyyMMddTHHmmss.fffZ`, evaluated when a file or asset is created.
    PreciseDateTime,
    TopologyName,
    InstanceName,
}

impl SystemVar {
    /// Both generations' spellings: LVA `System.DateTime`, AVA `System.Runtime.DateTime`, …
    const NAMES: [(&'static str, SystemVar); 8] = [
        ("System.DateTime", SystemVar::DateTime),
        ("System.Runtime.DateTime", SystemVar::DateTime),
        ("System.PreciseDateTime", SystemVar::PreciseDateTime),
        ("System.Runtime.PreciseDateTime", SystemVar::PreciseDateTime),
        ("System.GraphTopologyName", SystemVar::TopologyName),
        ("System.TopologyName", SystemVar::TopologyName),
        ("System.GraphInstanceName", SystemVar::InstanceName),
        ("System.PipelineName", SystemVar::InstanceName),
    ];

    pub fn lookup(name: &str) -> Option<SystemVar> {
        Self::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::NAMES.iter().map(|(n, _)| *n)
    }

    /// Whether the value changes per file or asset rather than per instance.
    pub fn is_runtime(&self) -> bool {
        matches!(self, SystemVar::DateTime | SystemVar::PreciseDateTime)
    }
}

/// A piece of a JSON string value after scanning for references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    Lit(&'a str),
    Param(&'a str),
    System(SystemVar),
}

/// Splits a string value into literal text and `${…}` references.
/// A `$` not followed by `{` is literal (published samples contain `$AVA_…` placeholders).
pub fn tokenize(s: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if pos > 0 {
            out.push(Token::Lit(&rest[..pos]));
        }
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated parameter reference '{}' (missing '}}')", &rest[pos..]));
        };
        let name = &after[..end];
        if name.is_empty() {
            return Err("empty parameter reference '${}'".to_string());
        }
        // `get` rather than slicing: a multi-byte character may straddle byte 7.
        if name.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("System.")) {
            match SystemVar::lookup(name) {
                Some(v) => out.push(Token::System(v)),
                None => {
                    return Err(format!(
                        "unknown system variable '${{{name}}}'{}; known: {}",
                        super::error::did_you_mean(name, SystemVar::names()),
                        SystemVar::names().collect::<Vec<_>>().join(", ")
                    ))
                }
            }
        } else if !valid_param_name(name) {
            return Err(format!("'${{{name}}}' is not a valid parameter reference"));
        } else {
            out.push(Token::Param(name));
        }
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Token::Lit(rest));
    }
    Ok(out)
}

/// Parameter names: letters, digits, `_`, `-` and `.`, at most 64 characters, not
/// starting with `System.` (reserved).
pub fn valid_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !(name.len() >= 7 && name[..7].eq_ignore_ascii_case("System."))
}

/// The values in force for one compile: instance values over defaults.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    /// `None` means declared but without a value (a topology checked on its own).
    pub values: BTreeMap<String, Binding>,
    pub topology_name: String,
    pub instance_name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub value: Option<String>,
    pub secret: bool,
}

/// A name whose date-time parts are filled in when each file or asset is created.
/// Serialises as its text (`clip-${System.DateTime}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    pub segments: Vec<PatternSegment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PatternSegment {
    Lit(String),
    DateTime,
    PreciseDateTime,
}

impl NamePattern {
    pub fn literal(s: &str) -> Self {
        NamePattern { segments: vec![PatternSegment::Lit(s.to_string())] }
    }

    pub fn has_runtime_variable(&self) -> bool {
        self.segments.iter().any(|s| !matches!(s, PatternSegment::Lit(_)))
    }

    /// The literal text of the pattern with the date-time parts left out, for
    /// character-set checks.
    pub fn literal_text(&self) -> String {
        self.segments
            .iter()
            .filter_map(|s| match s {
                PatternSegment::Lit(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn render(&self, at: SystemTime) -> String {
        let (date, ms) = (crate::clock::basic(at), crate::clock::civil(at).millis);
        self.segments
            .iter()
            .map(|s| match s {
                PatternSegment::Lit(l) => l.clone(),
                PatternSegment::DateTime => format!("{date}Z"),
                PatternSegment::PreciseDateTime => format!("{date}.{ms:03}Z"),
            })
            .collect()
    }
}

impl Serialize for NamePattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.segments {
            match s {
                PatternSegment::Lit(l) => f.write_str(l)?,
                PatternSegment::DateTime => f.write_str("${System.DateTime}")?,
                PatternSegment::PreciseDateTime => f.write_str("${System.PreciseDateTime}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn tokenizes_mixed_literal_text_and_several_references() {
        let t =
            tokenize("sampleFilesFromEVR-${System.TopologyName}-${System.PipelineName}-${fileSinkOutputName}-${System.Runtime.DateTime}")
                .unwrap();
        assert_eq!(
            t,
            vec![
                Token::Lit("sampleFilesFromEVR-"),
                Token::System(SystemVar::TopologyName),
                Token::Lit("-"),
                Token::System(SystemVar::InstanceName),
                Token::Lit("-"),
                Token::Param("fileSinkOutputName"),
                Token::Lit("-"),
                Token::System(SystemVar::DateTime),
            ]
        );
    }

    #[test]
    fn both_generations_system_names_and_any_case() {
        assert_eq!(SystemVar::lookup("System.DateTime"), Some(SystemVar::DateTime));
        assert_eq!(SystemVar::lookup("System.Runtime.PreciseDateTime"), Some(SystemVar::PreciseDateTime));
        assert_eq!(SystemVar::lookup("system.graphinstancename"), Some(SystemVar::InstanceName));
        assert_eq!(SystemVar::lookup("System.PipelineName"), Some(SystemVar::InstanceName));
        assert_eq!(SystemVar::lookup("System.Nope"), None);
    }

    #[test]
    fn dollar_without_brace_is_literal() {
        assert_eq!(tokenize("$AVA_TOKEN").unwrap(), vec![Token::Lit("$AVA_TOKEN")]);
        assert_eq!(tokenize("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(tokenize("${rtspUrl").unwrap_err().contains("unterminated"));
        assert!(tokenize("a${}b").unwrap_err().contains("empty"));
        let e = tokenize("${System.DateTim}").unwrap_err();
        assert!(e.contains("did you mean 'System.DateTime'"), "{e}");
        assert!(tokenize("${a b}").unwrap_err().contains("not a valid"));
    }

    #[test]
    fn typed_values_are_checked() {
        assert!(ParamType::Int.check("416").is_ok());
        assert!(ParamType::Int.check("4.5").is_err());
        assert!(ParamType::Int.check("99999999999").is_err());
        assert!(ParamType::Double.check("0.5").is_ok());
        assert!(ParamType::Double.check("NaN").is_err());
        assert!(ParamType::Bool.check("False").is_ok());
        assert!(ParamType::Bool.check("yes").is_err());
        assert!(ParamType::SecretString.check("anything").is_ok());
    }

    #[test]
    fn patterns_render_file_safe_utc_times() {
        let p = NamePattern {
            segments: vec![
                PatternSegment::Lit("clip-".into()),
                PatternSegment::DateTime,
                PatternSegment::Lit("-".into()),
                PatternSegment::PreciseDateTime,
            ],
        };
        // 2020-02-22T17:32:00.123Z
        let t = UNIX_EPOCH + Duration::from_millis(1_582_392_720_123);
        assert_eq!(p.render(t), "clip-20200222T173200Z-20200222T173200.123Z");
        assert_eq!(p.to_string(), "clip-${System.DateTime}-${System.PreciseDateTime}");
        assert_eq!(p.literal_text(), "clip--");
    }
}
