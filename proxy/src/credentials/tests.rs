use super::*;
use crate::routes::parse_reconfigure;

const SHA512: &str = "$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPFlcWdxjB.";
const SHA256: &str = "$5$abcdefgh$OcHWp0Vj4l19dnE2g4tHD4hbItEZgO0bjRV6LjwCLoA";
const MD5: &str = "$1$abcdefgh$7.vq19w/w3Vm.hk1FOA7Q/";

fn service(extra: &[(&str, &str)]) -> Service {
    let mut q = vec![
        ("serviceName".to_owned(), "app".to_owned()),
        ("servicePath".to_owned(), "/app".to_owned()),
        ("port".to_owned(), "80".to_owned()),
    ];
    q.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    parse_reconfigure(&q).unwrap()
}

fn auth(user: &str, password: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    h.insert(header::AUTHORIZATION, value.parse().unwrap());
    h
}

fn verdict(creds: &Credentials, svc: &Service, headers: &HeaderMap) -> Verdict {
    creds.check(svc, &svc.destinations[0], headers)
}

fn none() -> Credentials {
    Credentials::new(None, false, PathBuf::from("/nonexistent")).unwrap()
}

#[test]
fn a_service_without_users_is_open_unless_users_is_global() {
    let svc = service(&[]);
    assert_eq!(verdict(&none(), &svc, &HeaderMap::new()), Verdict::Open);
    let global = Credentials::new(Some("admin:pw"), false, "/x".into()).unwrap();
    assert_eq!(verdict(&global, &svc, &HeaderMap::new()), Verdict::Denied);
    assert_eq!(
        verdict(&global, &svc, &auth("admin", "pw")),
        Verdict::Allowed
    );
    assert_eq!(
        verdict(&global, &svc, &auth("admin", "no")),
        Verdict::Denied
    );
    // A service's own users replace the global ones.
    let own = service(&[("users", "bob:b")]);
    assert_eq!(
        verdict(&global, &own, &auth("admin", "pw")),
        Verdict::Denied
    );
    assert_eq!(verdict(&global, &own, &auth("bob", "b")), Verdict::Allowed);
    // ignoreAuthorization opens the destination.
    let ignored = service(&[("ignoreAuthorization", "true")]);
    assert_eq!(verdict(&global, &ignored, &HeaderMap::new()), Verdict::Open);
}

#[test]
fn password_less_users_take_the_global_password() {
    let global = Credentials::new(Some("admin:pw,other:o"), false, "/x".into()).unwrap();
    let svc = service(&[("users", "admin")]);
    assert!(global.validate(&svc).is_ok());
    assert_eq!(
        verdict(&global, &svc, &auth("admin", "pw")),
        Verdict::Allowed
    );
    assert_eq!(verdict(&global, &svc, &auth("other", "o")), Verdict::Denied);
    let err = none().validate(&svc).unwrap_err();
    assert!(err.to_string().contains("admin has no password"), "{err}");
}

#[test]
fn crypt_hashes_are_verified() {
    for hash in [SHA512, SHA256, MD5] {
        let svc = service(&[
            ("users", &format!("admin:{hash}")),
            ("usersPassEncrypted", "true"),
        ]);
        assert_eq!(
            verdict(&none(), &svc, &auth("admin", "s3cret")),
            Verdict::Allowed,
            "{hash}"
        );
        assert_eq!(
            verdict(&none(), &svc, &auth("admin", "wrong")),
            Verdict::Denied,
            "{hash}"
        );
        // Without the flag the hash is a literal password.
        let literal = service(&[("users", &format!("admin:{hash}"))]);
        assert_eq!(
            verdict(&none(), &literal, &auth("admin", "s3cret")),
            Verdict::Denied
        );
    }
    let global = Credentials::new(Some(&format!("admin:{SHA512}")), true, "/x".into()).unwrap();
    assert_eq!(
        verdict(&global, &service(&[]), &auth("admin", "s3cret")),
        Verdict::Allowed
    );
}

#[test]
fn secrets_give_users_and_fill_passwords() {
    let dir = std::env::temp_dir().join(format!("flowproxy-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dfp_users_team"), "alice:a1\nbob:b1\nnopass\n").unwrap();
    let creds = Credentials::new(None, false, dir.clone()).unwrap();
    let from_secret = service(&[("usersSecret", "team")]);
    assert!(creds.validate(&from_secret).is_ok());
    assert_eq!(
        verdict(&creds, &from_secret, &auth("bob", "b1")),
        Verdict::Allowed
    );
    assert_eq!(
        verdict(&creds, &from_secret, &auth("nopass", "")),
        Verdict::Denied
    );
    let filled = service(&[("users", "alice"), ("usersSecret", "team")]);
    assert_eq!(
        verdict(&creds, &filled, &auth("alice", "a1")),
        Verdict::Allowed
    );
    assert_eq!(
        verdict(&creds, &filled, &auth("bob", "b1")),
        Verdict::Denied
    );
    let missing = service(&[("usersSecret", "absent")]);
    let err = creds.validate(&missing).unwrap_err();
    assert!(err.to_string().contains("dfp_users_absent"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_global_users_are_refused_without_showing_passwords() {
    let err = Credentials::new(Some("admin"), false, "/x".into())
        .err()
        .unwrap();
    assert!(err.to_string().contains("admin"), "{err}");
    let err = Credentials::new(Some("x:zq9,root:"), false, "/x".into())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("root") && !err.to_string().contains("zq9"),
        "{err}"
    );
    let err = Credentials::new(Some("admin"), false, "/x".into())
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"admin\""), "{err}");
}
