//! The `netslice` binary: parse, set up logging, run. Everything else lives in the
//! library so that tests can call it.

fn main() -> std::process::ExitCode {
    netslice::main()
}
