//! The `proxy_header` fuzz target: see `echo_fuzz::proxy_header` for what it checks.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::proxy_header::check(data));
