//! Several workers (`Config::workers`): a listener per worker on the same
//! port, each served on a thread and a runtime of its own, with one
//! connection limit, one set of metrics and one drain for the whole server.

mod support;

use echo_server::{Config, Server};
use tokio::net::TcpStream;

use support::{Running, assert_echo, read_to_end, within};

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

fn workers_running() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("echo-worker-"))
        .count()
}

/// The value of the metric sample `name` (labels included) in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

// One test runs at a time in this file's process (they count threads), so
// they are one test.
#[tokio::test]
async fn workers_serve_on_threads_of_their_own_and_share_limit_metrics_and_drain() {
    let mut server = Running::start(Config {
        workers: 3,
        max_connections: 40,
        ..Config::default()
    })
    .await;
    // Two threads besides this test's runtime.
    // Waited for on a thread of its own, so that this runtime goes on
    // running the server, which starts them.
    tokio::task::spawn_blocking(|| {
        echo_testkit::wait_until(echo_testkit::deadline(), || workers_running() == 2)
    })
    .await
    .unwrap()
    .unwrap();

    // Many clients at once: the kernel spreads them over the listeners, and
    // every one is echoed.
    let mut clients = Vec::new();
    for id in 0..40 {
        let mut client = server.framed().await;
        clients.push(tokio::spawn(async move {
            for seq in 0..5 {
                assert_echo(&mut client, format!("client {id} message {seq}").as_bytes()).await;
            }
            client
        }));
    }
    let mut open = Vec::new();
    for client in clients {
        open.push(within(client).await.unwrap());
    }
    // The limit is the server's: with 40 open over three workers, the next
    // connection, whichever worker takes it, is closed at once.
    let mut refused = within(TcpStream::connect(server.addr)).await.unwrap();
    assert_eq!(read_to_end(&mut refused).await, b"");
    let text = server.metrics.encode();
    assert_eq!(
        sample(&text, "echo_connections_accepted_total"),
        40.0,
        "{text}"
    );
    assert_eq!(sample(&text, "echo_frames_echoed_total"), 200.0, "{text}");
    assert_eq!(
        sample(&text, "echo_connections_rejected_total{reason=\"limit\"}"),
        1.0,
        "{text}"
    );
    drop(open);

    within(&mut *server.shut_down()).await.unwrap();
    // The drain waited for every worker's thread.
    assert_eq!(workers_running(), 0, "{:?}", thread_names());

    connections_waiting_in_every_workers_queue_are_served_at_shutdown().await;
}

/// Connections that the kernel completed into any worker's accept queue
/// before the server accepted anything are served when it shuts down at
/// once: every worker takes what waits in its own listener's queue before
/// closing it (the kernel would reset them with the listener otherwise).
async fn connections_waiting_in_every_workers_queue_are_served_at_shutdown() {
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 4,
        ..Config::default()
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    // Spread by the kernel over the four listeners' queues: with 64, each
    // queue gets some but for a chance of 4 × (3/4)^64, about 10⁻⁸.
    let clients = support::connect_waiting(addr, 64).await;
    let running = tokio::spawn(server.run(async {}));
    support::assert_waiting_served(clients).await;
    within(running).await.unwrap();
}

/// `SO_REUSEPORT` lets any socket of the same user that sets it join a
/// port's group; a second server must not join another's port that way
/// and quietly take part of its traffic, but fail to bind, as with one
/// worker.
#[tokio::test]
async fn a_server_with_workers_does_not_join_a_port_another_server_holds() {
    let first = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        ..Config::default()
    })
    .await
    .unwrap();
    for workers in [1, 2] {
        let second = Server::bind(Config {
            listen: first.local_addr(),
            workers,
            ..Config::default()
        })
        .await;
        let Err(error) = second else {
            panic!("a second server with {workers} workers bound a held port");
        };
        assert!(
            error.to_string().contains(&first.local_addr().to_string()),
            "{error}"
        );
    }
}
