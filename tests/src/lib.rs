//! Cross-crate, property and scenario tests live in `tests/`. This library only runs the README's
//! code blocks as doctests, so the usage shown there keeps compiling and passing.
#![doc = include_str!("../../README.md")]
