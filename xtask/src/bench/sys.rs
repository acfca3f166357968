//! What the benchmark asks of the operating system: CPU pinning, file-descriptor limits, a
//! process's memory and CPU time, free ports, temporary directories, and the machine's description.
use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use flowproxy_tests::Ids;

use super::results::Machine;
use crate::shell::output;

/// The core the load generators run on.
pub const LOAD_CORE: usize = 0;
/// The core the backend and the proxy under test share.
pub const SERVER_CORE: usize = 1;

/// Pins the calling thread (and the threads and processes it starts later) to `core`.
pub fn pin_current_thread(core: usize) -> anyhow::Result<()> {
    // Safety: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "cannot pin to core {core}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The number of cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Raises the open-file limit to `wanted`, or as far as the hard limit allows when this process
/// may not raise that; the proxies it starts inherit it. Returns the limit now in force.
pub fn raise_open_files(wanted: u64) -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Safety: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if limit.rlim_cur >= wanted {
            return Ok(limit.rlim_cur);
        }
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max.max(wanted),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return Ok(wanted);
        }
        // Without CAP_SYS_RESOURCE the hard limit is the ceiling.
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Resident memory of `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the status of process {pid}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS for process {pid}"))
}

/// CPU time a process has used so far, user and system, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// Time in user space.
    pub user: f64,
    /// Time in the kernel on the process's behalf.
    pub system: f64,
    /// Time on a CPU, user and kernel together, to the nanosecond (the scheduler's count
    /// summed over the live threads); `user` and `system` only count whole clock ticks.
    pub on_cpu: f64,
}

impl CpuTime {
    /// User and system CPU in % of one core between `before` and `self`, `wall` seconds apart.
    /// Each is capped by the nanosecond on-CPU time: a process that ran 2 ms in a window can
    /// show a whole 10 ms tick of user time, which would read as 5 times what it used.
    pub fn percent_since(&self, before: &CpuTime, wall: f64) -> (f64, f64) {
        let on_cpu = (self.on_cpu - before.on_cpu).max(0.0);
        let user = (self.user - before.user).min(on_cpu);
        let system = (self.system - before.system).min(on_cpu);
        (user / wall * 100.0, system / wall * 100.0)
    }
}

/// The CPU time of `pid` (all its threads), from `/proc/<pid>/stat` and the threads'
/// `schedstat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading the stat of process {pid}"))?;
    let mut time = parse_cpu_time(&stat, clock_ticks())?;
    time.on_cpu = on_cpu_seconds(pid)?;
    Ok(time)
}

/// Context switches of `pid` so far, voluntary and not, over its live threads.
pub fn context_switches(pid: u32) -> anyhow::Result<u64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("listing {tasks}"))? {
        let Ok(text) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        total += count_switches(&text);
    }
    Ok(total)
}

/// The sum of a `status` file's `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches`.
fn count_switches(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.ends_with("ctxt_switches")
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .sum()
}

/// The first field of each thread's `schedstat`: nanoseconds spent on a CPU.
fn on_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let tasks = format!("/proc/{pid}/task");
    let mut ns = 0u64;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("listing {tasks}"))? {
        let path = task?.path().join("schedstat");
        // A thread that ended meanwhile has no file any more.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let first = text.split_whitespace().next().unwrap_or("0");
        ns += first
            .parse::<u64>()
            .with_context(|| format!("{}: {text}", path.display()))?;
    }
    Ok(ns as f64 / 1e9)
}

fn clock_ticks() -> f64 {
    // Safety: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime and stime are fields 14 and 15; the command name (field 2) may contain spaces, so
/// count from the closing parenthesis.
fn parse_cpu_time(stat: &str, ticks: f64) -> anyhow::Result<CpuTime> {
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()? / ticks)
    };
    // After ")" the fields start at 3 (state), so utime (14) is index 11.
    Ok(CpuTime {
        user: field(11)?,
        system: field(12)?,
        on_cpu: 0.0,
    })
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// A temporary directory named like every harness resource (`fp-<pid>-<n>-bench`, so the
/// harness removes it after a crash), removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates a fresh directory.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("{}-bench-{label}", Ids::next().netns()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Today's date and time, UTC.
pub fn now_utc() -> String {
    output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown date".to_owned())
}

/// The CPU, memory, kernel, OS and tool versions, for the report (`cores` is counted before
/// this process pins itself to one).
pub fn machine(cores: usize) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "unknown OS".to_owned());
    let kernel =
        output(Command::new("uname").arg("-r")).map_or_else(String::new, |s| s.trim().into());
    let mut tools = BTreeMap::new();
    for (name, cmd, args) in [
        ("haproxy", "haproxy", &["-v"][..]),
        ("nginx", "nginx", &["-v"][..]),
        ("wrk", "wrk", &["-v"][..]),
        ("iperf3", "iperf3", &["--version"][..]),
        ("rustc", "rustc", &["--version"][..]),
    ] {
        if let Some(v) = first_line(cmd, args).as_deref().and_then(version) {
            tools.insert(name.to_owned(), v);
        }
    }
    Machine {
        cpu,
        cores,
        memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel,
        os,
        tools,
    }
}

/// The first line a tool prints about its version (some print on stderr, wrk exits 1).
fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = [out.stdout, out.stderr].concat();
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

/// The version in a tool's banner: the first word with a digit, without a `name/` prefix.
fn version(banner: &str) -> Option<String> {
    let word = banner
        .split_whitespace()
        .find(|w| w.chars().any(|c| c.is_ascii_digit()))?;
    Some(word.rsplit('/').next().unwrap_or(word).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_banners() {
        for (banner, v) in [
            (
                "HAProxy version 2.6.12-1+deb12u4 2025/01/01 - https://haproxy.org/",
                "2.6.12-1+deb12u4",
            ),
            ("nginx version: nginx/1.22.1", "1.22.1"),
            (
                "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer",
                "4.1.0-3+b2",
            ),
            ("iperf 3.12 (cJSON 1.7.15)", "3.12"),
            ("rustc 1.95.0 (59807616e 2026-04-14)", "1.95.0"),
        ] {
            assert_eq!(version(banner).as_deref(), Some(v));
        }
    }

    #[test]
    fn both_kinds_of_context_switch_count() {
        let status =
            "Name:\tflowproxy\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t30\n";
        assert_eq!(count_switches(status), 42);
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "42 (tokio runtime) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        let t = parse_cpu_time(stat, 100.0).unwrap();
        assert_eq!((t.user, t.system), (2.5, 0.5));
    }

    #[test]
    fn whole_ticks_are_capped_by_the_time_on_cpu() {
        let before = CpuTime::default();
        // One 10 ms tick of user time in a window where the process ran 2 ms.
        let after = CpuTime {
            user: 0.01,
            system: 0.0,
            on_cpu: 0.002,
        };
        let (user, system) = after.percent_since(&before, 1.0);
        assert!((user - 0.2).abs() < 1e-9, "{user}");
        assert_eq!(system, 0.0);
        // A busy process keeps its tick counts.
        let busy = CpuTime {
            user: 0.3,
            system: 0.5,
            on_cpu: 0.81,
        };
        let (user, system) = busy.percent_since(&before, 1.0);
        assert!((user - 30.0).abs() < 1e-9 && (system - 50.0).abs() < 1e-9);
    }

    #[test]
    fn this_process_has_run_on_a_cpu() {
        let t = cpu_time(std::process::id()).unwrap();
        assert!(t.on_cpu > 0.0, "{t:?}");
    }
}
