//! pgtrickle-planner: the pure planning library of pgtrickle-proxy (no I/O).
//!
//! WIP: see the crate docs below once the planner is complete.

pub mod api_call;
pub mod error;
pub mod prefilter;
pub mod schedule;

pub use api_call::{parse_api_call, ApiLimits, ApiRequest, ParsedApiCall};
pub use error::PlanError;
pub use prefilter::may_contain_api_call;
