//! The `merge` command: bench reports from several hosts (each the JSON of
//! `bench --json`) made into one, for people or (with `--json`) for scripts.

use std::io;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clap::builder::FalseyValueParser;
use echo_client::bench::{self, BenchReport};

use super::bench::verdict;
use super::{print_line, printed};

/// The options of `merge`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each FILE is the JSON document of `echo-client bench --json`, from benches run at the same
time against the same service (from several hosts, say), in the same mode with the same
message size. Counts add up; rates are over the time the runs had in common (each host's
rate taken as steady through its run, so the rates add up too); percentiles are over every
echo of every host, from their histograms merged. One line per host follows the totals.
With --json the merged report has the shape of a bench report, with a \"hosts\" list, so
scripts read either. Exit status: 0 if no host had an error or a failed connection, 1 if
one had or a file cannot be read or merged.

Examples:
  echo-client merge host-a.json host-b.json
  echo-client merge --json reports/*.json > merged.json")]
pub(super) struct MergeArgs {
    /// The reports to merge, each the output of `bench --json`; each host's
    /// row is named by its file's name
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,

    /// Print the merged report as one JSON document, and nothing else on
    /// stdout [default: off]
    #[arg(long, env = "ECHO_JSON", value_parser = FalseyValueParser::new())]
    json: bool,
}

pub(super) fn run(args: MergeArgs) -> anyhow::Result<()> {
    let reports = args
        .files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let report: BenchReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a bench report", file.display()))?;
            Ok((file.display().to_string(), report))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = bench::merge(reports)?;
    let text = if args.json {
        merged.to_json()
    } else {
        merged.to_string()
    };
    if printed(print_line(&mut io::stdout().lock(), text.as_bytes()))?.is_break() {
        return Ok(());
    }
    verdict(&merged)
}
