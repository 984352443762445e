//! Compile-fail and pass cases of the `firewall!` macro, driven by trybuild.
//!
//! `tests/ui/fail/*.rs` must each fail to build with exactly the `.stderr` next to it
//! (one file per mistake the macro catches); `tests/ui/pass/*.rs` must build and run
//! without panicking (they assert on the rendered rules). Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test --test ui` and read every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
