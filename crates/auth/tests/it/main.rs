//! Integration tests of herald-auth against real processes: a DNS server
//! (dnsmasq) on loopback, and dkimpy as an independent DKIM verifier.

mod checks;
mod signing;
mod support;
