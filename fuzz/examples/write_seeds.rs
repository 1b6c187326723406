//! Writes the seed corpus, `fuzz/seeds/TARGET/NAME`, from the test vectors of
//! PROTOCOL.md, replacing what was there.
//!
//! Run it after changing the vectors or the seeds:
//! `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`.
#![forbid(unsafe_code)]

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for target in echo_fuzz::seeds::TARGETS {
        let dir = root.join(target);
        // Start afresh, so that a seed no longer built does not linger.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let seeds = echo_fuzz::seeds::seeds(target);
        for seed in &seeds {
            std::fs::write(dir.join(&seed.name), &seed.bytes)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
