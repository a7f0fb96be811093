//! Parsing candidate API statements off the runtime's workers: a few at a time, each on a
//! thread of its own with a roomy stack, so that a large or deep statement costs its own
//! session a wait and never stalls the workers that forward other sessions' bytes. A parser
//! that panics (a bug on hostile input) fails that one statement, not the proxy.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::{oneshot, Semaphore};

/// Stack of each parser thread: far more than the bounded parse needs (see
/// `pgtrickle_planner::limits`); only the pages used are ever touched.
const PARSER_STACK: usize = 16 << 20;

/// Why a statement could not be parsed.
#[derive(Debug, Error)]
pub enum ParsePoolError {
    /// No thread could be started.
    #[error("cannot start a parser thread: {0}")]
    Spawn(std::io::Error),
    /// The parser panicked.
    #[error("the statement could not be parsed (internal parser failure)")]
    Failed,
    /// The pool was closed.
    #[error("the proxy is shutting down")]
    Closed,
}

/// Runs parses on at most `threads` threads at once.
#[derive(Debug, Clone)]
pub struct ParsePool {
    permits: Arc<Semaphore>,
}

impl ParsePool {
    /// A pool running at most `threads` parses at once (at least one).
    pub fn new(threads: usize) -> ParsePool {
        ParsePool {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `parse` on a parser thread when one is free and returns its result.
    pub async fn run<T, F>(&self, parse: F) -> Result<T, ParsePoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| ParsePoolError::Closed)?;
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("pgtrickle-parse".into())
            .stack_size(PARSER_STACK)
            .spawn(move || {
                let _permit = permit;
                let _ = tx.send(parse());
            })
            .map_err(ParsePoolError::Spawn)?;
        rx.await.map_err(|_| ParsePoolError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_and_survives_a_panic() {
        let pool = ParsePool::new(1);
        assert_eq!(pool.run(|| 2 + 2).await.ok(), Some(4));
        let failed = pool.run(|| -> u8 { panic!("parser bug") }).await;
        assert!(matches!(failed, Err(ParsePoolError::Failed)), "{failed:?}");
        assert_eq!(pool.run(|| 1).await.ok(), Some(1));
    }
}
