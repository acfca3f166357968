//! The pinned maps: which ones flowproxy owns, checking that old pins still fit the current
//! layout, and removing them.
use std::{fs, io, path::Path};

use aya::maps::{Array, Map, MapData, MapInfo};
use proxy_common::{
    BackendCounters, BackendKey, BackendSlot, IfaceCounters, MAP_LAYOUT_VERSION, MAX_BACKENDS,
    MAX_INTERFACES,
    fastpath::{
        FastPathConfig, Flow, FlowKey, GlobalCounters, MAGLEV_ENTRIES, MAX_L4_SERVICES,
        ServiceCounters, ServiceEntry, ServiceKey, budget,
    },
    map_names,
};

use super::error::DataPlaneError;

/// The shape of one pinned map, enough to tell whether an old pin can be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapShape {
    /// Pin file name (also the map's name in the object).
    pub name: &'static str,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes (per CPU for per-CPU maps).
    pub value_size: u32,
    /// Maximum number of entries; 0 when it is set at load time (`CONNTRACK`).
    pub max_entries: u32,
}

/// Every map flowproxy pins, with the layout this build expects.
pub const PINNED_MAPS: &[MapShape] = &[
    MapShape {
        name: map_names::LAYOUT,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
    },
    MapShape {
        name: map_names::IFACE_SLOTS,
        key_size: 4,
        value_size: 4,
        max_entries: MAX_INTERFACES,
    },
    MapShape {
        name: map_names::IFACE_HOOKS,
        key_size: 4,
        value_size: 4,
        max_entries: MAX_INTERFACES,
    },
    MapShape {
        name: map_names::IFACE_STATS,
        key_size: 4,
        value_size: size_of::<IfaceCounters>() as u32,
        max_entries: MAX_INTERFACES,
    },
    MapShape {
        name: map_names::BACKENDS,
        key_size: size_of::<BackendKey>() as u32,
        value_size: size_of::<BackendSlot>() as u32,
        max_entries: MAX_BACKENDS,
    },
    MapShape {
        name: map_names::BACKEND_STATS,
        key_size: 4,
        value_size: size_of::<BackendCounters>() as u32,
        max_entries: MAX_BACKENDS,
    },
    MapShape {
        name: map_names::REALS,
        key_size: 4,
        value_size: size_of::<BackendKey>() as u32,
        max_entries: MAX_BACKENDS,
    },
    MapShape {
        name: map_names::L4_SERVICES,
        key_size: size_of::<ServiceKey>() as u32,
        value_size: size_of::<ServiceEntry>() as u32,
        max_entries: MAX_L4_SERVICES,
    },
    MapShape {
        name: map_names::MAGLEV,
        key_size: 4,
        value_size: 4,
        max_entries: MAGLEV_ENTRIES,
    },
    MapShape {
        name: map_names::CONNTRACK,
        key_size: size_of::<FlowKey>() as u32,
        value_size: size_of::<Flow>() as u32,
        max_entries: 0,
    },
    MapShape {
        name: map_names::FLOW_BUDGET,
        key_size: 4,
        value_size: 8,
        max_entries: budget::LEN,
    },
    MapShape {
        name: map_names::L4_CONFIG,
        key_size: 4,
        value_size: size_of::<FastPathConfig>() as u32,
        max_entries: 1,
    },
    MapShape {
        name: map_names::L4_SERVICE_STATS,
        key_size: 4,
        value_size: size_of::<ServiceCounters>() as u32,
        max_entries: MAX_L4_SERVICES,
    },
    MapShape {
        name: map_names::L4_GLOBAL_STATS,
        key_size: 4,
        value_size: size_of::<GlobalCounters>() as u32,
        max_entries: 1,
    },
];

/// Removes pins that do not belong to this build's layout, so the loader creates them afresh
/// instead of handing the programs a map of the wrong shape: all of them when the recorded
/// `LAYOUT` version differs (or is missing), otherwise any whose shape differs. Pins that fit
/// are kept, and with them their counters. `conntrack_entries` is the size `CONNTRACK` is
/// loaded with this time (a changed `--conntrack-size` replaces it).
pub fn drop_stale_pins(dir: &Path, conntrack_entries: u32) -> Result<(), DataPlaneError> {
    let any_pinned = PINNED_MAPS.iter().any(|m| dir.join(m.name).exists());
    if any_pinned {
        let version = pinned_layout_version(dir);
        if version != Some(MAP_LAYOUT_VERSION) {
            tracing::warn!(
                dir = %dir.display(),
                found = ?version,
                expected = MAP_LAYOUT_VERSION,
                "pinned maps have another layout version; replacing all of them"
            );
            for shape in PINNED_MAPS {
                remove_pin(&dir.join(shape.name))?;
            }
            return Ok(());
        }
    }
    for shape in PINNED_MAPS {
        let path = dir.join(shape.name);
        if !path.exists() {
            continue;
        }
        let fits = match MapInfo::from_pin(&path) {
            Ok(info) => {
                info.key_size() == shape.key_size
                    && info.value_size() == shape.value_size
                    && info.max_entries() == expected_entries(shape, conntrack_entries)
            }
            Err(_) => false,
        };
        if !fits {
            tracing::warn!(pin = %path.display(), "replacing a pinned map whose layout is not this version's");
            remove_pin(&path)?;
        }
    }
    Ok(())
}

fn expected_entries(shape: &MapShape, conntrack_entries: u32) -> u32 {
    if shape.max_entries == 0 {
        conntrack_entries
    } else {
        shape.max_entries
    }
}

/// The layout version recorded in the pinned `LAYOUT` map, if there is one.
fn pinned_layout_version(dir: &Path) -> Option<u32> {
    let data = MapData::from_pin(dir.join(map_names::LAYOUT)).ok()?;
    let array: Array<MapData, u32> = Array::try_from(Map::from_map_data(data).ok()?).ok()?;
    array.get(&0, 0).ok()
}

/// Records this build's layout version in the loaded `LAYOUT` map.
pub fn record_layout_version(ebpf: &mut aya::Ebpf) -> Result<(), DataPlaneError> {
    let map_err = |source| DataPlaneError::Map {
        map: map_names::LAYOUT,
        source,
    };
    let map = ebpf
        .map_mut(map_names::LAYOUT)
        .ok_or(DataPlaneError::NoObject)?;
    let mut array: Array<_, u32> = Array::try_from(map).map_err(map_err)?;
    array.set(0, MAP_LAYOUT_VERSION, 0).map_err(map_err)
}

/// Unpins every map flowproxy owns under `dir`, then the directory itself if nothing else is in it.
pub fn remove_pins(dir: &Path) -> Result<(), DataPlaneError> {
    for shape in PINNED_MAPS {
        remove_pin(&dir.join(shape.name))?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        // Someone else keeps files there (or it is gone already): leave it.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::ENOENT)) => Ok(()),
        Err(e) => Err(DataPlaneError::from_io("remove", dir, e)),
    }
}

fn remove_pin(path: &Path) -> Result<(), DataPlaneError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(DataPlaneError::from_io("unpin", path, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_of_the_object_is_listed_once() {
        let mut names: Vec<_> = PINNED_MAPS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PINNED_MAPS.len());
        assert!(names.contains(&map_names::IFACE_STATS));
    }
}
