//! The two-layer cache (in-process and Redis) around any Store.
