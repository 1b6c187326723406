//! The loads `cargo xtask bench` measures, and the traffic they are sent as.

use std::fmt;

/// One load: `connections` connections, each keeping `depth` messages of
/// `size` payload bytes in flight, as fast as the server echoes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) connections: usize,
    pub(crate) size: usize,
    pub(crate) depth: usize,
    /// What the scenario tells about a server, for the report.
    pub(crate) measures: &'static str,
    /// Whether the client's own target applies: small messages, with enough
    /// in flight that one side runs out of its core. Such loads are also
    /// driven by the C load generator, to find what each server does on one
    /// core when the client is not what runs out.
    pub(crate) client_target: bool,
}

/// The loads of the performance issue, in the order they are run and shown.
pub(crate) const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "pingpong",
        connections: 1,
        size: 64,
        depth: 1,
        measures: "latency: one small message in flight",
        client_target: false,
    },
    Scenario {
        name: "fanin",
        connections: 100,
        size: 64,
        depth: 1,
        measures: "many clients, one small message each in flight",
        client_target: true,
    },
    Scenario {
        name: "pipelined",
        connections: 10,
        size: 64,
        depth: 32,
        measures: "small messages pipelined: the cost per message",
        client_target: true,
    },
    Scenario {
        name: "bulk",
        connections: 4,
        size: 64 * 1024,
        depth: 4,
        measures: "large messages: bytes per second and fairness",
        client_target: false,
    },
];

/// The name of the idle-connections measurement, which opens connections
/// and holds them instead of sending a load.
pub(crate) const IDLE: &str = "idle";

/// How the client frames its messages, and so which echo-server mode serves
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    /// 4-byte big-endian length, then the payload (`echo-server` default).
    Framed,
    /// Bytes with no framing (RFC 862, `echo-server --mode raw`).
    Raw,
}

impl Traffic {
    pub(crate) const ALL: [Traffic; 2] = [Traffic::Framed, Traffic::Raw];

    /// The name used on the command line, in the table and in JSON; it is
    /// also the `echo-server --mode` that serves it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Traffic::Framed => "framed",
            Traffic::Raw => "raw",
        }
    }

    /// The `echo-client` flags that send this traffic.
    pub(crate) fn client_flags(self) -> &'static [&'static str] {
        match self {
            Traffic::Framed => &[],
            Traffic::Raw => &["--raw"],
        }
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_distinct_and_not_the_idle_measurement() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        names.push(IDLE);
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn the_client_target_is_for_small_messages_that_load_a_core() {
        let targeted: Vec<&str> = SCENARIOS
            .iter()
            .filter(|s| s.client_target)
            .map(|s| s.name)
            .collect();
        assert_eq!(targeted, ["fanin", "pipelined"]);
        assert!(
            SCENARIOS
                .iter()
                .filter(|s| s.client_target)
                .all(|s| s.size <= 64 && s.connections * s.depth > 1)
        );
    }

    #[test]
    fn raw_traffic_asks_the_client_for_raw() {
        assert_eq!(Traffic::Raw.client_flags(), ["--raw"]);
        assert!(Traffic::Framed.client_flags().is_empty());
        assert_eq!(Traffic::Raw.to_string(), "raw");
    }
}
