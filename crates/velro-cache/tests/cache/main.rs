//! The cache against a real SQLite store and, where one is available, a real Redis: lookups,
//! invalidation on one and on two instances, the switch, and a Redis that hangs.

mod helpers;
mod hung;
mod instances;
mod local;
mod switch;
