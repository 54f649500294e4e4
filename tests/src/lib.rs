//! Cross-crate, property and scenario tests live in `tests/`; this library is empty on purpose.
