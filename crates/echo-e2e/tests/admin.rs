//! The admin endpoint of the running binary: readiness through a lame-duck
//! drain, `/info` and the build-info gauge naming the instance, `--admin`
//! and its synonym `--metrics`, and a real Prometheus scraping it.

use echo_e2e::{free_port, http_get, start_server};
use echo_testkit::wire;
use echo_testkit::{Kind, Spawn, deadline, wait_until};

#[test]
fn sigterm_with_a_drain_delay_turns_readiness_off_while_echoing_on() {
    let deadline = deadline();
    let args = ["--admin", "127.0.0.1:0", "--drain-delay", "2"];
    let (mut server, [addr, admin]) =
        start_server(&args, [Kind::Framed, Kind::Admin], deadline).unwrap();
    assert_eq!(http_get(admin, "/readyz", deadline).status, "200");

    server.terminate().unwrap();
    wait_until(deadline, || {
        http_get(admin, "/readyz", deadline).status == "503"
    })
    .expect("/readyz turns 503 once SIGTERM arrives");
    // Not ready, but still serving: a new connection is accepted and echoed.
    let stream = wire::connect(addr, deadline).unwrap();
    wire::echo_all(&stream, &[b"lame duck".to_vec()], deadline, |_| Ok(())).unwrap();
    assert_eq!(http_get(admin, "/healthz", deadline).status, "200");
    drop(stream);

    // Then the drain: the listener closes and the process exits 0.
    let output = server.wait(deadline).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    wire::expect_refused(addr, deadline).unwrap();
}

#[test]
fn info_and_the_build_info_gauge_name_the_instance() {
    let deadline = deadline();
    let args = [
        "--metrics",
        "127.0.0.1:0",
        "--instance",
        "edge-7",
        "--mode",
        "raw",
    ];
    let (_server, [addr, admin]) = start_server(&args, [Kind::Raw, Kind::Admin], deadline).unwrap();

    let info = http_get(admin, "/info", deadline);
    assert_eq!(info.status, "200", "{info:?}");
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(info["instance"], "edge-7");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info["listeners"],
        serde_json::json!([
            {"addr": addr.to_string(), "kind": "raw"},
            {"addr": admin.to_string(), "kind": "admin"},
        ])
    );
    assert_eq!(info["limits"]["max_frame_len"], 8 * 1024 * 1024);

    let metrics = http_get(admin, "/metrics", deadline).body;
    let gauge = format!(
        r#"echo_build_info{{version="{}",instance="edge-7"}} 1"#,
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.lines().any(|line| line == gauge), "{metrics}");
}

#[test]
fn admin_and_metrics_together_are_a_usage_error() {
    let output = Spawn::bin("echo-server")
        .unwrap()
        .args(["--admin", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .run(deadline())
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output}");
    assert!(output.stderr_text().contains("--metrics"), "{output}");
}

#[test]
fn a_real_prometheus_scrapes_the_endpoint() {
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: prometheus is not installed");
        return;
    }
    let deadline = deadline();
    let (_server, [_, admin]) = start_server(
        &["--admin", "127.0.0.1:0"],
        [Kind::Framed, Kind::Admin],
        deadline,
    )
    .unwrap();

    // Prometheus cannot say which port it got: take a free one and hand it
    // over.
    let web = free_port();
    let dir = std::env::temp_dir().join(format!("echo-e2e-prometheus-{}", web.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: echo\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Spawn::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .start()
        .unwrap();

    let mut last = String::new();
    let up = wait_until(deadline, || {
        // Refused until Prometheus listens.
        if std::net::TcpStream::connect(web).is_err() {
            return false;
        }
        last = http_get(web, "/api/v1/targets", deadline).body;
        last.contains(r#""health":"up""#)
    });
    let _ = std::fs::remove_dir_all(&dir);
    up.unwrap_or_else(|_| panic!("the target never came up: {last}"));
}
