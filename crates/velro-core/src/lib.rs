//! Velro's domain: types that are valid by construction, the use cases (services), and the ports
//! (traits) that storage, mail and clocks plug into. No HTTP, SQL or Redis lives here.

// `velro_core::impl_store!` looks up each listed method's signature in turn, two macro levels
// per method: a full forward list goes past the default limit of 128.
#![recursion_limit = "256"]

pub mod cache;
pub mod clock;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod limits;
pub mod mail;
pub mod mail_templates;
pub mod redirect;
pub mod secret;
pub mod service;
pub mod store;
pub mod tokens;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AuthError, FieldError, StoreError};
pub use secret::Secret;
