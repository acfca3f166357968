//! The eBPF data plane: loading the embedded object, pinning its maps, attaching the programs
//! to interfaces through bpf_link, and tearing it all down again.
//!
//! Links are not pinned: they belong to this process, so when it dies (even by `kill -9`) the
//! kernel detaches the programs and the interfaces keep working without us.
pub mod backends;
mod bpffs;
mod error;
pub mod fastpath;
mod l4_stats;
mod maps;
pub mod neighbours;
mod netif;
mod pins;
mod placement;
mod routes;
mod self_test;
mod slots;
mod stats;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TcAttachType, Xdp},
};
use proxy_common::{MAX_INTERFACES, map_names};

use self::{
    maps::{Maps, map_err},
    placement::Placement,
};

pub use backends::Backend;
pub use error::DataPlaneError;
pub use fastpath::{FastPathMode, FastPathSettings, L4Service, SweepReport};
pub use l4_stats::{L4ServiceStat, L4Stats, read_l4_stats};
pub use netif::up_ethernet_interfaces;
pub use routes::live_interface_for;
pub use stats::{BackendStat, read_backend_stats, read_iface_stats};

/// The object built by `cargo xtask build-ebpf`; empty when the binary was built without it.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/flowproxy-ebpf.o"));

/// Name of the XDP counting program in the object.
const XDP_PROGRAM: &str = "flowproxy_xdp";
/// Name of the TC egress counting program in the object.
const TC_PROGRAM: &str = "flowproxy_tc_egress";
/// Name of the TC ingress program (counting and the fast path on virtual devices).
const TC_INGRESS_PROGRAM: &str = "flowproxy_tc_ingress";

/// What the data plane needs to start.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Interfaces to attach the XDP program to.
    pub interfaces: Vec<String>,
    /// Where maps are pinned.
    pub pin_dir: PathBuf,
    /// The TCP-mode fast path's settings.
    pub fastpath: FastPathSettings,
}

/// A loaded and attached data plane. Dropping it detaches the programs; [`DataPlane::shutdown`]
/// also removes the pins.
pub struct DataPlane {
    ebpf: Ebpf,
    maps: Maps,
    pin_dir: PathBuf,
    attached: Vec<String>,
    fast: fastpath::FastPath,
    _lock: bpffs::PinDirLock,
}

impl DataPlane {
    /// Loads the programs, pins their maps under `config.pin_dir` (reusing pins whose layout
    /// fits) and attaches the XDP program to every interface.
    pub fn start(config: &DataPlaneConfig) -> Result<Self, DataPlaneError> {
        resolve_interfaces(&config.interfaces)?;
        if OBJECT.is_empty() {
            return Err(DataPlaneError::NoObject);
        }
        let lock = bpffs::prepare_pin_dir(&config.pin_dir)?;
        let conntrack_entries = config.fastpath.conntrack_entries();
        pins::drop_stale_pins(&config.pin_dir, conntrack_entries)?;
        let mut loader = EbpfLoader::new();
        for shape in pins::PINNED_MAPS {
            loader.map_pin_path(shape.name, config.pin_dir.join(shape.name));
        }
        loader.map_max_entries(map_names::CONNTRACK, conntrack_entries);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| permission_or(e, "load BPF maps and programs", DataPlaneError::Load))?;
        pins::record_layout_version(&mut ebpf)?;
        load_programs(&mut ebpf)?;
        let mut maps = Maps::take(&mut ebpf)?;
        // Reused pins may name hooks of a previous run, whose links died with it.
        clear_hooks(&mut maps)?;
        let fast = fastpath::FastPath::init(&mut maps, config.fastpath.clone())?;
        let mut data_plane = Self {
            ebpf,
            maps,
            pin_dir: config.pin_dir.clone(),
            attached: Vec::new(),
            fast,
            _lock: lock,
        };
        for name in &config.interfaces {
            data_plane.attach(name)?;
        }
        Ok(data_plane)
    }

    /// Attaches the programs to `interface` (once; a second call does nothing): the ingress
    /// program where it delivers (see `placement`), and the TC egress counter.
    pub fn attach(&mut self, interface: &str) -> Result<(), DataPlaneError> {
        if self.attached.iter().any(|a| a == interface) {
            return Ok(());
        }
        let ifindex = resolve_interfaces(&[interface.to_owned()])?[0];
        let link_type = netif::link_type(interface);
        if link_type != Some(netif::ARPHRD_ETHER) {
            return Err(DataPlaneError::NotEthernet {
                interface: interface.to_owned(),
                link_type: link_type.unwrap_or(0),
            });
        }
        let mode = self.fast.settings().mode;
        let physical = netif::is_physical(interface);
        let choices = placement::choose(mode, interface, physical)?;
        assign_slots(&mut self.maps, &[ifindex])?;
        let placed = self.attach_first(interface, &choices)?;
        self.maps
            .iface_hooks
            .insert(ifindex, placed.hook(), 0)
            .map_err(map_err(map_names::IFACE_HOOKS))?;
        if mode != FastPathMode::Off {
            fastpath::enable_forwarding(interface);
            let fault = self.fast.settings().self_test_fault;
            self_test::check_interface(
                &self.ebpf,
                &mut self.maps,
                interface,
                ifindex,
                placed,
                fault,
            );
        }
        let tc: &mut SchedClassifier = program(&mut self.ebpf, TC_PROGRAM)?;
        tc.attach(interface, TcAttachType::Egress)
            .map_err(|source| program_error(source, TC_PROGRAM, "attach"))?;
        tracing::info!(
            interface,
            ingress = placed.name(),
            fast_path = mode != FastPathMode::Off,
            "data plane attached (ingress program, TC egress counting)"
        );
        self.attached.push(interface.to_owned());
        Ok(())
    }

    /// Attaches the ingress program in the first of `choices` (never empty) that takes.
    fn attach_first(
        &mut self,
        interface: &str,
        choices: &[Placement],
    ) -> Result<Placement, DataPlaneError> {
        let (last, rest) = choices.split_last().ok_or(DataPlaneError::NoObject)?;
        for &choice in rest {
            match self.attach_ingress(interface, choice) {
                Ok(()) => return Ok(choice),
                Err(e) => tracing::info!(interface, placement = choice.name(), error = %e,
                    "cannot attach here; trying the next placement"),
            }
        }
        self.attach_ingress(interface, *last).map(|()| *last)
    }

    fn attach_ingress(&mut self, interface: &str, choice: Placement) -> Result<(), DataPlaneError> {
        match choice {
            Placement::Xdp(mode) => {
                let xdp: &mut Xdp = program(&mut self.ebpf, XDP_PROGRAM)?;
                xdp.attach(interface, mode)
                    .map(drop)
                    .map_err(|source| program_error(source, XDP_PROGRAM, "attach"))
            }
            Placement::Tc => {
                let tc: &mut SchedClassifier = program(&mut self.ebpf, TC_INGRESS_PROGRAM)?;
                tc.attach(interface, TcAttachType::Ingress)
                    .map(drop)
                    .map_err(|source| program_error(source, TC_INGRESS_PROGRAM, "attach"))
            }
        }
    }

    /// Makes the counted backends exactly `wanted` and the fast path's services `l4`. Rings
    /// are rewritten between adding new backends and freeing the slots of old ones, so a ring
    /// never points at a slot that already stands for another backend.
    pub fn sync_backends(
        &mut self,
        wanted: &[Backend],
        l4: &[L4Service],
    ) -> Result<(), DataPlaneError> {
        backends::sync(&mut self.maps, wanted, true)?;
        self.fast.sync(&mut self.maps, l4)?;
        backends::sync(&mut self.maps, wanted, false)
    }

    /// Removes ended, idle and drained fast-path flows from conntrack.
    pub fn sweep_flows(&mut self) -> Result<SweepReport, DataPlaneError> {
        self.fast.sweep(&mut self.maps)
    }

    /// The directory holding this data plane's pins.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Detaches every program and, unless `keep_pins`, unpins the maps.
    pub fn shutdown(self, keep_pins: bool) -> Result<(), DataPlaneError> {
        let Self {
            ebpf,
            maps,
            pin_dir,
            _lock,
            ..
        } = self;
        drop(ebpf);
        drop(maps);
        tracing::info!("data plane detached");
        if !keep_pins {
            pins::remove_pins(&pin_dir)?;
            tracing::info!(dir = %pin_dir.display(), "pins removed");
        }
        Ok(())
    }
}

/// Loads the programs into the kernel (attaching comes per interface).
fn load_programs(ebpf: &mut Ebpf) -> Result<(), DataPlaneError> {
    let xdp: &mut Xdp = program(ebpf, XDP_PROGRAM)?;
    xdp.load()
        .map_err(|source| program_error(source, XDP_PROGRAM, "load"))?;
    // On this kernel generation aya attaches TC programs through tcx links, which detach with
    // the process like the XDP links do.
    for name in [TC_PROGRAM, TC_INGRESS_PROGRAM] {
        let tc: &mut SchedClassifier = program(ebpf, name)?;
        tc.load()
            .map_err(|source| program_error(source, name, "load"))?;
    }
    Ok(())
}

fn clear_hooks(maps: &mut Maps) -> Result<(), DataPlaneError> {
    let stale: Vec<u32> = maps.iface_hooks.keys().filter_map(Result::ok).collect();
    for ifindex in stale {
        maps.iface_hooks
            .remove(&ifindex)
            .map_err(map_err(map_names::IFACE_HOOKS))?;
    }
    Ok(())
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DataPlaneError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(DataPlaneError::NoObject)?
        .try_into()
        .map_err(|source| program_error(source, name, "load"))
}

fn resolve_interfaces(names: &[String]) -> Result<Vec<u32>, DataPlaneError> {
    names
        .iter()
        .map(|name| {
            netif::index_of(name)
                .ok_or_else(|| DataPlaneError::NoSuchInterface { name: name.clone() })
        })
        .collect()
}

/// Gives every interface a counter slot; a slot new to an interface starts from zero.
fn assign_slots(maps: &mut Maps, ifindexes: &[u32]) -> Result<(), DataPlaneError> {
    let existing: BTreeMap<u32, u32> = maps.iface_slots.iter().filter_map(Result::ok).collect();
    let plan = slots::plan_slots(&existing, ifindexes, MAX_INTERFACES, |i| {
        netif::name_of(i).is_some()
    })
    .ok_or(DataPlaneError::OutOfSlots {
        what: "interfaces",
        max: MAX_INTERFACES,
    })?;
    slots::zero_slots(
        &mut maps.iface_stats,
        map_names::IFACE_STATS,
        plan.add.iter().map(|&(_, slot)| slot),
    )?;
    let slots_err = map_err(map_names::IFACE_SLOTS);
    for ifindex in &plan.remove {
        maps.iface_slots.remove(ifindex).map_err(&slots_err)?;
    }
    for &(ifindex, slot) in &plan.add {
        maps.iface_slots
            .insert(ifindex, slot, 0)
            .map_err(&slots_err)?;
    }
    Ok(())
}

fn program_error(
    source: aya::programs::ProgramError,
    program: &'static str,
    action: &str,
) -> DataPlaneError {
    // The verifier rejects a program with EACCES as well: then its log, not missing rights,
    // says why, and calling it a permission problem would hide that.
    if let aya::programs::ProgramError::LoadError { verifier_log, .. } = &source
        && !verifier_log.to_string().trim().is_empty()
    {
        return DataPlaneError::Program { program, source };
    }
    permission_or(
        source,
        &format!("{action} the BPF program {program}"),
        |source| DataPlaneError::Program { program, source },
    )
}

fn permission_or<E: std::error::Error + 'static>(
    err: E,
    action: &str,
    otherwise: impl FnOnce(E) -> DataPlaneError,
) -> DataPlaneError {
    if caused_by_permission(&err) {
        DataPlaneError::NoPrivilege {
            action: action.to_owned(),
        }
    } else {
        otherwise(err)
    }
}

/// True when an `EPERM`/`EACCES` from the kernel is somewhere in the error's chain.
fn caused_by_permission(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && error::is_permission(io)
        {
            return true;
        }
        current = e.source();
    }
    false
}
