//! `lateen-proxy capture` flags (istio-iptables' command line, which the injector fills from
//! pod annotations a user writes): parsed, checked and turned into iptables-restore text.

use lateen_capture::cli::{dry_run_text, parse_flags};
use lateen_capture::{Family, RuleSet};

/// Input lines (or NUL-separated words) as the arguments after the program name.
pub fn capture_flags(data: &[u8]) {
    let text = crate::text(data);
    let argv = std::iter::once("capture").chain(text.split(['\n', '\0']).filter(|a| !a.is_empty()));
    let Ok(args) = parse_flags(argv) else {
        return;
    };
    let Ok(config) = args.to_config() else {
        return;
    };
    let _ = dry_run_text(&config);
    let rules = RuleSet::build(&config);
    let _ = rules.restore_text(Family::V4);
    let _ = rules.restore_text(Family::V6);
}
