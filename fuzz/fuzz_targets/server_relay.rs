//! The `server_relay` fuzz target: see `echo_fuzz::server_relay` for what it checks.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::server_relay::check(data));
