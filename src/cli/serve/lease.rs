//! The leader-election flags: their checks and the election they describe.

use std::time::Duration;

use anyhow::{Result, bail};

use super::{ControllerArgs, default_identity};
use crate::controller::leader;

impl ControllerArgs {
    /// The Lease's duration, renew period and retry period, refused unless
    /// 0 < retry <= renew < duration, renew + retry <= duration - renew (a
    /// holder renews, and can retry once, before its renew deadline) and the
    /// duration fits the Lease's 32-bit field.
    pub fn lease_timings(&self) -> Result<(Duration, Duration, Duration)> {
        let (duration, renew, retry) = (
            self.lease_duration_seconds,
            self.lease_renew_seconds,
            self.lease_retry_seconds,
        );
        if duration == 0 || renew == 0 || retry == 0 {
            bail!(
                "--lease-duration-seconds ({duration}), --lease-renew-seconds ({renew}) and --lease-retry-seconds ({retry}) must all be at least 1"
            );
        }
        if renew >= duration {
            bail!(
                "--lease-renew-seconds ({renew}) must be less than --lease-duration-seconds ({duration}): \
                 the holder renews the Lease before it runs out"
            );
        }
        if retry > renew {
            bail!(
                "--lease-retry-seconds ({retry}) must not exceed --lease-renew-seconds ({renew})"
            );
        }
        // The holder renews after `renew` and must have room for at least
        // one retry before its renew deadline (duration - renew).
        if renew + retry > duration - renew {
            bail!(
                "--lease-renew-seconds ({renew}) and --lease-retry-seconds ({retry}) leave no retry \
                 before the renew deadline: renew + retry must not exceed duration - renew \
                 (--lease-duration-seconds {duration})"
            );
        }
        if i32::try_from(duration).is_err() {
            bail!(
                "--lease-duration-seconds ({duration}) is larger than a Lease can say ({})",
                i32::MAX
            );
        }
        Ok((
            Duration::from_secs(duration),
            Duration::from_secs(renew),
            Duration::from_secs(retry),
        ))
    }

    /// The leader election these flags describe.
    pub fn election(&self) -> Result<leader::Election> {
        let (lease, renew, retry) = self.lease_timings()?;
        Ok(leader::Election {
            namespace: self.leader_election_namespace.clone(),
            name: self.lease_name.clone(),
            identity: self.identity.clone().unwrap_or_else(default_identity),
            lease,
            renew,
            retry,
        })
    }
}
