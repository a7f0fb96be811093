//! pg_trickle's SQL API in client sessions: recognising calls in the simple and extended
//! protocols ([`interceptor`], parsing off the runtime in [`parse_pool`]), running them in the
//! client's session ([`job`], scripts of several statements in [`script_job`]), the calls' work
//! ([`calls`]) and encoding their answers ([`answer`]).

pub mod answer;
pub mod calls;
pub mod interceptor;
pub mod job;
pub mod parse_pool;
pub mod script_job;
