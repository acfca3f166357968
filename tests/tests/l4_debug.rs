use std::time::Duration;
use flowproxy_tests::L4Lab;
#[test]
fn debug() -> anyhow::Result<()> {
    let lab = L4Lab::start(&[])?;
    lab.configure(15432, "")?;
    std::thread::sleep(Duration::from_secs(3));
    println!("STATS {}", lab.proxy.stats_json()?);
    let r = lab.who(15432);
    println!("WHO {r:?}");
    println!("STATS {}", lab.proxy.stats_json()?);
    println!("{}", lab.proxy_host.run("ip", &["-s", "link"])?);
    println!("{}", lab.proxy_host.run("ip", &["neigh"])?);
    println!("{}", lab.proxy_host.run("sysctl", &["net.ipv4.conf.all.forwarding"])?);
    println!("LOG {}", lab.proxy.log());
    Ok(())
}
