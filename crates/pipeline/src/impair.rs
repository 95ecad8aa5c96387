//! Emulated impairments of physical links: delay lines and loss.
//!
//! The kernel here has no netem, so the data plane emulates what a long or
//! lossy physical link does. A [`DelayLine`] is a deadline queue driven by the
//! caller's clock: what the egress scheduler let go at `t` leaves at
//! `t + delay`. Loss is decided per frame by a seeded [`crate::rng::Rng`]
//! ([`crate::dispatch::Dispatch`]), so a seed repeats its losses exactly.

use std::collections::VecDeque;

use netslice_model::api::UnderlayLink;
use netslice_qos::Nanos;

/// Packets a delay line holds at most.
pub const DELAY_QUEUE: usize = 8192;

/// What a physical link does to what crosses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impairment {
    /// Loss probability, parts per million.
    pub loss_ppm: u32,
    /// One-way delay added, nanoseconds (0: none).
    pub delay: Nanos,
}

impl Impairment {
    /// The impairment a physical link's config asks for.
    pub fn of(u: &UnderlayLink) -> Impairment {
        Impairment {
            loss_ppm: u.loss.map(|l| l.ppm()).unwrap_or(0),
            delay: u.delay.map(|d| d.duration().as_nanos().min(u128::from(u64::MAX)) as u64).unwrap_or(0),
        }
    }
}

/// A FIFO whose items leave `delay` after they entered.
#[derive(Debug)]
pub struct DelayLine<T> {
    delay: Nanos,
    limit: usize,
    queue: VecDeque<(Nanos, T)>,
}

impl<T> DelayLine<T> {
    /// A line of `delay` nanoseconds holding at most `limit` items.
    pub fn new(delay: Nanos, limit: usize) -> DelayLine<T> {
        DelayLine { delay, limit: limit.max(1), queue: VecDeque::new() }
    }

    /// The delay.
    pub fn delay(&self) -> Nanos {
        self.delay
    }

    /// Changes the delay for what enters from now on; what is queued keeps
    /// its time (so nothing queued is lost or reordered by the change).
    pub fn set_delay(&mut self, delay: Nanos) {
        self.delay = delay;
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// `item` enters at `now`; a full line gives it back.
    pub fn push(&mut self, now: Nanos, item: T) -> Result<(), T> {
        if self.queue.len() >= self.limit {
            return Err(item);
        }
        // Never before what entered earlier (a shortened delay keeps order).
        let due = now.saturating_add(self.delay).max(self.queue.back().map_or(0, |(d, _)| *d));
        self.queue.push_back((due, item));
        Ok(())
    }

    /// The next item due at `now`, if any.
    pub fn poll(&mut self, now: Nanos) -> Option<T> {
        match self.queue.front() {
            Some((due, _)) if *due <= now => self.queue.pop_front().map(|(_, t)| t),
            _ => None,
        }
    }

    /// When the next item is due (`None`: empty).
    pub fn poll_timeout(&self) -> Option<Nanos> {
        self.queue.front().map(|(d, _)| *d)
    }

    /// Empties the line.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.queue.drain(..).map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_leave_exactly_their_delay_later_in_order() {
        let mut d = DelayLine::new(1_000, 4);
        assert_eq!(d.poll_timeout(), None);
        d.push(10, 'a').unwrap();
        d.push(20, 'b').unwrap();
        assert_eq!(d.poll_timeout(), Some(1_010));
        assert_eq!(d.poll(1_009), None);
        assert_eq!(d.poll(1_010), Some('a'));
        assert_eq!(d.poll(1_010), None);
        assert_eq!(d.poll_timeout(), Some(1_020));
        // A shorter delay does not overtake what is queued.
        d.set_delay(1);
        d.push(30, 'c').unwrap();
        assert_eq!(d.poll(1_019), None);
        assert_eq!(d.poll(1_020), Some('b'));
        assert_eq!(d.poll(1_020), Some('c'));
        assert!(d.is_empty());
    }

    #[test]
    fn a_full_line_gives_the_item_back() {
        let mut d = DelayLine::new(5, 2);
        d.push(0, 1).unwrap();
        d.push(0, 2).unwrap();
        assert_eq!(d.push(0, 3), Err(3));
        assert_eq!(d.drain().collect::<Vec<_>>(), vec![1, 2]);
    }
}
