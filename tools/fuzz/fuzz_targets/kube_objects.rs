//! libFuzzer target: `hopwatch::fuzz::kube_objects`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hopwatch::fuzz::kube_objects(data));
