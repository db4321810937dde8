//! libFuzzer target: `hopwatch::fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hopwatch::fuzz::config(data));
