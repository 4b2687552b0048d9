//! Worker pools. `num_threads = 0` uses `ILIAS_RERANK_NUM_THREADS` when set, else
//! `RAYON_NUM_THREADS`, else all cores. Pools are built once per size *and per process*:
//! after `fork()` (a PyTorch DataLoader worker, a multiprocessing child) the parent's pool
//! threads do not exist in the child, so a child builds its own pools and never touches
//! the inherited ones (they are leaked, not dropped: dropping would wait on threads that
//! are not there). rayon's global pool is never used, for the same reason: should a pool
//! fail to start (the process is out of threads), the call fails with
//! [`RerankError::Threads`] instead of falling back to it.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{RerankError, Result};

struct Pool {
    process: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static POOLS: Mutex<Vec<Pool>> = Mutex::new(Vec::new());

fn env_threads(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0 && n <= 1024)
}

/// The thread count a call with `requested` threads will use.
pub fn effective_threads(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    env_threads("ILIAS_RERANK_NUM_THREADS")
        .or_else(|| env_threads("RAYON_NUM_THREADS"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    let process = std::process::id();
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if pools.iter().any(|p| p.process != process) {
        // Inherited through fork(): forget them without running their destructors.
        for stale in pools.extract_if(.., |p| p.process != process) {
            std::mem::forget(stale);
        }
    }
    if let Some(p) = pools.iter().find(|p| p.threads == threads) {
        return Ok(Arc::clone(&p.pool));
    }
    let built = build(threads).map_err(|reason| RerankError::Threads { threads, reason })?;
    pools.push(Pool {
        process,
        threads,
        pool: Arc::clone(&built),
    });
    Ok(built)
}

fn build(threads: usize) -> std::result::Result<Arc<ThreadPool>, String> {
    #[cfg(test)]
    if tests::FAIL_BUILDS_OF.load(std::sync::atomic::Ordering::SeqCst) == threads {
        return Err("simulated failure".into());
    }
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ilias-rerank-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Run `work` on this process's pool of `requested` threads (see module docs). Inside
/// `work`, rayon's parallel iterators run on that pool. When the pool cannot be started
/// the work does not run: [`RerankError::Threads`].
pub fn install<R: Send>(requested: usize, work: impl FnOnce() -> R + Send) -> Result<R> {
    let threads = effective_threads(requested);
    Ok(pool(threads)?.install(work))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Pools of this size fail to build (0: none). Only that size, so that tests running
    /// beside this one in other threads are not affected.
    pub(super) static FAIL_BUILDS_OF: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn work_runs_on_a_pool_of_the_requested_size() {
        let (threads, index) = install(3, || {
            (rayon::current_num_threads(), rayon::current_thread_index())
        })
        .expect("a pool of 3 threads");
        assert_eq!(threads, 3);
        assert!(
            index.is_some(),
            "the work must run on one of the pool's threads"
        );
    }

    #[test]
    fn a_pool_that_cannot_start_is_an_error_not_the_global_pool() {
        // A size no other test uses, so that no cached pool answers.
        FAIL_BUILDS_OF.store(977, Ordering::SeqCst);
        let got = install(977, rayon::current_num_threads);
        FAIL_BUILDS_OF.store(0, Ordering::SeqCst);
        match got {
            Err(RerankError::Threads { threads: 977, .. }) => {}
            other => panic!("expected RerankError::Threads, got {other:?}"),
        }
    }
}
