#![no_main]
//! See `vitrina_cli::fuzzing::event_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vitrina_cli::fuzzing::event_json(data);
});
