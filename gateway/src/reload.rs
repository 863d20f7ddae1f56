//! Hot reload on file change: the config file is re-read every
//! `server.config_poll_ms`; a changed file is validated and swapped in, a bad one is
//! reported once and the running config kept. (Polling also follows the symlink
//! swaps of Kubernetes ConfigMap volumes, which file-event watchers often miss.)

use crate::app::App;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn watch_file(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    if app.config_path.is_none() {
        return;
    }
    loop {
        let every = app
            .config()
            .server
            .config_poll
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if app.config().server.config_poll.is_none() {
            continue;
        }
        match app.reload(true).await {
            Ok(_) => {}
            Err(e) => tracing::error!(
                "config file changed but is invalid; keeping version {}:\n{e}",
                app.config().version
            ),
        }
    }
}
