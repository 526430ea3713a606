//! The one cancellation path: SIGINT or SIGTERM cancels the root token.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

pub fn install() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => log::info!("SIGINT: stopping"),
            _ = term.recv() => log::info!("SIGTERM: stopping"),
        }
        t.cancel();
    });
    Ok(token)
}
