//! Compiler diagnostics in the OData error shape of the direct-method API (SPEC §3.2).

use serde::Serialize;
use std::fmt;

/// A JSONPath with PascalCase segments, as the original service reported them
/// (`$.Properties.Sources[0].Endpoint.Url`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(String);

impl JsonPath {
    pub fn root() -> Self {
        JsonPath("$".to_string())
    }

    /// Appends a property segment; `name` is the canonical (camelCase) property name.
    pub fn key(&self, name: &str) -> Self {
        if name.starts_with('@') || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            JsonPath(format!("{}['{}']", self.0, name.replace('\'', "\\'")))
        } else {
            JsonPath(format!("{}.{}", self.0, pascal(name)))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        JsonPath(format!("{}[{}]", self.0, i))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

pub(crate) fn pascal(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Detail codes. The generic graph code depends on the API generation
/// (`GraphValidationError` for LVA, `PipelineValidationError` for AVA); the
/// others are specific so that tools can react to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Code {
    InvalidJson,
    InvalidDocument,
    ApiVersionNotSupported,
    CloudTopologyNotSupported,
    PropertyRequired,
    PropertyUnknown,
    PropertyNotInVersion,
    PropertyTypeInvalid,
    PropertyValueInvalid,
    PropertyValueInvalidPattern,
    PropertyValueOutOfRange,
    TypeUnknown,
    TypeNotAllowedHere,
    TypeNotInVersion,
    NameInvalid,
    NodeNameDuplicate,
    NodeInputUnknown,
    RtspEndpointUrlInvalidScheme,
    EndpointUrlInvalidScheme,
    ParameterDeclarationInvalid,
    ParameterDuplicate,
    ParameterUndeclared,
    ParameterUnused,
    ParameterMissing,
    ParameterValueInvalid,
    ParameterNotAllowedHere,
    SystemVariableUnknown,
    SystemVariableNotAllowedHere,
    /// Cycles, partitions, placement: rendered as `GraphValidationError` or
    /// `PipelineValidationError` depending on the generation.
    GraphValidation,
    TopologyNameMismatch,
}

impl Code {
    pub fn as_str(&self, ava: bool) -> &'static str {
        use Code::*;
        match self {
            InvalidJson => "InvalidJson",
            InvalidDocument => "InvalidDocument",
            ApiVersionNotSupported => "ApiVersionNotSupported",
            CloudTopologyNotSupported => "CloudTopologyNotSupported",
            PropertyRequired => "PropertyRequired",
            PropertyUnknown => "PropertyUnknown",
            PropertyNotInVersion => "PropertyNotInVersion",
            PropertyTypeInvalid => "PropertyTypeInvalid",
            PropertyValueInvalid => "PropertyValueInvalid",
            PropertyValueInvalidPattern => "PropertyValueInvalidPattern",
            PropertyValueOutOfRange => "PropertyValueOutOfRange",
            TypeUnknown => "TypeUnknown",
            TypeNotAllowedHere => "TypeNotAllowedHere",
            TypeNotInVersion => "TypeNotInVersion",
            NameInvalid => "NameInvalid",
            NodeNameDuplicate => "NodeNameDuplicate",
            NodeInputUnknown => "NodeInputUnknown",
            RtspEndpointUrlInvalidScheme => "RtspEndpointUrlInvalidScheme",
            EndpointUrlInvalidScheme => "EndpointUrlInvalidScheme",
            ParameterDeclarationInvalid => "ParameterDeclarationInvalid",
            ParameterDuplicate => "ParameterDuplicate",
            ParameterUndeclared => "ParameterUndeclared",
            ParameterUnused => "ParameterUnused",
            ParameterMissing => "ParameterMissing",
            ParameterValueInvalid => "ParameterValueInvalid",
            ParameterNotAllowedHere => "ParameterNotAllowedHere",
            SystemVariableUnknown => "SystemVariableUnknown",
            SystemVariableNotAllowedHere => "SystemVariableNotAllowedHere",
            GraphValidation if ava => "PipelineValidationError",
            GraphValidation => "GraphValidationError",
            TopologyNameMismatch => "TopologyNameMismatch",
        }
    }
}

/// Which document a diagnostic's path points into, when a topology and an instance
/// are compiled together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Document {
    #[default]
    Topology,
    Instance,
}

/// One problem, at one place in the submitted document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub target: JsonPath,
    pub message: String,
    pub document: Document,
}

impl Diagnostic {
    pub fn new(code: Code, target: JsonPath, message: impl Into<String>) -> Self {
        Diagnostic { code, target, message: message.into(), document: Document::Topology }
    }

    pub fn in_instance(mut self) -> Self {
        self.document = Document::Instance;
        self
    }
}

/// Every problem found in one document, never just the first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CompileErrors {
    /// Whether the document is of the AVA generation (decides code spellings).
    pub ava: bool,
    pub details: Vec<Diagnostic>,
}

impl CompileErrors {
    pub fn single(ava: bool, d: Diagnostic) -> Self {
        CompileErrors { ava, details: vec![d] }
    }

    /// The top-level OData error: a JSON syntax problem is a bad request, anything
    /// else an invalid resource.
    pub fn top_code(&self) -> (&'static str, &'static str) {
        if self.details.iter().any(|d| d.code == Code::InvalidJson) {
            ("BadRequest", "The request is invalid.")
        } else if self.details.iter().any(|d| d.code == Code::ApiVersionNotSupported) {
            ("InvalidVersion", "The API version is not valid.")
        } else {
            ("InvalidResource", "The resource format is invalid.")
        }
    }

    /// The `payload` of a failed direct method (SPEC §3.2).
    pub fn to_odata(&self) -> serde_json::Value {
        let (code, message) = self.top_code();
        let details: Vec<_> = self
            .details
            .iter()
            .map(|d| {
                serde_json::json!({
                    "code": d.code.as_str(self.ava),
                    "target": d.target.as_str(),
                    "message": d.message,
                })
            })
            .collect();
        serde_json::json!({ "error": { "code": code, "message": message, "details": details } })
    }
}

impl fmt::Display for CompileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.details.len();
        write!(f, "{} error{}", n, if n == 1 { "" } else { "s" })?;
        // Name the document only when the errors span both.
        let both = self.details.iter().any(|d| d.document == Document::Instance);
        for d in &self.details {
            let doc = match (both, d.document) {
                (false, _) => "",
                (true, Document::Topology) => "topology ",
                (true, Document::Instance) => "instance ",
            };
            write!(f, "\n  {} at {doc}{}: {}", d.code.as_str(self.ava), d.target, d.message)?;
        }
        Ok(())
    }
}

/// Levenshtein distance, for "did you mean" hints on keys, types and node names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word` (case-insensitive), if it is close enough to be
/// a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let limit = (w.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match suggest(word, candidates) {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_pascal_case_with_quoted_special_keys() {
        let p = JsonPath::root().key("properties").key("sources").index(0).key("endpoint").key("url");
        assert_eq!(p.as_str(), "$.Properties.Sources[0].Endpoint.Url");
        assert_eq!(JsonPath::root().key("@type").as_str(), "$['@type']");
    }

    #[test]
    fn suggestions_find_close_typos_only() {
        assert_eq!(suggest("endpiont", ["endpoint", "transport"]), Some("endpoint"));
        assert_eq!(suggest("ENDPOINT", ["endpoint"]), Some("endpoint"));
        assert_eq!(suggest("zzzzzz", ["endpoint", "transport"]), None);
    }

    #[test]
    fn odata_shape_uses_generation_specific_graph_code() {
        let d = Diagnostic::new(Code::GraphValidation, JsonPath::root(), "cycle");
        let lva = CompileErrors::single(false, d.clone()).to_odata();
        let ava = CompileErrors::single(true, d).to_odata();
        assert_eq!(lva["error"]["code"], "InvalidResource");
        assert_eq!(lva["error"]["details"][0]["code"], "GraphValidationError");
        assert_eq!(ava["error"]["details"][0]["code"], "PipelineValidationError");
        assert_eq!(ava["error"]["details"][0]["target"], "$");
    }
}
