//! The probe frame: built with valid checksums, and the translated frame checked field by field.
use std::{net::Ipv4Addr, ops::RangeInclusive};

use proxy_common::{csum, fastpath::PROTO_TCP};

/// The probe client (TEST-NET-1, never a real peer).
pub const CLIENT: [u8; 4] = [192, 0, 2, 1];
/// The probe service's address.
pub const SERVICE: [u8; 4] = [192, 0, 2, 2];
/// The probe client's port.
pub const CLIENT_PORT: u16 = 40000;
/// The probe service's port, and its replica's.
pub const PORT: u16 = 9;
/// Ethernet, IPv4 and TCP headers without options: the whole probe.
pub const ETH_IP_TCP: usize = 14 + 20 + 20;

/// What a translated probe must look like.
#[derive(Debug)]
pub struct Expected {
    /// Our address on the interface.
    pub src: [u8; 4],
    /// The replica.
    pub dst: [u8; 4],
    /// The replica's port.
    pub dport: u16,
    /// The fast path's source ports.
    pub ports: RangeInclusive<u16>,
    /// The replica's MAC, when the program must write it (XDP).
    pub dmac: Option<[u8; 6]>,
}

/// The probe: Ethernet + IPv4 + TCP SYN with valid checksums, to our MAC `dmac`.
pub fn syn(dmac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_IP_TCP);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, PROTO_TCP, 0, 0]);
    f.extend_from_slice(&CLIENT);
    f.extend_from_slice(&SERVICE);
    f.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    f.extend_from_slice(&PORT.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let ip = csum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip.to_be_bytes());
    let tcp = csum::checksum(&pseudo(&f[14..34], &f[34..]));
    f[50..52].copy_from_slice(&tcp.to_be_bytes());
    f
}

/// The TCP pseudo-header followed by the segment, for checksumming.
pub fn pseudo(ip: &[u8], tcp: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + tcp.len());
    p.extend_from_slice(&ip[12..20]);
    p.extend_from_slice(&[0, PROTO_TCP]);
    p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    p.extend_from_slice(tcp);
    p
}

/// The translated probe's faults, first found first.
pub fn check(out: &[u8], want: &Expected) -> Result<(), String> {
    if out.len() < ETH_IP_TCP {
        return Err(format!("the translated probe is {} bytes long", out.len()));
    }
    let (ip, tcp) = (&out[14..34], &out[34..]);
    if csum::checksum(ip) != 0 {
        return Err("the translated probe's IPv4 header checksum is wrong".to_owned());
    }
    if csum::checksum(&pseudo(ip, tcp)) != 0 {
        return Err("the translated probe's TCP checksum is wrong".to_owned());
    }
    let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let (src, dst) = (addr(&ip[12..16]), addr(&ip[16..20]));
    let (sport, dport) = (port(&tcp[0..2]), port(&tcp[2..4]));
    if dst != addr(&want.dst) || dport != want.dport {
        return Err(format!(
            "the probe went to {dst}:{dport} instead of {}:{}",
            addr(&want.dst),
            want.dport
        ));
    }
    if src != addr(&want.src) || !want.ports.contains(&sport) {
        return Err(format!(
            "the probe left from {src}:{sport}, not from {} and a port in {:?}",
            addr(&want.src),
            want.ports
        ));
    }
    if let Some(mac) = want.dmac
        && out[0..6] != mac
    {
        return Err("the probe was not addressed to the replica's MAC".to_owned());
    }
    Ok(())
}
