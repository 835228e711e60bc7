//! Components that share one process (`showpass all`) without sharing their failures: a
//! component that panics is restarted with back-off while the others keep running. An error
//! it returns is not retried here: that stops the process, whose own supervisor (a container
//! restart policy) starts it again.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first pause before a restart; it doubles after each panic, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A component that ran this long before panicking starts again at [`FIRST_BACKOFF`].
const HEALTHY_AFTER: Duration = Duration::from_secs(300);

/// Runs the component `start` makes (called again for each restart) on its own task until it
/// ends by itself or `shutdown` fires. A panic is logged and the component restarted after a
/// back-off; its result otherwise is the supervisor's. `restarts` counts the restarts.
pub async fn supervise<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    restarts: Option<&std::sync::atomic::AtomicU64>,
    mut start: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let task = tokio::spawn(start());
        let panic = match task.await {
            Ok(result) => return result,
            Err(e) if e.is_panic() => e.into_panic(),
            Err(e) => return Err(anyhow::anyhow!("{name} was cancelled: {e}")),
        };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        if started.elapsed() > HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(component = name, panic = %message, restart_in = ?backoff, "component panicked; the others keep running");
        if let Some(n) = restarts {
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tracing::info!(component = name, "restarting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_component_that_panics_is_restarted_with_growing_pauses() {
        let starts = Arc::new(AtomicU64::new(0));
        let restarts = AtomicU64::new(0);
        let shutdown = CancellationToken::new();
        let s = starts.clone();
        let begun = Instant::now();
        let result = supervise("flaky", shutdown, Some(&restarts), move || {
            let n = s.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    panic!("boom {n}");
                }
                Ok(())
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(starts.load(Ordering::SeqCst), 4);
        assert_eq!(restarts.load(Ordering::SeqCst), 3);
        // 1 s, then 2 s, then 4 s of back-off.
        assert!(begun.elapsed() >= Duration::from_secs(7));
    }

    #[tokio::test]
    async fn an_error_is_returned_not_retried() {
        let starts = Arc::new(AtomicU64::new(0));
        let s = starts.clone();
        let result = supervise("failing", CancellationToken::new(), None, move || {
            s.fetch_add(1, Ordering::SeqCst);
            async { anyhow::bail!("refused") }
        })
        .await;
        assert_eq!(result.unwrap_err().to_string(), "refused");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_the_pause_ends_the_supervision() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.cancel();
        });
        let result = supervise("flaky", shutdown, None, || async { panic!("always") }).await;
        assert!(result.is_ok());
    }
}
