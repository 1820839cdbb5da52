//! Fatal error reports, written with write(2) from a stack buffer: a heap
//! that just found corruption must not allocate to say so.

use crate::os;

struct Buf {
    b: [u8; 256],
    n: usize,
}

impl Buf {
    fn new() -> Self {
        Buf { b: [0; 256], n: 0 }
    }
    fn push(&mut self, s: &[u8]) {
        for &c in s {
            if self.n < self.b.len() {
                self.b[self.n] = c;
                self.n += 1;
            }
        }
    }
    fn hex(&mut self, mut v: usize) {
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[v & 15];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.push(b"0x");
        self.push(&tmp[i..]);
    }
}

/// An internal invariant broke: say so and abort.
#[cold]
pub fn fatal(msg: &[u8]) -> ! {
    let mut b = Buf::new();
    b.push(b"goheap: fatal error: ");
    b.push(msg);
    b.push(b"\n");
    os::write_stderr(&b.b[..b.n]);
    os::abort()
}

/// The program handed `func` a bad pointer: report it glibc-style
/// (`goheap: free(): double free 0x...`) and abort.
#[cold]
pub fn bad_pointer(func: &[u8], what: &[u8], addr: usize) -> ! {
    let mut b = Buf::new();
    b.push(b"goheap: ");
    b.push(func);
    b.push(b"(): ");
    b.push(what);
    b.push(b" ");
    b.hex(addr);
    b.push(b"\n");
    os::write_stderr(&b.b[..b.n]);
    os::abort()
}
