//! The shared test kit: fixture locations and golden-file comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `tests/fixtures/…`
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// Every `.json` file below `dir`, sorted, as paths relative to `base`.
pub fn json_files(dir: &Path, base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Compares `actual` with the committed golden file; `UPDATE_GOLDEN=1` rewrites it.
/// The failure message shows the first differing line.
pub fn assert_golden(golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it, then review it)", golden.display()));
    if expected != actual {
        let (i, (e, a)) = expected
            .lines()
            .chain(std::iter::repeat(""))
            .zip(actual.lines().chain(std::iter::repeat("")))
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .expect("texts differ");
        panic!(
            "{} differs at line {}:\n  expected: {e}\n  actual:   {a}\n(run with UPDATE_GOLDEN=1 to accept the new output after reviewing it)",
            golden.display(),
            i + 1
        );
    }
}

/// An event outbox that keeps what it is given, for tests of the engine without MQTT.
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<vela::runtime::events::OutMessage>>);

impl vela::runtime::events::Outbox for Recorder {
    fn send(&self, msg: vela::runtime::events::OutMessage) {
        self.0.lock().unwrap().push(msg);
    }
}

impl Recorder {
    /// Messages whose eventType ends with `suffix`.
    pub fn of_type(&self, suffix: &str) -> Vec<vela::runtime::events::OutMessage> {
        self.0.lock().unwrap().iter().filter(|m| m.properties.get("eventType").is_some_and(|t| t.ends_with(suffix))).cloned().collect()
    }
}
