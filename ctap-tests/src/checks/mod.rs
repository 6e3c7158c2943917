//! The checks, one module per area.

pub mod algorithms;
pub mod client_pin;
pub mod extensions;
pub mod get_assertion;
pub mod get_info;
pub mod hid;
pub mod make_credential;
pub mod management;

/// Declares a check list tersely: `check!(id, name, needs, fn)`.
macro_rules! checks {
    ($(($id:literal, $name:literal, $needs:expr, $run:expr)),* $(,)?) => {
        vec![$($crate::Check { id: $id, name: $name, needs: $needs, run: $run }),*]
    };
}
pub(crate) use checks;
