//! software
