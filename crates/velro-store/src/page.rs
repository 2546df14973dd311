//! The admin listing's keyset paging: both stores fetch one row more than asked, and this turns
//! that into a page and the cursor for the next one.

use velro_core::domain::{User, UserCursor, UserPage};

/// Cuts the limit+1 rows fetched down to the page, with the cursor when there is more.
pub(crate) fn page(mut users: Vec<User>, limit: u32) -> UserPage {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = users.len() > limit;
    users.truncate(limit);
    let next = if more {
        users.last().map(UserCursor::after)
    } else {
        None
    };
    UserPage { users, next }
}
