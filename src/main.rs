//! The `poolscope` executable: everything is in the library's [`poolscope::cli`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(poolscope::cli::main())
}
