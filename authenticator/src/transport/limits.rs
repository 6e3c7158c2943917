//! Process-wide limits that servers depend on.

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, so that a burst of
/// connections meets each server's own connection cap long before the process runs out of
/// descriptors (the usual soft limit is 1024). Returns the new soft limit.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let raised = super::raise_open_files_limit().unwrap();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, now.maximum);
        assert_eq!(Some(raised), now.current.or(Some(u64::MAX)));
    }
}
