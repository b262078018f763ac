//! Device buffers that go back to a pool when dropped, so the many same-shaped steps of a path
//! method reuse memory instead of allocating it.

use std::collections::HashMap;
use std::sync::Mutex;

/// A `len`-float buffer on the wgpu device. Its allocation may be larger (size classes).
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    len: usize,
}

impl GpuBuffer {
    pub(super) fn new(buffer: wgpu::Buffer, len: usize) -> Self {
        GpuBuffer {
            buffer: Some(buffer),
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} floats)", self.len)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Ok(backend)) = (self.buffer.take(), super::backend()) {
            backend.ctx.pool.release(buffer);
        }
    }
}

/// Allocation size for `bytes`: powers of two up to 1 MiB, then whole MiB, so that buffers of
/// nearby sizes share a class.
pub fn size_class(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let bytes = bytes.max(256);
    if bytes <= MIB {
        bytes.next_power_of_two()
    } else {
        bytes.div_ceil(MIB) * MIB
    }
}

/// Free buffers by size class, bounded so that an idle pool does not pin device memory.
pub struct Pool {
    free: Mutex<(HashMap<u64, Vec<wgpu::Buffer>>, u64)>,
    limit: u64,
}

impl Pool {
    pub fn new(limit: u64) -> Self {
        Pool {
            free: Mutex::new((HashMap::new(), 0)),
            limit,
        }
    }

    pub fn take(&self, class: u64) -> Option<wgpu::Buffer> {
        let mut guard = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = guard.0.get_mut(&class)?.pop()?;
        guard.1 -= class;
        Some(buffer)
    }

    pub fn release(&self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        let mut guard = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1 + class > self.limit {
            return; // dropped: wgpu frees it once no submitted work uses it
        }
        guard.1 += class;
        guard.0.entry(class).or_default().push(buffer);
    }

    /// Frees every pooled buffer (before retrying an allocation that ran out of memory).
    pub fn clear(&self) {
        let mut guard = self.free.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.clear();
        guard.1 = 0;
    }
}
