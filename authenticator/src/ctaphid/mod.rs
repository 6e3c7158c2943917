//! ctaphid
