//! The `pgtrickle-proxy` binary: see [`pgtrickle_proxy::cli`].

fn main() -> std::process::ExitCode {
    pgtrickle_proxy::cli::main()
}
