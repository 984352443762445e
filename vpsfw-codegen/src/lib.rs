//! The `firewall!` macro as an ordinary library: `proc_macro2` tokens in, tokens out.
//!
//! `vpsfw-macros` is a thin `#[proc_macro]` around [`firewall2`]; keeping the work here
//! lets unit tests and benchmarks call it outside the compiler. Users never depend on
//! this crate: they use the `vpsfw` facade, which passes its own path (`$crate`) as the
//! first token so the expansion never hard-codes a crate name.
//!
//! Tokens become a [`vpsfw_runtime::Spec`] (`parse`), which the runtime's one checker
//! turns into a policy or into diagnostics; diagnostics are mapped back to the tokens
//! at fault and reported all at once; a checked policy becomes code (`expand`).
//!
//! [`phases`] runs the same steps one at a time, for benchmarks.

mod expand;
mod fast;
mod parse;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;

/// The whole macro: `KRATE ; BODY` to the expression that builds the policy, or to
/// `compile_error!`s on the tokens at fault. Never panics.
pub fn firewall2(input: TokenStream) -> TokenStream {
    expand_policy(input).unwrap_or_else(error_tokens)
}

/// One `compile_error!{..}` per mistake. The macro is used as an expression, and several
/// invocations in a row are only valid as the statements of a block.
fn error_tokens(e: syn::Error) -> TokenStream {
    let errors = e.into_compile_error();
    quote::quote!({ #errors })
}

/// `KRATE ; BODY`: the facade's path and the policy's tokens. The body stays a list of
/// trees: inside rustc, making it a stream again is two trips of every token through
/// the compiler's bridge.
fn split_input(input: TokenStream) -> (TokenStream, Vec<TokenTree>) {
    let mut tokens = input.into_iter();
    let mut krate = TokenStream::new();
    for tt in tokens.by_ref() {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ';' => break,
            _ => krate.extend([tt]),
        }
    }
    (krate, tokens.collect())
}

fn expand_policy(input: TokenStream) -> syn::Result<TokenStream> {
    let (krate, body) = split_input(input);
    let parsed = phases::Parsed::new(body);
    let checked = phases::check(&parsed);
    phases::finish(&krate, parsed, checked)
}

/// The diagnostics of the checker on the tokens at fault, with the syntax errors, in the
/// order written.
fn report(
    mut errors: Vec<syn::Error>,
    diags: &vpsfw_runtime::Diagnostics,
    locs: &parse::Locs,
) -> syn::Error {
    errors.extend(diags.0.iter().filter(|d| !locs.is_quiet(d.at)).map(|d| {
        let (first, last) = locs.get(d.at);
        syn::Error::new_spanned(SpanRange(first, last), &d.message)
    }));
    // In the order written: syntax errors and the checker's come from two passes.
    errors.sort_by_key(|e| {
        let at = e.span().start();
        (at.line, at.column)
    });
    combine(errors)
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

/// The macro's steps one at a time, for benchmarks (not for users: no stability promise).
///
/// [`firewall2`] is exactly `split_input`, then [`parse`], [`check`] and [`finish`]
/// (which calls [`expand`] on a clean policy). [`timed`] runs them and times each; a
/// benchmark that wants medians calls the steps itself:
///
/// ```
/// use std::str::FromStr;
/// use vpsfw_codegen::phases;
///
/// let input = proc_macro2::TokenStream::from_str(&phases::sample_source(100)).unwrap();
/// let (krate, body) = phases::split_input(input);
/// let parsed = phases::parse(body);
/// assert!(parsed.is_clean());
/// let policy = phases::check(&parsed).expect("the sample policy is valid");
/// let findings = phases::analysis(&policy); // already run by `check`; timed alone
/// assert!(findings.is_empty());
/// let tokens = phases::expand(&krate, &parsed, &policy);
/// assert!(tokens.to_string().contains("__private"));
/// ```
#[doc(hidden)]
pub mod phases {
    use std::time::{Duration, Instant};

    use proc_macro2::{TokenStream, TokenTree};
    use vpsfw_runtime::{Diagnostics, Finding, Policy, Spec};

    use crate::parse;

    /// The facade's path and the policy's tokens: `KRATE ; BODY` split at the first `;`.
    pub fn split_input(input: TokenStream) -> (TokenStream, TokenStream) {
        let (krate, body) = crate::split_input(input);
        (krate, body.into_iter().collect())
    }

    /// What parsing the body gave: the spec, where each of its leaves was written, and
    /// the syntax errors.
    pub struct Parsed {
        spec: Spec,
        locs: parse::Locs,
        errors: Vec<syn::Error>,
    }

    impl Parsed {
        pub(crate) fn new(body: impl IntoIterator<Item = TokenTree>) -> Parsed {
            let mut locs = parse::Locs::default();
            let (spec, errors) = parse::parse(body, &mut locs);
            Parsed { spec, locs, errors }
        }

        /// The policy as written (every statement that parsed).
        pub fn spec(&self) -> &Spec {
            &self.spec
        }

        /// No syntax error.
        pub fn is_clean(&self) -> bool {
            self.errors.is_empty()
        }
    }

    /// Tokens to [`Spec`]: the macro's syntax.
    pub fn parse(body: TokenStream) -> Parsed {
        Parsed::new(body)
    }

    /// Every check and the analysis: [`Spec::build`] on the parsed spec (also when
    /// there were syntax errors: the macro reports the checker's errors with them).
    pub fn check(parsed: &Parsed) -> Result<Policy, Diagnostics> {
        parsed.spec.build()
    }

    /// The build-time analysis alone ([`check`] runs it too, on a policy without
    /// mistakes): for timing it on its own.
    pub fn analysis(policy: &Policy) -> Vec<Finding> {
        policy.analyze()
    }

    /// The expression that builds `policy` at run time; `krate` is the facade's path.
    pub fn expand(krate: &TokenStream, parsed: &Parsed, policy: &Policy) -> TokenStream {
        crate::expand::expand(krate, policy, &parsed.locs.files)
    }

    /// The macro's answer from the steps' results: the expansion of a clean policy, or
    /// every error (syntax and checker) on the tokens at fault.
    pub fn finish(
        krate: &TokenStream,
        parsed: Parsed,
        checked: Result<Policy, Diagnostics>,
    ) -> syn::Result<TokenStream> {
        match checked {
            Ok(policy) if parsed.is_clean() => Ok(expand(krate, &parsed, &policy)),
            Ok(_) => Err(crate::report(
                parsed.errors,
                &Diagnostics(Vec::new()),
                &parsed.locs,
            )),
            Err(diags) => Err(crate::report(parsed.errors, &diags, &parsed.locs)),
        }
    }

    /// How long each step of one run of the macro took.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Timings {
        /// [`parse`] (with [`split_input`]).
        pub parse: Duration,
        /// [`check`]: the checker and the analysis.
        pub check: Duration,
        /// [`analysis`] run once more on its own (not part of `total`); zero when the
        /// policy has mistakes.
        pub analysis: Duration,
        /// [`finish`]: the expansion, or the errors.
        pub expand: Duration,
        /// The whole macro: `parse + check + expand`.
        pub total: Duration,
    }

    /// Runs the whole macro once, as [`crate::firewall2`] does, timing each step.
    pub fn timed(input: TokenStream) -> (TokenStream, Timings) {
        let t = Instant::now();
        let (krate, body) = crate::split_input(input);
        let parsed = Parsed::new(body);
        let parse_time = t.elapsed();
        let t = Instant::now();
        let checked = check(&parsed);
        let check_time = t.elapsed();
        let analysis_time = match &checked {
            Ok(policy) => {
                let t = Instant::now();
                drop(std::hint::black_box(analysis(policy)));
                t.elapsed()
            }
            Err(_) => Duration::ZERO,
        };
        let t = Instant::now();
        let out = finish(&krate, parsed, checked).unwrap_or_else(crate::error_tokens);
        let expand_time = t.elapsed();
        let timings = Timings {
            parse: parse_time,
            check: check_time,
            analysis: analysis_time,
            expand: expand_time,
            total: parse_time + check_time + expand_time,
        };
        (out, timings)
    }

    /// The benchmarks' input: `::vpsfw; admin none; policy input drop;`, a `common`
    /// group (loopback, replies) and `n` allow rules with distinct sources and ports, as
    /// an admin would write them, one per line. Valid: it expands without findings.
    pub fn sample_source(n: usize) -> String {
        use std::fmt::Write;
        let mut s = String::from("::vpsfw; admin none; policy input drop; group common { allow in on lo; allow in state established,related; }\n");
        for i in 0..n {
            let (a, b) = (i / 250 % 250, i % 250 + 1);
            let port = 1000 + i % 60000;
            let net = ["198.51", "203.0"][i % 2];
            let _ = writeln!(s, "allow in from {net}.{a}.{b} tcp to {port} state new;");
        }
        s
    }
}

#[cfg(test)]
mod tests;
