//! Golden test: every published LVA/AVA topology either compiles or fails with its committed diagnostic.

mod common;

use common::{assert_golden, fixture, json_files};

#[test]
fn every_published_topology_compiles_or_fails_as_recorded() {
    let base = fixture("reference");
    let mut files = json_files(&base.join("lva-topologies"), &base);
    files.extend(json_files(&base.join("ava-topologies"), &base));
    assert!(files.len() >= 90, "the corpus has {} files; expected the whole published set", files.len());

    let mut report = String::new();
    let (mut ok, mut failed) = (0, 0);
    for f in &files {
        let bytes = std::fs::read(base.join(f)).unwrap();
        let r = vela::check::check_file(&f.display().to_string(), &bytes, false);
        if r.ok {
            ok += 1;
        } else {
            failed += 1;
        }
        report.push_str(&r.text);
        report.push('\n');
    }
    report.push_str(&format!("\n{ok} compile, {failed} fail\n"));
    assert_golden(&fixture("golden/corpus.txt"), &report);
}

/// The failures the golden file records, stated as rules so a regenerated golden
/// file cannot quietly accept a new failure.
#[test]
fn only_cloud_invalid_json_and_instance_templates_fail() {
    let base = fixture("reference");
    let mut files = json_files(&base.join("lva-topologies"), &base);
    files.extend(json_files(&base.join("ava-topologies"), &base));
    for f in files {
        let name = f.display().to_string();
        let r = vela::check::check_file(&name, &std::fs::read(base.join(&f)).unwrap(), false);
        let expected_failure = if name.contains("_cloud/") {
            Some("CloudTopologyNotSupported")
        } else if name.ends_with("custom-operation-topology.json") {
            Some("InvalidJson at $: invalid JSON at line 100 column 1015")
        } else if name.ends_with("GraphInstance.json") {
            // The IoT Central gateway's instance templates leave the name empty.
            Some("NameInvalid at $.Name")
        } else {
            None
        };
        match expected_failure {
            Some(needle) => {
                assert!(!r.ok, "{name} should fail");
                assert!(r.text.contains(needle), "{name}: expected '{needle}' in:\n{}", r.text);
            }
            None => assert!(r.ok, "{name} should compile:\n{}", r.text),
        }
    }
}

#[test]
fn every_lva_version_and_ava_topology_keeps_its_declared_generation() {
    let base = fixture("reference");
    let check = |rel: &str, expect: &str| {
        let v = vela::topology::parse_json(&std::fs::read(base.join(rel)).unwrap()).unwrap();
        let plan = vela::topology::check_topology(&v, None).unwrap();
        assert_eq!(plan.api_version.to_string(), expect, "{rel}");
    };
    check("lva-topologies/evr-motion-files/1.0/topology.json", "LVA 1.0");
    check("lva-topologies/evr-motion-files/2.0/topology.json", "LVA 2.0");
    check("ava-topologies/evr-motion-file-sink/topology.json", "AVA 1.1");
    // No @apiVersion: inferred from the types (AVA) as the newest version.
    check("ava-topologies/evr-motion-video-sink-file-sink/topology.json", "AVA 1.1");
}
