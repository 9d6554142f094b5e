//! virtio's event-index rule (virtio 1.1 §2.6.7.2, `vring_need_event`):
//! whether the other side asked to be notified of the entries `old..new`,
//! given the index it published. Used by `arch::virtio_kick` for kicks;
//! plain arithmetic on 16-bit ring indices, tested on the host.

/// Whether a side that published `event` wants to hear that the ring
/// index moved from `old` to `new` (wrapping 16-bit arithmetic).
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::need_event;

    #[test]
    fn kicks_only_when_the_event_index_is_crossed() {
        // The device waits at 10 (has seen 0..10): adding 10 needs a kick.
        assert!(need_event(10, 11, 10));
        // It is still busy with earlier buffers (waits at 5): no kick.
        assert!(!need_event(5, 11, 10));
        // A batch 10..20 crosses 15: one kick.
        assert!(need_event(15, 20, 10));
        // Nothing new: never.
        assert!(!need_event(10, 10, 10));
        // Across the 16-bit wrap.
        assert!(need_event(65535, 1, 65534));
        assert!(!need_event(65530, 1, 65534));
    }
}
