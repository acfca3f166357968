//! `cargo xtask`: the project's automation. Every command first runs `setup`, so a fresh
//! machine needs nothing installed by hand.
mod bench;
mod build;
mod demo;
mod fuzz;
mod image;
mod setup;
mod shell;
mod swarm;

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
    /// Install what is missing: nightly rust-src, LLVM 22, bpf-linker, cargo-fuzz, bpftool, bpffs.
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
    /// Build the fuzz targets (nightly, cargo-fuzz) and run each in turn.
    Fuzz {
        /// Seconds each target runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Run only these targets (default: all of `fuzz/fuzz_targets/`).
        targets: Vec<String>,
    },
    /// Benchmark flowproxy against HAProxy, nginx and a direct connection (release build, as root).
    Bench {
        /// Every scenario briefly (under 3 minutes), to check the harness, not to compare.
        #[arg(long)]
        quick: bool,
        /// Where results.json, results.md and results.png go (default target/bench).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Run only these scenarios (comma-separated numbers, e.g. `--only 1,8`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<u32>,
        /// Only redraw results.md and results.png from results.json.
        #[arg(long)]
        render: bool,
        /// Internal: tools are installed and the release binaries built (the debug xtask hands
        /// over to the release one with this).
        #[arg(long, hide = true)]
        prebuilt: bool,
    },
    /// Build the flowproxy:latest and flowproxy-demo:latest images (FROM scratch, static binaries).
    Image,
    /// Replay the article on a real Docker Swarm: one node, then three (as root).
    SwarmTest {
        /// Who plays the article's nodes: dockerd in network namespaces, or docker-machine VMs.
        #[arg(long, value_enum, default_value = "local")]
        driver: swarm::Driver,
        /// Run only one scenario (`single`: the article on one node; `multi`: three nodes
        /// with the stack file, its health checks and a rolling update).
        #[arg(long, value_enum, default_value = "all")]
        scenario: swarm::Scenario,
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
        Task::Fuzz { seconds, targets } => {
            setup::setup()?;
            fuzz::fuzz(seconds, &targets)
        }
        Task::Bench {
            quick,
            out,
            only,
            render,
            prebuilt,
        } => {
            if !prebuilt && !render {
                setup::setup()?;
            }
            bench::bench(&bench::Options {
                quick,
                out,
                only,
                render,
                prebuilt,
            })
        }
        Task::Image => {
            setup::setup()?;
            image::image()
        }
        Task::SwarmTest { driver, scenario } => {
            setup::setup()?;
            swarm::command(driver, scenario)
        }
        Task::Demo { exit } => {
            setup::setup()?;
            build::build_all(false)?;
            demo::demo(exit)
        }
    }
}
