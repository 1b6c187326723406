//! The `frame_decoder` fuzz target: see `echo_fuzz::frame_decoder` for what it checks.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::frame_decoder::check(data));
