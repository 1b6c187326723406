//! The server as operators and other programs meet it: its metrics scraped
//! over HTTP from the running binary, and a client written in another
//! language from the protocol's specification alone.

use std::io::Write;
use std::net::{Shutdown, UdpSocket};
use std::path::Path;

use echo_e2e::{find_on_path, http_get, start_server};
use echo_testkit::wire::{self, Deadlined};
use echo_testkit::{Kind, Spawn, deadline, wait_until};

/// The value of `series` (a metric name with its labels, as the exposition
/// writes them) in an exposition, if it is there.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        // A timestamp may follow the value.
        value.split(' ').next()?.parse().ok()
    })
}

#[test]
fn samples_are_found_by_their_whole_series_name() {
    let exposition = "# TYPE echo_frames_echoed counter\n\
                      echo_frames_echoed_total 3\n\
                      echo_connections_rejected_total{reason=\"limit\"} 1\n\
                      echo_connections_open 0 1700000000\n\
                      # EOF\n";
    assert_eq!(sample(exposition, "echo_frames_echoed_total"), Some(3.0));
    assert_eq!(
        sample(
            exposition,
            r#"echo_connections_rejected_total{reason="limit"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sample(exposition, "echo_connections_open"), Some(0.0));
    assert_eq!(sample(exposition, "echo_frames_echoed"), None);
}

#[test]
fn the_metrics_endpoint_counts_what_happened_over_the_wire() {
    let deadline = deadline();
    let args = [
        "--metrics",
        "127.0.0.1:0",
        "--udp",
        "127.0.0.1:0",
        "--max-connections",
        "1",
        "--max-frame",
        "16",
    ];
    let (mut server, [addr, udp_addr, metrics]) =
        start_server(&args, [Kind::Framed, Kind::Udp, Kind::Admin], deadline).unwrap();

    // Before anything happens, every series is there, at zero.
    let first = http_get(metrics, "/metrics", deadline);
    assert_eq!(first.status, "200", "{first:?}");
    assert_eq!(
        sample(&first.body, "echo_connections_accepted_total"),
        Some(0.0),
        "{first:?}"
    );

    // An oversize frame (16 bytes at most) on the first connection.
    let oversize = wire::connect(addr, deadline).unwrap();
    let _ = Deadlined::new(&oversize, deadline).write_all(b"\0\0\0\x11");
    wire::expect_closed_silently(&oversize, deadline).unwrap();
    drop(oversize);

    // Three echoes of 5 bytes on the next. With a limit of one, it is turned
    // away until the server has freed the first one's place, which it does
    // just after closing it: each time counts.
    let mut limit_rejections = 0;
    let mut echoing = None;
    wait_until(deadline, || {
        let stream = wire::connect(addr, deadline).unwrap();
        if wire::echo_all(&stream, &[b"one..".to_vec()], deadline, |_| Ok(())).is_ok() {
            echoing = Some(stream);
            true
        } else {
            limit_rejections += 1;
            false
        }
    })
    .expect("a second connection is served once the first has closed");
    let echoing = echoing.unwrap();
    wire::echo_all(
        &echoing,
        &[b"two..".to_vec(), b"three".to_vec()],
        deadline,
        |_| Ok(()),
    )
    .unwrap();

    // While it is open, the limit turns another connection away.
    let turned_away = wire::connect(addr, deadline).unwrap();
    wire::expect_closed_silently(&turned_away, deadline).unwrap();
    limit_rejections += 1;

    echoing.shutdown(Shutdown::Write).unwrap();
    wire::expect_eof(&echoing, deadline).unwrap();

    // One datagram of 7 bytes.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(wire::time_left(deadline).unwrap()))
        .unwrap();
    udp.send_to(b"counted", udp_addr).unwrap();
    let mut buf = [0; 64];
    let (len, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..len], from), (&b"counted"[..], udp_addr));

    let expected: [(&str, f64); 14] = [
        ("echo_connections_open", 0.0),
        ("echo_connections_accepted_total", 2.0),
        (
            r#"echo_connections_rejected_total{reason="limit"}"#,
            f64::from(limit_rejections),
        ),
        (r#"echo_connections_rejected_total{reason="idle"}"#, 0.0),
        (
            r#"echo_connections_rejected_total{reason="protocol_error"}"#,
            1.0,
        ),
        (
            r#"echo_connections_closed_total{reason="client_closed"}"#,
            1.0,
        ),
        (
            r#"echo_connections_closed_total{reason="protocol_error"}"#,
            1.0,
        ),
        (
            r#"echo_connections_closed_total{reason="idle_timeout"}"#,
            0.0,
        ),
        ("echo_frames_echoed_total", 3.0),
        ("echo_bytes_echoed_total", 3.0 * (4.0 + 5.0)),
        (r#"echo_protocol_errors_total{kind="frame_too_large"}"#, 1.0),
        (r#"echo_protocol_errors_total{kind="truncated"}"#, 0.0),
        ("echo_udp_datagrams_total", 1.0),
        ("echo_udp_bytes_total", 7.0),
    ];
    // The server counts a connection's end just after the client has seen
    // it, so the counters may take a moment to settle.
    let mut last = None;
    let settled = wait_until(deadline, || {
        let scrape = http_get(metrics, "/metrics", deadline);
        let done = scrape.status == "200"
            && scrape.body.ends_with("# EOF\n")
            && expected
                .iter()
                .all(|&(series, value)| sample(&scrape.body, series) == Some(value));
        last = Some(scrape);
        done
    });
    let last = last.unwrap();
    if settled.is_err() {
        let wrong: Vec<String> = expected
            .iter()
            .filter(|&&(series, value)| sample(&last.body, series) != Some(value))
            .map(|(series, value)| {
                format!(
                    "{series} is {:?}, expected {value}",
                    sample(&last.body, series)
                )
            })
            .collect();
        panic!(
            "the metrics do not match what the test did: {}; the last scrape: {last:?}",
            wrong.join("; ")
        );
    }

    assert_eq!(http_get(metrics, "/nothing-here", deadline).status, "404");
    let output = server.stop(deadline).unwrap();
    assert!(output.status.success(), "{output}");
    // Each connection turned away at the limit is logged too.
    assert!(
        output
            .stderr_text()
            .contains("the connection limit is reached"),
        "{output}"
    );
}

#[test]
fn a_python_client_written_from_the_specification_interoperates() {
    let Some(python) = find_on_path("python3") else {
        // Straight to the terminal, past the test harness's capture of
        // print!, so that a run without Python says it skipped this check.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_python_client_written_from_the_specification_interoperates: \
             python3 is not on PATH"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/framed_client.py");
    let deadline = deadline();
    let (_server, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let output = Spawn::new(python)
        .arg(script)
        .args([addr.ip().to_string(), addr.port().to_string()])
        .run(deadline)
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert_eq!(output.stdout, b"ok\n", "{output}");
}
