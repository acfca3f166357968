//! Ending flows: user space walks conntrack, removes flows that closed (FIN both ways, or a
//! RST), went idle past their service's `timeoutTunnel`, never got an answer, or still point
//! at a removed replica after the drain timeout; then it reconciles the flow budget.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap},
    time::Duration,
};

use proxy_common::{
    BackendKey,
    fastpath::{FLOW_FIN, FLOW_FORWARD, FLOW_RST, FLOW_SEEN, Flow, FlowKey, budget},
    map_names,
};

use crate::dataplane::{
    error::DataPlaneError,
    maps::{Maps, map_err},
};

/// How long a flow lingers after FIN both ways or a RST, for late packets and retransmits.
pub const CLOSED_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SYN may wait for the replica's answer.
pub const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(10);

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Flows still live.
    pub live: u64,
    /// Flows removed because they ended or idled out.
    pub expired: u64,
    /// Flows removed because their replica was removed and the drain timeout passed.
    pub drained: u64,
}

/// Why a flow should go, if it should.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it.
    Keep,
    /// It ended or idled out.
    Expired,
}

/// Decides on one flow from its two entries (`reply` may be gone) at monotonic time `now_ns`.
pub fn verdict(forward: &Flow, reply: Option<&Flow>, now_ns: u64) -> Verdict {
    let reply_flags = reply.map_or(0, |r| r.flags);
    let last = reply.map_or(forward.last_seen_ns, |r| {
        r.last_seen_ns.max(forward.last_seen_ns)
    });
    let closed = (forward.flags | reply_flags) & FLOW_RST != 0
        || (forward.flags & FLOW_FIN != 0 && reply_flags & FLOW_FIN != 0);
    let timeout = if closed {
        CLOSED_TIMEOUT
    } else if reply_flags & FLOW_SEEN == 0 {
        UNANSWERED_TIMEOUT
    } else {
        Duration::from_secs(forward.idle_timeout_s as u64)
    };
    if now_ns.saturating_sub(last) > timeout.as_nanos() as u64 {
        Verdict::Expired
    } else {
        Verdict::Keep
    }
}

/// The drain bookkeeping: since when each flow's replica has been gone.
#[derive(Debug, Default)]
pub struct Draining {
    since: StdHashMap<FlowKey, u64>,
}

/// Walks conntrack once. `replicas` maps a service slot to its current replicas; flows to
/// anything else drain for `drain` and are then removed (the client's next packet then meets
/// the stack, which answers with a reset).
pub fn sweep(
    maps: &mut Maps,
    replicas: &BTreeMap<u32, BTreeSet<BackendKey>>,
    draining: &mut Draining,
    drain: Duration,
    now_ns: u64,
) -> Result<SweepReport, DataPlaneError> {
    let created_before = read_budget(maps, budget::CREATED)?;
    let mut report = SweepReport::default();
    let mut doomed: Vec<(FlowKey, FlowKey)> = Vec::new();
    {
        let entries: Vec<(FlowKey, Flow)> = maps.conntrack.iter().filter_map(Result::ok).collect();
        let by_key: StdHashMap<FlowKey, Flow> = entries.iter().copied().collect();
        let mut still_draining = StdHashMap::new();
        for (key, flow) in &entries {
            if flow.flags & FLOW_FORWARD == 0 {
                // A reply entry whose forward entry is gone (evicted, or a lost race).
                let forward_key = flow.reverse_key();
                if !by_key.contains_key(&forward_key)
                    && now_ns.saturating_sub(flow.last_seen_ns) > CLOSED_TIMEOUT.as_nanos() as u64
                {
                    doomed.push((*key, *key));
                }
                continue;
            }
            let reply_key = flow.reverse_key();
            let reply = by_key.get(&reply_key);
            if verdict(flow, reply, now_ns) == Verdict::Expired {
                doomed.push((*key, reply_key));
                report.expired += 1;
                continue;
            }
            let backend = BackendKey {
                addr: flow.dst,
                port: flow.dport,
                _pad: [0; 2],
            };
            let known = replicas
                .get(&flow.service)
                .is_some_and(|set| set.contains(&backend));
            if !known {
                let since = *draining.since.get(key).unwrap_or(&now_ns);
                if now_ns.saturating_sub(since) >= drain.as_nanos() as u64 {
                    doomed.push((*key, reply_key));
                    report.drained += 1;
                    continue;
                }
                still_draining.insert(*key, since);
            }
            report.live += 1;
        }
        draining.since = still_draining;
    }
    for (a, b) in &doomed {
        let _ = maps.conntrack.remove(a);
        let _ = maps.conntrack.remove(b);
    }
    // Flows created while we walked may be counted live already: the budget errs on the full side.
    write_budget(
        maps,
        budget::REMOVED,
        created_before.saturating_sub(report.live),
    )?;
    Ok(report)
}

/// Reads one slot of `FLOW_BUDGET`.
pub fn read_budget(maps: &Maps, slot: u32) -> Result<u64, DataPlaneError> {
    maps.flow_budget
        .get(&slot, 0)
        .map_err(map_err(map_names::FLOW_BUDGET))
}

/// Writes one slot of `FLOW_BUDGET`.
pub fn write_budget(maps: &mut Maps, slot: u32, value: u64) -> Result<(), DataPlaneError> {
    maps.flow_budget
        .set(slot, value, 0)
        .map_err(map_err(map_names::FLOW_BUDGET))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn flow(flags: u8, last_s: u64) -> Flow {
        Flow {
            flags,
            idle_timeout_s: 60,
            last_seen_ns: last_s * S,
            ..Default::default()
        }
    }

    #[test]
    fn an_answered_flow_lives_until_its_idle_timeout() {
        let fwd = flow(FLOW_FORWARD | FLOW_SEEN, 100);
        let rep = flow(FLOW_SEEN, 130);
        assert_eq!(verdict(&fwd, Some(&rep), 180 * S), Verdict::Keep);
        assert_eq!(verdict(&fwd, Some(&rep), 191 * S), Verdict::Expired);
    }

    #[test]
    fn an_unanswered_syn_expires_quickly() {
        let fwd = flow(FLOW_FORWARD, 100);
        let rep = flow(0, 100);
        assert_eq!(verdict(&fwd, Some(&rep), 105 * S), Verdict::Keep);
        assert_eq!(verdict(&fwd, Some(&rep), 111 * S), Verdict::Expired);
    }

    #[test]
    fn a_reset_or_fin_both_ways_closes_the_flow() {
        let rep = flow(FLOW_SEEN | FLOW_FIN, 100);
        let half_closed = flow(FLOW_FORWARD | FLOW_SEEN, 100);
        assert_eq!(verdict(&half_closed, Some(&rep), 120 * S), Verdict::Keep);
        let closed = flow(FLOW_FORWARD | FLOW_SEEN | FLOW_FIN, 100);
        assert_eq!(verdict(&closed, Some(&rep), 111 * S), Verdict::Expired);
        let reset = flow(FLOW_FORWARD | FLOW_SEEN | FLOW_RST, 100);
        assert_eq!(
            verdict(&reset, Some(&flow(FLOW_SEEN, 100)), 111 * S),
            Verdict::Expired
        );
    }
}
