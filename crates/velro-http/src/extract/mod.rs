//! Extractors: turn the parts of a request into domain values, refusing bad input with the
//! contract's errors.

mod auth;
mod body;
mod params;

pub use auth::CallerSlot;
pub(crate) use auth::{bearer_token, AdminCaller, Caller};
pub(crate) use body::{read_body, BodyError, BoundedBytes, Fields, FromFields, ValidJson};
pub(crate) use params::{Client, PathId, QueryParams};
