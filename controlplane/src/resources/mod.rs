//! The admin API's request and response bodies, one file per resource: the
//! server (`crate::api`) answers with them and the CLI (`crate::client`) reads
//! them, so the two cannot drift apart; a test holds the OpenAPI document to
//! the same fields, both ways.

pub mod incidents;
pub mod integrations;
pub mod rules;
pub mod status;
