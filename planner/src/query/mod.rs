//! Defining queries: parsing with sqlparser, the rewrites of PostgreSQL's deparsed spellings,
//! the checks every defining query must pass, and the model the differential SQL (and the
//! explain text's operator tree) is generated from.

pub mod join_keys;
pub mod model;
pub mod normalize;
pub mod parse;
pub mod views;

pub use join_keys::equality_key_columns;
pub use parse::{parse_query, referenced_relations, ParsedQuery};
pub use views::{expand_views, ViewDefinition};
