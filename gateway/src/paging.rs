//! A directory's listing a page at a time.
//!
//! The metadata server lists a directory in one call, however large; the gateway cuts that
//! list into pages so that the page a browser renders stays small (200 rows, not 10,000).
//! Pages count from 1; a page past the end is empty rather than an error, so that a listing
//! that shrank between two requests still answers.

use serde::Serialize;

/// Rows per page unless the request asks for another number.
pub const DEFAULT_PER_PAGE: usize = 200;
/// The most rows a page may ask for.
pub const MAX_PER_PAGE: usize = 1000;

/// Which page a request asks for, as the query string gives it.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
pub struct PageRequest {
    pub page: Option<usize>,
    pub per_page: Option<usize>,
}

/// One page of `items` and where it lies in the whole.
#[derive(Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// This page's number, from 1.
    pub page: usize,
    pub per_page: usize,
    /// Pages in all (at least 1, for an empty directory).
    pub pages: usize,
    /// Items in all.
    pub total: usize,
}

impl PageRequest {
    /// The page asked for; `per_page` is kept within 1..=[`MAX_PER_PAGE`].
    pub fn cut<T>(self, items: Vec<T>) -> Page<T> {
        let per_page = self
            .per_page
            .unwrap_or(DEFAULT_PER_PAGE)
            .clamp(1, MAX_PER_PAGE);
        let page = self.page.unwrap_or(1).max(1);
        let total = items.len();
        let pages = total.div_ceil(per_page).max(1);
        let start = (page - 1).saturating_mul(per_page).min(total);
        let items = items.into_iter().skip(start).take(per_page).collect();
        Page {
            items,
            page,
            per_page,
            pages,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(page: Option<usize>, per_page: Option<usize>, n: usize) -> Page<usize> {
        PageRequest { page, per_page }.cut((0..n).collect())
    }

    #[test]
    fn ten_thousand_entries_in_pages_of_two_hundred() {
        let first = cut(None, None, 10_000);
        assert_eq!((first.page, first.pages, first.total), (1, 50, 10_000));
        assert_eq!(first.items.len(), 200);
        assert_eq!(first.items[0], 0);
        let last = cut(Some(50), None, 10_000);
        assert_eq!(last.items.first(), Some(&9_800));
        assert_eq!(last.items.last(), Some(&9_999));
    }

    #[test]
    fn a_short_last_page_and_pages_past_the_end() {
        let page = cut(Some(3), Some(4), 10);
        assert_eq!(page.items, vec![8, 9]);
        assert_eq!(page.pages, 3);
        let past = cut(Some(9), Some(4), 10);
        assert!(past.items.is_empty());
        assert_eq!(past.total, 10);
    }

    #[test]
    fn an_empty_directory_is_one_empty_page_and_sizes_are_bounded() {
        let empty = cut(None, None, 0);
        assert_eq!((empty.pages, empty.total), (1, 0));
        assert_eq!(cut(Some(0), Some(0), 5).per_page, 1);
        assert_eq!(cut(None, Some(1_000_000), 5).per_page, MAX_PER_PAGE);
        assert_eq!(cut(Some(0), None, 5).page, 1);
    }
}
