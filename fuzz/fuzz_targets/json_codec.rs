//! The `json_codec` fuzz target: see `echo_fuzz::json_codec` for what it checks.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::json_codec::check(data));
