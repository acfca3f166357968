//! The routing parameters from DFP: `serviceDomainAlgo`, `serviceDomainMatchAll`,
//! `serviceHeader` and `userAgent`.

use super::*;
use crate::routes::service::DomainPattern;

fn parse(pairs: &[(&str, &str)]) -> Result<Service, RouteError> {
    let q: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_reconfigure(&q)
}

fn site(extra: &[(&str, &str)]) -> Result<Service, RouteError> {
    let mut pairs = vec![
        ("serviceName", "site"),
        ("serviceDomain", "Example.com,*.example.org"),
        ("port", "80"),
    ];
    pairs.extend_from_slice(extra);
    parse(&pairs)
}

#[test]
fn the_algorithm_applies_to_every_domain_without_a_star() {
    let domains = |extra: &[(&str, &str)]| site(extra).unwrap().destinations[0].domains.clone();
    let org = DomainPattern::Suffix(".example.org".into());
    assert_eq!(
        domains(&[]),
        [DomainPattern::Exact("example.com".into()), org.clone()]
    );
    assert_eq!(
        domains(&[("serviceDomainAlgo", "hdr_beg(host)")]),
        [DomainPattern::Prefix("example.com".into()), org.clone()]
    );
    assert_eq!(
        domains(&[("serviceDomainAlgo", "hdr_end")]),
        [DomainPattern::Suffix("example.com".into()), org.clone()]
    );
    assert_eq!(
        domains(&[("serviceDomainMatchAll", "true")]),
        [DomainPattern::Domain("example.com".into()), org.clone()]
    );
    assert_eq!(
        domains(&[
            ("serviceDomainMatchAll", "true"),
            ("serviceDomainAlgo", "hdr_dom(host)")
        ]),
        [DomainPattern::Domain("example.com".into()), org]
    );
}

#[test]
fn bad_algorithms_and_flags_name_their_parameter() {
    for bad in ["req.ssl_sni", "hdr_sub", "HDR_BEG", "exact"] {
        let err = site(&[("serviceDomainAlgo", bad)]).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().starts_with("serviceDomainAlgo="), "{err}");
    }
    let err = site(&[("serviceDomainMatchAll", "yes")]).unwrap_err();
    assert!(
        err.to_string().starts_with("serviceDomainMatchAll="),
        "{err}"
    );
    let err = site(&[
        ("serviceDomainMatchAll", "true"),
        ("serviceDomainAlgo", "hdr"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("contradicts"), "{err}");
    let err = site(&[("serviceDomainAlgo.1", "hdr")]).unwrap_err();
    assert!(err.to_string().contains("no .N index"), "{err}");
}

#[test]
fn conditions_are_per_destination() {
    let svc = parse(&[
        ("serviceName", "web"),
        ("servicePath.1", "/"),
        ("port.1", "1"),
        ("serviceHeader.1", "X-Version: 3 ,name:viktor"),
        ("userAgent.1", "GoogleBot"),
        ("servicePath.2", "/"),
        ("port.2", "2"),
    ])
    .unwrap();
    let first = &svc.destinations[0].conditions;
    let names: Vec<(&str, &str)> = first
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(names, [("x-version", "3"), ("name", "viktor")]);
    assert_eq!(first.user_agents, ["googlebot"]);
    assert!(svc.destinations[1].conditions.is_empty());
    let err = parse(&[
        ("serviceName", "web"),
        ("servicePath", "/"),
        ("port", "1"),
        ("serviceHeader", "Bad Header:1"),
    ])
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().starts_with("serviceHeader="), "{err}");
    // Saved parameters give back the same service.
    assert_eq!(parse_params(svc.params.clone()).unwrap(), svc);
}
