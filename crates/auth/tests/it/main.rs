//! Integration tests of herald-auth against real processes: a DNS server
//! (dnsmasq) on loopback, and dkimpy as an independent DKIM verifier.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod checks;
mod signing;
mod spf_suite;
mod support;
