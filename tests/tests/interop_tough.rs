//! Interoperability: the `tough` crate (awslabs) loads a repository written with ota-formats,
//! served by ota-server, and reads a target with matching bytes.
use ota_tests::fixture::RepoFixture;
use ota_tests::server::TestServer;
use ota_tests::RepoHost;
use std::time::Duration;
use tough::{HttpTransportBuilder, RepositoryLoader, TargetName};

async fn read_with_tough(root: &[u8], server: &TestServer, name: &str) -> Option<Vec<u8>> {
    // tough sleeps before every request by default; no backoff keeps the test fast.
    let transport = HttpTransportBuilder::new()
        .initial_backoff(Duration::from_millis(0))
        .tries(1)
        .build();
    let repo = RepositoryLoader::new(
        &root,
        url::Url::parse(&server.metadata_url()).unwrap(),
        url::Url::parse(&server.targets_url()).unwrap(),
    )
    .transport(transport)
    .load()
    .await
    .unwrap();
    let stream = repo
        .read_target(&TargetName::new(name).unwrap())
        .await
        .unwrap()?;
    use futures::TryStreamExt;
    let chunks: Vec<_> = stream.try_collect().await.unwrap();
    Some(chunks.concat())
}

#[test]
fn tough_reads_our_repository() {
    let mut fx = RepoFixture::new();
    let firmware: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fx.add_target("board-a-1.2.0.img", &firmware);
    fx.delegate("vendor", &["vendor-*"], true);
    fx.add_delegated_target("vendor", "vendor-blob.bin", b"delegated bytes");
    fx.publish();
    let server = TestServer::start(fx.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt
        .block_on(read_with_tough(
            &fx.root_bytes(),
            &server,
            "board-a-1.2.0.img",
        ))
        .expect("tough finds the target");
    assert_eq!(got, firmware);
    let got = rt
        .block_on(read_with_tough(
            &fx.root_bytes(),
            &server,
            "vendor-blob.bin",
        ))
        .expect("tough finds the delegated target");
    assert_eq!(got, b"delegated bytes");
    assert!(rt
        .block_on(read_with_tough(&fx.root_bytes(), &server, "absent.bin"))
        .is_none());
}
