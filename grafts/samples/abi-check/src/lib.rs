//! Imports every accessor through the SDK, so that loading it checks the
//! SDK's bindings against the runtime's ABI table (names and signatures):
//! the two cannot drift without a test failing.
#![cfg_attr(target_arch = "wasm32", no_std)]

use graft_sdk as sdk;

fn touch_everything(magic: i32) -> i32 {
    if magic != 0x5eed {
        return 0;
    }
    let mut bytes = [0u8; 4];
    let n = sdk::context_len();
    sdk::context_read(0, &mut bytes);
    sdk::context_write(0, &bytes);
    sdk::map_put(0, 1, sdk::map_get(0, 1, 0));
    sdk::counter_add(0, 1);
    sdk::lock(0);
    sdk::buffer_free(sdk::buffer_alloc(16));
    sdk::log("abi-check");
    let emitted = sdk::emit(0, &bytes, 1);
    (sdk::now_ns() as usize + n + emitted.committed as usize) as i32
}

graft_sdk::graft_main!(touch_everything: fn(magic: i32) -> i32);
