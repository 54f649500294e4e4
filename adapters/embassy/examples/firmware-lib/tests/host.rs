//! The driver on the host, on embassy-time's mock driver: answers pass, refused jobs count
//! against the breaker until it opens, and an open breaker keeps jobs off the link.

use core::cell::Cell;
use core::future::{Future, ready};

use rustkernel_embassy::resilience::{CircuitState, ResilienceError};
use rustkernel_firmware_lib_example::{Accelerator, Link, LinkError};

/// Doubles its job, or refuses it while `refusing`; counts transfers.
#[derive(Debug, Default)]
struct FakeLink {
    refusing: Cell<bool>,
    transfers: Cell<u32>,
}

impl Link for FakeLink {
    fn transfer(&self, job: u32) -> impl Future<Output = Result<u32, LinkError>> {
        self.transfers.set(self.transfers.get() + 1);
        ready(if self.refusing.get() {
            Err(LinkError::Nack)
        } else {
            Ok(job * 2)
        })
    }
}

#[test]
fn jobs_pass_then_refusals_open_the_breaker_and_keep_jobs_off_the_link() {
    embassy_futures::block_on(async {
        let mut accelerator = Accelerator::new(FakeLink::default(), 7);
        for job in 0..5 {
            assert_eq!(accelerator.run(job).await, Ok(job * 2));
        }
        // A NACK is permanent: not retried, counted. 5 of 10 failed: the breaker opens.
        accelerator.link().refusing.set(true);
        for _ in 0..5 {
            assert_eq!(
                accelerator.run(1).await,
                Err(ResilienceError::Operation(LinkError::Nack))
            );
        }
        assert_eq!(accelerator.state(), CircuitState::Open);
        assert_eq!(
            accelerator.link().transfers.get(),
            10,
            "one transfer per job: NACKs are not retried"
        );
        assert_eq!(accelerator.run(1).await, Err(ResilienceError::CircuitOpen));
        assert_eq!(accelerator.link().transfers.get(), 10, "not sent");
    });
}
