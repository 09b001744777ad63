//! The descriptor limit. Thousands of connections need thousands of descriptors, and the
//! default soft limit is often 1,024; a server started afterwards inherits what this
//! process has.

use rustix::process::{Resource, getrlimit, setrlimit};

/// Raises this process's soft limit on open descriptors to its hard limit, and the hard
/// limit to `wanted` if it is lower and this process may raise it (root, or
/// `CAP_SYS_RESOURCE`). Returns the soft limit now in force, which the caller compares with
/// what it needs: a limit that cannot be raised is not an error here.
pub fn raise_descriptor_limit(wanted: u64) -> u64 {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some_and(|hard| hard < wanted) {
        let raised = rustix::process::Rlimit {
            current: Some(wanted),
            maximum: Some(wanted),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        // Refused only if the hard limit is below the soft one, which cannot be.
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_reaches_the_hard_limit() {
        let got = super::raise_descriptor_limit(0);
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(Some(got), hard.or(Some(u64::MAX)));
    }
}
