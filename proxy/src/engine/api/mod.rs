//! pg_trickle's SQL API in client sessions: recognising calls in the simple and extended
//! protocols ([`interceptor`], parsing off the runtime in [`parse_pool`]), running them in the
//! client's session ([`job`], scripts of several statements in [`script_job`]), each call's work
//! ([`create`], [`alter`], [`drop`], [`refresh_call`], with [`outcome`]) and encoding their
//! answers ([`answer`]).

pub mod alter;
pub mod answer;
pub mod create;
pub mod drop;
pub mod interceptor;
pub mod job;
pub mod outcome;
pub mod parse_pool;
pub mod refresh_call;
pub mod script_job;
