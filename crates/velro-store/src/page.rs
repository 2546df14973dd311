//! The admin listings' paging: the keyset page (both stores fetch one row more than asked, and
//! this turns that into a page and the cursor for the next one) and GoTrue's `filter` pattern.

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

/// A `LIKE … ESCAPE '\\'` pattern matching `filter` anywhere, lower-cased as the columns are
/// compared: `%`, `_` and the escape itself stand for themselves.
pub(crate) fn like_pattern(filter: &str) -> String {
    let mut pattern = String::with_capacity(filter.len() + 2);
    pattern.push('%');
    for c in filter.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn the_filter_is_a_literal_lower_case_substring() {
        assert_eq!(like_pattern("Ada"), "%ada%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern(""), "%%");
    }
}
