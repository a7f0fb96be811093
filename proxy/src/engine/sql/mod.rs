//! Running SQL: the runner trait over a client's session or a connection of the proxy's own
//! ([`runner`]), the proxy's own connections ([`own_connection`]), and statements signed to run
//! as the engine role on a client's session ([`privileged`]).

pub mod own_connection;
pub mod privileged;
pub mod runner;
