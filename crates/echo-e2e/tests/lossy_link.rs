//! A link that loses packets, for real: the server and the client in
//! network namespaces of their own, joined by a veth pair, the client's side
//! dropping 5% of the packets it sends (nftables `numgen random`; this
//! kernel has no netem). The UDP bench measures the loss instead of failing
//! on it, and TCP echoes stay exact through retransmissions.
//!
//! Needs root, iproute2 and nftables; skipped with a message otherwise.

use echo_testkit::netns::{self, Namespace};
use echo_testkit::{Kind, binary, deadline};
use serde_json::Value;

/// The share of the client's packets dropped, in percent.
const DROP_PERCENT: u32 = 5;

/// The client's side of the link drops `DROP_PERCENT` of what it sends.
fn impair(client: &Namespace, interface: &str) {
    client
        .nft(&format!(
            "table inet impair {{\n  chain out {{\n    type filter hook output priority 0;\n    \
             oifname \"{interface}\" numgen random mod 100 < {DROP_PERCENT} drop\n  }}\n}}\n"
        ))
        .unwrap();
}

/// Runs `echo-client ARGS...` in `namespace` and returns its JSON report,
/// after checking that it exited 0.
fn bench(namespace: &Namespace, args: &[String]) -> Value {
    let output = namespace
        .spawn(binary::path("echo-client").unwrap())
        .args(args)
        .run(deadline())
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{args:?}: {output}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {output}"))
}

#[test]
fn a_lossy_link_is_measured_over_udp_and_exact_over_tcp() {
    if let Some(why) = netns::unavailable(&["nft"]) {
        eprintln!("SKIPPED: a_lossy_link_is_measured_over_udp_and_exact_over_tcp: {why}");
        return;
    }
    let (server_ns, client_ns) = (
        Namespace::new("srv").unwrap(),
        Namespace::new("cli").unwrap(),
    );
    client_ns
        .link(&server_ns, "198.18.0.1/24", "198.18.0.2/24")
        .unwrap();
    impair(&client_ns, &client_ns.veth_name(&server_ns));
    let server = server_ns
        .spawn(binary::path("echo-server").unwrap())
        .args(["--listen", "198.18.0.2:0", "--udp", "198.18.0.2:0"])
        .start()
        .unwrap();
    let [tcp, udp] = server
        .listening([Kind::Framed, Kind::Udp], deadline())
        .unwrap();

    // Over UDP: every lost datagram given up after 200 ms while the others
    // go on. Thousands of datagrams, so that the loss measured is close to
    // the 5% dropped: the bounds are far outside what chance gives.
    let args = ["--udp", "--timeout", "0.2", "--addr", &udp.to_string()]
        .into_iter()
        .chain(["bench", "--json", "-c", "2", "-d", "8", "-t", "2"])
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let report = bench(&client_ns, &args);
    let datagrams = &report["datagrams"];
    let (sent, echoed) = (
        report["sent"].as_u64().unwrap(),
        report["echoed"].as_u64().unwrap(),
    );
    let lost = datagrams["lost"].as_u64().unwrap();
    let loss = datagrams["loss_percent"].as_f64().unwrap();
    eprintln!(
        "UDP through {DROP_PERCENT}% loss: {sent} sent, {lost} lost ({loss:.2}%), {} msgs/s, \
         jitter {} µs",
        report["messages_per_s"], datagrams["jitter_us"]
    );
    assert!(
        sent >= 1000,
        "too few datagrams to measure a loss: {report}"
    );
    assert!(
        (2.0..=9.0).contains(&loss),
        "{loss}% lost of {sent}: {report}"
    );
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert_eq!(report["errors"]["corrupted"], 0, "{report}");
    // Every measured datagram was echoed or lost (a late reply was first
    // counted lost).
    assert_eq!(echoed + lost, sent, "{report}");
    assert!(datagrams["jitter_us"].as_f64().is_some(), "{report}");

    // Over TCP: the same link, every echo exact.
    let args = ["--timeout", "10", "--addr", &tcp.to_string()]
        .into_iter()
        .chain(["bench", "--json", "-c", "2", "-d", "8", "-n", "2000"])
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let report = bench(&client_ns, &args);
    assert_eq!(report["echoed"], 2000, "{report}");
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert!(report.get("datagrams").is_none(), "{report}");
}
