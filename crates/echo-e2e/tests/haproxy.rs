//! Two echo-servers behind a real HAProxy (the distribution's package), as
//! users deploy them: HAProxy sends a PROXY v2 header on every connection
//! and checks each server's `/readyz`; the servers name the clients, the
//! greeting says who answered, and a server told to stop (SIGTERM with a
//! drain delay) is taken out of rotation before it stops accepting. And the
//! plainest setup, a framed `tcp-check` that sends a frame and expects its
//! echo, which marks a killed server down.

use std::net::SocketAddr;

use echo_e2e::{client, find_on_path, free_port, start_server};
use echo_testkit::{Kind, Pipe, Process, Spawn, deadline};
use serde_json::Value;

/// One echo-server behind the balancer.
struct Backend {
    process: Process,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn backend(instance: &str) -> Backend {
    let args = [
        "--proxy-protocol",
        "--admin",
        "127.0.0.1:0",
        "--instance",
        instance,
        "--greeting",
        "--drain-delay",
        "2",
    ];
    let (process, [addr, admin]) =
        start_server(&args, [Kind::Framed, Kind::Admin], deadline()).unwrap();
    Backend {
        process,
        addr,
        admin,
    }
}

/// HAProxy's configuration: TCP mode, round robin over `backends`, a PROXY
/// v2 header on every connection to them, and health checks on each one's
/// `/readyz` every 100 ms, down after two failures.
fn haproxy_config(frontend: SocketAddr, backends: &[&Backend]) -> String {
    let mut config = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         frontend echo\n  bind {frontend}\n  default_backend echo_servers\n\
         backend echo_servers\n  balance roundrobin\n  option httpchk GET /readyz\n\
         http-check expect status 200\n  default-server inter 100ms fall 2 rise 1\n"
    );
    for (index, backend) in backends.iter().enumerate() {
        config += &format!(
            "  server s{index} {} send-proxy-v2 check port {}\n",
            backend.addr,
            backend.admin.port()
        );
    }
    config
}

/// `echo-client --expect-greeting bench` through `frontend`: its JSON
/// report.
fn bench(frontend: SocketAddr) -> Value {
    bench_with(frontend, &["--expect-greeting"])
}

/// `echo-client ARGS bench` of 800 messages on 8 connections through
/// `frontend`, which must succeed: its JSON report.
fn bench_with(frontend: SocketAddr, args: &[&str]) -> Value {
    let output = client(frontend)
        .unwrap()
        .args(args)
        .args(["bench", "--json", "-c", "8", "-n", "800"])
        .run(deadline())
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Starts HAProxy with `config` on `frontend`, once it listens (it has
/// read its configuration by then).
fn start_haproxy(frontend: SocketAddr, config: &str) -> Process {
    let dir = std::env::temp_dir().join(format!("echo-e2e-haproxy-{}", frontend.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let haproxy = Spawn::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .start()
        .unwrap();
    let listening = echo_testkit::wait_until(deadline(), || {
        std::net::TcpStream::connect(frontend).is_ok()
    });
    let _ = std::fs::remove_dir_all(&dir);
    listening.unwrap_or_else(|_| panic!("haproxy never listened on {frontend}"));
    haproxy
}

/// The instances that served a bench, with how many connections each.
fn instances(report: &Value) -> Vec<(String, u64)> {
    report["instances"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(name, counts)| (name.clone(), counts["connections"].as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn haproxy_balances_with_proxy_v2_and_takes_a_draining_server_out() {
    if find_on_path("haproxy").is_none() {
        eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy)");
        return;
    }
    let (mut a, b) = (backend("a"), backend("b"));
    let frontend = free_port();
    let haproxy = start_haproxy(frontend, &haproxy_config(frontend, &[&a, &b]));

    // Both instances serve, every echo intact, through PROXY v2 headers.
    let report = bench(frontend);
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert_eq!(report["echoed"], 800, "{report}");
    let served = instances(&report);
    assert_eq!(
        served,
        [("a".to_owned(), 4), ("b".to_owned(), 4)],
        "{report}"
    );
    // The servers name the client from the header, beside HAProxy's
    // connection.
    for backend in [&a, &b] {
        backend
            .process
            .wait_for_line(Pipe::Stderr, deadline(), |line| {
                line.contains("connection opened client=127.0.0.1:")
            })
            .unwrap();
    }

    // SIGTERM with a drain delay: a's /readyz turns 503 at once, HAProxy
    // takes it out of rotation while it still accepts, and every new
    // connection goes to b.
    a.process.terminate().unwrap();
    haproxy
        .wait_for_line(Pipe::Stderr, deadline(), |line| {
            line.contains("echo_servers/s0 is DOWN")
        })
        .unwrap();
    let report = bench(frontend);
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert_eq!(instances(&report), [("b".to_owned(), 8)], "{report}");
    let output = a.process.wait(deadline()).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
}

#[test]
fn haproxy_s_framed_tcp_check_marks_a_killed_server_down() {
    if find_on_path("haproxy").is_none() {
        eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy)");
        return;
    }
    let servers: Vec<(Process, SocketAddr)> = (0..2)
        .map(|_| {
            let (process, [addr]) = start_server(&[], [Kind::Framed], deadline()).unwrap();
            (process, addr)
        })
        .collect();
    let frontend = free_port();
    // The check sends the frame "ping" and expects it back.
    let mut config = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         frontend echo\n  bind {frontend}\n  default_backend echo_servers\n\
         backend echo_servers\n  balance roundrobin\n  option tcp-check\n\
         tcp-check send-binary 0000000470696e67\n  tcp-check expect binary 0000000470696e67\n\
         default-server inter 100ms fall 2 rise 1\n"
    );
    for (index, (_, addr)) in servers.iter().enumerate() {
        config += &format!("  server s{index} {addr} check\n");
    }
    let haproxy = start_haproxy(frontend, &config);
    let report = bench_with(frontend, &[]);
    assert_eq!(report["errors"]["total"], 0, "{report}");

    let mut servers = servers.into_iter();
    let (mut killed, _) = servers.next().unwrap();
    killed.kill().unwrap();
    haproxy
        .wait_for_line(Pipe::Stderr, deadline(), |line| {
            line.contains("echo_servers/s0 is DOWN")
        })
        .unwrap();
    // Every connection now goes to the other server, every echo intact.
    let report = bench_with(frontend, &[]);
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert_eq!(report["echoed"], 800, "{report}");
}
