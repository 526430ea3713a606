//! golat's eBPF programs. Handlers are thin: each calls a `try_` function returning
//! `Result<(), i64>` and turns errors into error counters, never into a panic.
#![no_std]
#![no_main]

mod go_abi;
mod goroutine;
mod maps;
mod runq;
mod stw;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program; required by no_std.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
