#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    status_sansio::fuzzing::discovery::discovery_enode(data);
});
