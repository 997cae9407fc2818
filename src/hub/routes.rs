//! IoT Edge routes: the `FROM <source> [WHERE <condition>] INTO <sink>` grammar and which sinks a message goes to.
//!
//! Matching follows edgeHub: a source is a path prefix compared case-insensitively with
//! the message's source `/messages/modules/{module}/outputs/{output}/`, so a trailing
//! `/*` is optional and `outputs/X/*` means exactly output `X`. `WHERE` conditions are
//! refused with an error naming the route: they are not supported yet (the IoT Hub query
//! language over properties and body is not implemented). `/twinChangeNotifications`
//! parses but matches nothing, because the hub does not emit twin change notifications.
//! Pure: no I/O.

use std::fmt;

/// Where a route takes messages from (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `/*`: everything.
    All,
    /// `/messages/*`: every message from a device or module.
    Messages,
    /// `/messages/modules/*`: every message from any module.
    AllModules,
    /// `/messages/modules/<m>/*`: every message from module `m`, with or without an output.
    Module { module: String },
    /// `/messages/modules/<m>/outputs/*`: messages module `m` sent to any output.
    ModuleOutputs { module: String },
    /// `/messages/modules/<m>/outputs/<o>` or `…/outputs/<o>/*`: output `o` of module `m`.
    Output { module: String, output: String },
    /// `/twinChangeNotifications`.
    TwinChangeNotifications,
}

/// Where a route delivers messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sink {
    /// `$upstream`: to IoT Hub; here, the `upstream/…` topic (see `topics::upstream_topic`).
    Upstream,
    /// `BrokeredEndpoint("/modules/<m>/inputs/<i>")`: input `i` of module `m`.
    ModuleInput { module: String, input: String },
}

/// One named route of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    /// The route as written in the deployment.
    pub text: String,
    pub source: Source,
    pub sink: Sink,
}

/// A route that does not parse: which one, where (1-based character column in `text`)
/// and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("route {name:?}, column {column}: {message} (in {text:?})")]
pub struct RouteError {
    pub name: String,
    pub text: String,
    pub column: usize,
    pub message: String,
}

impl Source {
    /// Whether a message from `module`, sent to `output` (None: no output name), matches.
    pub fn matches(&self, module: &str, output: Option<&str>) -> bool {
        match self {
            Source::All | Source::Messages | Source::AllModules => true,
            Source::Module { module: m } => m.eq_ignore_ascii_case(module),
            Source::ModuleOutputs { module: m } => m.eq_ignore_ascii_case(module) && output.is_some(),
            Source::Output { module: m, output: o } => {
                m.eq_ignore_ascii_case(module) && output.is_some_and(|out| out.eq_ignore_ascii_case(o))
            }
            Source::TwinChangeNotifications => false,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::All => f.write_str("/*"),
            Source::Messages => f.write_str("/messages/*"),
            Source::AllModules => f.write_str("/messages/modules/*"),
            Source::Module { module } => write!(f, "/messages/modules/{module}/*"),
            Source::ModuleOutputs { module } => write!(f, "/messages/modules/{module}/outputs/*"),
            Source::Output { module, output } => write!(f, "/messages/modules/{module}/outputs/{output}"),
            Source::TwinChangeNotifications => f.write_str("/twinChangeNotifications"),
        }
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Upstream => f.write_str("$upstream"),
            Sink::ModuleInput { module, input } => write!(f, "BrokeredEndpoint(\"/modules/{module}/inputs/{input}\")"),
        }
    }
}

/// Every sink a message from `from_module` sent to `output` goes to, in route order,
/// each once even when several routes lead to it (edgeHub delivers once per endpoint).
pub fn targets(routes: &[Route], from_module: &str, output: Option<&str>) -> Vec<Sink> {
    let mut out: Vec<Sink> = Vec::new();
    for r in routes {
        if r.source.matches(from_module, output) && !out.contains(&r.sink) {
            out.push(r.sink.clone());
        }
    }
    out
}

/// Parses named routes in order, reporting every broken one.
pub fn parse_routes<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<Route>, Vec<RouteError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in routes {
        match parse_route(name, text) {
            Ok(r) => ok.push(r),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

/// Parses one route. Keywords (`FROM`, `WHERE`, `INTO`, `$upstream`,
/// `BrokeredEndpoint`) and the fixed path segments (`messages`, `modules`, `outputs`,
/// `inputs`, `twinChangeNotifications`) are case-insensitive; any run of whitespace
/// separates tokens; the endpoint may be quoted with `"` or `'`.
pub fn parse_route(name: &str, text: &str) -> Result<Route, RouteError> {
    let mut p = Parser { name, text, pos: 0 };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error_at(0, "empty route; expected FROM <source> [WHERE <condition>] INTO <sink>"));
    }
    let (at, word) = p.word();
    if !word.eq_ignore_ascii_case("FROM") {
        return Err(p.error_at(at, format!("expected FROM, found {word:?}")));
    }
    p.skip_ws();
    let (at, token) = p.word();
    if token.is_empty() {
        return Err(p.error_at(at, "expected a source after FROM, e.g. /messages/modules/<module>/outputs/*"));
    }
    let source = parse_source(token).map_err(|(offset, msg)| p.error_at(at + offset, msg))?;
    p.skip_ws();
    let (at, word) = p.word();
    if word.eq_ignore_ascii_case("WHERE") {
        return Err(p.error_at(at, "WHERE conditions are not supported yet; remove the condition or split the output instead"));
    }
    if !word.eq_ignore_ascii_case("INTO") {
        let found = if word.is_empty() { "the end of the route".to_string() } else { format!("{word:?}") };
        return Err(p.error_at(at, format!("expected INTO (or WHERE) after the source, found {found}")));
    }
    p.skip_ws();
    let sink = p.sink()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error_at(p.pos, format!("unexpected text after the sink: {:?}", &text[p.pos..])));
    }
    Ok(Route { name: name.to_string(), text: text.to_string(), source, sink })
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The next run of non-whitespace characters and its byte offset.
    fn word(&mut self) -> (usize, &'a str) {
        let start = self.pos;
        let rest = self.rest();
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.pos += len;
        (start, &rest[..len])
    }

    fn error_at(&self, byte: usize, message: impl Into<String>) -> RouteError {
        let byte = byte.min(self.text.len());
        RouteError {
            name: self.name.to_string(),
            text: self.text.to_string(),
            column: self.text[..byte].chars().count() + 1,
            message: message.into(),
        }
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        if rest.len() >= kw.len() && rest.is_char_boundary(kw.len()) && rest[..kw.len()].eq_ignore_ascii_case(kw) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn expect_char(&mut self, c: char, what: &str) -> Result<(), RouteError> {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            let found = self.rest().chars().next().map_or("the end of the route".to_string(), |f| format!("{f:?}"));
            Err(self.error_at(self.pos, format!("expected {what}, found {found}")))
        }
    }

    fn sink(&mut self) -> Result<Sink, RouteError> {
        let start = self.pos;
        if self.at_end() {
            return Err(
                self.error_at(start, "expected a sink after INTO: $upstream or BrokeredEndpoint(\"/modules/<module>/inputs/<input>\")")
            );
        }
        if self.eat_keyword("$upstream") {
            return Ok(Sink::Upstream);
        }
        if !self.eat_keyword("BrokeredEndpoint") {
            let (_, word) = self.word();
            return Err(self.error_at(
                start,
                format!("unknown sink {word:?}; expected $upstream or BrokeredEndpoint(\"/modules/<module>/inputs/<input>\")"),
            ));
        }
        self.skip_ws();
        self.expect_char('(', "'(' after BrokeredEndpoint")?;
        self.skip_ws();
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.error_at(self.pos, "expected a quoted endpoint such as \"/modules/<module>/inputs/<input>\"")),
        };
        self.pos += 1;
        let path_start = self.pos;
        let Some(len) = self.rest().find(quote) else {
            return Err(self.error_at(path_start - 1, "unterminated endpoint string"));
        };
        let path = &self.text[path_start..path_start + len];
        self.pos += len + 1;
        let sink = parse_endpoint(path).map_err(|(offset, msg)| self.error_at(path_start + offset, msg))?;
        self.skip_ws();
        self.expect_char(')', "')' closing BrokeredEndpoint")?;
        Ok(sink)
    }
}

/// Parses a source path; errors carry a byte offset into `token`.
fn parse_source(token: &str) -> Result<Source, (usize, String)> {
    const EXPECTED: &str = "expected /*, /messages/*, /messages/modules/*, /messages/modules/<module>/*, \
                            /messages/modules/<module>/outputs/*, /messages/modules/<module>/outputs/<output>[/*] \
                            or /twinChangeNotifications";
    if !token.starts_with('/') {
        return Err((0, format!("a source starts with '/'; {EXPECTED}")));
    }
    let base = token.strip_suffix('*').unwrap_or(token);
    if let Some(star) = base.find('*') {
        return Err((star, "'*' is only allowed as the whole last segment, as in /messages/modules/<module>/*".to_string()));
    }
    if base.len() < token.len() && !base.ends_with('/') {
        return Err((base.len(), "'*' is only allowed as the whole last segment, as in /messages/modules/<module>/*".to_string()));
    }
    let base = base.strip_suffix('/').unwrap_or(base);
    // (offset, segment) pairs after the leading '/'.
    let mut segs = Vec::new();
    if !base.is_empty() {
        let mut offset = 1;
        for s in base[1..].split('/') {
            if s.is_empty() {
                return Err((offset, "empty path segment ('//')".to_string()));
            }
            segs.push((offset, s));
            offset += s.len() + 1;
        }
    }
    let is = |i: usize, lit: &str| segs.get(i).is_some_and(|(_, s)| s.eq_ignore_ascii_case(lit));
    let unexpected = |i: usize| {
        let (offset, s) = segs[i];
        Err((offset, format!("unexpected segment {s:?}; {EXPECTED}")))
    };
    match segs.len() {
        0 => return Ok(Source::All),
        _ if is(0, "twinChangeNotifications") => {
            return if segs.len() == 1 { Ok(Source::TwinChangeNotifications) } else { unexpected(1) };
        }
        _ if !is(0, "messages") => return unexpected(0),
        1 => return Ok(Source::Messages),
        _ if !is(1, "modules") => {
            return if is(1, "events") {
                Err((segs[1].0, "messages of leaf devices (/messages/events) are not supported: the hub only has modules".to_string()))
            } else {
                unexpected(1)
            };
        }
        _ => {}
    }
    let module = segs.get(2).map(|(_, s)| s.to_string());
    match (segs.len(), module) {
        (2, _) => Ok(Source::AllModules),
        (3, Some(module)) => Ok(Source::Module { module }),
        (4, Some(module)) if is(3, "outputs") => Ok(Source::ModuleOutputs { module }),
        (5, Some(module)) if is(3, "outputs") => Ok(Source::Output { module, output: segs[4].1.to_string() }),
        (n, _) if n >= 4 && !is(3, "outputs") => unexpected(3),
        _ => unexpected(5),
    }
}

/// Parses `/modules/<m>/inputs/<i>`; errors carry a byte offset into `path`.
fn parse_endpoint(path: &str) -> Result<Sink, (usize, String)> {
    const EXPECTED: &str = "expected an endpoint of the form /modules/<module>/inputs/<input>";
    let segs: Vec<(usize, &str)> = {
        let mut offset = 0;
        path.split('/')
            .map(|s| {
                let r = (offset, s);
                offset += s.len() + 1;
                r
            })
            .collect()
    };
    match segs.as_slice() {
        [(_, ""), (_, modules), (mo, module), (_, inputs), (io, input)]
            if modules.eq_ignore_ascii_case("modules") && inputs.eq_ignore_ascii_case("inputs") =>
        {
            if module.is_empty() {
                return Err((*mo, "empty module name".to_string()));
            }
            if input.is_empty() {
                return Err((*io, "empty input name".to_string()));
            }
            for (offset, s) in [(*mo, *module), (*io, *input)] {
                if let Some(i) = s.find(|c: char| c.is_whitespace() || c == '+' || c == '#') {
                    return Err((offset + i, format!("{s:?} contains whitespace, '+' or '#'")));
                }
            }
            Ok(Sink::ModuleInput { module: module.to_string(), input: input.to_string() })
        }
        _ => Err((0, format!("{EXPECTED}, found {path:?}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn route(text: &str) -> Route {
        parse_route("r", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> RouteError {
        parse_route("r", text).expect_err(text)
    }

    fn input(m: &str, i: &str) -> Sink {
        Sink::ModuleInput { module: m.into(), input: i.into() }
    }

    /// Every distinct route of the reference deployment templates (SPEC §7).
    const SAMPLE_ROUTES: &[&str] = &[
        "FROM /messages/modules/lvaEdge/outputs/* INTO $upstream",
        "FROM /messages/modules/lvaEdge/outputs/AmsDiagnostics/* INTO $upstream",
        "FROM /messages/modules/lvaEdge/outputs/AmsOperational/* INTO $upstream",
        "FROM /messages/modules/lvaEdge/outputs/detectedObjects INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")",
        "FROM /messages/modules/objectCounter/outputs/objectCountTrigger INTO BrokeredEndpoint(\"/modules/lvaEdge/inputs/recordingTrigger\")",
        "FROM /messages/modules/objectCounter/outputs/* INTO BrokeredEndpoint(\"/modules/avaedge/inputs/recordingTrigger\")",
        "FROM /messages/modules/objectCounter/outputs/* INTO $upstream",
        "FROM /messages/modules/avaedge/outputs/* INTO $upstream",
        "FROM /messages/modules/avaedge/outputs/detectedObjects INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")",
    ];

    #[test]
    fn sample_routes_parse_to_what_they_say() {
        let parsed: Vec<Route> = SAMPLE_ROUTES.iter().map(|t| route(t)).collect();
        assert_eq!(parsed[0].source, Source::ModuleOutputs { module: "lvaEdge".into() });
        assert_eq!(parsed[0].sink, Sink::Upstream);
        assert_eq!(parsed[1].source, Source::Output { module: "lvaEdge".into(), output: "AmsDiagnostics".into() });
        assert_eq!(parsed[3].source, Source::Output { module: "lvaEdge".into(), output: "detectedObjects".into() });
        assert_eq!(parsed[3].sink, input("objectCounter", "detectedObjects"));
        assert_eq!(parsed[4].sink, input("lvaEdge", "recordingTrigger"));
        assert_eq!(parsed[5].source, Source::ModuleOutputs { module: "objectCounter".into() });
        // Display gives back an equivalent canonical text.
        for r in &parsed {
            let again = route(&format!("FROM {} INTO {}", r.source, r.sink));
            assert_eq!((again.source, again.sink), (r.source.clone(), r.sink.clone()));
        }
    }

    /// Every template under the reference samples (`tests/fixtures/reference/samples`): each route parses.
    #[test]
    fn every_reference_template_route_parses() {
        let Some(templates) = reference_templates() else { return };
        let mut count = 0;
        for path in &templates {
            let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let routes = doc["modulesContent"]["$edgeHub"]["properties.desired"]["routes"].as_object().unwrap();
            for (name, text) in routes {
                let text = text.as_str().unwrap();
                let r = parse_route(name, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(SAMPLE_ROUTES.contains(&text), "{}: route {text:?} is missing from SAMPLE_ROUTES", path.display());
                assert!(matches!(r.source, Source::ModuleOutputs { .. } | Source::Output { .. }));
                count += 1;
            }
        }
        assert!(templates.len() >= 50 && count >= 60, "{} templates, {count} routes", templates.len());
    }

    pub(crate) fn reference_templates() -> Option<Vec<std::path::PathBuf>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/samples");
        assert!(root.is_dir(), "{} is part of the repository", root.display());
        let mut out = Vec::new();
        for sample in std::fs::read_dir(&root).unwrap() {
            let edge = sample.unwrap().path().join("src/edge");
            let Ok(entries) = std::fs::read_dir(&edge) else { continue };
            for e in entries {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("deployment") && name.ends_with(".template.json") {
                    out.push(p);
                }
            }
        }
        out.sort();
        Some(out)
    }

    #[test]
    fn every_source_form() {
        let cases: &[(&str, Source)] = &[
            ("/*", Source::All),
            ("/", Source::All),
            ("/messages/*", Source::Messages),
            ("/messages", Source::Messages),
            ("/messages/modules/*", Source::AllModules),
            ("/messages/modules/m1/*", Source::Module { module: "m1".into() }),
            ("/messages/modules/m1", Source::Module { module: "m1".into() }),
            ("/messages/modules/m1/outputs/*", Source::ModuleOutputs { module: "m1".into() }),
            ("/messages/modules/m1/outputs/o1", Source::Output { module: "m1".into(), output: "o1".into() }),
            ("/messages/modules/m1/outputs/o1/*", Source::Output { module: "m1".into(), output: "o1".into() }),
            ("/messages/modules/m1/outputs/o1/", Source::Output { module: "m1".into(), output: "o1".into() }),
            ("/twinChangeNotifications", Source::TwinChangeNotifications),
            ("/MESSAGES/Modules/m1/OUTPUTS/o1", Source::Output { module: "m1".into(), output: "o1".into() }),
        ];
        for (src, expected) in cases {
            assert_eq!(&route(&format!("FROM {src} INTO $upstream")).source, expected, "{src}");
        }
    }

    #[test]
    fn keywords_any_case_and_any_whitespace() {
        let r = route("  from\t/messages/modules/a/outputs/b \n\n into   brokeredendpoint ( '/Modules/x/Inputs/y' )  ");
        assert_eq!(r.source, Source::Output { module: "a".into(), output: "b".into() });
        assert_eq!(r.sink, input("x", "y"));
        assert_eq!(route("FROM /* INTO $UPSTREAM").sink, Sink::Upstream);
        assert_eq!(route("From /* Into BrokeredEndpoint(\"/modules/x/inputs/y\")").sink, input("x", "y"));
    }

    #[test]
    fn where_is_refused_with_the_route_name_and_column() {
        let e = parse_route("OnlyTrucks", "FROM /messages/* WHERE eventType = 'x' INTO $upstream").unwrap_err();
        assert_eq!(e.name, "OnlyTrucks");
        assert_eq!(e.column, 18);
        assert!(e.message.contains("WHERE conditions are not supported yet"), "{e}");
        assert!(e.to_string().starts_with("route \"OnlyTrucks\", column 18: WHERE"), "{e}");
        assert_eq!(err("FROM /* where true INTO $upstream").column, 9);
    }

    #[test]
    fn errors_point_at_the_offending_text() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "empty route"),
            ("   ", 1, "empty route"),
            ("FRM /* INTO $upstream", 1, "expected FROM"),
            ("FROM", 5, "expected a source"),
            ("FROM messages/* INTO $upstream", 6, "starts with '/'"),
            ("FROM /message/* INTO $upstream", 7, "unexpected segment \"message\""),
            ("FROM /messages/module/x/* INTO $upstream", 16, "unexpected segment \"module\""),
            ("FROM /messages/events INTO $upstream", 16, "leaf devices"),
            ("FROM /messages/modules/x/output/y INTO $upstream", 26, "unexpected segment \"output\""),
            ("FROM /messages/modules/x/outputs/y/z INTO $upstream", 36, "unexpected segment \"z\""),
            ("FROM /messages/modules/*/outputs/y INTO $upstream", 24, "'*' is only allowed"),
            ("FROM /messages/modules/lva* INTO $upstream", 27, "'*' is only allowed"),
            ("FROM /messages//modules INTO $upstream", 16, "empty path segment"),
            ("FROM /twinChangeNotifications/x INTO $upstream", 31, "unexpected segment"),
            ("FROM /* $upstream", 9, "expected INTO"),
            ("FROM /*", 8, "found the end of the route"),
            ("FROM /* INTO", 13, "expected a sink"),
            ("FROM /* INTO $downstream", 14, "unknown sink \"$downstream\""),
            ("FROM /* INTO $upstream now", 24, "unexpected text after the sink"),
            ("FROM /* INTO BrokeredEndpoint", 30, "expected '(' after BrokeredEndpoint"),
            ("FROM /* INTO BrokeredEndpoint(/modules/a/inputs/b)", 31, "expected a quoted endpoint"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules/a/inputs/b)", 31, "unterminated"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules/a/inputs/b\"", 52, "expected ')'"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules/a/input/b\")", 32, "expected an endpoint"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules//inputs/b\")", 41, "empty module name"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules/a/inputs/\")", 50, "empty input name"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules/a b/inputs/c\")", 42, "whitespace"),
            ("FROM /* INTO BrokeredEndpoint(\"/modules/a/inputs/b/c\")", 32, "expected an endpoint"),
        ];
        for (text, column, needle) in cases {
            let e = err(text);
            assert!(e.message.contains(needle), "{text:?}: {e}");
            assert_eq!(e.column, *column, "{text:?}: {e}");
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = err("FROM /messages/modules/ü/outputs/x/y INTO $upstream");
        assert_eq!(e.column, 36);
    }

    #[test]
    fn parse_routes_reports_every_broken_route() {
        let errs = parse_routes([("a", "FROM /* INTO $upstream"), ("b", "FROM x INTO $upstream"), ("c", "nope")]).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        let ok = parse_routes([("a", "FROM /* INTO $upstream")]).unwrap();
        assert_eq!(ok[0].name, "a");
    }

    #[test]
    fn matching_follows_edgehub_prefix_semantics() {
        let m = |src: &str, module: &str, output: Option<&str>| route(&format!("FROM {src} INTO $upstream")).source.matches(module, output);
        assert!(m("/*", "a", None));
        assert!(m("/messages/*", "a", Some("o")));
        assert!(m("/messages/modules/*", "a", None));
        assert!(m("/messages/modules/a/*", "a", None));
        assert!(m("/messages/modules/a/*", "A", Some("o")));
        assert!(!m("/messages/modules/a/*", "ab", Some("o")));
        assert!(m("/messages/modules/a/outputs/*", "a", Some("o")));
        assert!(!m("/messages/modules/a/outputs/*", "a", None));
        assert!(m("/messages/modules/a/outputs/o", "a", Some("O")));
        assert!(!m("/messages/modules/a/outputs/o", "a", Some("o2")));
        assert!(!m("/messages/modules/a/outputs/Ams", "a", Some("AmsDiagnostics")));
        assert!(m("/messages/modules/a/outputs/o/*", "a", Some("o")));
        assert!(!m("/twinChangeNotifications", "a", Some("o")));
    }

    #[test]
    fn targets_follow_route_order_and_dedup() {
        let routes = parse_routes([
            ("r1", "FROM /messages/modules/objectCounter/outputs/* INTO $upstream"),
            ("r2", "FROM /messages/modules/objectCounter/outputs/objectCountTrigger INTO BrokeredEndpoint(\"/modules/lvaEdge/inputs/recordingTrigger\")"),
            ("r3", "FROM /messages/modules/objectCounter/* INTO $upstream"),
            ("r4", "FROM /* INTO BrokeredEndpoint(\"/modules/lvaEdge/inputs/recordingTrigger\")"),
            ("r5", "FROM /messages/modules/lvaEdge/outputs/detectedObjects INTO BrokeredEndpoint(\"/modules/objectCounter/inputs/detectedObjects\")"),
        ])
        .unwrap();
        assert_eq!(
            targets(&routes, "objectCounter", Some("objectCountTrigger")),
            vec![Sink::Upstream, input("lvaEdge", "recordingTrigger")]
        );
        assert_eq!(targets(&routes, "objectCounter", None), vec![Sink::Upstream, input("lvaEdge", "recordingTrigger")]);
        assert_eq!(
            targets(&routes, "lvaEdge", Some("detectedObjects")),
            vec![input("lvaEdge", "recordingTrigger"), input("objectCounter", "detectedObjects")]
        );
        assert_eq!(targets(&routes[..1], "rtspsim", Some("x")), vec![]);
        assert_eq!(targets(&[], "a", Some("b")), vec![]);
    }
}
