//! The `firewall!` macro. Use it through the `vpsfw` facade, which passes its own path
//! (`$crate`) as the first token so the expansion never hard-codes a crate name.
//!
//! The macro's work lives in `vpsfw-codegen`, an ordinary library, so that tests and
//! benchmarks can run it on `proc_macro2` tokens outside the compiler.

#[doc(hidden)]
#[proc_macro]
pub fn firewall(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    vpsfw_codegen::firewall2(input.into()).into()
}
