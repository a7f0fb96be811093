//! One refresh of one stream table ([`run`]), and what it is built from: describing the
//! defining query for the planner ([`describe`], expanding its views with [`views`]), keeping the stored plan current with the
//! planner ([`replan`]), change capture glue to the cdc crate ([`capture`]), the deltas a
//! refresh reads ([`delta`]), the owner's right to read the sources ([`owner_rights`]) and the
//! sandbox its statements run in as the owner ([`sandbox`]); which way it goes ([`mode_choice`],
//! with AUTO's [`cost_model`]).

pub mod capture;
pub mod cost_model;
pub mod delta;
pub mod describe;
pub mod mode_choice;
pub mod owner_rights;
pub mod replan;
pub mod run;
pub mod sandbox;
pub mod upgrade;
pub mod views;
