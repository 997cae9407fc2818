//! Golden test: deliberately broken topologies (one planted mistake each, a few with
//! several) and the exact errors `vela check` reports for them.
//!
//! `tests/fixtures/broken/NN-*.json` are topologies; those named `-ok-` hold mistakes
//! of casing that the published samples make and that must still compile.
//! `tests/fixtures/broken/instances/NN-*.topology.json` + `NN-*.instance.json` are
//! checked together. Regenerate the expected reports with
//! `UPDATE_GOLDEN=1 cargo test --test broken_topologies`, then review every line.

mod common;

use common::{assert_golden, fixture};
use std::path::{Path, PathBuf};

/// The `.json` files directly in `dir` (not in sub-directories), sorted by name.
fn json_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Checks that every case failed or passed as its name says; returns the number of
/// failing cases.
fn assert_outcomes(outcomes: &[(String, bool, String)]) -> usize {
    let mut wrong = Vec::new();
    for (label, ok, text) in outcomes {
        let expect_ok = label.contains("-ok-");
        if *ok != expect_ok {
            wrong.push(format!(
                "{label}: expected to {}, but it {}:\n{text}",
                if expect_ok { "pass" } else { "fail" },
                if *ok { "passed" } else { "failed" }
            ));
        }
        // A failing case must fail for a reason, not with an empty report.
        if !ok {
            assert!(
                text.contains(" at $") || text.contains(" at instance $") || text.contains(" at topology $"),
                "{label}: failed without any error detail:\n{text}"
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    outcomes.iter().filter(|(_, ok, _)| !ok).count()
}

fn join_reports(outcomes: &[(String, bool, String)]) -> String {
    let mut report = outcomes.iter().map(|(_, _, text)| text.as_str()).collect::<Vec<_>>().join("\n\n");
    report.push('\n');
    report
}

#[test]
fn broken_topologies_report_the_planted_errors() {
    let base = fixture("broken");
    let files = json_files_in(&base);
    let outcomes: Vec<(String, bool, String)> = files
        .iter()
        .map(|p| {
            let label = file_name(p);
            let bytes = std::fs::read(p).unwrap();
            let r = vela::check::check_file(&label, &bytes, false);
            (label, r.ok, r.text)
        })
        .collect();

    let failing = assert_outcomes(&outcomes);
    let passing = outcomes.len() - failing;
    assert!(failing >= 25, "only {failing} failing cases in {}; the set must not pass vacuously", base.display());
    assert!(passing >= 1, "no -ok- case in {}", base.display());

    assert_golden(&base.join("expected.txt"), &join_reports(&outcomes));
}

#[test]
fn broken_instances_report_the_planted_errors() {
    let base = fixture("broken");
    let dir = base.join("instances");
    let topologies: Vec<PathBuf> = json_files_in(&dir).into_iter().filter(|p| file_name(p).ends_with(".topology.json")).collect();
    let instances = json_files_in(&dir).into_iter().filter(|p| file_name(p).ends_with(".instance.json")).count();
    assert_eq!(topologies.len(), instances, "every NN-name.topology.json in {} needs its NN-name.instance.json", dir.display());

    let rel = |p: &Path| p.strip_prefix(&base).unwrap().display().to_string();
    let outcomes: Vec<(String, bool, String)> = topologies
        .iter()
        .map(|t| {
            let i = dir.join(file_name(t).replace(".topology.json", ".instance.json"));
            assert!(i.is_file(), "{} has no instance {}", t.display(), i.display());
            let r = vela::check::check_with_instance(&rel(t), &std::fs::read(t).unwrap(), &rel(&i), &std::fs::read(&i).unwrap(), false);
            (rel(t), r.ok, r.text)
        })
        .collect();

    let failing = assert_outcomes(&outcomes);
    assert!(failing >= 4, "only {failing} failing instance cases in {}", dir.display());

    assert_golden(&dir.join("expected.txt"), &join_reports(&outcomes));
}
