//! Raises the process's open-file limit (RLIMIT_NOFILE) from its soft to its hard value at
//! start: every connection costs the proxy one or two descriptors, and the usual soft limit of
//! 1,024 is reached by a few hundred sessions.

use thiserror::Error;

/// Why the limit could not be read or raised.
#[derive(Debug, Error)]
pub enum FdLimitError {
    /// getrlimit or setrlimit failed.
    #[error("cannot {0} RLIMIT_NOFILE: {1}")]
    Rlimit(&'static str, std::io::Error),
}

/// Sets the soft open-file limit to the hard one; returns the (soft, hard) limits now in force.
pub fn raise_to_hard() -> Result<(u64, u64), FdLimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(FdLimitError::Rlimit(
            "read",
            std::io::Error::last_os_error(),
        ));
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(FdLimitError::Rlimit(
                "raise",
                std::io::Error::last_os_error(),
            ));
        }
        limit = raised;
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}
