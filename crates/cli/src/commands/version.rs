//! `version` (also `-version` / `--version`).

use strongroom_api::{STRONGROOM_VERSION, VAULT_COMPAT_VERSION};

use super::{Command, Ctx, expect_args};
use crate::args::Parsed;
use crate::error::{CliError, EXIT_OK};

pub const COMMAND: Command = Command {
    words: &["version"],
    args: "",
    synopsis: "Print the version.",
    flags: &[],
    run,
};

/// The version line.
pub fn line() -> String {
    format!("Vault v{VAULT_COMPAT_VERSION} (Strongroom v{STRONGROOM_VERSION})")
}

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    print(ctx)
}

/// Prints the version line.
pub fn print(ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    ctx.out(&format!("{}\n", line()))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The version line names both our release and the Vault API level we speak.
    #[test]
    fn version_line() {
        assert_eq!(
            line(),
            format!("Vault v1.16.3 (Strongroom v{})", env!("CARGO_PKG_VERSION"))
        );
    }
}
