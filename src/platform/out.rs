//! Output without allocation: a writer over a stack buffer, with decimal
//! and hexadecimal numbers. Reports, statistics, profiles and time series
//! all go through it, because they run inside malloc (or at exit, after the
//! heap may be in any state) where formatting into a `String` would
//! re-enter the allocator.

use super::os;

/// `v` in decimal into `out`; the number of bytes written.
pub fn fmt_u64(v: u64, out: &mut [u8]) -> usize {
    let mut d = [0u8; 20];
    let mut i = d.len();
    let mut x = v;
    loop {
        i -= 1;
        d[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let n = (d.len() - i).min(out.len());
    out[..n].copy_from_slice(&d[i..i + n]);
    n
}

/// Where an `Out` writes its buffer: `Err(errno)` if it could not.
pub trait Sink {
    fn put(&mut self, b: &[u8]) -> Result<(), i32>;
}

/// A file descriptor.
pub struct Fd(i32);

impl Sink for Fd {
    fn put(&mut self, b: &[u8]) -> Result<(), i32> {
        os::write_all(self.0, b)
    }
}

/// A caller's function, handed the text a line at a time (`Out::lines`:
/// glibc's `malloc_info` writes its FILE that way).
pub struct ByLine<F>(F);

impl<F: FnMut(&[u8])> Sink for ByLine<F> {
    fn put(&mut self, b: &[u8]) -> Result<(), i32> {
        (self.0)(b);
        Ok(())
    }
}

/// A writer to a sink (a file descriptor unless said otherwise) through an
/// `N`-byte buffer, flushed when full, by `flush`, and for a line sink at
/// each newline. A failed write is remembered (`error`, with its errno)
/// and later writes are dropped.
pub struct Out<const N: usize, S: Sink = Fd> {
    sink: S,
    buf: [u8; N],
    len: usize,
    error: i32,
    by_line: bool,
}

/// A buffer large enough for any one-line report.
pub type Line = Out<256>;

impl<const N: usize> Out<N> {
    pub const fn new(fd: i32) -> Self {
        Out { sink: Fd(fd), buf: [0; N], len: 0, error: 0, by_line: false }
    }

    /// A writer to stderr.
    pub const fn stderr() -> Self {
        Self::new(2)
    }
}

impl<const N: usize, F: FnMut(&[u8])> Out<N, ByLine<F>> {
    /// A writer that hands `f` each line (and a line longer than `N` bytes
    /// in pieces).
    pub const fn lines(f: F) -> Self {
        Out { sink: ByLine(f), buf: [0; N], len: 0, error: 0, by_line: true }
    }
}

impl<const N: usize, S: Sink> Out<N, S> {
    /// Write out what is buffered.
    pub fn flush(&mut self) {
        if self.error == 0 && self.len > 0 {
            if let Err(e) = self.sink.put(&self.buf[..self.len]) {
                self.error = e;
            }
        }
        self.len = 0;
    }

    /// The errno of the first failed write, if any.
    pub fn error(&self) -> Option<i32> {
        (self.error != 0).then_some(self.error)
    }

    /// Bytes.
    pub fn s(&mut self, b: &[u8]) -> &mut Self {
        for &c in b {
            if self.len == N {
                self.flush();
            }
            self.buf[self.len] = c;
            self.len += 1;
            if self.by_line && c == b'\n' {
                self.flush();
            }
        }
        self
    }

    /// `v` in decimal, right-aligned in `width` columns.
    pub fn n(&mut self, v: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let len = fmt_u64(v, &mut digits);
        for _ in len..width {
            self.s(b" ");
        }
        self.s(&digits[..len])
    }

    /// `v` in hexadecimal with a `0x` prefix.
    pub fn hex(&mut self, v: usize) -> &mut Self {
        let mut d = [0u8; 16];
        let mut i = d.len();
        let mut x = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[x & 15];
            x >>= 4;
            if x == 0 {
                break;
            }
        }
        self.s(b"0x").s(&d[i..])
    }

    /// Fill the buffer straight from `read` (which returns the bytes it
    /// put in, 0 at the end or a negative value on error), writing each
    /// piece out: copying a file without a second buffer.
    pub fn copy_from(&mut self, mut read: impl FnMut(&mut [u8]) -> isize) {
        self.flush();
        while self.error == 0 {
            let n = read(&mut self.buf);
            if n <= 0 {
                break;
            }
            self.len = n as usize;
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_without_allocating() {
        let mut b = [0u8; 20];
        let n = fmt_u64(0, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = fmt_u64(u64::MAX, &mut b);
        assert_eq!(&b[..n], b"18446744073709551615");
        let mut short = [0u8; 3];
        assert_eq!(fmt_u64(12345, &mut short), 3);
        assert_eq!(&short, b"123");
    }

    #[test]
    fn a_line_sink_gets_whole_lines() {
        let mut got = std::vec::Vec::new();
        {
            let mut o = Out::<8, _>::lines(|b: &[u8]| got.push(b.to_vec()));
            o.s(b"ab\ncd").n(42, 4).s(b"\n0123456789");
            o.flush();
        }
        let want: [&[u8]; 4] = [b"ab\n", b"cd  42\n", b"01234567", b"89"];
        assert_eq!(got, want.map(|w| w.to_vec()));
    }

    #[test]
    fn a_failed_write_is_remembered() {
        let mut o = Out::<8>::new(-1);
        o.s(b"0123456789");
        o.flush();
        assert_eq!(o.error(), Some(libc::EBADF));
    }
}
