//! The buffer a whole-file read fills.
//!
//! Why: filling a fresh 64 MiB `Vec` faults in 16,384 pages one at a time,
//! and on the VM this crate is benchmarked on first touch of memory is
//! slow: `Files::read` of a 64 MiB file took 61–63 ms against 43 ms for
//! streaming the same file. Asking for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`, which the usual `madvise` THP mode needs)
//! makes that 32 faults of 2 MiB: 50–52 ms (criterion, two runs each,
//! 2026-11-25). Only the whole 2 MiB pages inside the allocation are
//! advised, and only for buffers of at least [`HUGE_FROM`]; elsewhere than
//! Linux this is a plain `Vec::with_capacity`.

/// Buffers from this size ask for huge pages.
pub(crate) const HUGE_FROM: usize = 4 << 20;

/// An empty `Vec` with room for `n` bytes.
pub(crate) fn with_capacity(n: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(n);
    if n >= HUGE_FROM {
        prefer_huge_pages(&mut buf);
    }
    buf
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn prefer_huge_pages(buf: &mut Vec<u8>) {
    const HUGE: usize = 2 << 20;
    let ptr = buf.as_mut_ptr() as usize;
    let start = ptr.next_multiple_of(HUGE);
    let end = ptr.saturating_add(buf.capacity()) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside the Vec's own allocation, which
        // `buf` keeps alive; MADV_HUGEPAGE only changes how the kernel
        // backs those pages, never their contents or the mapping. A
        // failure (THP off, an old kernel) is harmless and ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn prefer_huge_pages(_buf: &mut Vec<u8>) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// `AnonHugePages` (kB) of the mapping that holds `addr`.
    fn huge_kb_at(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = a <= addr && addr < b;
            } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
        0
    }

    #[test]
    fn large_buffers_are_backed_by_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let mut buf = with_capacity(16 << 20);
        assert!(buf.capacity() >= 16 << 20 && buf.is_empty());
        buf.resize(16 << 20, 7);
        let huge = huge_kb_at(buf.as_ptr() as usize + (8 << 20));
        if thp.contains("[never]") {
            // The machine forbids THP; the advice must still be harmless.
            assert_eq!(huge, 0);
        } else {
            assert!(
                huge >= 2048,
                "no huge pages behind a 16 MiB read buffer ({thp:?})"
            );
        }
        assert!(buf.iter().all(|b| *b == 7));
    }

    #[test]
    fn small_buffers_are_left_alone() {
        let buf = with_capacity(64 << 10);
        assert!(buf.capacity() >= 64 << 10);
    }
}
