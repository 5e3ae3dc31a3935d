//! The `canister-host` command-line tool. Its subcommands arrive with the
//! host runtime; until then it only explains that.

fn main() -> std::process::ExitCode {
    eprintln!("canister-host: no subcommands yet; see README.md for what runs today");
    std::process::ExitCode::from(2)
}
