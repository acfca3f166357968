//! Which program runs on an interface. Native XDP only where it delivers: a physical NIC whose
//! driver runs it. On veths, bridges, vxlan and other virtual devices the fast path runs at TC
//! ingress, where the skb keeps its checksum state and GSO (native XDP redirects into a veth
//! are dropped unless its peer runs NAPI, and XDP cannot fix a local sender's partial
//! checksums).
use aya::programs::XdpMode;
use proxy_common::fastpath::hook;

use super::{error::DataPlaneError, fastpath::FastPathMode};

/// One way of attaching the ingress program to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The XDP program in this mode.
    Xdp(XdpMode),
    /// The TC ingress program (tcx).
    Tc,
}

impl Placement {
    /// The `IFACE_HOOKS` value of this placement.
    pub fn hook(self) -> u32 {
        match self {
            Self::Xdp(_) => hook::XDP,
            Self::Tc => hook::TC,
        }
    }

    /// How logs and `flowproxy stats` name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Xdp(XdpMode::Driver) => "xdp-native",
            Self::Xdp(XdpMode::Skb) => "xdp-generic",
            Self::Xdp(_) => "xdp",
            Self::Tc => "tc",
        }
    }
}

/// The placements to try on `interface`, best first; the first that attaches is used.
pub fn choose(
    mode: FastPathMode,
    interface: &str,
    physical: bool,
) -> Result<Vec<Placement>, DataPlaneError> {
    Ok(match (mode, physical) {
        // No forwarding: XDP only counts, and counts every frame before GRO merges them.
        (FastPathMode::Off, _) => vec![Placement::Xdp(XdpMode::default())],
        // A NIC without native XDP still gets the fast path, at TC.
        (FastPathMode::Auto, true) => vec![Placement::Xdp(XdpMode::Driver), Placement::Tc],
        (FastPathMode::Auto, false) | (FastPathMode::Tc, _) => vec![Placement::Tc],
        (FastPathMode::Native, true) => vec![Placement::Xdp(XdpMode::Driver)],
        (FastPathMode::Native, false) => {
            return Err(DataPlaneError::NativeXdpOnVirtual {
                interface: interface.to_owned(),
            });
        }
        (FastPathMode::Generic, true) => vec![Placement::Xdp(XdpMode::Skb)],
        (FastPathMode::Generic, false) => {
            return Err(DataPlaneError::GenericXdpOnVirtual {
                interface: interface.to_owned(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_puts_native_xdp_on_nics_and_tc_on_virtual_devices() {
        assert_eq!(
            choose(FastPathMode::Auto, "eth0", true).unwrap(),
            [Placement::Xdp(XdpMode::Driver), Placement::Tc]
        );
        assert_eq!(
            choose(FastPathMode::Auto, "veth0", false).unwrap(),
            [Placement::Tc]
        );
    }

    #[test]
    fn forced_native_xdp_is_refused_on_a_virtual_device_naming_it_and_the_fix() {
        let e = choose(FastPathMode::Native, "veth7", false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("'veth7'"), "{text}");
        assert!(text.contains("--l4-fastpath auto"), "{text}");
        assert_eq!(
            choose(FastPathMode::Native, "eth0", true).unwrap(),
            [Placement::Xdp(XdpMode::Driver)]
        );
    }

    #[test]
    fn forced_generic_xdp_is_refused_on_a_virtual_device_naming_it_and_the_fix() {
        let text = choose(FastPathMode::Generic, "veth7", false)
            .unwrap_err()
            .to_string();
        assert!(text.contains("'veth7'"), "{text}");
        assert!(text.contains("--l4-fastpath auto"), "{text}");
        assert_eq!(
            choose(FastPathMode::Generic, "eth0", true).unwrap(),
            [Placement::Xdp(XdpMode::Skb)]
        );
    }

    #[test]
    fn forced_modes_are_used_as_given() {
        for physical in [true, false] {
            assert_eq!(
                choose(FastPathMode::Tc, "x", physical).unwrap(),
                [Placement::Tc]
            );
            assert_eq!(
                choose(FastPathMode::Off, "x", physical).unwrap(),
                [Placement::Xdp(XdpMode::default())]
            );
        }
    }

    #[test]
    fn placements_name_their_hook() {
        assert_eq!(Placement::Tc.hook(), hook::TC);
        assert_eq!(Placement::Xdp(XdpMode::Skb).hook(), hook::XDP);
        assert_eq!(Placement::Xdp(XdpMode::Driver).name(), "xdp-native");
    }
}
