//! Rootstock's kernel library (placeholder while the kernel is written).
#![cfg_attr(not(test), no_std)]

/// Declares an application image.
#[macro_export]
macro_rules! image {
    (main: $main:path $(,)?) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        fn __rootstock_image_main() -> i32 {
            $main()
        }
        #[cfg(not(target_os = "none"))]
        fn main() {}
    };
}
