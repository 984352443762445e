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
    let table = raw_string(&vpsfw_runtime::__private::table(policy));
    quote! {
        {
            #(const _: &str = #krate::__private::include_str!(#files);)*
            #krate::__private::from_table(#table)
        }
    }
}

/// `text` as a raw string literal (`r#"..."#`, with more `#` than any run of them after
/// a quote inside): nothing to escape, where [`Literal::string`] escapes every character
/// (a tenth of the macro's time on a large policy, more when the macro runs
/// unoptimised). A bare carriage return cannot be in a raw string: then the escaped
/// literal.
fn raw_string(text: &str) -> Literal {
    if text.contains('\r') {
        return Literal::string(text);
    }
    let mut hashes = 1;
    let mut run: Option<usize> = None;
    for c in text.chars() {
        run = match (c, run) {
            ('"', _) => Some(0),
            ('#', Some(n)) => Some(n + 1),
            _ => None,
        };
        if let Some(n) = run {
            hashes = hashes.max(n + 1);
        }
    }
    let h = "#".repeat(hashes);
    format!("r{h}\"{text}\"{h}")
        .parse()
        .unwrap_or_else(|_| Literal::string(text))
}

#[cfg(test)]
mod tests {
    use super::raw_string;

    /// The literal's value is the text, whatever quotes, hashes and escapes it holds.
    #[test]
    fn raw_strings_hold_any_text() {
        for text in [
            "",
            "plain",
            "a \"quoted\" word",
            "\"#",
            "x\"##\"#y\"###",
            "back\\slash \\n \\\"",
            "tab\tnewline\nunicode é ✓",
            "carriage\rreturn",
        ] {
            let lit = raw_string(text).to_string();
            let value: String = syn::parse_str::<syn::LitStr>(&lit)
                .unwrap_or_else(|e| panic!("{lit}: {e}"))
                .value();
            assert_eq!(value, text, "{lit}");
        }
    }
}
