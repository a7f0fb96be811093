//! The proxy binary as the end-to-end tests run it: the same entry point as `pgtrickle-proxy`.

fn main() -> std::process::ExitCode {
    pgtrickle_proxy::cli::main()
}
