//! The `flowproxy` binary: parses flags, sets up logging and hands over to the proxy or a command.
use clap::{CommandFactory as _, FromArgMatches as _, parser::ValueSource};

use flowproxy::{
    app,
    cli::{self, Cli, Command, LogFormat},
    dfp_env, health_cmd, stats_cmd,
};

/// jemalloc returns the memory of freed buffers (parked connections') to the system, where
/// glibc's malloc keeps it (issue 16, step 1: `docs/performance.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (its `MALLOC_CONF`, under the crate's `_rjem_`
/// prefix). Freed pages go back to the system within about a second, purged by jemalloc's own
/// background thread: left to itself, jemalloc purges only while the program allocates, so
/// the buffers of a burst of connections stayed resident once they all idled (parked), ~2 KiB
/// per idle connection in bench scenario 6 (`docs/performance.md`). The environment variable
/// `_RJEM_MALLOC_CONF` still overrides these.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> anyhow::Result<()> {
    let mut matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // DFP's variables may be Docker secrets: once in the environment, the flags are read again.
    let from_secrets = load_dfp_secrets(&cli.run.secrets_dir)?;
    if !from_secrets.is_empty() {
        matches = Cli::command().get_matches();
        cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    }
    init_tracing(cli.log_format);
    for name in from_secrets {
        let secret = dfp_env::secret_name(&name);
        tracing::info!("{name} is read from the secret {secret}");
    }
    match cli.command {
        Some(Command::Stats(args)) => stats_cmd::run(&cli.bpffs_dir, &args),
        Some(Command::Healthcheck(args)) => match health_cmd::check(&args, cli.run.api_addr) {
            Ok(answered) => {
                println!("healthy: {answered}");
                Ok(())
            }
            Err(reason) => {
                // One line, as `docker inspect` shows a health check's output.
                eprintln!("unhealthy: {reason}");
                std::process::exit(1)
            }
        },
        None => {
            apply_dfp_env(&mut cli.run, matches.value_source("api_addr"))?;
            runtime()?.block_on(app::run(cli.run, cli.bpffs_dir))
        }
    }
}

/// Puts DFP's variables that are given as Docker secrets (`dfp_<name>` in `--secrets-dir`)
/// into the environment, where the flags read them; as in DFP a secret wins over the
/// variable (a flag still wins over both). Returns the variables set.
fn load_dfp_secrets(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let found = dfp_env::variables_from_secrets(dir)?;
    let mut names = Vec::with_capacity(found.len());
    for (name, value) in found {
        // SAFETY: nothing else runs yet (no runtime, no thread), so nobody reads the
        // environment while it changes.
        unsafe { std::env::set_var(&name, value) };
        names.push(name);
    }
    Ok(names)
}

/// Checks DFP's variables (a set one that is not honoured stops the start) and applies the
/// ones that map onto flags in DFP's own way: `IP`/`PORT` for the API address.
fn apply_dfp_env(run: &mut cli::RunArgs, api_addr: Option<ValueSource>) -> anyhow::Result<()> {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let harmless = dfp_env::check(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    run.static_services =
        dfp_env::static_services(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    for line in harmless {
        tracing::warn!("ignored (no meaning in flowproxy): {line}");
    }
    if api_addr == Some(ValueSource::DefaultValue) {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(addr) =
            dfp_env::api_addr_from_ip_port(get("IP").as_deref(), get("PORT").as_deref())?
        {
            run.api_addr = addr;
        }
    }
    Ok(())
}

/// One worker per CPU this process may run on (its affinity mask, as `taskset` or a container
/// sets it). With a single CPU the whole proxy runs on one thread (tokio's current-thread
/// scheduler): a multi-thread runtime with one worker still pays for cross-thread wake-ups and
/// work stealing on every request. `TOKIO_WORKER_THREADS` forces the multi-thread runtime.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cpus == 1 && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn init_tracing(format: LogFormat) {
    flowproxy::logging::init(format);
}
