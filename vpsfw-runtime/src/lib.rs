//! vpsfw's runtime: the typed firewall model, the checks shared with the `firewall!`
//! macro, the renderers and the command line every policy binary gets.
//!
//! Users depend on the `vpsfw` facade, which re-exports this crate.

pub mod addr;
pub mod analysis;
pub mod builder;
pub mod diag;
pub mod eval;
pub mod harden;
pub mod model;
pub mod nft;
pub mod render;
pub mod ruleset;
pub mod set;
pub mod spec;
pub mod value;

#[cfg(test)]
mod test_rng;

#[cfg(feature = "cli")]
pub mod apply;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod live;
#[cfg(feature = "cli")]
pub mod persist;

#[doc(hidden)]
pub mod __private;

pub use addr::Address;
pub use analysis::{Admin, Finding, FindingKind};
pub use diag::{Diagnostic, Diagnostics, Loc, Spanned};
pub use eval::{DecidedBy, Decision, Evaluator, Outcome, Packet};
pub use harden::Preset;
pub use model::{Defaults, NameDef, Origin, Policy, Rule, Target};
pub use render::{render, render_with, Format, Layout};
pub use set::SetDef;
pub use spec::Spec;
pub use value::*;
