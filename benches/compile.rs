//! How long the topology compiler takes on the published corpus.
//!
//! For every corpus topology that compiles: the median over `RUNS` runs of
//! `parse_json` + `check_topology` from bytes, and of `parse_json` (topology and a
//! generated instance) + `compile_instance`; then the median and p90 over the corpus and
//! the time of one pass over the whole corpus. Numbers and ratios only: it never fails.
//!
//! `cargo bench --bench compile [-- FILTER] [--runs N]`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/instances.rs"]
mod instances;

use std::hint::black_box;
use std::time::{Duration, Instant};
use vela::topology::{check_topology, compile_instance, is_instance_document, parse_json};

const RUNS: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The `q` quantile (nearest rank) of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    // Warm up caches and the allocator.
    for _ in 0..runs.div_ceil(10) {
        f();
    }
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Row {
    name: String,
    bytes: usize,
    nodes: usize,
    topology: Duration,
    instance: Option<Duration>,
}

fn summary(label: &str, mut v: Vec<Duration>) {
    if v.is_empty() {
        println!("{label}: no samples");
        return;
    }
    v.sort();
    let total: Duration = v.iter().sum();
    println!(
        "{label:<34} median {:>8.1} µs   p90 {:>8.1} µs   max {:>8.1} µs   one pass over {} files {:>9.1} µs",
        us(quantile(&v, 0.5)),
        us(quantile(&v, 0.9)),
        us(*v.last().unwrap()),
        v.len(),
        us(total)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = RUNS;
    let mut filter: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(RUNS).max(1),
            // Passed by `cargo bench`.
            "--bench" => {}
            s if s.starts_with('-') => {}
            s => filter = Some(s.to_string()),
        }
    }

    let base = common::fixture("reference");
    let mut files = common::json_files(&base.join("lva-topologies"), &base);
    files.extend(common::json_files(&base.join("ava-topologies"), &base));

    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        if filter.as_deref().is_some_and(|p| !name.contains(p)) {
            continue;
        }
        let bytes = std::fs::read(base.join(f)).expect("corpus file");
        let plan = match parse_json(&bytes) {
            Ok(doc) if is_instance_document(&doc) => {
                skipped.push(format!("{name} (an instance)"));
                continue;
            }
            Ok(doc) => match check_topology(&doc, None) {
                Ok(plan) => (doc, plan),
                Err(e) => {
                    let first = e.details.first().map(|d| d.code.as_str(e.ava)).unwrap_or("?");
                    skipped.push(format!("{name} ({first})"));
                    continue;
                }
            },
            Err(_) => {
                skipped.push(format!("{name} (invalid JSON)"));
                continue;
            }
        };
        let (doc, plan) = plan;
        let topology = time(runs, || {
            let d = parse_json(black_box(&bytes)).unwrap();
            black_box(check_topology(&d, None).is_ok());
        });
        let inst = serde_json::to_vec(&instances::plausible_instance(&doc, "bench-1")).unwrap();
        let instance = match parse_json(&inst).map(|i| compile_instance(&doc, &i, None)) {
            Ok(Ok(_)) => Some(time(runs, || {
                let d = parse_json(black_box(&bytes)).unwrap();
                let i = parse_json(black_box(&inst)).unwrap();
                black_box(compile_instance(&d, &i, None).is_ok());
            })),
            _ => None,
        };
        rows.push(Row { name, bytes: bytes.len(), nodes: plan.nodes.len(), topology, instance });
    }

    println!(
        "median of {runs} runs per file; topology = parse_json + check_topology, \
         instance = parse_json (both) + compile_instance with a generated instance\n"
    );
    println!("{:<100} {:>7} {:>5} {:>11} {:>11} {:>6}", "file", "bytes", "nodes", "topology µs", "instance µs", "ratio");
    for r in &rows {
        let (inst, ratio) = match r.instance {
            Some(i) => (format!("{:.1}", us(i)), format!("{:.2}", i.as_secs_f64() / r.topology.as_secs_f64())),
            None => ("-".to_string(), "-".to_string()),
        };
        println!("{:<100} {:>7} {:>5} {:>11.1} {:>11} {:>6}", r.name, r.bytes, r.nodes, us(r.topology), inst, ratio);
    }
    println!();
    summary("topology (parse + check)", rows.iter().map(|r| r.topology).collect());
    summary("instance (parse + compile_instance)", rows.iter().filter_map(|r| r.instance).collect());
    let per_byte: Vec<f64> = rows.iter().map(|r| us(r.topology) * 1000.0 / r.bytes as f64).collect();
    if !per_byte.is_empty() {
        let mut sorted = per_byte.clone();
        sorted.sort_by(f64::total_cmp);
        println!("{:<34} median {:>8.2} ns/byte", "topology throughput", sorted[sorted.len() / 2]);
    }
    let both: Vec<f64> = rows.iter().filter_map(|r| r.instance.map(|i| i.as_secs_f64() / r.topology.as_secs_f64())).collect();
    if !both.is_empty() {
        let mut sorted = both.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{:<34} median {:>8.2}   min {:.2}   max {:.2}",
            "ratio instance / topology",
            sorted[sorted.len() / 2],
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    let no_instance: Vec<&str> = rows.iter().filter(|r| r.instance.is_none()).map(|r| r.name.as_str()).collect();
    println!(
        "\n{} topologies measured ({} also with an instance); {} files skipped",
        rows.len(),
        rows.len() - no_instance.len(),
        skipped.len()
    );
    for s in &skipped {
        println!("  skipped {s}");
    }
    for n in &no_instance {
        println!("  no instance timing for {n}: the generated instance does not compile");
    }
}
