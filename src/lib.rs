//! goheap: a malloc for C and C++ programs built on the Go runtime's
//! allocator design. See `README.md` for use and `../shared/DESIGN.md` for
//! the layers; each layer is one module here, bottom to top.
#![allow(clippy::missing_safety_doc)]

pub mod os;
pub mod pagealloc;
pub mod sizeclass;
