//! Fingerprint enrollment (CTAP 2.1 §6.7, authenticatorBioEnrollment) behind a seam: the user
//! verifier that owns the sensor enrolls, lists and removes fingerprints, identified by opaque
//! template IDs; the authenticator keeps their friendly names and speaks CTAP.

use std::time::Duration;

use super::user_verifier::Interaction;

/// The quality of one enrollment sample (CTAP 2.1 §6.7.4, lastEnrollSampleStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleStatus {
    /// The sample was good (CTAP2_ENROLL_FEEDBACK_FP_GOOD).
    Good,
    /// The finger was off-centre (CTAP2_ENROLL_FEEDBACK_FP_TOO_SKEWED).
    TooSkewed,
    /// The swipe was too short (CTAP2_ENROLL_FEEDBACK_FP_TOO_SHORT).
    TooShort,
    /// The scan was unusable (CTAP2_ENROLL_FEEDBACK_FP_POOR_QUALITY).
    PoorQuality,
    /// The finger is already enrolled (CTAP2_ENROLL_FEEDBACK_FP_EXISTS).
    Exists,
    /// The finger must be lifted first (CTAP2_ENROLL_FEEDBACK_NO_UP_TRANSITION).
    NoUpTransition,
}

impl SampleStatus {
    /// The CTAP code.
    pub fn code(self) -> u8 {
        match self {
            Self::Good => 0x00,
            Self::PoorQuality => 0x07,
            Self::TooSkewed => 0x08,
            Self::TooShort => 0x09,
            Self::Exists => 0x0b,
            Self::NoUpTransition => 0x0e,
        }
    }
}

/// The outcome of one captured sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollSample {
    /// How good the sample was.
    pub status: SampleStatus,
    /// Good samples still needed; 0 when the enrollment is complete.
    pub remaining: u8,
}

/// Why an enrollment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BioError {
    /// No enrollment is running, or the template ID is not the one being enrolled.
    #[error("no such enrollment in progress")]
    NoEnrollment,
    /// No enrolled fingerprint has that template ID.
    #[error("no enrolled fingerprint has this template ID")]
    UnknownTemplate,
    /// Every finger slot is enrolled.
    #[error("the fingerprint database is full")]
    Full,
    /// No sample within the timeout.
    #[error("no fingerprint sample in time")]
    Timeout,
    /// The platform cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The sensor or its service is not usable.
    #[error("fingerprint sensor unavailable: {0}")]
    Unavailable(String),
    /// The sensor reported a failure.
    #[error("enrollment failed: {0}")]
    Failed(String),
}

/// Enrolls and manages fingerprints on the sensor a user verifier owns.
pub trait BioEnrollment {
    /// Good samples one enrollment needs (maxCaptureSamplesRequiredForEnroll).
    fn max_capture_samples(&mut self) -> u8;
    /// Starts enrolling a new fingerprint and captures its first sample; returns the new
    /// template ID with that sample's outcome.
    fn enroll_begin(
        &mut self,
        timeout: Duration,
        interaction: &Interaction,
    ) -> Result<(Vec<u8>, EnrollSample), BioError>;
    /// Captures the next sample of the enrollment of `template_id`.
    fn enroll_capture_next(
        &mut self,
        template_id: &[u8],
        timeout: Duration,
        interaction: &Interaction,
    ) -> Result<EnrollSample, BioError>;
    /// Abandons the running enrollment, if any; its partial template is discarded.
    fn enroll_cancel(&mut self);
    /// The template IDs of the enrolled fingerprints.
    fn enrollments(&mut self) -> Result<Vec<Vec<u8>>, BioError>;
    /// Removes an enrolled fingerprint.
    fn remove(&mut self, template_id: &[u8]) -> Result<(), BioError>;
}
