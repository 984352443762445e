//! Shared helpers for integration tests.
//!
//! Every test binary that declares `mod support;` compiles this module on
//! its own, so helpers one binary does not use would otherwise trip
//! `dead_code`.

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod netns;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod roles_matrix;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod sh_safety;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod coexist;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod nft;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod sets_kernel;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod probe;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod harden_kernel;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod apply_kernel;

#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod merge_kernel;
