//! Search-list planning.
