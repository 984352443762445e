//! Unit tests of the macro on `proc_macro2` tokens.
