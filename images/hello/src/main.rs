#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

unikernel::image!(main: app);

fn app() -> i32 {
    0
}
