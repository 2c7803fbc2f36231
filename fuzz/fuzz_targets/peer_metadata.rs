#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lateen_fuzz_targets::peer_metadata(data));
