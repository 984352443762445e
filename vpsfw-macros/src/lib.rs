//! The `firewall!` macro. Use it through the `vpsfw` facade, which passes its own path
//! (`$crate`) as the first token so the expansion never hard-codes a crate name.
//!
//! Tokens become a [`vpsfw_runtime::Spec`] (`parse`), which the runtime's one checker
//! turns into a policy or into diagnostics; diagnostics are mapped back to the tokens
//! at fault and reported all at once; a checked policy becomes code (`expand`).

mod expand;
mod parse;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;

#[doc(hidden)]
#[proc_macro]
pub fn firewall(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    firewall2(input.into()).into()
}

/// The whole macro on `proc_macro2` tokens: `KRATE ; BODY`.
pub(crate) fn firewall2(input: TokenStream) -> TokenStream {
    expand_policy(input).unwrap_or_else(|e| {
        // One `compile_error!{..}` per mistake. The macro is used as an expression, and
        // several invocations in a row are only valid as the statements of a block.
        let errors = e.into_compile_error();
        quote::quote!({ #errors })
    })
}

fn expand_policy(input: TokenStream) -> syn::Result<TokenStream> {
    let mut tokens = input.into_iter();
    let mut krate = TokenStream::new();
    for tt in tokens.by_ref() {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ';' => break,
            _ => krate.extend([tt]),
        }
    }
    let body: TokenStream = tokens.collect();
    let mut locs = parse::Locs::default();
    let (spec, mut errors) = parse::parse(body, &mut locs);
    let parsed_cleanly = errors.is_empty();
    match spec.build() {
        Ok(policy) if parsed_cleanly => return Ok(expand::expand(&krate, &policy, &locs.files)),
        Ok(_) => {}
        Err(diags) => errors.extend(diags.0.iter().filter(|d| !locs.is_quiet(d.at)).map(|d| {
            let (first, last) = locs.get(d.at);
            syn::Error::new_spanned(SpanRange(first, last), &d.message)
        })),
    }
    // In the order written: syntax errors and the checker's come from two passes.
    errors.sort_by_key(|e| {
        let at = e.span().start();
        (at.line, at.column)
    });
    Err(combine(errors))
}

fn combine(errors: Vec<syn::Error>) -> syn::Error {
    let mut errors = errors.into_iter();
    let mut all = errors
        .next()
        .unwrap_or_else(|| syn::Error::new(Span::call_site(), "invalid firewall policy"));
    for e in errors {
        all.combine(e);
    }
    all
}

/// Two spans standing for the tokens between them, so an error can underline a range
/// (`Span::join` is not available to proc macros on stable Rust).
struct SpanRange(Span, Span);

impl ToTokens for SpanRange {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let mut a = proc_macro2::Punct::new('<', proc_macro2::Spacing::Alone);
        a.set_span(self.0);
        let mut b = proc_macro2::Punct::new('>', proc_macro2::Spacing::Alone);
        b.set_span(self.1);
        tokens.extend([TokenTree::Punct(a), TokenTree::Punct(b)]);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bench;
