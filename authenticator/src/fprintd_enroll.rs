//! authenticatorBioEnrollment on fprintd: [`FprintdVerifier`] enrolls, lists and removes the
//! configured user's fingers through fprintd's `EnrollStart` / `EnrollStatus` /
//! `DeleteEnrolledFinger`.
//!
//! fprintd knows fingers by name (`right-index-finger`, ...), not by template: a template ID is
//! one byte, the finger's position in [`FINGERS`] plus one, and a new enrollment takes the
//! first finger that is not enrolled yet. The enrollment keeps the sensor claimed between the
//! CTAP commands that capture its samples, and releases it when done, failed or cancelled.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use zbus::blocking::Proxy;
use zbus::zvariant::OwnedObjectPath;

use crate::api::bio_enrollment::{BioEnrollment, BioError, EnrollSample, SampleStatus};
use crate::api::user_verifier::{Interaction, KeepaliveStatus};
use crate::fprintd::{DEVICE, FprintdVerifier, MANAGER, MANAGER_PATH, SERVICE};

/// fprintd's finger names; a template ID is the position here plus one.
pub const FINGERS: [&str; 10] = [
    "right-index-finger",
    "left-index-finger",
    "right-thumb",
    "left-thumb",
    "right-middle-finger",
    "left-middle-finger",
    "right-ring-finger",
    "left-ring-finger",
    "right-little-finger",
    "left-little-finger",
];

/// Samples per enrollment when fprintd does not say.
const DEFAULT_STAGES: u8 = 5;

/// The template ID of a finger name.
pub fn template_id(finger: &str) -> Option<Vec<u8>> {
    let index = FINGERS.iter().position(|f| *f == finger)?;
    u8::try_from(index + 1).ok().map(|id| vec![id])
}

/// The finger name of a template ID.
pub fn finger_name(template_id: &[u8]) -> Option<&'static str> {
    let [id] = template_id else {
        return None;
    };
    FINGERS.get(usize::from(*id).checked_sub(1)?).copied()
}

/// What one fprintd `EnrollStatus` result means for the enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollStep {
    /// A good sample; more are needed.
    StagePassed,
    /// The last good sample: the finger is enrolled.
    Completed,
    /// An unusable sample with this CTAP feedback; the person should touch again.
    Retry(SampleStatus),
    /// The finger is already enrolled (fprintd ends the enrollment).
    Duplicate,
    /// No room for another print.
    DataFull,
    /// The enrollment failed or the sensor went away.
    Failed,
}

/// Maps an fprintd enroll result string.
pub fn enroll_step(result: &str) -> EnrollStep {
    match result {
        "enroll-stage-passed" => EnrollStep::StagePassed,
        "enroll-completed" => EnrollStep::Completed,
        "enroll-retry-scan" => EnrollStep::Retry(SampleStatus::PoorQuality),
        "enroll-swipe-too-short" => EnrollStep::Retry(SampleStatus::TooShort),
        "enroll-finger-not-centered" => EnrollStep::Retry(SampleStatus::TooSkewed),
        "enroll-remove-and-retry" => EnrollStep::Retry(SampleStatus::NoUpTransition),
        "enroll-duplicate" => EnrollStep::Duplicate,
        "enroll-data-full" => EnrollStep::DataFull,
        _ => EnrollStep::Failed,
    }
}

/// A running enrollment: the claimed device and its `EnrollStatus` signals.
pub(crate) struct EnrollSession {
    finger: usize,
    device: Proxy<'static>,
    statuses: Receiver<(String, bool)>,
    remaining: u8,
}

impl EnrollSession {
    fn finish(self) {
        let _ = self.device.call::<_, _, ()>("EnrollStop", &());
        let _ = self.device.call::<_, _, ()>("Release", &());
    }
}

fn unavailable(what: &str) -> impl Fn(zbus::Error) -> BioError + '_ {
    move |e| BioError::Unavailable(format!("{what}: {e}"))
}

impl FprintdVerifier {
    fn device_proxy(&self) -> Result<Proxy<'static>, BioError> {
        let connection = self
            .connection()
            .ok_or_else(|| BioError::Unavailable("no system bus".into()))?;
        let manager = Proxy::new(connection, SERVICE, MANAGER_PATH, MANAGER)
            .map_err(unavailable("fprintd manager"))?;
        let path: OwnedObjectPath = manager
            .call("GetDefaultDevice", &())
            .map_err(unavailable("no fingerprint sensor"))?;
        Proxy::new(connection, SERVICE, path, DEVICE).map_err(unavailable("fprintd device"))
    }

    pub(crate) fn enrolled_fingers(&self, device: &Proxy<'_>) -> Vec<String> {
        // fprintd answers NoEnrolledPrints as an error when there are none.
        device
            .call("ListEnrolledFingers", &(self.username(),))
            .unwrap_or_default()
    }

    /// Waits for the next sample of the running enrollment.
    fn next_sample(
        &mut self,
        timeout: Duration,
        interaction: &Interaction,
    ) -> Result<EnrollSample, BioError> {
        let deadline = Instant::now() + timeout;
        interaction.set_status(KeepaliveStatus::UpNeeded);
        let outcome = loop {
            let Some(session) = self.enrolling.as_mut() else {
                break Err(BioError::NoEnrollment);
            };
            if interaction.is_cancelled() {
                break Err(BioError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(BioError::Timeout);
            }
            let (result, done) = match session
                .statuses
                .recv_timeout((deadline - now).min(Duration::from_millis(50)))
            {
                Ok(status) => status,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    self.end_enrollment();
                    break Err(BioError::Unavailable("fprintd's signals stopped".into()));
                }
            };
            let step = enroll_step(&result);
            tracing::debug!(result, done, "fprintd enroll status");
            break match step {
                EnrollStep::StagePassed if !done => {
                    // Never 0 before fprintd says the enrollment is complete.
                    session.remaining = session.remaining.saturating_sub(1).max(1);
                    Ok(EnrollSample {
                        status: SampleStatus::Good,
                        remaining: session.remaining,
                    })
                }
                EnrollStep::Completed | EnrollStep::StagePassed => {
                    tracing::info!(finger = FINGERS[session.finger], "fingerprint enrolled");
                    self.end_enrollment();
                    Ok(EnrollSample {
                        status: SampleStatus::Good,
                        remaining: 0,
                    })
                }
                EnrollStep::Retry(status) if !done => Ok(EnrollSample {
                    status,
                    remaining: session.remaining,
                }),
                EnrollStep::Duplicate => {
                    let remaining = session.remaining;
                    self.end_enrollment();
                    Ok(EnrollSample {
                        status: SampleStatus::Exists,
                        remaining,
                    })
                }
                EnrollStep::DataFull => {
                    self.end_enrollment();
                    Err(BioError::Full)
                }
                EnrollStep::Retry(_) | EnrollStep::Failed => {
                    self.end_enrollment();
                    Err(BioError::Failed(result))
                }
            };
        };
        interaction.set_status(KeepaliveStatus::Processing);
        outcome
    }

    fn end_enrollment(&mut self) {
        if let Some(session) = self.enrolling.take() {
            session.finish();
        }
    }
}

impl BioEnrollment for FprintdVerifier {
    fn max_capture_samples(&mut self) -> u8 {
        self.device_proxy()
            .ok()
            .and_then(|d| d.get_property::<i32>("num-enroll-stages").ok())
            .and_then(|n| u8::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_STAGES)
    }

    fn enroll_begin(
        &mut self,
        timeout: Duration,
        interaction: &Interaction,
    ) -> Result<(Vec<u8>, EnrollSample), BioError> {
        self.end_enrollment();
        let stages = self.max_capture_samples();
        let device = self.device_proxy()?;
        let enrolled = self.enrolled_fingers(&device);
        let finger = FINGERS
            .iter()
            .position(|f| !enrolled.iter().any(|e| e == f))
            .ok_or(BioError::Full)?;
        let signals = device
            .receive_signal("EnrollStatus")
            .map_err(unavailable("EnrollStatus signals"))?;
        let (tx, statuses) = channel();
        // The signal iterator blocks; this thread forwards statuses until the enrollment's last
        // one (or until the receiver is gone and the next signal arrives).
        std::thread::spawn(move || {
            for message in signals {
                let Ok((result, done)) = message.body().deserialize::<(String, bool)>() else {
                    continue;
                };
                if tx.send((result, done)).is_err() || done {
                    break;
                }
            }
        });
        device
            .call::<_, _, ()>("Claim", &(self.username(),))
            .map_err(unavailable("claiming the sensor"))?;
        if let Err(e) = device.call::<_, _, ()>("EnrollStart", &(FINGERS[finger],)) {
            let _ = device.call::<_, _, ()>("Release", &());
            return Err(BioError::Unavailable(format!("EnrollStart: {e}")));
        }
        tracing::info!(
            finger = FINGERS[finger],
            "enrolling a fingerprint: touch the sensor"
        );
        self.enrolling = Some(EnrollSession {
            finger,
            device,
            statuses,
            remaining: stages,
        });
        let template = template_id(FINGERS[finger]).ok_or(BioError::NoEnrollment)?;
        let sample = self.next_sample(timeout, interaction)?;
        Ok((template, sample))
    }

    fn enroll_capture_next(
        &mut self,
        template_id: &[u8],
        timeout: Duration,
        interaction: &Interaction,
    ) -> Result<EnrollSample, BioError> {
        let running = self
            .enrolling
            .as_ref()
            .is_some_and(|s| finger_name(template_id) == Some(FINGERS[s.finger]));
        if !running {
            return Err(BioError::NoEnrollment);
        }
        self.next_sample(timeout, interaction)
    }

    fn enroll_cancel(&mut self) {
        self.end_enrollment();
    }

    fn enrollments(&mut self) -> Result<Vec<Vec<u8>>, BioError> {
        let device = self.device_proxy()?;
        Ok(self
            .enrolled_fingers(&device)
            .iter()
            .filter_map(|f| template_id(f))
            .collect())
    }

    fn remove(&mut self, template_id: &[u8]) -> Result<(), BioError> {
        let finger = finger_name(template_id).ok_or(BioError::UnknownTemplate)?;
        let device = self.device_proxy()?;
        if !self.enrolled_fingers(&device).iter().any(|f| f == finger) {
            return Err(BioError::UnknownTemplate);
        }
        device
            .call::<_, _, ()>("Claim", &(self.username(),))
            .map_err(unavailable("claiming the sensor"))?;
        let deleted = device.call::<_, _, ()>("DeleteEnrolledFinger", &(finger,));
        let _ = device.call::<_, _, ()>("Release", &());
        deleted.map_err(|e| BioError::Failed(format!("DeleteEnrolledFinger: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_ids_and_finger_names_are_inverse() {
        for finger in FINGERS {
            let id = template_id(finger).unwrap();
            assert_eq!(finger_name(&id), Some(finger));
        }
        assert_eq!(template_id("right-index-finger"), Some(vec![1]));
        assert_eq!(finger_name(&[0]), None);
        assert_eq!(finger_name(&[11]), None);
        assert_eq!(finger_name(&[1, 2]), None);
        assert_eq!(template_id("nose"), None);
    }

    #[test]
    fn every_fprintd_enroll_result_maps_to_a_step() {
        assert_eq!(enroll_step("enroll-stage-passed"), EnrollStep::StagePassed);
        assert_eq!(enroll_step("enroll-completed"), EnrollStep::Completed);
        assert_eq!(
            enroll_step("enroll-swipe-too-short"),
            EnrollStep::Retry(SampleStatus::TooShort)
        );
        assert_eq!(enroll_step("enroll-duplicate"), EnrollStep::Duplicate);
        assert_eq!(enroll_step("enroll-data-full"), EnrollStep::DataFull);
        assert_eq!(enroll_step("enroll-failed"), EnrollStep::Failed);
        assert_eq!(enroll_step("enroll-disconnected"), EnrollStep::Failed);
        assert_eq!(enroll_step("something-new"), EnrollStep::Failed);
    }
}
