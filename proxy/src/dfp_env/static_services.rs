//! DFP's static services: a service written in the proxy's environment instead of sent to the
//! API. `DFP_SERVICE_<PARAM>` is one service and `DFP_SERVICE_<n>_<PARAM>` the n-th; a
//! destination-level parameter takes its destination as a suffix (`DFP_SERVICE_PORT_2`).
//! `<PARAM>` is the reconfigure parameter in DFP's envconfig spelling (`serviceName` is
//! `SERVICE_NAME`), so each service becomes the same parameter map a reconfigure call gives,
//! and goes through the same parser.
use std::collections::BTreeMap;

use super::EnvError;
use crate::routes::catalog::{CATALOG, Level};

/// Every static service's variables start with this.
pub const PREFIX: &str = "DFP_SERVICE_";

/// One static service: its variables' common prefix (for messages) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticService {
    /// `DFP_SERVICE` or `DFP_SERVICE_<n>`.
    pub prefix: String,
    /// The reconfigure parameters its variables spell.
    pub params: BTreeMap<String, String>,
}

/// `serviceName` as DFP's envconfig spells it: `SERVICE_NAME`.
fn env_spelling(param: &str) -> String {
    let mut out = String::with_capacity(param.len() + 4);
    for c in param.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The parameter (with `.N` for a destination suffix) that `rest` (a variable's name after
/// its service prefix) spells.
fn param_for(rest: &str) -> Option<String> {
    let exact = |spelled: &str| {
        CATALOG
            .iter()
            .find(|p| env_spelling(p.name) == spelled)
            .map(|p| p.name)
    };
    if let Some(name) = exact(rest) {
        return Some(name.to_owned());
    }
    let (base, index) = rest.rsplit_once('_')?;
    let index: usize = index.parse().ok().filter(|i| *i > 0)?;
    let name = exact(base)?;
    let level = CATALOG.iter().find(|p| p.name == name)?.level;
    (level == Level::Destination).then(|| format!("{name}.{index}"))
}

/// The static services `vars` spell, in order (`DFP_SERVICE` first, then by number). A
/// variable that spells no parameter, or a service without `SERVICE_NAME`, is an error naming
/// it: starting without it would silently drop a route.
pub fn static_services<'a>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<StaticService>, EnvError> {
    let mut services: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        // `DFP_SERVICE_2_PORT` is service 2; `DFP_SERVICE_PORT` the unnumbered one.
        let (number, rest) = match rest.split_once('_') {
            Some((n, tail)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let n = n.parse().map_err(|_| unknown(name))?;
                (n, tail)
            }
            _ => (0, rest),
        };
        let param = param_for(rest).ok_or_else(|| unknown(name))?;
        services
            .entry(number)
            .or_default()
            .insert(param, value.to_owned());
    }
    services
        .into_iter()
        .map(|(number, params)| {
            let prefix = match number {
                0 => "DFP_SERVICE".to_owned(),
                n => format!("DFP_SERVICE_{n}"),
            };
            if !params.contains_key("serviceName") {
                return Err(EnvError {
                    name: format!("{prefix}_*"),
                    reason: format!(
                        "a static service needs {prefix}_SERVICE_NAME; set it or remove the service's variables"
                    ),
                });
            }
            Ok(StaticService { prefix, params })
        })
        .collect()
}

fn unknown(name: &str) -> EnvError {
    EnvError {
        name: name.to_owned(),
        reason: "it spells no reconfigure parameter (DFP_SERVICE_[<n>_]<PARAM>[_<destination>], \
                 e.g. DFP_SERVICE_SERVICE_PATH_1)"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_take_envconfig_spellings() {
        assert_eq!(env_spelling("serviceName"), "SERVICE_NAME");
        assert_eq!(
            env_spelling("reqPathSearchReplace"),
            "REQ_PATH_SEARCH_REPLACE"
        );
        assert_eq!(
            param_for("SERVICE_PATH_2").as_deref(),
            Some("servicePath.2")
        );
        assert_eq!(param_for("HTTPS_ONLY").as_deref(), Some("httpsOnly"));
        // Service-level parameters take no destination.
        assert_eq!(param_for("SERVICE_NAME_2"), None);
        assert_eq!(param_for("PORT_0"), None);
        assert_eq!(param_for("NO_SUCH"), None);
    }

    #[test]
    fn variables_group_into_services() {
        let services = static_services([
            ("PATH", "/bin"),
            ("DFP_SERVICE_SERVICE_NAME", "go-demo"),
            ("DFP_SERVICE_SERVICE_PATH", "/demo"),
            ("DFP_SERVICE_PORT", "8080"),
            ("DFP_SERVICE_1_SERVICE_NAME", "shop"),
            ("DFP_SERVICE_1_SERVICE_PATH_1", "/shop"),
            ("DFP_SERVICE_1_PORT_1", "8081"),
            ("DFP_SERVICE_1_USERS", ""),
        ])
        .unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].prefix, "DFP_SERVICE");
        assert_eq!(services[0].params["servicePath"], "/demo");
        assert_eq!(services[1].prefix, "DFP_SERVICE_1");
        assert_eq!(services[1].params["servicePath.1"], "/shop");
        assert_eq!(services[1].params["port.1"], "8081");
        assert!(!services[1].params.contains_key("users"), "empty is unset");
    }

    #[test]
    fn a_variable_that_spells_nothing_or_a_nameless_service_is_refused() {
        let err = static_services([("DFP_SERVICE_SERVICE_PAHT", "/x")]).unwrap_err();
        assert_eq!(err.name, "DFP_SERVICE_SERVICE_PAHT");
        let err = static_services([("DFP_SERVICE_3_PORT", "80")]).unwrap_err();
        assert!(
            err.to_string().contains("DFP_SERVICE_3_SERVICE_NAME"),
            "{err}"
        );
    }
}
