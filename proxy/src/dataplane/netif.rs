//! Interface names, indexes and kinds of the current network namespace.
use std::ffi::{CStr, CString};

/// `ARPHRD_ETHER`: the link type of Ethernet-framed devices (NICs, veth, bridge, vxlan).
pub const ARPHRD_ETHER: u32 = 1;
/// `ETHTOOL_GDRVINFO`.
const ETHTOOL_GDRVINFO: u32 = 0x3;

// Everything here asks the kernel through ioctls on a socket, which answer for the calling
// thread's network namespace; `/sys/class/net` shows the namespace sysfs was mounted in, which
// under `nsenter --net` is another one.

/// True for a device backed by hardware: its driver reports a bus (a PCI address, say).
/// veths, bridges, vxlan and other software devices report none.
pub fn is_physical(name: &str) -> bool {
    driver_info(name).is_some_and(|info| info.bus_info[0] != 0)
}

/// The device's link type (`ARPHRD_*`), if it exists.
pub fn link_type(name: &str) -> Option<u32> {
    let mut req = ifreq(name)?;
    ioctl(libc::SIOCGIFHWADDR, &mut req)?;
    // Safety: SIOCGIFHWADDR filled the hardware-address member of the union.
    Some(u32::from(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family }))
}

/// The device's MAC address, if it has one.
pub fn mac_of(name: &str) -> Option<[u8; 6]> {
    let mut req = ifreq(name)?;
    ioctl(libc::SIOCGIFHWADDR, &mut req)?;
    // Safety: SIOCGIFHWADDR filled the hardware-address member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data) {
        *m = d as u8;
    }
    Some(mac)
}

/// The device's primary IPv4 address and prefix length, if it has one.
pub fn ipv4_of(name: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let read = |request| {
        let mut req = ifreq(name)?;
        ioctl(request, &mut req)?;
        // Safety: both ioctls fill the address member with a sockaddr_in for AF_INET.
        let sin: libc::sockaddr_in = unsafe { std::mem::transmute_copy(&req.ifr_ifru.ifru_addr) };
        Some(u32::from_be(sin.sin_addr.s_addr))
    };
    let addr = read(libc::SIOCGIFADDR)?;
    let mask = read(libc::SIOCGIFNETMASK)?;
    Some((addr.into(), mask.leading_ones() as u8))
}

/// True when the programs can parse the device's frames: they read Ethernet headers.
pub fn is_ethernet(name: &str) -> bool {
    link_type(name) == Some(ARPHRD_ETHER)
}

/// Every interface of the namespace that is up and Ethernet-framed, loopback excluded: where
/// a client's SYN or a replica's reply can arrive (`--interface auto`).
pub fn up_ethernet_interfaces() -> Vec<String> {
    let mut names: Vec<String> = all_names()
        .into_iter()
        .filter(|name| name != "lo" && is_ethernet(name) && is_up(name))
        .collect();
    names.sort();
    names
}

fn is_up(name: &str) -> bool {
    let Some(mut req) = ifreq(name) else {
        return false;
    };
    if ioctl(libc::SIOCGIFFLAGS, &mut req).is_none() {
        return false;
    }
    // Safety: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    flags & libc::IFF_UP as libc::c_short != 0
}

/// The names of every interface of the calling thread's namespace.
fn all_names() -> Vec<String> {
    // Safety: if_nameindex returns a heap array ending with a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return Vec::new();
        }
        let mut names = Vec::new();
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            names.push(
                CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
        names
    }
}

/// `struct ethtool_drvinfo`, of which only the bus is read.
#[repr(C)]
struct DriverInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

fn driver_info(name: &str) -> Option<DriverInfo> {
    // Safety: all-zero is a valid DriverInfo.
    let mut info: DriverInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_data = (&mut info as *mut DriverInfo).cast();
    ioctl(libc::SIOCETHTOOL, &mut req)?;
    Some(info)
}

fn ifreq(name: &str) -> Option<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return None;
    }
    // Safety: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

fn ioctl(request: libc::c_ulong, req: &mut libc::ifreq) -> Option<()> {
    // Safety: a datagram socket only carries the ioctl, and is closed at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let rc = libc::ioctl(fd, request as _, req as *mut libc::ifreq);
        libc::close(fd);
        (rc == 0).then_some(())
    }
}

/// The index of interface `name`, or `None` if there is no such interface.
pub fn index_of(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // Safety: `c_name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of interface `index`, or `None` if it no longer exists.
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // Safety: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let ptr = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // Safety: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_round_trips() {
        let index = index_of("lo").expect("every namespace has lo");
        assert_eq!(name_of(index).as_deref(), Some("lo"));
    }

    #[test]
    fn loopback_is_virtual_and_not_ethernet() {
        assert!(!is_physical("lo"));
        assert!(!is_ethernet("lo"));
        assert_eq!(link_type("lo"), Some(772));
        assert!(!up_ethernet_interfaces().iter().any(|i| i == "lo"));
    }

    #[test]
    fn loopback_has_its_address() {
        assert_eq!(ipv4_of("lo"), Some((std::net::Ipv4Addr::LOCALHOST, 8)));
        assert_eq!(ipv4_of("flowproxy-nope0"), None);
    }

    #[test]
    fn unknown_names_have_no_index() {
        assert_eq!(index_of("flowproxy-nope0"), None);
        assert_eq!(index_of("bad\0name"), None);
    }
}
