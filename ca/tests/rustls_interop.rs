//! What ota-ca issues is accepted by rustls/webpki, the TLS stack of ota-server (device
//! certificates and the CRL) and of ota-client (the server certificate).
use ota_ca::{Ca, InitOptions, IssueOptions, KeyType, Reason};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{client::WebPkiServerVerifier, RootCertStore};
use std::sync::Arc;

fn csr(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn cert(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn check(key_type: KeyType) {
    let root = tempfile::tempdir().unwrap();
    let ca = Ca::init(
        &root.path().join("ca"),
        &InitOptions {
            name: "Interop CA".into(),
            days: 365,
            key_type,
        },
    )
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(cert(&ca.cert_pem())).unwrap();
    let roots = Arc::new(roots);

    let good = ca
        .issue_from_csr(csr("dev-good").as_bytes(), &IssueOptions::default())
        .unwrap();
    let bad = ca
        .issue_from_csr(csr("dev-bad").as_bytes(), &IssueOptions::default())
        .unwrap();
    ca.revoke(&bad.entry.serial, Reason::KeyCompromise, None)
        .unwrap();
    let crl_pem = std::fs::read(ca.crl_path()).unwrap();
    let crl = CertificateRevocationListDer::from_pem_slice(&crl_pem).unwrap();

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls([crl])
        .build()
        .unwrap();
    let now = UnixTime::now();
    verifier
        .verify_client_cert(&cert(&good.pem), &[], now)
        .expect("a valid device certificate is accepted");
    let err = verifier
        .verify_client_cert(&cert(&bad.pem), &[], now)
        .unwrap_err();
    assert!(format!("{err:?}").contains("Revoked"), "{err:?}");

    // A device certificate is no server certificate, and the other way round.
    let server = ca
        .issue_server(
            "ota.example.com",
            &["IP:127.0.0.1".into()],
            90,
            KeyType::EcdsaP256,
        )
        .unwrap();
    let sv = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .unwrap();
    for name in ["ota.example.com", "127.0.0.1"] {
        sv.verify_server_cert(
            &cert(&server.issued.pem),
            &[],
            &ServerName::try_from(name).unwrap(),
            &[],
            now,
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    assert!(sv
        .verify_server_cert(
            &cert(&server.issued.pem),
            &[],
            &ServerName::try_from("other.example.com").unwrap(),
            &[],
            now,
        )
        .is_err());
    assert!(sv
        .verify_server_cert(
            &cert(&good.pem),
            &[],
            &ServerName::try_from("dev-good").unwrap(),
            &[],
            now,
        )
        .is_err());
    assert!(verifier
        .verify_client_cert(&cert(&server.issued.pem), &[], now)
        .is_err());
}

#[test]
fn rustls_accepts_certificates_and_crl_of_a_p256_ca() {
    check(KeyType::EcdsaP256);
}

#[test]
fn rustls_accepts_certificates_and_crl_of_an_ed25519_ca() {
    check(KeyType::Ed25519);
}
