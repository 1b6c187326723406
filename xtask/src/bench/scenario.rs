//! The loads `cargo xtask bench` measures, and the modes they are sent in.

use std::fmt;

use serde::Serialize;

use crate::client::Load;

/// One load, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Scenario {
    #[serde(rename = "scenario")]
    pub(crate) name: &'static str,
    #[serde(flatten)]
    pub(crate) load: Load,
    /// Whether the client's own target applies: small messages, with enough
    /// in flight that one side runs out of its core. Such loads are also
    /// driven by the C load generator, to find what each server does on one
    /// core when the client is not what runs out.
    #[serde(skip)]
    pub(crate) client_target: bool,
    /// Whether echo-server is measured behind PROXY v2 headers too, against
    /// itself without them.
    #[serde(skip)]
    pub(crate) proxied: bool,
}

/// The loads of the performance targets, in the order they are run and
/// shown: pingpong, latency with one small message in flight; fanin, many
/// clients with one small message each in flight; pipelined, small messages
/// pipelined, the cost per message; bulk, large messages, bytes per second
/// and fairness.
pub(crate) const SCENARIOS: [Scenario; 4] = [
    scenario("pingpong", 1, 64, 1, false),
    Scenario {
        proxied: true,
        ..scenario("fanin", 100, 64, 1, true)
    },
    scenario("pipelined", 10, 64, 32, true),
    scenario("bulk", 4, 64 * 1024, 4, false),
];

const fn scenario(
    name: &'static str,
    connections: usize,
    size: usize,
    depth: usize,
    client_target: bool,
) -> Scenario {
    let load = Load {
        connections,
        size,
        depth,
    };
    Scenario {
        name,
        load,
        client_target,
        proxied: false,
    }
}

/// The name of the idle-connections measurement, which opens connections
/// and holds them instead of sending a load.
pub(crate) const IDLE: &str = "idle";

/// How the client frames its messages, and so which `echo-server --mode`
/// serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// 4-byte big-endian length, then the payload (`echo-server` default).
    Framed,
    /// Bytes with no framing (RFC 862, `echo-server --mode raw`).
    Raw,
}

impl Mode {
    pub(crate) const ALL: [Mode; 2] = [Mode::Framed, Mode::Raw];

    /// The `echo-client` flags that send in this mode.
    pub(crate) fn client_flags(self) -> &'static [&'static str] {
        match self {
            Mode::Framed => &[],
            Mode::Raw => &["--raw"],
        }
    }
}

/// The name used in the table and in JSON, the one serde gives; it is also
/// the name on the command line and the `echo-server --mode` that serves it.
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.serialize(f)
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn scenario_names_are_distinct_and_not_the_idle_measurement() {
        let mut names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).chain([IDLE]).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn the_client_target_is_for_small_messages_that_load_a_core() {
        let targeted = SCENARIOS.iter().filter(|s| s.client_target);
        assert_eq!(
            targeted.clone().map(|s| s.name).collect::<Vec<_>>(),
            ["fanin", "pipelined"]
        );
        assert!(
            targeted
                .map(|s| s.load)
                .all(|l| l.size <= 64 && l.connections * l.depth > 1)
        );
    }

    #[test]
    fn each_mode_has_one_name_for_the_flag_the_server_and_the_report() {
        assert_eq!(format!("{:<7}|", Mode::Raw), "raw    |");
        for mode in Mode::ALL {
            let flag = mode.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), mode.to_string());
        }
        assert_eq!(Mode::Raw.client_flags(), ["--raw"]);
        assert!(Mode::Framed.client_flags().is_empty());
    }
}
