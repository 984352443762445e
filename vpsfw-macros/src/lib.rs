//! The `firewall!` macro. Use it through the `vpsfw` facade.
