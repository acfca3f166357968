//! Errors of the data plane layer, each saying what the operator can do about it.
use std::{io, path::PathBuf};

/// Why the data plane could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The binary was built without the BPF object.
    #[error(
        "this flowproxy binary was built without its BPF object; build it with `cargo xtask build`, or run with --no-ebpf"
    )]
    NoObject,
    /// An `--interface` names no interface of this network namespace.
    #[error(
        "interface '{name}' does not exist (see `ip link`); fix --interface or run with --no-ebpf"
    )]
    NoSuchInterface {
        /// The name as given on the command line.
        name: String,
    },
    /// `--l4-fastpath native` on a virtual device, where XDP cannot deliver what it redirects.
    #[error(
        "--l4-fastpath native: '{interface}' is a virtual device (veth, bridge, vxlan, ...); frames native XDP redirects into such devices are dropped unless the receiving side runs NAPI, so this would black-hole TCP-mode flows. Use --l4-fastpath auto (the default) or tc, which run the fast path at TC on virtual devices"
    )]
    NativeXdpOnVirtual {
        /// The interface.
        interface: String,
    },
    /// `--l4-fastpath generic` on a virtual device, whose local senders leave TCP checksums
    /// partial for offload: generic XDP rewrites them as if they were full, so flows stall.
    #[error(
        "--l4-fastpath generic: '{interface}' is a virtual device (veth, bridge, vxlan, ...); its local senders leave TCP checksums to offload (the default), which generic XDP cannot rewrite, so TCP-mode flows through it would stall. Use --l4-fastpath auto (the default) or tc, which run the fast path at TC on virtual devices"
    )]
    GenericXdpOnVirtual {
        /// The interface.
        interface: String,
    },
    /// An interface whose frames are not Ethernet (a tun, wireguard or ipip device).
    #[error(
        "interface '{interface}' is not Ethernet-framed (link type {link_type}); the data plane reads Ethernet frames: leave it out of --interface"
    )]
    NotEthernet {
        /// The interface.
        interface: String,
        /// Its `ARPHRD_*` link type.
        link_type: u32,
    },
    /// The process lacks the rights to load or attach BPF programs.
    #[error(
        "no permission to {action}: loading BPF needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN); run as root, or pass --no-ebpf to run without the data plane"
    )]
    NoPrivilege {
        /// What was attempted.
        action: String,
    },
    /// The pin directory is not on a BPF filesystem and one could not be mounted.
    #[error(
        "{dir} is not on a BPF filesystem and mounting one failed ({source}); run `mount -t bpf bpf /sys/fs/bpf` or choose another --bpffs-dir"
    )]
    NoBpffs {
        /// The pin directory.
        dir: PathBuf,
        /// Why the mount failed.
        source: io::Error,
    },
    /// Another process holds the pin directory.
    #[error("another flowproxy is using {dir}; stop it or give this one its own --bpffs-dir")]
    PinDirBusy {
        /// The pin directory.
        dir: PathBuf,
    },
    /// No pinned maps where `flowproxy stats` looked.
    #[error(
        "no flowproxy maps are pinned under {dir}: is flowproxy running with its data plane (and this --bpffs-dir)?"
    )]
    NotPinned {
        /// The pin directory.
        dir: PathBuf,
    },
    /// More interfaces or backends than the counting maps have slots for.
    #[error("too many {what}: the data plane counts at most {max}")]
    OutOfSlots {
        /// "interfaces" or "backends".
        what: &'static str,
        /// The number of slots.
        max: u32,
    },
    /// A filesystem operation on the pin directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// aya could not load the object (the verifier log is in the message).
    #[error("loading the BPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded or attached.
    #[error("BPF program {program}: {source}")]
    Program {
        /// The program's name.
        program: &'static str,
        /// aya's error.
        source: aya::programs::ProgramError,
    },
    /// A map could not be opened, read or written.
    #[error("BPF map {map}: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// aya's error.
        source: aya::maps::MapError,
    },
}

impl DataPlaneError {
    /// Turns permission failures into the error that tells the operator about `--no-ebpf`.
    pub fn from_io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        if is_permission(&source) {
            return Self::NoPrivilege {
                action: format!("{action} {}", path.into().display()),
            };
        }
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// True for the errno values the kernel returns when BPF rights are missing.
pub fn is_permission(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}
