//! The `session-server` binary; everything is in the library.

fn main() -> std::process::ExitCode {
    session_server::main()
}
