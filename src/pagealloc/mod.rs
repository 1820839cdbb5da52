//! Placeholder: the page allocator is being written (see issue 2).
pub const PAGE_SHIFT: usize = 13;
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
pub const CHUNK_PAGES: usize = 512;
pub const CHUNK_BYTES: usize = CHUNK_PAGES * PAGE_SIZE;
