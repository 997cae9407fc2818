//! The `vela` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vela", version, about = "Live video analytics appliance: runs LVA/AVA media graphs at the edge")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate topology files (and an instance with its topology) without running them.
    Check {
        /// Topology or instance JSON files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// An instance (live pipeline) file to apply to the single topology given.
        #[arg(long)]
        instance: Option<PathBuf>,
        /// Treat warnings (such as parameters declared but never used) as errors.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vela: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let Some(command) = cli.command else {
        // The appliance itself (`vela run`) is not built yet; say what this binary can do.
        use clap::CommandFactory;
        println!("vela {}", env!("CARGO_PKG_VERSION"));
        Cli::command().print_help()?;
        return Ok(true);
    };
    match command {
        Command::Check { files, instance, strict } => {
            let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            if let Some(inst) = instance {
                anyhow::ensure!(files.len() == 1, "--instance applies to exactly one topology file");
                let r = vela::check::check_with_instance(
                    &files[0].display().to_string(),
                    &read(&files[0])?,
                    &inst.display().to_string(),
                    &read(&inst)?,
                    strict,
                );
                println!("{}", r.text);
                return Ok(r.ok);
            }
            let mut all_ok = true;
            for f in &files {
                let r = vela::check::check_file(&f.display().to_string(), &read(f)?, strict);
                println!("{}", r.text);
                all_ok &= r.ok;
            }
            Ok(all_ok)
        }
    }
}
