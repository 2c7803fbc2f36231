//! lateen-proxy's own `--config FILE`: YAML into the model, then compiled as at start-up and
//! on a reload.

use std::path::Path;

/// YAML text → `ProxyConfig` → compiled `Snapshot` (or every problem found).
pub fn proxy_config(data: &[u8]) {
    let text = crate::text(data);
    let Ok(config) = lateen_proxy::config::bootstrap::parse(Path::new("fuzz.yaml"), &text) else {
        return;
    };
    if let Err(problems) = lateen_proxy::config::compile::compile(config) {
        for problem in &problems {
            let _ = problem.to_string();
        }
    }
}
