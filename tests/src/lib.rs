//! End-to-end tests of pgtrickle-proxy live in `tests/tests/`; this library only re-exports the
//! shared test support so each test file can `use pgtrickle_e2e::*`.

pub use pgtrickle_test_support::*;

/// Path of the proxy binary built for these tests.
#[macro_export]
macro_rules! proxy_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_proxy-under-test"))
    };
}
