//! What the kernel says about the system clock's error (`adjtimex(2)`), for
//! timestamps that must state how good they are (STAMP's Error Estimate).

/// The system clock's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockError {
    /// Synchronized to an external source (the kernel's `STA_UNSYNC` is clear
    /// and the state is not `TIME_ERROR`).
    pub synchronized: bool,
    /// The error bound, seconds: the estimated error when synchronized, the
    /// maximum error otherwise (which the kernel lets grow to 16 s).
    pub seconds: f64,
}

/// Reads the clock's state (read-only: `modes` is 0, nothing is adjusted).
pub fn clock_error() -> std::io::Result<ClockError> {
    // SAFETY: `timex` is plain old data; all zeroes is a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: with `modes` 0 the call only reads the clock's state into the
    // struct it is given, which lives across the call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let synchronized = state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0;
    let micros = if synchronized { tx.esterror } else { tx.maxerror };
    // At least a microsecond: the kernel's unit.
    Ok(ClockError { synchronized, seconds: (micros.max(1) as f64) / 1e6 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_answers_with_a_positive_bound() {
        let e = clock_error().unwrap();
        assert!(e.seconds >= 1e-6 && e.seconds <= 16.5, "{e:?}");
    }
}
