//! Strict, case-insensitive reading of JSON objects that collects every error with its path.
//!
//! serde's derive stops at the first error and matches keys exactly; the published
//! documents need any-case keys (SPEC C2), string- or number-typed scalars (C1) and
//! `${…}` substitution before parsing, and users need all errors at once. So documents
//! are parsed to `serde_json::Value` and read through this layer.

use super::duration::SignedDuration;
use super::error::{did_you_mean, Code, Diagnostic, JsonPath};
use super::model::{ApiVersion, Generation, TypeName};
use super::params::{tokenize, Bindings, NamePattern, PatternSegment, SystemVar, Token};
use serde_json::{Map, Value};
use std::cell::RefCell;

/// The state of one compile: version, parameter values, errors so far.
pub(crate) struct Ctx<'b> {
    pub api: ApiVersion,
    pub bindings: &'b Bindings,
    pub errors: Vec<Diagnostic>,
    /// Problems that do not stop the graph from running (such as parameters declared
    /// but never used, which published samples contain).
    pub warnings: Vec<Diagnostic>,
    /// Set when a value referenced a parameter that has no value yet (a topology
    /// checked without an instance): the node's settings cannot be built, which is
    /// not an error.
    pub deferred: bool,
    /// Whether the value being read may hold a `SecretString` parameter's value:
    /// credentials, endpoint URLs and extension configuration, all redacted when shown.
    /// Anywhere else (hub names, file names) a secret would be exposed.
    pub secret_ok: bool,
}

/// A substituted string value.
#[derive(Clone, Debug)]
pub(crate) struct Text {
    pub value: String,
    /// Whether a `SecretString` parameter contributed to the value.
    pub secret: bool,
    /// Parameters that contributed, for error messages.
    pub params: Vec<String>,
}

impl Text {
    /// " (from parameter 'x')", so that errors in substituted values point at their origin.
    pub fn origin(&self) -> String {
        match self.params.len() {
            0 => String::new(),
            1 => format!(" (from parameter '{}')", self.params[0]),
            _ => format!(" (from parameters {})", self.params.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ")),
        }
    }

    /// The value as shown in messages: secrets are never echoed.
    pub fn shown(&self) -> String {
        if self.secret {
            "<secret>".to_string()
        } else {
            format!("'{}'", self.value)
        }
    }
}

impl<'b> Ctx<'b> {
    pub fn new(api: ApiVersion, bindings: &'b Bindings) -> Self {
        Ctx { api, bindings, errors: Vec::new(), warnings: Vec::new(), deferred: false, secret_ok: false }
    }

    pub fn ava(&self) -> bool {
        self.api.is_ava()
    }

    pub fn error(&mut self, code: Code, target: &JsonPath, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(code, target.clone(), message));
    }

    /// An error whose path points into the instance document.
    pub fn instance_error(&mut self, code: Code, target: &JsonPath, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(code, target.clone(), message).in_instance());
    }

    /// Runs `f` with secrets allowed (see `secret_ok`).
    pub fn with_secrets<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let before = std::mem::replace(&mut self.secret_ok, true);
        let r = f(self);
        self.secret_ok = before;
        r
    }

    pub fn warn(&mut self, code: Code, target: &JsonPath, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(code, target.clone(), message));
    }

    /// A scalar as text: strings are substituted, numbers and booleans taken as
    /// written (C1). `None` when it failed (error recorded) or was deferred.
    pub fn text(&mut self, v: &Value, path: &JsonPath) -> Option<Text> {
        match self.segments(v, path, false)? {
            Resolved::Text(t) => Some(t),
            Resolved::Pattern(..) => unreachable!("runtime variables are refused when not allowed"),
        }
    }

    /// Like `text`, but `${System.DateTime}` and `${System.PreciseDateTime}` stay in
    /// the result, to be filled in when each file or asset is created.
    pub fn pattern(&mut self, v: &Value, path: &JsonPath) -> Option<(NamePattern, Text)> {
        match self.segments(v, path, true)? {
            Resolved::Text(t) => Some((NamePattern::literal(&t.value), t)),
            Resolved::Pattern(p, t) => Some((p, t)),
        }
    }

    fn segments(&mut self, v: &Value, path: &JsonPath, allow_runtime: bool) -> Option<Resolved> {
        let raw = match v {
            Value::String(s) => s,
            Value::Number(n) => return Some(Resolved::Text(Text { value: n.to_string(), secret: false, params: vec![] })),
            Value::Bool(b) => return Some(Resolved::Text(Text { value: b.to_string(), secret: false, params: vec![] })),
            other => {
                self.error(Code::PropertyTypeInvalid, path, format!("expected a string, found {}", kind_of(other)));
                return None;
            }
        };
        // Malformed references are reported once, by the document-wide scan.
        let tokens = tokenize(raw).ok()?;
        let mut out = Text { value: String::new(), secret: false, params: vec![] };
        let mut pattern: Vec<PatternSegment> = Vec::new();
        let mut deferred = false;
        for t in tokens {
            match t {
                Token::Lit(l) => out.value.push_str(l),
                Token::Param(p) => match self.bindings.values.get(p) {
                    Some(b) => {
                        out.params.push(p.to_string());
                        out.secret |= b.secret;
                        match &b.value {
                            Some(val) => out.value.push_str(val),
                            None => deferred = true,
                        }
                    }
                    // Undeclared: already reported by the scan.
                    None => deferred = true,
                },
                Token::System(SystemVar::TopologyName) => out.value.push_str(&self.bindings.topology_name),
                Token::System(SystemVar::InstanceName) => match &self.bindings.instance_name {
                    Some(n) => out.value.push_str(n),
                    None => deferred = true,
                },
                Token::System(var @ (SystemVar::DateTime | SystemVar::PreciseDateTime)) => {
                    if !allow_runtime {
                        let (name, where_) = match (self.ava(), var == SystemVar::DateTime) {
                            (true, true) => ("System.Runtime.DateTime", "file name patterns"),
                            (true, false) => ("System.Runtime.PreciseDateTime", "file name patterns"),
                            (false, true) => ("System.DateTime", "file and asset name patterns"),
                            (false, false) => ("System.PreciseDateTime", "file and asset name patterns"),
                        };
                        self.error(
                            Code::SystemVariableNotAllowedHere,
                            path,
                            format!("'${{{name}}}' changes with every recording and can only be used in {where_}"),
                        );
                        return None;
                    }
                    if !out.value.is_empty() {
                        pattern.push(PatternSegment::Lit(std::mem::take(&mut out.value)));
                    }
                    pattern.push(if var == SystemVar::DateTime { PatternSegment::DateTime } else { PatternSegment::PreciseDateTime });
                }
            }
        }
        if deferred {
            self.deferred = true;
            return None;
        }
        if out.secret && !self.secret_ok {
            self.error(
                Code::ParameterNotAllowedHere,
                path,
                format!(
                    "a SecretString parameter{} cannot be used here: its value would be exposed; secrets belong in credentials, endpoint URLs or extension configuration",
                    out.origin()
                ),
            );
            return None;
        }
        if pattern.is_empty() {
            return Some(Resolved::Text(out));
        }
        if !out.value.is_empty() {
            pattern.push(PatternSegment::Lit(out.value.clone()));
        }
        let p = NamePattern { segments: pattern };
        let whole = Text { value: p.to_string(), secret: out.secret, params: out.params };
        Some(Resolved::Pattern(p, whole))
    }

    /// Resolves a discriminator and checks that it is one of `allowed` and exists in
    /// this API version.
    pub fn type_of(&mut self, v: &Value, path: &JsonPath, allowed: &[TypeName], what: &str) -> Option<TypeName> {
        let Value::String(s) = v else {
            self.error(Code::PropertyTypeInvalid, path, format!("'@type' must be a string, found {}", kind_of(v)));
            return None;
        };
        let gen = self.api.generation();
        let api = self.api;
        let candidates =
            || allowed.iter().filter(|t| t.info().avail.has(api) && !t.info().cloud).map(|t| t.type_string(gen)).collect::<Vec<_>>();
        let Some((ty, prefix_gen)) = TypeName::lookup(s) else {
            let all = TypeName::all_strings();
            let hint = did_you_mean(s, all.iter().map(String::as_str));
            self.error(Code::TypeUnknown, path, format!("unknown {what} type '{s}'{hint}; expected one of: {}", candidates().join(", ")));
            return None;
        };
        if prefix_gen != gen {
            self.error(
                Code::TypeUnknown,
                path,
                format!(
                    "'{s}' is a {} type but this document is {}; use '{}'",
                    if prefix_gen == Generation::Lva { "LVA (#Microsoft.Media)" } else { "AVA (#Microsoft.VideoAnalyzer)" },
                    self.api,
                    ty.type_string(gen)
                ),
            );
            return None;
        }
        let info = ty.info();
        if info.cloud {
            self.error(
                Code::CloudTopologyNotSupported,
                path,
                format!("'{s}' belongs to the Azure Video Analyzer cloud service, not the edge module; Vela runs edge topologies only"),
            );
            return None;
        }
        if !allowed.contains(&ty) {
            self.error(
                Code::TypeNotAllowedHere,
                path,
                format!("a {} cannot be used as {what} here; expected one of: {}", ty.short(), candidates().join(", ")),
            );
            return None;
        }
        if !info.avail.has(self.api) {
            self.error(
                Code::TypeNotInVersion,
                path,
                format!("'{s}' does not exist in {} (it exists in {})", self.api, info.avail.describe()),
            );
            return None;
        }
        Some(ty)
    }
}

enum Resolved {
    Text(Text),
    Pattern(NamePattern, Text),
}

/// "an array", "a string", …: how messages name a JSON value's kind.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object read by canonical property names in any case. Keys nobody asked
/// for are reported by `finish`, with the closest known name as a hint.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub path: JsonPath,
    used: RefCell<Vec<bool>>,
    known: RefCell<Vec<&'static str>>,
}

/// What a property is when present.
pub(crate) enum Need {
    Required,
    Optional,
}

impl<'a> Obj<'a> {
    pub fn new(v: &'a Value, path: JsonPath, cx: &mut Ctx, what: &str) -> Option<Obj<'a>> {
        match v {
            Value::Object(map) => Some(Obj { map, path, used: RefCell::new(vec![false; map.len()]), known: RefCell::new(vec![]) }),
            other => {
                cx.error(Code::PropertyTypeInvalid, &path, format!("{what} must be an object, found {}", kind_of(other)));
                None
            }
        }
    }

    /// The value of a property, matched in any case; `null` counts as absent.
    pub fn get(&self, cx: &mut Ctx, name: &'static str) -> Option<(&'a Value, JsonPath)> {
        self.known.borrow_mut().push(name);
        let mut found: Option<(&'a Value, JsonPath)> = None;
        for (i, (k, v)) in self.map.iter().enumerate() {
            if k.eq_ignore_ascii_case(name) {
                self.used.borrow_mut()[i] = true;
                let path = self.path.key(name);
                if found.is_some() {
                    // Reported once; the first spelling is used so nothing cascades.
                    cx.error(Code::InvalidDocument, &path, format!("property '{name}' is given more than once (keys differ only in case)"));
                    continue;
                }
                if !v.is_null() {
                    found = Some((v, path));
                }
            }
        }
        found
    }

    /// Like `get`, reporting a missing required property: `Err` when it is missing.
    pub fn need(&self, cx: &mut Ctx, name: &'static str, need: Need) -> Result<Option<(&'a Value, JsonPath)>, ()> {
        let r = self.get(cx, name);
        if r.is_none() && matches!(need, Need::Required) {
            let how = if self.has_key(name) { "is null" } else { "is missing" };
            cx.error(Code::PropertyRequired, &self.path.key(name), format!("required property '{name}' {how}"));
            return Err(());
        }
        Ok(r)
    }

    fn has_key(&self, name: &str) -> bool {
        self.map.keys().any(|k| k.eq_ignore_ascii_case(name))
    }

    /// A property this API version does not have: reported with the versions that do.
    pub fn gate(&self, cx: &mut Ctx, name: &'static str, available_from: &str) {
        if self.has_key(name) {
            self.get(cx, name);
            cx.error(
                Code::PropertyNotInVersion,
                &self.path.key(name),
                format!("property '{name}' does not exist in {}; it is available from {available_from}", cx.api),
            );
        }
    }

    /// Marks keys that are read elsewhere (such as `@type`) as known.
    pub fn skip(&self, cx: &mut Ctx, name: &'static str) {
        self.get(cx, name);
    }

    /// Reports every key that was not asked for.
    pub fn finish(self, cx: &mut Ctx) {
        let known = self.known.into_inner();
        for (i, k) in self.map.keys().enumerate() {
            if !self.used.borrow()[i] {
                let hint = did_you_mean(k, known.iter().copied());
                cx.error(
                    Code::PropertyUnknown,
                    &self.path.key(k),
                    format!("unknown property '{k}'{hint}; known here: {}", known.join(", ")),
                );
            }
        }
    }

    /// A string-typed scalar parsed into `T` after substitution.
    pub fn scalar<T: FromText>(&self, cx: &mut Ctx, name: &'static str, need: Need) -> Field<T> {
        let (v, path) = match self.need(cx, name, need) {
            Err(()) => return Field::Failed,
            Ok(None) => return Field::Absent,
            Ok(Some(x)) => x,
        };
        match cx.text(v, &path) {
            Some(t) => match T::from_text(&t) {
                Ok(x) => Field::Value(x, path),
                Err(why) => {
                    cx.error(Code::PropertyValueInvalid, &path, format!("{}{} is not valid for '{name}': {why}", t.shown(), t.origin()));
                    Field::Failed
                }
            },
            None => Field::Failed,
        }
    }

    pub fn req<T: FromText>(&self, cx: &mut Ctx, name: &'static str) -> Option<T> {
        self.scalar(cx, name, Need::Required).value()
    }

    /// An optional scalar: `Some(None)` when absent, `None` when invalid.
    pub fn opt<T: FromText>(&self, cx: &mut Ctx, name: &'static str) -> Option<Option<T>> {
        match self.scalar(cx, name, Need::Optional) {
            Field::Value(v, _) => Some(Some(v)),
            Field::Absent => Some(None),
            Field::Failed => None,
        }
    }

    pub fn opt_or<T: FromText>(&self, cx: &mut Ctx, name: &'static str, default: T) -> Option<T> {
        self.opt(cx, name).map(|v| v.unwrap_or(default))
    }

    /// A sub-object: `Some(None)` when an optional one is absent, `None` on error.
    pub fn object(&self, cx: &mut Ctx, name: &'static str, need: Need) -> Option<Option<Obj<'a>>> {
        match self.need(cx, name, need).ok()? {
            Some((v, path)) => Obj::new(v, path, cx, &format!("'{name}'")).map(Some),
            None => Some(None),
        }
    }

    /// An array property (empty when an optional one is absent); each element with its path.
    pub fn array(&self, cx: &mut Ctx, name: &'static str, need: Need) -> Option<Vec<(&'a Value, JsonPath)>> {
        match self.need(cx, name, need).ok()? {
            Some((Value::Array(items), path)) => Some(items.iter().enumerate().map(|(i, v)| (v, path.index(i))).collect()),
            Some((other, path)) => {
                cx.error(Code::PropertyTypeInvalid, &path, format!("'{name}' must be an array, found {}", kind_of(other)));
                None
            }
            None => Some(vec![]),
        }
    }

    /// The literal (never substituted) string of a structural property such as a
    /// node name: parameters cannot change the shape of a graph.
    pub fn literal(&self, cx: &mut Ctx, name: &'static str) -> Option<(String, JsonPath)> {
        let (v, path) = self.need(cx, name, Need::Required).ok()??;
        match v {
            Value::String(s) if s.contains("${") => {
                cx.error(
                    Code::ParameterNotAllowedHere,
                    &path,
                    format!("'{name}' cannot use parameters: it shapes the graph and must be literal"),
                );
                None
            }
            Value::String(s) => Some((s.clone(), path)),
            other => {
                cx.error(Code::PropertyTypeInvalid, &path, format!("'{name}' must be a string, found {}", kind_of(other)));
                None
            }
        }
    }

    /// A discriminated sub-object: its `@type` and the object itself.
    pub fn typed(
        &self,
        cx: &mut Ctx,
        name: &'static str,
        need: Need,
        allowed: &[TypeName],
        what: &str,
    ) -> Option<Option<(TypeName, Obj<'a>)>> {
        match self.object(cx, name, need)? {
            Some(o) => typed_of(&o, cx, allowed, what).map(|t| Some((t, o))),
            None => Some(None),
        }
    }
}

/// Reads `@type` of an object and checks it against `allowed`.
pub(crate) fn typed_of(o: &Obj, cx: &mut Ctx, allowed: &[TypeName], what: &str) -> Option<TypeName> {
    let (v, path) = o.need(cx, "@type", Need::Required).ok()??;
    cx.type_of(v, &path, allowed, what)
}

/// The outcome of reading one scalar.
pub(crate) enum Field<T> {
    Value(T, JsonPath),
    Absent,
    /// Invalid (error recorded) or deferred.
    Failed,
}

impl<T> Field<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Field::Value(v, _) => Some(v),
            _ => None,
        }
    }
}

/// Parsing of a substituted string into a typed setting.
pub(crate) trait FromText: Sized {
    fn from_text(t: &Text) -> Result<Self, String>;
}

impl FromText for String {
    fn from_text(t: &Text) -> Result<Self, String> {
        Ok(t.value.clone())
    }
}

impl FromText for Text {
    fn from_text(t: &Text) -> Result<Self, String> {
        Ok(t.clone())
    }
}

impl FromText for bool {
    fn from_text(t: &Text) -> Result<Self, String> {
        match t.value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
}

impl FromText for u32 {
    fn from_text(t: &Text) -> Result<Self, String> {
        let s = t.value.trim();
        // "416.0" is how some tools serialise integers; accept whole decimals.
        if let Ok(v) = s.parse::<u32>() {
            return Ok(v);
        }
        match s.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f) => Ok(f as u32),
            _ => Err("expected a non-negative whole number".into()),
        }
    }
}

impl FromText for u64 {
    fn from_text(t: &Text) -> Result<Self, String> {
        let s = t.value.trim();
        if let Ok(v) = s.parse::<u64>() {
            return Ok(v);
        }
        match s.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && (0.0..1.8e19).contains(&f) => Ok(f as u64),
            _ => Err("expected a non-negative whole number".into()),
        }
    }
}

impl FromText for f64 {
    fn from_text(t: &Text) -> Result<Self, String> {
        match t.value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err("expected a number".into()),
        }
    }
}

impl FromText for SignedDuration {
    fn from_text(t: &Text) -> Result<Self, String> {
        SignedDuration::parse_iso8601(&t.value)
    }
}

/// Enums whose values are matched in any case (C2). The first spelling is the
/// canonical AVA (camelCase) one; LVA's PascalCase is derived from it.
pub(crate) trait TextEnum: Sized + Copy + 'static {
    const VALUES: &'static [(&'static str, Self)];
}

impl<E: TextEnum> FromText for E {
    fn from_text(t: &Text) -> Result<Self, String> {
        let s = t.value.trim();
        E::VALUES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = E::VALUES.iter().map(|(n, _)| *n).collect();
            format!("expected one of {}{}", names.join(", "), did_you_mean(s, names.iter().copied()))
        })
    }
}

/// Declares a closed enum read with `TextEnum`.
macro_rules! text_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $($variant),+ }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl $crate::topology::reader::TextEnum for $name {
            const VALUES: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }
        impl $name {
            #[allow(dead_code)]
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}
pub(crate) use text_enum;

/// Records an out-of-range error unless `lo <= v <= hi`.
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    cx: &mut Ctx,
    path: &JsonPath,
    what: &str,
    v: T,
    lo: T,
    hi: T,
    unit: &str,
) -> bool {
    if v < lo || v > hi {
        cx.error(Code::PropertyValueOutOfRange, path, format!("{what} is {v}{unit}, outside the allowed range {lo}{unit} to {hi}{unit}"));
        false
    } else {
        true
    }
}
