//! A TCP-mode service over IPv6 end to end, on the lab topology with offloads at their defaults
//! (every host has IPv6 beside IPv4; `tasks.db6` answers the backends' IPv6 addresses): with
//! flowproxy listening on `[::]`, IPv6 clients are fast-pathed by the TC program, the bytes
//! arrive intact, an IPv4 client of the same service is relayed with its reason counted, and
//! with the fast path off the relay serves IPv6 alone.
use std::net::SocketAddr;

use flowproxy_tests::{
    L4Lab,
    l4_checks::{programmed, service_stats, stream_intact},
    l4_lab::{PROXY_ADDR, PROXY_ADDR6},
};

const PORT: u16 = 15006;
const DUAL_STACK: [&str; 2] = ["--http-addr", "[::]:0"];

fn v6_service() -> SocketAddr {
    SocketAddr::from((PROXY_ADDR6, PORT))
}

fn names(lab: &L4Lab) -> Vec<String> {
    lab.backends.iter().map(|b| b.name.clone()).collect()
}

#[test]
fn an_ipv6_service_is_fast_pathed_and_an_ipv4_client_of_it_is_relayed() -> anyhow::Result<()> {
    let lab = L4Lab::start(&DUAL_STACK)?;
    lab.configure_service("db6", PORT, "")?;
    let svc = programmed(&lab, PORT)?;
    assert_eq!(
        svc["ring_size"].as_u64().map(|m| m > 0),
        Some(true),
        "{svc}"
    );
    for _ in 0..50 {
        let who = lab.who_at(v6_service())?;
        assert!(names(&lab).contains(&who), "{who}");
    }
    stream_intact(lab.connect_to(v6_service())?, 100 << 20)?;
    let svc = service_stats(&lab, PORT)?;
    assert_eq!(svc["fast_flows"], 51, "{svc}");
    assert_eq!(svc["slow_flows"], 0, "{svc}");
    // IPv4 to the same service: the replicas are IPv6, so the relay bridges the families.
    let who = lab.who_at(SocketAddr::from((PROXY_ADDR, PORT)))?;
    assert!(names(&lab).contains(&who), "{who}");
    let svc = service_stats(&lab, PORT)?;
    assert_eq!(svc["slow_other_family"], 1, "{svc}");
    assert_eq!(svc["slow_flows"], 1, "{svc}");
    let global = &lab.l4_stats()?["global"];
    assert_eq!(global["rewrite_failed"], 0, "{global}");
    Ok(())
}

#[test]
fn with_the_fast_path_off_the_relay_serves_ipv6() -> anyhow::Result<()> {
    let mut args = DUAL_STACK.to_vec();
    args.extend(["--l4-fastpath", "off"]);
    let lab = L4Lab::start(&args)?;
    lab.configure_service("db6", PORT, "")?;
    flowproxy_tests::eventually(std::time::Duration::from_secs(15), || {
        lab.who_at(v6_service()).map(|_| ())
    })?;
    stream_intact(lab.connect_to(v6_service())?, 20 << 20)?;
    // Off: no service programmed, no packet translated; the relay carried both connections.
    let l4 = lab.l4_stats()?;
    assert_eq!(l4["services"], serde_json::json!([]), "{l4}");
    assert_eq!(l4["global"]["translated"], 0, "{l4}");
    Ok(())
}

#[test]
fn an_ipv4_only_listener_does_not_serve_ipv6_clients_fast_or_slow() -> anyhow::Result<()> {
    // The default `--http-addr 0.0.0.0:…`: the relay does not listen on IPv6, so neither may
    // the fast path answer there.
    let lab = L4Lab::start(&[])?;
    lab.configure_service("db6", PORT, "")?;
    programmed(&lab, PORT)?;
    assert!(lab.who_at(v6_service()).is_err(), "IPv6 was served");
    let svc = service_stats(&lab, PORT)?;
    assert_eq!(svc["fast_flows"], 0, "{svc}");
    Ok(())
}
