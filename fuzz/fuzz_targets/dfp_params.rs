//! The DFP reconfigure query: any query string either is refused with a 400 (409 only for
//! DFP's own "no servicePath nor serviceDomain" answer), or gives a service that an empty
//! route table accepts and whose stored `params` parse back to an equal service.
#![no_main]

use flowproxy::routes::{RouteError, RouteTable, parse_params, parse_reconfigure, render_haproxy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let service = match parse_reconfigure(&query) {
        Ok(service) => service,
        Err(e) => {
            let expected = if e == RouteError::MissingPathOrDomain {
                409
            } else {
                400
            };
            assert_eq!(e.status(), expected, "{e}");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let reparsed = parse_params(service.params.clone()).unwrap_or_else(|e| {
        panic!(
            "params {:?} of an accepted service fail: {e}",
            service.params
        )
    });
    assert!(
        reparsed == service,
        "params {:?} parse to a different service",
        service.params
    );
    let table = RouteTable::default()
        .with_service(service)
        .unwrap_or_else(|e| panic!("an empty table refuses a valid service: {e}"));
    let _ = render_haproxy(&table);
});
