//! The `vellum` binary: see `vellum --help`.

// mimalloc returns freed memory to the system promptly; with glibc's per-thread arenas a node's
// RSS crept up with transfer size (see docs/design.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vellum_cli::main()
}
