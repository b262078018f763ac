//! A global allocator that puts large buffers on transparent huge pages.
//!
//! A pass over a long prompt allocates gigabytes of activations, and on 4 KiB pages each one
//! is first touched a page fault at a time: at 2,048 tokens SmolLM2's saliency took a million
//! faults and 2.3 s of system time. Where the kernel gives huge pages only to memory that
//! asks for them (`transparent_hugepage=madvise`, the common default), asking on every buffer
//! of at least a huge page took that to 0.42 million faults and 1.5 s. The memory still comes
//! from the system allocator (so freed buffers are reused as before); this only adds the
//! advice, before the buffer is first written.
//!
//! The library does not install it (an embedding program may have its own allocator); the
//! `gradlens` binary and the Python module do:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: gradlens::alloc::HugePages = gradlens::alloc::HugePages;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, plus `MADV_HUGEPAGE` on buffers of at least [`HUGE_PAGE`] bytes.
pub struct HugePages;

/// The size of a huge page on x86-64 and AArch64 (with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE_PAGE {
            return unsafe { System.alloc_zeroed(layout) };
        }
        // calloc may zero the buffer itself, touching it before the advice; so allocate,
        // advise, then zero.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            advise(ptr, layout.size());
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        advise(new, new_size);
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Advises huge pages for the whole huge pages inside `[ptr, ptr + len)`.
fn advise(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    if !ptr.is_null() && len >= HUGE_PAGE {
        let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
        let end = (ptr as usize + len) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // Advice only: where the kernel declines (THP off, an old kernel), nothing changes.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_zeroed_buffers_are_zero_and_usable() {
        for size in [HUGE_PAGE - 8, HUGE_PAGE, 3 * HUGE_PAGE + 12_345] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            unsafe {
                let ptr = HugePages.alloc_zeroed(layout);
                assert!(!ptr.is_null());
                let bytes = std::slice::from_raw_parts_mut(ptr, size);
                assert!(bytes.iter().all(|&b| b == 0));
                bytes.fill(7);
                let grown = HugePages.realloc(ptr, layout, 2 * size);
                let grown_bytes = std::slice::from_raw_parts(grown, 2 * size);
                assert!(grown_bytes[..size].iter().all(|&b| b == 7));
                HugePages.dealloc(grown, Layout::from_size_align(2 * size, 64).unwrap());
            }
        }
    }
}
