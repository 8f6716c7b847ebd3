//! The `vellum` binary: see `vellum --help`.

fn main() -> std::process::ExitCode {
    node::cli::main()
}
