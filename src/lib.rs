//! # vpsfw: host-firewall policy as Rust source
//!
//! Write a Linux host's firewall inside [`firewall!`]; `cargo build` rejects every
//! mistake at the token that makes it; the result is a [`Policy`] that renders to an
//! `iptables-restore` / `ip6tables-restore` pair, one command per rule, or a POSIX sh
//! script that loads both families atomically.
//!
//! ```
//! let policy = vpsfw::firewall! {
//!     host admin = 198.51.100.7, "2001:db8:100::7";
//!     net office = 203.0.113.128/27;
//!
//!     group common {
//!         allow in on lo;
//!         allow out on lo;
//!         allow in state established,related;
//!     }
//!     group server {
//!         allow in from admin;
//!         allow in from office tcp to [http, https] state new,established;
//!     }
//!     admin admin;
//!     policy input drop;
//! };
//! let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
//! assert!(v4.contains("-A INPUT -s 203.0.113.128/27 -p tcp -m multiport --dports 80,443"));
//! ```
//!
//! See the README for the language reference.

pub use vpsfw_runtime::*;

/// Builds a [`Policy`] from the firewall language, checked at compile time.
///
/// Every mistake is a compile error on the tokens at fault; all of a policy's mistakes
/// are reported in one build. See the crate README for the language.
#[macro_export]
macro_rules! firewall {
    ($($body:tt)*) => {
        $crate::__macros::firewall!($crate; $($body)*)
    };
}

#[doc(hidden)]
pub mod __macros {
    pub use vpsfw_macros::firewall;
}
