//! The end-to-end scenarios, one file per topic, in the order they run.
//!
//! Each scenario starts its own server, so that no scenario can be disturbed
//! by what an earlier one left behind. A new topic is a new file with its own
//! `SCENARIOS` list, declared below and named once in [`ALL`].

mod client_tools;
mod faults;
mod foundation;
mod server_ops;

use std::time::Duration;

use anyhow::Result;

use super::harness::Ctx;

/// A named scenario.
#[derive(Debug)]
pub(super) struct Scenario {
    pub(super) name: &'static str,
    pub(super) run: fn(&Ctx<'_>) -> Result<()>,
}

/// Every scenario, topic by topic, in the order they run.
pub(super) const ALL: &[&[Scenario]] = &[
    foundation::SCENARIOS,
    server_ops::SCENARIOS,
    client_tools::SCENARIOS,
    faults::SCENARIOS,
];

/// Every scenario of [`ALL`], one after the other.
pub(super) fn all() -> impl Iterator<Item = &'static Scenario> {
    ALL.iter().flat_map(|topic| topic.iter())
}

/// How long a process that should fail at once may take to do so. Shorter
/// than a scenario's deadline, so that a server that wrongly keeps running
/// does not use up the suite's time.
const QUICK_EXIT: Duration = Duration::from_secs(10);
