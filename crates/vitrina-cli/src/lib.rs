//! The parts of the `vitrina` binary that are worth testing and fuzzing on their own.

pub mod eval_html;
pub mod formats;
pub mod fuzzing;
pub mod gorse_files;
