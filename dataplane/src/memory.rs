//! Large allocations on huge pages: a global allocator for the binaries.
//!
//! The rule tables are large (a million-entry blocklist is some 40 MiB) and a
//! burst's lookups land on pages all over them. On 4 KiB pages nearly every
//! lookup missed the TLB as well as the cache: perf put the blocklist's
//! prefetches, stalled on page walks, at over half of the lookup's samples on
//! the drop path. DPDK keeps its own memory on huge pages; this does the same
//! for the tables, which are Rust's: an allocation of at least [`HUGE_PAGE`]
//! bytes is mapped on its own, aligned to a huge page, and marked for
//! transparent huge pages (`MADV_HUGEPAGE`, which the kernel honours even where
//! they are only on by request). Where the kernel has none to give, the
//! mapping keeps small pages and works as before. Smaller allocations go to
//! the system allocator unchanged.
//!
//! Pages are still placed by the first write to them, so a table a worker
//! copies on its own lcore stays on its NUMA node.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// The size of a transparent huge page on x86_64 (and of the allocations that
/// get them, at least).
pub const HUGE_PAGE: usize = 2 << 20;

/// The global allocator: `#[global_allocator] static A: HugePageAllocator =
/// HugePageAllocator;` in a binary.
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAllocator;

/// Whether `layout` gets a mapping of its own.
#[inline]
fn mapped(layout: &Layout) -> bool {
    layout.size() >= HUGE_PAGE && layout.align() <= HUGE_PAGE
}

/// `size` rounded up to whole huge pages.
#[inline]
fn mapped_len(size: usize) -> usize {
    size.div_ceil(HUGE_PAGE) * HUGE_PAGE
}

/// A zeroed mapping of `mapped_len(size)` bytes aligned to a huge page, marked
/// for huge pages; null if the kernel refuses the mapping.
fn map(size: usize) -> *mut u8 {
    let len = mapped_len(size);
    let Some(reserve) = len.checked_add(HUGE_PAGE) else {
        return std::ptr::null_mut();
    };
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserve,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let start = start.cast::<u8>();
    let head = start.align_offset(HUGE_PAGE);
    let tail = reserve - head - len;
    // SAFETY: `head + len + tail == reserve`: the ranges unmapped are the parts
    // of the mapping just made before and after the aligned `len` bytes kept,
    // and nothing refers to them. madvise only advises on the range kept.
    unsafe {
        if head > 0 {
            libc::munmap(start.cast(), head);
        }
        let aligned = start.add(head);
        if tail > 0 {
            libc::munmap(aligned.add(len).cast(), tail);
        }
        // Refused (a kernel without THP): small pages, as any allocation.
        libc::madvise(aligned.cast(), len, libc::MADV_HUGEPAGE);
        aligned
    }
}

// SAFETY: a mapped allocation is `mapped_len(size)` bytes of fresh anonymous
// memory aligned to HUGE_PAGE (at least the layout's alignment, which `mapped`
// requires), and it is only ever returned to `munmap` with the same length,
// which `dealloc` works out from the same layout; everything else is the
// system allocator's, with its own contract passed through.
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            return map(layout.size());
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            // A fresh mapping reads as zeros: writing them would fault in
            // every page now, on this thread's node.
            return map(layout.size());
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(&layout) {
            // SAFETY: `ptr` came from `map` for this layout's size (the
            // caller's contract), so this is exactly the mapping it made.
            unsafe { libc::munmap(ptr.cast(), mapped_len(layout.size())) };
            return;
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with the old alignment is
        // a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !mapped(&layout) && !mapped(&new_layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        if mapped(&layout)
            && mapped(&new_layout)
            && mapped_len(new_size) == mapped_len(layout.size())
        {
            // The mapping already has the room.
            return ptr;
        }
        // SAFETY: `new_layout` is valid (above); the old block holds
        // `layout.size()` readable bytes and the new one `new_size`, they do
        // not overlap, and the old one is freed with its own layout.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel says backs `ptr`'s huge page: the `AnonHugePages` of
    /// its mapping in `/proc/self/smaps`, in KiB.
    fn anon_huge_kib(ptr: *const u8) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let at = ptr as usize;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = lo <= at && at < hi;
                        continue;
                    }
                }
            }
            if inside {
                if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                    return kib.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn large_blocks_are_aligned_zeroed_and_keep_their_bytes_when_resized() {
        let a = HugePageAllocator;
        let layout = Layout::from_size_align(3 * HUGE_PAGE + 5, 64).expect("layout");
        // SAFETY: a valid layout; every access below is within the block's
        // size, and each block is freed once with the layout it has then.
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % HUGE_PAGE, 0, "aligned to a huge page");
            let bytes = std::slice::from_raw_parts_mut(p, layout.size());
            assert!(bytes.iter().all(|b| *b == 0));
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            // Within the mapping's room: the same block.
            let same = a.realloc(p, layout, 4 * HUGE_PAGE);
            assert_eq!(same, p);
            let layout = Layout::from_size_align(4 * HUGE_PAGE, 64).expect("layout");
            // Beyond it, and down to the system allocator's sizes: moved, kept.
            let grown = a.realloc(same, layout, 9 * HUGE_PAGE);
            let layout = Layout::from_size_align(9 * HUGE_PAGE, 64).expect("layout");
            let shrunk = a.realloc(grown, layout, 4096);
            let bytes = std::slice::from_raw_parts(shrunk, 4096);
            assert!(bytes.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
            a.dealloc(shrunk, Layout::from_size_align(4096, 64).expect("layout"));
        }
    }

    #[test]
    fn large_blocks_get_huge_pages_where_the_kernel_has_them() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !thp.contains("[always]") && !thp.contains("[madvise]") {
            eprintln!("transparent huge pages are off here: nothing to check");
            return;
        }
        let a = HugePageAllocator;
        let layout = Layout::from_size_align(8 * HUGE_PAGE, 8).expect("layout");
        // SAFETY: a valid layout; the writes stay within it; freed once.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            std::slice::from_raw_parts_mut(p, layout.size()).fill(1);
            let huge = anon_huge_kib(p).expect("the block's mapping in smaps");
            a.dealloc(p, layout);
            // The kernel may lack free huge pages for some of it; none at all
            // means the advice was not given.
            assert!(huge >= 2048, "AnonHugePages {huge} kB");
        }
    }
}
