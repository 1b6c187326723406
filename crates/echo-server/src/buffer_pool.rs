//! [`BufferPool`]: relay buffers shared by connections, so that an idle
//! connection holds none.

use std::sync::Mutex;

/// Relay buffers that connections take while they have data in flight and
/// give back when they go idle.
///
/// Ten thousand idle connections then cost ten thousand small task states
/// instead of ten thousand 64 KiB buffers, and a busy connection reuses a
/// buffer instead of allocating one per burst.
#[derive(Debug)]
pub(crate) struct BufferPool {
    buffer_len: usize,
    max_pooled: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A pool of buffers of `buffer_len` bytes that keeps at most
    /// `max_pooled` spare ones.
    pub(crate) const fn new(buffer_len: usize, max_pooled: usize) -> Self {
        Self {
            buffer_len,
            max_pooled,
            free: Mutex::new(Vec::new()),
        }
    }

    /// An empty buffer with the pool's capacity.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.lock()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_len))
    }

    /// Gives a buffer back. Beyond the pool's size it is freed.
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() != self.buffer_len {
            return;
        }
        buffer.clear();
        let mut free = self.lock();
        if free.len() < self.max_pooled {
            free.push(buffer);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // The lock guards plain data, and no code holding it can panic halfway
        // through an update, so a poisoned lock still holds a sound list.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_the_pool_size() {
        let pool = BufferPool::new(128, 1);
        let first = pool.take();
        assert_eq!(first.capacity(), 128);
        let first_ptr = first.as_ptr();
        let second = pool.take();
        pool.give(first);
        pool.give(second);
        assert_eq!(pool.lock().len(), 1, "the second spare buffer is freed");
        let reused = pool.take();
        assert_eq!(reused.as_ptr(), first_ptr);
    }

    #[test]
    fn given_back_buffers_come_out_empty() {
        let pool = BufferPool::new(16, 4);
        let mut buffer = pool.take();
        buffer.extend_from_slice(b"left over");
        pool.give(buffer);
        assert!(pool.take().is_empty());
    }

    #[test]
    fn buffers_of_another_size_are_not_kept() {
        let pool = BufferPool::new(16, 4);
        pool.give(Vec::with_capacity(32));
        assert!(pool.lock().is_empty());
    }
}
