//! `cargo xtask`: the project's automation. Every command first runs `setup`, so a fresh
//! machine needs nothing installed by hand.
mod build;
mod demo;
mod setup;
mod shell;

use clap::{Parser, Subcommand};

/// flowproxy's build, test and demo commands.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what is missing: nightly rust-src, LLVM 22, bpf-linker, bpftool, bpffs.
    Setup,
    /// Build the BPF object (nightly, bpfel-unknown-none).
    BuildEbpf,
    /// Build the BPF object, then flowproxy with it embedded.
    Build {
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Build everything, then run flowproxy with ARGS.
    Run {
        /// Arguments for flowproxy.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build, lint, then run every test of the workspace, the integration tests included (as root).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Start flowproxy on a veth pair, send traffic and show what bpftool sees.
    Demo {
        /// Stop after showing everything instead of waiting for Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::setup(),
        Task::BuildEbpf => {
            setup::setup()?;
            build::build_ebpf()
        }
        Task::Build { release } => {
            setup::setup()?;
            build::build_all(release)
        }
        Task::Run { args } => {
            setup::setup()?;
            build::build_all(false)?;
            build::run_flowproxy(&args)
        }
        Task::Test { args } => {
            setup::setup()?;
            build::test(&args)
        }
        Task::Demo { exit } => {
            setup::setup()?;
            build::build_all(false)?;
            demo::demo(exit)
        }
    }
}
