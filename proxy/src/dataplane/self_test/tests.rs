use super::{frame::*, *};
use proxy_common::csum;

const OWN: [u8; 4] = [198, 18, 200, 1];
const REAL: [u8; 4] = [198, 18, 200, 11];
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

fn want() -> Expected {
    Expected {
        src: OWN,
        dst: REAL,
        dport: PORT,
        ports: 61000..=65535,
        dmac: Some(MAC),
    }
}

/// The probe as a correct program sends it on.
fn translated(sport: u16) -> Vec<u8> {
    let mut f = syn([0; 6]);
    f[0..6].copy_from_slice(&MAC);
    f[26..30].copy_from_slice(&OWN);
    f[30..34].copy_from_slice(&REAL);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[24..26].fill(0);
    f[50..52].fill(0);
    let ip = csum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip.to_be_bytes());
    let tcp = csum::checksum(&pseudo(&f[14..34], &f[34..]));
    f[50..52].copy_from_slice(&tcp.to_be_bytes());
    f
}

#[test]
fn the_probe_is_built_with_valid_checksums() {
    let f = syn([1; 6]);
    assert_eq!(f.len(), ETH_IP_TCP);
    assert_eq!(csum::checksum(&f[14..34]), 0);
    assert_eq!(csum::checksum(&pseudo(&f[14..34], &f[34..])), 0);
}

#[test]
fn a_correct_translation_passes() {
    let none = ServiceCounters::default();
    let out = translated(61234);
    assert_eq!(
        judge(Action::Redirect, &out, &want(), &none),
        Outcome::Passed
    );
}

#[test]
fn mistranslations_fail_naming_the_fault() {
    let none = ServiceCounters::default();
    let failed = |out: &[u8]| match judge(Action::Redirect, out, &want(), &none) {
        Outcome::Failed(why) => why,
        other => panic!("{other:?}"),
    };
    let mut bad_sum = translated(61234);
    bad_sum[51] ^= 1;
    assert!(failed(&bad_sum).contains("TCP checksum"));
    let mut bad_ip = translated(61234);
    bad_ip[24] ^= 1;
    assert!(failed(&bad_ip).contains("IPv4 header checksum"));
    assert!(failed(&translated(1000)).contains("not from 198.18.200.1"));
    assert!(failed(&syn([0; 6])).contains("instead of 198.18.200.11:9"));
    assert!(failed(&translated(61234)[..40]).contains("40 bytes"));
    let mut other_mac = translated(61234);
    other_mac[0] ^= 1;
    assert!(failed(&other_mac).contains("MAC"));
    assert!(matches!(
        judge(Action::Drop, &[], &want(), &none),
        Outcome::Failed(_)
    ));
}

#[test]
fn a_probe_handed_to_the_stack_is_inconclusive_and_says_why() {
    let counters = ServiceCounters {
        slow_no_route: 1,
        ..Default::default()
    };
    match judge(Action::Pass, &[], &want(), &counters) {
        Outcome::Skipped(why) => assert!(why.contains("no_route"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_host_of_the_subnet_is_found() {
    let own = Ipv4Addr::new(10, 0, 1, 1);
    assert_eq!(other_host(own, 24), Some(Ipv4Addr::new(10, 0, 1, 2)));
    assert_eq!(
        other_host(Ipv4Addr::new(10, 0, 1, 9), 24),
        Some(Ipv4Addr::new(10, 0, 1, 1))
    );
    assert_eq!(other_host(own, 31), None);
    assert_eq!(other_host(own, 32), None);
}
