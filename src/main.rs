//! The `strongroom` binary: server and CLI in one, as `vault` is.
//!
//! `strongroom server ...` runs a server; every other command is a client call against
//! `VAULT_ADDR`.

#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("server") => strongroom_server::run(&args[1..]),
        _ => strongroom_cli::run(args),
    };
    std::process::exit(code);
}
