//! libFuzzer target: `hopwatch::fuzz::x509_chain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hopwatch::fuzz::x509_chain(data));
