//! libFuzzer target: `hopwatch::fuzz::dns_reply`, on a runtime whose clock is paused so every
//! timeout of the walk passes at once.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(hopwatch::fuzz::dns_reply(data));
});
