//! Plain-text tables for people: columns padded to their widest cell, no colour, no borders, so
//! that they read the same on a terminal, in a pager and in a ticket.

/// Rows under a header, each column as wide as its widest cell.
pub(super) fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|cell| (*cell).to_string()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(width.saturating_sub(cell.chars().count()) + 2));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// One record as `name  value` lines.
pub(super) fn record(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    fields
        .iter()
        .map(|(name, value)| format!("{name:<width$}  {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_under_the_widest_cell_with_no_trailing_spaces() {
        let text = columns(
            &["ID", "EMAIL"],
            &[
                vec!["1".into(), "ada@example.com".into()],
                vec!["22".into(), "b@é.example".into()],
            ],
        );
        assert_eq!(
            text, "ID  EMAIL\n1   ada@example.com\n22  b@é.example\n",
            "{text}"
        );
    }

    #[test]
    fn a_record_aligns_its_values() {
        let text = record(&[("id", "7".into()), ("disabled", "no".into())]);
        assert_eq!(text, "id        7\ndisabled  no\n");
    }
}
