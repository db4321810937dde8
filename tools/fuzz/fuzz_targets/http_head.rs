//! libFuzzer target: `hopwatch::fuzz::http_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hopwatch::fuzz::http_head(data));
