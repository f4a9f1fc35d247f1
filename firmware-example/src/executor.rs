//! The smallest executor that runs proto-core's async driver on a board
//! (feature `async-driver`): [`block_on`] polls one future with a waker that
//! does nothing, and between polls lets the core sleep until the next
//! interrupt (the board's tick). Nothing else runs meanwhile, which is all
//! the firmware needs: one task, the board's life (`app::run`).
//!
//! Boards with an embassy HAL (feature `embassy`) run that task under
//! embassy-executor instead and use only [`first_of`] from here.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

#[cfg(not(feature = "embassy"))]
pub use polled::block_on;

/// Which of two futures finished first.
pub enum Either<A, B> {
    /// The first.
    First(A),
    /// The second.
    Second(B),
}

/// Whichever of `a` and `b` completes first (`a` wins a tie); the other is dropped.
pub async fn first_of<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(out));
        }
        Poll::Pending
    })
    .await
}

/// [`block_on`] and its waker: the executor of the boards without embassy.
#[cfg(not(feature = "embassy"))]
mod polled {
    use core::future::Future;
    use core::pin::pin;
    use core::ptr;
    use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

    use crate::board;

    /// A waker that does nothing: [`block_on`] polls again after every tick anyway.
    fn noop_waker() -> Waker {
        const VTABLE: RawWakerVTable = RawWakerVTable::new(
            |_| RawWaker::new(ptr::null(), &VTABLE),
            |_| {},
            |_| {},
            |_| {},
        );
        // SAFETY: every function of the vtable ignores the (null) data pointer,
        // so the contract of `RawWaker` holds trivially.
        unsafe { Waker::from_raw(RawWaker::new(ptr::null(), &VTABLE)) }
    }

    /// Runs `future` to completion on this core.
    pub fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            board::wait_for_interrupt();
        }
    }
}
