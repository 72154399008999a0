//! Local Azure Web PubSub emulator, for development and tests only (production is Azure Web PubSub).
//!
//! Layout (to be completed by the emulator's owner):
//! - `filter`: the OData `filter` expressions of the REST API (parse once, evaluate per connection).
//! - `rest`: the REST data plane under `/api/`.

pub mod filter;
pub mod rest;
