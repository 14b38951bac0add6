fn main() -> std::process::ExitCode {
    poolscope::cli::main()
}
