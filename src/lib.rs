//! vpsfw facade.
pub use vpsfw_runtime::*;
