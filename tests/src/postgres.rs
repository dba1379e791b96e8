//! A fresh PostgreSQL database per test on the server `.ci/run` starts
//! (`OTA_TEST_POSTGRES_URL`, a role allowed to create databases), dropped afterwards.
use std::process::Command;

/// The variable naming the server.
pub const ENV: &str = "OTA_TEST_POSTGRES_URL";

/// A database created for one test; dropped (with `psql`) when this is dropped.
pub struct FreshDatabase {
    admin: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn psql(admin: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([admin, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (Debian postgresql-client, installed by .ci/run)")
}

/// A new empty database named after `tag`, or `None` (with a line saying so) when
/// `OTA_TEST_POSTGRES_URL` is unset. With `CI` set a missing server fails the test: CI must
/// never pass by skipping the PostgreSQL half.
pub fn fresh_database(tag: &str) -> Option<FreshDatabase> {
    let admin = match std::env::var(ENV) {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{ENV} is unset but CI is set: .ci/run must start PostgreSQL")
        }
        _ => {
            eprintln!("skipped: set {ENV}=postgres://USER:PASS@HOST/DB to run against PostgreSQL");
            return None;
        }
    };
    let name = format!(
        "ota_e2e_{tag}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let out = psql(
        &admin,
        &format!("CREATE DATABASE \"{name}\" TEMPLATE template0"),
    );
    assert!(
        out.status.success(),
        "CREATE DATABASE: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut url = url::Url::parse(&admin).expect("OTA_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(FreshDatabase {
        url: url.to_string(),
        admin,
        name,
    })
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}
