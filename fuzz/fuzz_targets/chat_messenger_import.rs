#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    status_sansio::fuzzing::chat::chat_messenger_import(data);
});
