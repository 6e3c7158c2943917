//! authenticatorBioEnrollment at the command layer, on a sensor double (the real fprintd is
//! exercised by ctap-tests/python/test_bio_enrollment.py and the device suite).

use std::time::Duration;

use super::pin::{set_pin, token};
use super::*;
use crate::api::bio_enrollment::{BioEnrollment, BioError, EnrollSample, SampleStatus};
use crate::api::user_verifier::{
    BiometryType, Interaction, Prompt, UserActionError, UserVerified, UserVerifier, VerifierStatus,
};
use crate::ctap::pin_protocol::Protocol;

const SAMPLES: u8 = 3;

/// A sensor that enrolls in [`SAMPLES`] good samples; template IDs are 1, 2, ...
#[derive(Default)]
struct FakeSensor {
    enrolled: Vec<Vec<u8>>,
    enrolling: Option<(Vec<u8>, u8)>,
    next_id: u8,
}

impl UserVerifier for FakeSensor {
    fn status(&self) -> VerifierStatus {
        VerifierStatus {
            available: true,
            biometry: BiometryType::Fingerprint,
            enrolled: !self.enrolled.is_empty(),
            error: None,
        }
    }
    fn check_presence(&mut self, _: &Prompt<'_>, _: &Interaction) -> Result<(), UserActionError> {
        Ok(())
    }
    fn verify_user(
        &mut self,
        _: &Prompt<'_>,
        _: &Interaction,
    ) -> Result<UserVerified, UserActionError> {
        Err(UserActionError::Failed)
    }
    fn bio_enrollment(&mut self) -> Option<&mut dyn BioEnrollment> {
        Some(self)
    }
}

impl BioEnrollment for FakeSensor {
    fn max_capture_samples(&mut self) -> u8 {
        SAMPLES
    }
    fn enroll_begin(
        &mut self,
        _: Duration,
        _: &Interaction,
    ) -> Result<(Vec<u8>, EnrollSample), BioError> {
        self.next_id += 1;
        let id = vec![self.next_id];
        self.enrolling = Some((id.clone(), SAMPLES - 1));
        Ok((
            id,
            EnrollSample {
                status: SampleStatus::Good,
                remaining: SAMPLES - 1,
            },
        ))
    }
    fn enroll_capture_next(
        &mut self,
        template_id: &[u8],
        _: Duration,
        _: &Interaction,
    ) -> Result<EnrollSample, BioError> {
        let Some((id, remaining)) = self.enrolling.as_mut() else {
            return Err(BioError::NoEnrollment);
        };
        if id != template_id {
            return Err(BioError::NoEnrollment);
        }
        *remaining -= 1;
        let remaining = *remaining;
        if remaining == 0 {
            let (id, _) = self.enrolling.take().unwrap();
            self.enrolled.push(id);
        }
        Ok(EnrollSample {
            status: SampleStatus::Good,
            remaining,
        })
    }
    fn enroll_cancel(&mut self) {
        self.enrolling = None;
    }
    fn enrollments(&mut self) -> Result<Vec<Vec<u8>>, BioError> {
        Ok(self.enrolled.clone())
    }
    fn remove(&mut self, template_id: &[u8]) -> Result<(), BioError> {
        let before = self.enrolled.len();
        self.enrolled.retain(|id| id != template_id);
        if self.enrolled.len() == before {
            return Err(BioError::UnknownTemplate);
        }
        Ok(())
    }
}

/// A bio enrollment request authorised by `token` (protocol 2).
fn bio(token: &[u8], sub: u8, params: Option<Value>) -> Vec<u8> {
    let mut message = vec![0x01, sub];
    if let Some(p) = &params {
        message.extend(encode(p));
    }
    let mut entries = vec![(1, int(1)), (2, int(i64::from(sub)))];
    if let Some(p) = params {
        entries.push((3, p));
    }
    entries.push((4, int(2)));
    entries.push((5, Value::Bytes(Protocol::Two.authenticate(token, &message))));
    request(command::BIO_ENROLLMENT, entries)
}

fn bio_enroll_option(a: &mut Authenticator) -> Option<Value> {
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    let Value::Map(options) = &info[&4] else {
        panic!("options is a map")
    };
    options
        .iter()
        .find(|(k, _)| *k == text("bioEnroll"))
        .map(|(_, v)| v.clone())
}

#[test]
fn enroll_list_name_and_remove_with_a_be_token() {
    let mut a = authenticator_with(10, Box::new(FakeSensor::default()));
    assert_eq!(bio_enroll_option(&mut a), Some(Value::Bool(false)));
    // The sensor info needs no token.
    let info = ok_map(&a.handle(&request(
        command::BIO_ENROLLMENT,
        vec![(1, int(1)), (2, int(7))],
    )));
    assert_eq!(info[&1], int(1));
    assert_eq!(info[&2], int(1));
    assert_eq!(info[&3], int(i64::from(SAMPLES)));
    assert_eq!(info[&8], int(64));

    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    // Without a token: PUAT_REQUIRED; with a token lacking `be`: PIN_AUTH_INVALID.
    let no_token = request(command::BIO_ENROLLMENT, vec![(1, int(1)), (2, int(4))]);
    assert_eq!(a.handle(&no_token), vec![0x36]);
    let mc = token(&mut a, Protocol::Two, 2, "1234", Some(0x01)).unwrap();
    assert_eq!(a.handle(&bio(&mc, 4, None)), vec![0x33]);
    let be = token(&mut a, Protocol::Two, 2, "1234", Some(0x08)).unwrap();
    assert_eq!(
        a.handle(&bio(&be, 4, None)),
        vec![0x2c],
        "no enrollments: INVALID_OPTION"
    );

    let begun = ok_map(&a.handle(&bio(&be, 1, None)));
    let id = begun[&4].as_bytes().unwrap().clone();
    assert_eq!(begun[&5], int(0), "a good sample");
    assert_eq!(begun[&6], int(i64::from(SAMPLES - 1)));
    let next = |remaining: u8, a: &mut Authenticator| {
        let params = int_map([(1, Some(Value::Bytes(id.clone())))]);
        let resp = ok_map(&a.handle(&bio(&be, 2, Some(params))));
        assert_eq!(resp[&5], int(0));
        assert_eq!(resp[&6], int(i64::from(remaining)));
    };
    for remaining in (0..SAMPLES - 1).rev() {
        next(remaining, &mut a);
    }
    assert_eq!(bio_enroll_option(&mut a), Some(Value::Bool(true)));

    let listed = ok_map(&a.handle(&bio(&be, 4, None)));
    let unnamed = int_map([(1, Some(Value::Bytes(id.clone()))), (2, Some(text("")))]);
    assert_eq!(listed[&7], Value::Array(vec![unnamed]));
    let rename = int_map([
        (1, Some(Value::Bytes(id.clone()))),
        (2, Some(text("Left thumb"))),
    ]);
    assert_eq!(a.handle(&bio(&be, 5, Some(rename))), vec![0]);
    let listed = ok_map(&a.handle(&bio(&be, 4, None)));
    let named = int_map([
        (1, Some(Value::Bytes(id.clone()))),
        (2, Some(text("Left thumb"))),
    ]);
    assert_eq!(listed[&7], Value::Array(vec![named]));
    let too_long = int_map([
        (1, Some(Value::Bytes(id.clone()))),
        (2, Some(text(&"x".repeat(65)))),
    ]);
    assert_eq!(a.handle(&bio(&be, 5, Some(too_long))), vec![0x02]);
    let unknown = int_map([(1, Some(Value::Bytes(vec![9]))), (2, Some(text("nobody")))]);
    assert_eq!(a.handle(&bio(&be, 5, Some(unknown))), vec![0x2c]);

    let remove = int_map([(1, Some(Value::Bytes(id.clone())))]);
    assert_eq!(a.handle(&bio(&be, 6, Some(remove.clone()))), vec![0]);
    assert_eq!(a.handle(&bio(&be, 4, None)), vec![0x2c]);
    assert_eq!(a.handle(&bio(&be, 6, Some(remove))), vec![0x2c]);
    assert_eq!(bio_enroll_option(&mut a), Some(Value::Bool(false)));
}

#[test]
fn cancel_ends_the_enrollment_and_a_verifier_without_a_sensor_has_no_bio_enrollment() {
    let mut a = authenticator_with(10, Box::new(FakeSensor::default()));
    assert_eq!(set_pin(&mut a, Protocol::Two, 2, "1234"), vec![0]);
    let be = token(&mut a, Protocol::Two, 2, "1234", Some(0x08)).unwrap();
    let begun = ok_map(&a.handle(&bio(&be, 1, None)));
    let id = begun[&4].as_bytes().unwrap().clone();
    let cancel = request(command::BIO_ENROLLMENT, vec![(1, int(1)), (2, int(3))]);
    assert_eq!(a.handle(&cancel), vec![0]);
    let params = int_map([(1, Some(Value::Bytes(id)))]);
    assert_eq!(a.handle(&bio(&be, 2, Some(params))), vec![0x2c]);

    // No sensor: the command does not exist, the permission cannot be granted.
    let mut plain = authenticator(10);
    assert_eq!(bio_enroll_option(&mut plain), None);
    assert_eq!(plain.handle(&cancel), vec![0x01]);
    assert_eq!(set_pin(&mut plain, Protocol::Two, 2, "1234"), vec![0]);
    assert_eq!(
        token(&mut plain, Protocol::Two, 2, "1234", Some(0x08)),
        Err(0x40)
    );
}
