use super::*;

const NOTIFY: &str = "com.df.notify";

fn swarm(name: &str, labels: &[(&str, &str)], replicas: Option<u64>) -> SwarmService {
    SwarmService {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        replicas,
    }
}

fn go_demo() -> SwarmService {
    swarm(
        "go-demo",
        &[
            ("com.df.notify", "true"),
            ("com.df.servicePath", "/demo"),
            ("com.df.port", "8080"),
            ("com.df.distribute", "true"),
            ("com.docker.stack.image", "go-demo"),
        ],
        Some(3),
    )
}

fn table(services: Vec<Service>) -> RouteTable {
    services.into_iter().fold(RouteTable::default(), |t, s| {
        t.with_service(s).expect("no conflicts in tests")
    })
}

#[test]
fn labels_become_the_listeners_parameters() {
    let params = params_for(&go_demo(), NOTIFY).unwrap();
    let expected: BTreeMap<String, String> = [
        ("serviceName", "go-demo"),
        ("servicePath", "/demo"),
        ("port", "8080"),
        ("replicas", "3"),
        (DISCOVERED_PARAM, DISCOVERED_VALUE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        params, expected,
        "notify, distribute and other prefixes are left out"
    );
}

#[test]
fn only_services_labelled_notify_true_count() {
    let mut svc = go_demo();
    svc.labels.insert(NOTIFY.into(), "TRUE".into());
    assert!(params_for(&svc, NOTIFY).is_some(), "case-insensitive");
    svc.labels.insert(NOTIFY.into(), "false".into());
    assert!(params_for(&svc, NOTIFY).is_none());
    svc.labels.remove(NOTIFY);
    assert!(params_for(&svc, NOTIFY).is_none());
    svc.labels.insert("custom.notify".into(), "true".into());
    assert!(
        params_for(&svc, "custom.notify").is_some(),
        "DF_NOTIFY_LABEL"
    );
}

#[test]
fn indexed_labels_keep_their_index_and_global_services_have_no_replicas() {
    let svc = swarm(
        "app",
        &[
            (NOTIFY, "true"),
            ("com.df.servicePath.1", "/a"),
            ("com.df.port.1", "80"),
            ("com.df.serviceDomain.2", "b.example.com"),
            ("com.df.port.2", "81"),
            ("com.df.replicas", "7"),
        ],
        None,
    );
    let params = params_for(&svc, NOTIFY).unwrap();
    assert_eq!(params["servicePath.1"], "/a");
    assert_eq!(params["serviceDomain.2"], "b.example.com");
    assert!(!params.contains_key("replicas"));
    let service = parse_params(params).unwrap();
    assert_eq!(service.destinations.len(), 2);
}

#[test]
fn service_name_comes_from_the_label_or_the_short_name() {
    let mut svc = go_demo();
    svc.labels
        .insert("com.df.serviceName".into(), "other".into());
    assert_eq!(params_for(&svc, NOTIFY).unwrap()["serviceName"], "other");
    svc.labels.insert("com.df.serviceName".into(), "".into());
    assert_eq!(
        params_for(&svc, NOTIFY).unwrap()["serviceName"],
        "go-demo",
        "empty is absent"
    );
    let mut stacked = go_demo();
    stacked.name = "shop_go-demo".into();
    stacked.labels.insert(STACK_LABEL.into(), "shop".into());
    assert_eq!(
        params_for(&stacked, NOTIFY).unwrap()["serviceName"],
        "shop_go-demo"
    );
    stacked
        .labels
        .insert("com.df.shortName".into(), "true".into());
    assert_eq!(
        params_for(&stacked, NOTIFY).unwrap()["serviceName"],
        "go-demo"
    );
}

#[test]
fn new_and_changed_services_are_applied_unchanged_ones_left_alone() {
    let current = table(vec![]);
    let plan = plan(&[go_demo()], NOTIFY, &current);
    assert_eq!(plan.apply.len(), 1);
    assert!(plan.remove.is_empty() && plan.invalid.is_empty());

    let current = table(plan.apply);
    let again = super::plan(&[go_demo()], NOTIFY, &current);
    assert!(again.apply.is_empty(), "same labels, nothing to do");

    let mut scaled = go_demo();
    scaled.replicas = Some(5);
    let plan = super::plan(&[scaled], NOTIFY, &current);
    assert_eq!(plan.apply.len(), 1);
    assert_eq!(plan.apply[0].params["replicas"], "5");
}

#[test]
fn a_removed_swarm_service_loses_its_routes_but_api_services_stay() {
    let labelled = parse_params(params_for(&go_demo(), NOTIFY).unwrap()).unwrap();
    let api = parse_params(
        [
            ("serviceName", "api-made"),
            ("servicePath", "/api"),
            ("port", "80"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
    .unwrap();
    let current = table(vec![labelled, api]);
    let plan = plan(&[], NOTIFY, &current);
    assert_eq!(plan.remove, ["go-demo"]);
    let mut unlabelled = go_demo();
    unlabelled.labels.insert(NOTIFY.into(), "false".into());
    assert_eq!(
        super::plan(&[unlabelled], NOTIFY, &current).remove,
        ["go-demo"]
    );
}

#[test]
fn invalid_labels_name_the_service_and_the_label_and_keep_the_old_configuration() {
    let labelled = parse_params(params_for(&go_demo(), NOTIFY).unwrap()).unwrap();
    let current = table(vec![labelled]);
    let mut broken = go_demo();
    broken.labels.insert("com.df.port".into(), "http".into());
    let plan = plan(&[broken], NOTIFY, &current);
    assert!(plan.apply.is_empty());
    assert!(plan.remove.is_empty(), "the old routes stay");
    let message = plan.invalid[0].to_string();
    assert!(message.contains("Swarm service go-demo"), "{message}");
    assert!(message.contains("label com.df.port"), "{message}");

    let mut no_port = go_demo();
    no_port.labels.remove("com.df.port");
    let err = &super::plan(&[no_port], NOTIFY, &current).invalid[0];
    assert_eq!(err.label, "label com.df.port");

    let mut indexed = go_demo();
    indexed
        .labels
        .insert("com.df.servicePath.1".into(), "no-slash".into());
    indexed.labels.insert("com.df.port.1".into(), "80".into());
    let err = &super::plan(&[indexed], NOTIFY, &current).invalid[0];
    assert_eq!(err.label, "label com.df.servicePath.1");
}

#[test]
fn services_without_a_path_are_unrouted_rather_than_broken() {
    let monitor_only = swarm(
        "exporter",
        &[(NOTIFY, "true"), ("com.df.scrapePort", "9100")],
        Some(1),
    );
    let plan = plan(&[monitor_only], NOTIFY, &RouteTable::default());
    assert!(plan.invalid[0].is_unrouted());
    assert!(!plan.invalid[0].to_string().is_empty());
}

#[test]
fn two_swarm_services_claiming_one_name_are_refused() {
    let mut twin = go_demo();
    twin.name = "go-demo-copy".into();
    twin.labels
        .insert("com.df.serviceName".into(), "go-demo".into());
    let plan = plan(&[go_demo(), twin], NOTIFY, &RouteTable::default());
    assert_eq!(plan.apply.len(), 1);
    assert_eq!(plan.invalid[0].service, "go-demo-copy");
    assert!(plan.invalid[0].to_string().contains("same serviceName"));
}

#[test]
fn a_refused_label_keeps_the_service_out_and_names_the_label() {
    let mut raw = go_demo();
    raw.labels
        .insert("com.df.backendExtra".into(), "option forwardfor".into());
    let plan = plan(&[raw], NOTIFY, &RouteTable::default());
    assert!(plan.apply.is_empty());
    assert_eq!(plan.invalid[0].label, "label com.df.backendExtra");
    assert!(plan.invalid[0].to_string().contains("raw HAProxy"));
    let mut monitored = go_demo();
    monitored
        .labels
        .insert("com.df.alertName.1".into(), "mem".into());
    let plan = super::plan(&[monitored], NOTIFY, &RouteTable::default());
    assert_eq!(
        plan.apply.len(),
        1,
        "Docker Flow Monitor labels are harmless"
    );
}
