//! The stream-table engine: the catalog in PostgreSQL ([`catalog`]), API calls intercepted from
//! client sessions ([`interceptor`], [`job`], [`api`]), describing defining queries for the
//! planner ([`describe`]), change capture glue to the cdc crate ([`capture`]), refreshes
//! ([`refresh`]) and the scheduler ([`scheduler`], its refresh connections [`refresh_workers`]).

pub mod answer;
pub mod api;
pub mod capture;
pub mod catalog;
pub mod delta;
pub mod describe;
pub mod error;
pub mod interceptor;
pub mod job;
pub mod own_connection;
pub mod owner_rights;
pub mod parse_pool;
pub mod poll;
pub mod privileged;
pub mod refresh;
pub mod refresh_workers;
pub mod replan;
pub mod sandbox;
pub mod scheduler;
pub mod schedulers;
pub mod script_job;
pub mod settings;
pub mod sql;
