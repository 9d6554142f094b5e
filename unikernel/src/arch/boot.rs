//! The PVH entry point: the first instructions of every image.
//!
//! QEMU's PVH loader (`-M microvm -kernel image.elf`) finds the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note, loads the ELF segments at their physical
//! addresses and jumps to the entry in 32-bit protected mode with paging off,
//! `%ebx` holding the physical address of the `hvm_start_info` structure.
//!
//! The stub below does the least that long mode needs and nothing more, so
//! that entry → `main` stays short: it stamps the TSC, zeroes `.bss` only if
//! the loader did not, builds an identity map of the low 4 GiB (1 GiB pages,
//! or 2 MiB pages where the CPU has none), enables PAE and long
//! mode, and calls [`crate::arch::kernel_entry`] on the boot stack. The Rust
//! side then replaces these tables with fine-grained ones (W^X, NX, guard
//! page). Nothing here is reached after boot.

use core::arch::global_asm;

// The PVH note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), a 32-bit
// physical entry address as its descriptor.
global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4
"#
);

// Data the stub writes before `.bss` is cleared lives in `.data`.
global_asm!(
    r#"
    .section .data.boot, "aw"
    .balign 8
    .global BOOT_TSC
BOOT_TSC:
    .quad 0
    .global BOOT_START_INFO
BOOT_START_INFO:
    .quad 0

    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot_page_tables, "aw", @nobits
    .balign 8
boot_bss_dirty:
    .quad 0
    .balign 4096
    .global BOOT_PML4
BOOT_PML4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
"#
);

global_asm!(
    r#"
    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi
    rdtsc
    mov %eax, BOOT_TSC
    mov %edx, BOOT_TSC + 4
    mov %esi, BOOT_START_INFO

    /* .bss is zero already: the loader zero-fills it (ELF: p_memsz
       beyond p_filesz), and QEMU does again at every reset, warm reboots
       included, since it reloads the image. `boot_bss_dirty`, a .bss word
       set below, says whether that held: if it survived from an earlier
       boot, zero .bss here, 4 bytes at a time (the linker script
       page-aligns both ends). */
    cmpl $0, boot_bss_dirty
    je 3f
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
3:
    movl $1, boot_bss_dirty

    /* PML4[0] -> PDPT. */
    mov $boot_pdpt + 0x3, %eax
    mov %eax, BOOT_PML4

    /* With 1 GiB pages (CPUID 0x80000001 EDX bit 26): four PDPT entries
       identity-map 4 GiB: present, writable, huge. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb 4f
    mov $0x80000001, %eax
    cpuid
    bt $26, %edx
    jnc 4f
    movl $0x00000083, boot_pdpt
    movl $0x40000083, boot_pdpt + 8
    movl $0x80000083, boot_pdpt + 16
    movl $0xc0000083, boot_pdpt + 24
    jmp 5f

4:  /* Otherwise PDPT[0..4] -> four page directories of 512 × 2 MiB. */
    mov $boot_pd + 0x3, %eax
    mov %eax, boot_pdpt
    add $0x1000, %eax
    mov %eax, boot_pdpt + 8
    add $0x1000, %eax
    mov %eax, boot_pdpt + 16
    add $0x1000, %eax
    mov %eax, boot_pdpt + 24
    mov $boot_pd, %edi
    mov $0x83, %eax
    mov $2048, %ecx
1:
    mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
5:

    /* CR4.PAE, CR3, EFER.LME, CR0.PG|WP|PE. */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $BOOT_PML4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    movabs $__stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi
    call {entry}
2:
    cli
    hlt
    jmp 2b
"#,
    entry = sym crate::arch::kernel_entry,
    options(att_syntax)
);

unsafe extern "C" {
    /// TSC value read by the first instruction after entry.
    pub static BOOT_TSC: u64;
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __stack_guard: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
}

pub use crate::memory::layout::ImageLayout;

/// Where the linker put the kernel's sections.
pub fn layout() -> ImageLayout {
    fn addr(symbol: &u8) -> u64 {
        symbol as *const u8 as u64
    }
    // SAFETY: these are linker-script symbols; only their addresses are
    // taken, their (meaningless) contents are never read.
    unsafe {
        ImageLayout {
            start: addr(&__kernel_start),
            text: (addr(&__text_start), addr(&__text_end)),
            rodata: (addr(&__rodata_start), addr(&__rodata_end)),
            data_start: addr(&__data_start),
            stack_guard: addr(&__stack_guard),
            stack: (addr(&__stack_bottom), addr(&__stack_top)),
            end: addr(&__kernel_end),
        }
    }
}

/// The TSC at the PVH entry point.
pub fn entry_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code runs, never after.
    unsafe { core::ptr::read_volatile(&raw const BOOT_TSC) }
}

/// Boot phases: where entry → `main` (and on to "network up") goes.
///
/// [`phase`] stamps the end of a phase with the busy TSC cycles since the
/// entry point: halted time and the time spent printing the table are left
/// out, so under `-icount shift=0` (one TSC tick per instruction) a stamp is
/// the instructions executed so far. The table is printed only when the
/// command line has `bootphases` (`cargo xtask bench boot` asks for it), at
/// the first idle or at exit; phases stamped later print one line each.
pub mod phases {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use spin::Mutex;

    const MAX: usize = 16;

    static TABLE: Mutex<([(&str, u64); MAX], usize)> = Mutex::new(([("", 0); MAX], 0));
    /// TSC cycles spent halted or printing the table.
    static EXCLUDED: AtomicU64 = AtomicU64::new(0);
    static PRINTED: AtomicBool = AtomicBool::new(false);

    /// Busy TSC cycles since the entry point.
    pub fn busy_cycles() -> u64 {
        super::super::tsc::now()
            .saturating_sub(super::entry_tsc())
            .saturating_sub(EXCLUDED.load(Ordering::Relaxed))
    }

    /// Leaves `cycles` out of [`busy_cycles`] (halted, or printing).
    pub fn exclude(cycles: u64) {
        EXCLUDED.fetch_add(cycles, Ordering::Relaxed);
    }

    fn wanted() -> bool {
        super::super::cmdline()
            .split_ascii_whitespace()
            .any(|w| w == "bootphases")
    }

    /// Stamps the end of phase `name`.
    pub fn phase(name: &'static str) {
        let at = busy_cycles();
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut table = TABLE.lock();
            let (entries, len) = &mut *table;
            if *len < MAX {
                entries[*len] = (name, at);
                *len += 1;
            }
        });
        if PRINTED.load(Ordering::Relaxed) && wanted() {
            let start = super::super::tsc::now();
            crate::println!("boot phase {name}: {at} busy cycles since entry");
            exclude(super::super::tsc::now() - start);
        }
    }

    /// Prints the table once, if the command line asks for it.
    pub fn report() {
        if PRINTED.swap(true, Ordering::Relaxed) || !wanted() {
            return;
        }
        let start = super::super::tsc::now();
        let (entries, len) = *TABLE.lock();
        let mut previous = 0;
        for &(name, at) in &entries[..len] {
            crate::println!(
                "boot phase {name}: {at} busy cycles since entry (+{})",
                at - previous
            );
            previous = at;
        }
        exclude(super::super::tsc::now() - start);
    }
}
