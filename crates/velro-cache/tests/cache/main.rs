//! The cache against a real SQLite store and, where one is available, a real Redis: lookups,
//! invalidation on one and on two instances, the switch, and a Redis that hangs.

// `velro_core::impl_store!` looks up each listed method's signature in turn, two macro levels
// per method: a full forward list goes past the default limit of 128.
#![recursion_limit = "256"]

mod helpers;
mod hung;
mod instances;
mod local;
mod stampede;
mod switch;
