//! `vela check`: the text report of compiling topology (and instance) files.

use crate::topology::{self, CompileErrors, Diagnostic};

/// The outcome of checking one file: whether it passed and the lines to print.
pub struct Report {
    pub ok: bool,
    pub text: String,
}

fn errors(label: &str, e: &CompileErrors) -> Report {
    Report { ok: false, text: format!("FAIL {label}: {e}") }
}

/// Appends warnings; with `strict` they fail the check.
fn with_warnings(mut r: Report, warnings: &[Diagnostic], ava: bool, strict: bool) -> Report {
    for w in warnings {
        r.text.push_str(&format!("\n  warning {} at {}: {}", w.code.as_str(ava), w.target, w.message));
    }
    if strict && !warnings.is_empty() {
        r.ok = false;
        r.text = r.text.replacen("OK  ", "FAIL", 1) + "\n  (--strict: warnings are errors)";
    }
    r
}

/// Checks one document: a topology, or an instance on its own (shape only).
pub fn check_file(label: &str, bytes: &[u8], strict: bool) -> Report {
    let doc = match topology::parse_json(bytes) {
        Ok(d) => d,
        Err(e) => return errors(label, &e),
    };
    if topology::is_instance_document(&doc) {
        return match topology::check_instance_document(&doc) {
            Ok((t, n)) => Report {
                ok: true,
                text: format!("OK   {label}: instance of topology '{t}' with {n} parameter values (check it with its topology: vela check TOPOLOGY --instance {label})"),
            },
            Err(e) => errors(label, &e),
        };
    }
    match topology::check_topology(&doc, None) {
        Ok(plan) => with_warnings(
            Report { ok: true, text: format!("OK   {label}: {}", plan.summary()) },
            &plan.warnings,
            plan.api_version.is_ava(),
            strict,
        ),
        Err(e) => errors(label, &e),
    }
}

/// Checks a topology with an instance and shows the substituted plan, node by node
/// (secrets redacted).
pub fn check_with_instance(label: &str, topology_bytes: &[u8], instance_label: &str, instance_bytes: &[u8], strict: bool) -> Report {
    let both = format!("{label} + {instance_label}");
    let topo = match topology::parse_json(topology_bytes) {
        Ok(d) => d,
        Err(e) => return errors(label, &e),
    };
    let inst = match topology::parse_json(instance_bytes) {
        Ok(d) => d,
        Err(e) => return errors(instance_label, &e),
    };
    match topology::compile_instance(&topo, &inst, None) {
        Ok(plan) => {
            let mut text = format!("OK   {both}: {}", plan.summary());
            for n in &plan.nodes {
                let settings = serde_json::to_value(&n.settings).map(|v| v["settings"].to_string()).unwrap_or_default();
                text.push_str(&format!("\n  {} {}: {}", n.ty.short(), n.name, settings));
            }
            for e in &plan.edges {
                text.push_str(&format!("\n  {} -> {} ({})", e.from, e.to, e.flow.as_str()));
            }
            with_warnings(Report { ok: true, text }, &plan.warnings, plan.api_version.is_ava(), strict)
        }
        Err(e) => errors(&both, &e),
    }
}
