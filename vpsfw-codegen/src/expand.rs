//! A checked [`Policy`] to the tokens that rebuild it at run time.
//!
//! The policy is written as one string literal, its table (see
//! `vpsfw_runtime::__private`), and the expansion is one call that reads it back:
//!
//! ```text
//! {
//!     const _: &str = KRATE::__private::include_str!("/abs/path/of/a/set/file");
//!     KRATE::__private::from_table("vpsfw-table-0.1.0 drop drop drop 0 1 5:admin ...")
//! }
//! ```
//!
//! A few tokens whatever the size of the policy: rustc parses one literal instead of a
//! call (or a struct) per rule, which is what made large policies slow to build. The
//! `include_str!`s make cargo rebuild when a set file changes. Every path starts at the
//! facade (`$crate`), so the expansion needs no prelude and survives a renamed facade;
//! it is a block and binds no name, so nothing leaks into the caller's scope.

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use vpsfw_runtime::Policy;

/// The expression that builds `policy`; `krate` is the path of the `vpsfw` facade and
/// `files` the set files read (absolute paths).
pub fn expand(krate: &TokenStream, policy: &Policy, files: &[String]) -> TokenStream {
    let table = Literal::string(&vpsfw_runtime::__private::table(policy));
    quote! {
        {
            #(const _: &str = #krate::__private::include_str!(#files);)*
            #krate::__private::from_table(#table)
        }
    }
}
