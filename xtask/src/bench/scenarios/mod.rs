//! The eight scenarios. Each returns its table; contenders alternate round by round
//! (A B C D, A B C D, ...), each started fresh and warmed up before it is measured, so slow
//! drifts of the machine spread over every contender instead of favouring one.
pub mod fastpath;
pub mod http;
pub mod https;
pub mod memory;
pub mod reconfigure;
pub mod scale;
pub mod tcp;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};

use super::{
    contenders::{Contender, Running},
    lab::Lab,
    plan::Plan,
    results::Table,
    wrk::{self, Load},
};

/// What every scenario needs.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The backend and its topology.
    pub lab: &'a Lab,
    /// Durations and sizes.
    pub plan: &'a Plan,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes Ctrl-C (and SIGTERM) stop the run at the next measurement, unwinding through the
/// guards that remove processes, namespaces and directories.
pub fn stop_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // Safety: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Fails once a stop was asked for.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

impl Ctx<'_> {
    /// Starts `contender`, waits until it serves, and warms it up with keep-alive load.
    pub fn start_warm(&self, contender: Contender) -> anyhow::Result<Running> {
        check_interrupted()?;
        let running = contender
            .start(self.lab)
            .with_context(|| format!("starting {}", contender.label()))?;
        self.warm_up(running.addr)?;
        Ok(running)
    }

    /// Keep-alive load for the warm-up time.
    pub fn warm_up(&self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        wrk::run(
            self.lab.work.path(),
            addr,
            Load::keep_alive(self.plan.warmup_secs),
        )
        .context("warming up")?;
        Ok(())
    }

    /// Measures every contender once per round, alternating, and adds the values to `table`.
    pub fn alternate(
        &self,
        scenario: u32,
        contenders: &[Contender],
        table: &mut Table,
        mut measure: impl FnMut(&Running) -> anyhow::Result<Vec<f64>>,
    ) -> anyhow::Result<()> {
        let rounds = self.plan.rounds;
        for round in 1..=rounds {
            for &contender in contenders {
                eprintln!(
                    "bench: scenario {scenario}, round {round}/{rounds}: {}",
                    contender.label()
                );
                let running = self.start_warm(contender)?;
                let values = measure(&running)
                    .with_context(|| format!("measuring {}", contender.label()))?;
                table.add(contender.label(), &values);
            }
        }
        Ok(())
    }
}
