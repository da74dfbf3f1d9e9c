//! Scenario 8: a slow disk on the secondary. Simulating it honestly needs a knob in the
//! server that delays fsync (or a block device we could slow down); the server has none, and
//! a drill that pretends would be worse than none, so this scenario reports a skip.

use anyhow::Result;

use super::{Env, Verdict};

pub fn run(_env: &Env) -> Result<Verdict> {
    Ok(Verdict::Skip(
        "the server has no fsync-delay knob (no config key or env var delays storage commits); \
         a slow disk cannot be simulated without one"
            .into(),
    ))
}
