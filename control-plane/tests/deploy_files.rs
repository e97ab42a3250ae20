//! The deployment files (`fly.toml`, `Dockerfile`) agree with each other and with how
//! `wisp serve` is configured. Neither Docker nor flyctl runs here, so they are checked
//! statically: parsed, with the keys a deployment depends on.

use std::path::PathBuf;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn fly_toml_serves_the_image_on_its_port_with_a_volume_and_scales_to_zero() {
    let fly: toml::Value = toml::from_str(&repo_file("fly.toml")).expect("fly.toml parses");
    let service = &fly["http_service"];
    assert_eq!(service["internal_port"].as_integer(), Some(8080));
    assert_eq!(service["auto_stop_machines"].as_str(), Some("stop"));
    assert_eq!(service["auto_start_machines"].as_bool(), Some(true));
    assert_eq!(service["min_machines_running"].as_integer(), Some(0));
    let checks = service["checks"].as_array().expect("health checks");
    assert!(
        checks
            .iter()
            .any(|c| c["path"].as_str() == Some("/healthz"))
    );
    assert_eq!(fly["build"]["dockerfile"].as_str(), Some("Dockerfile"));
    assert_eq!(
        fly["kill_signal"].as_str(),
        Some("SIGTERM"),
        "wisp drains on SIGTERM"
    );
    let env = &fly["env"];
    assert_eq!(env["WISP_LISTEN"].as_str(), Some("0.0.0.0:8080"));
    let data = env["WISP_DATA"].as_str().expect("WISP_DATA");
    let mounts = fly["mounts"].as_array().expect("a volume");
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"].as_str() == Some(data)),
        "the data dir is on the volume"
    );
    // Every WISP_ variable is one `wisp serve` reads.
    let known = [
        "WISP_DATA",
        "WISP_LISTEN",
        "WISP_ADMIN_EMAIL",
        "WISP_ADMIN_PASSWORD",
        "WISP_ORG",
        "WISP_JWT_SECRET",
        "WISP_DATABASE_URL",
        "WISP_DATABASE_AUTH_TOKEN",
        "WISP_CONFIG",
    ];
    for key in env
        .as_table()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("WISP_"))
    {
        assert!(known.contains(&key.as_str()), "unknown setting {key}");
    }
}

#[test]
fn the_dockerfile_builds_the_guest_target_and_runs_wisp_serve_on_the_fly_port() {
    let dockerfile = repo_file("Dockerfile");
    let toolchain = repo_file("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .expect("a pinned channel")
        .trim_matches('"');
    assert!(
        dockerfile.contains(&format!("FROM rust:{channel}")),
        "the builder uses the pinned toolchain {channel}"
    );
    assert!(dockerfile.contains("rustup target add wasm32-wasip2"));
    assert!(dockerfile.contains("cargo build --release --locked -p wisp"));
    assert!(dockerfile.contains("EXPOSE 8080"));
    assert!(dockerfile.contains("WISP_LISTEN=0.0.0.0:8080"));
    assert!(dockerfile.contains(r#"CMD ["wisp", "serve"]"#));
}

#[test]
fn fly_waits_for_wisps_bounded_stop_before_killing_it() {
    let fly: toml::Value = toml::from_str(&repo_file("fly.toml")).expect("fly.toml parses");
    let kill_timeout = fly["kill_timeout"].as_str().expect("kill_timeout");
    let seconds: u64 = kill_timeout
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .expect("kill_timeout in seconds");
    let bound = wisp::config::ServerConfig::default().shutdown_timeout_secs;
    assert!(
        bound < seconds,
        "server.shutdown_timeout_secs ({bound}) must end before fly's kill_timeout ({seconds} s)"
    );
    assert!(seconds <= 5, "Fly's default kill timeout is 5 s");
}
