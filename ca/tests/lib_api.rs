//! The library API, as another crate's tests would use it: a CA, device certificates from
//! CSRs, a server certificate, revocation.
use ota_ca::{Ca, Error, InitOptions, IssueOptions, KeyType, Reason, State};

fn device_csr(cn: &str) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap();
    (key, csr.pem().unwrap())
}

#[test]
fn init_issue_revoke_list_through_the_library() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    let ca = Ca::init(
        &dir,
        &InitOptions {
            name: "Lib Fleet CA".into(),
            days: 365,
            key_type: KeyType::EcdsaP256,
        },
    )
    .unwrap();
    assert_eq!(ca.name(), "Lib Fleet CA");
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(
        ca.cert_pem(),
        std::fs::read_to_string(dir.join(ota_ca::CERT_FILE)).unwrap()
    );

    // Another handle on the same directory, as a second process would have.
    let ca = Ca::open(&dir).unwrap();
    let (_key, csr) = device_csr("dev-lib-1");
    let issued = ca
        .issue_from_csr(csr.as_bytes(), &IssueOptions::default())
        .unwrap();
    assert_eq!(issued.entry.subject_cn, "dev-lib-1");
    assert_eq!(issued.entry.kind, ota_ca::Kind::Device);
    assert_eq!(issued.entry.serial.len(), 32);
    assert!(issued.path.exists());
    assert!(issued.still_valid.is_empty());

    let err = ca
        .issue_from_csr(csr.as_bytes(), &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Input { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);
    let again = ca
        .issue_from_csr(
            csr.as_bytes(),
            &IssueOptions {
                replace: true,
                ..IssueOptions::default()
            },
        )
        .unwrap();
    assert_eq!(again.still_valid.len(), 1);

    let server = ca
        .issue_server(
            "localhost",
            &["IP:127.0.0.1".into()],
            30,
            KeyType::EcdsaP256,
        )
        .unwrap();
    assert!(server.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        server.issued.entry.sans,
        vec!["DNS:localhost".to_string(), "IP:127.0.0.1".to_string()]
    );

    let revoked = ca
        .revoke(
            &issued.entry.serial.to_uppercase(),
            Reason::Superseded,
            None,
        )
        .unwrap();
    assert!(!revoked.already_revoked);
    assert_eq!(revoked.crl.revoked, 1);
    assert_eq!(revoked.entry.reason, Some(Reason::Superseded));

    let now = ca.now();
    let states: Vec<State> = ca.list().unwrap().iter().map(|e| e.state(now)).collect();
    assert_eq!(states, vec![State::Revoked, State::Valid, State::Valid]);

    // The same CA a year later: everything has expired (the server after 30 days).
    let later = Ca::open(&dir)
        .unwrap()
        .with_now(Some(now + chrono::TimeDelta::days(400)));
    let states: Vec<State> = later
        .list()
        .unwrap()
        .iter()
        .map(|e| e.state(later.now()))
        .collect();
    assert_eq!(states, vec![State::Revoked, State::Expired, State::Expired]);
    let err = later
        .issue_from_csr(csr.as_bytes(), &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Ca { .. }), "CA expired: {err}");
}

#[test]
fn a_tampered_csr_or_a_foreign_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ca");
    let ca = Ca::init(
        &dir,
        &InitOptions {
            name: "Lib Fleet CA".into(),
            days: 365,
            key_type: KeyType::Ed25519,
        },
    )
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dev-t");
    let mut der = params.serialize_request(&key).unwrap().der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x80;
    let err = ca
        .issue_from_csr(&der, &IssueOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
    assert!(ca.list().unwrap().is_empty());

    // A CA whose key does not match its certificate is corrupt (exit 3).
    let other = root.path().join("other");
    Ca::init(
        &other,
        &InitOptions {
            name: "Other".into(),
            days: 365,
            key_type: KeyType::Ed25519,
        },
    )
    .unwrap();
    std::fs::copy(other.join(ota_ca::KEY_FILE), dir.join(ota_ca::KEY_FILE)).unwrap();
    let err = Ca::open(&dir).unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
}
