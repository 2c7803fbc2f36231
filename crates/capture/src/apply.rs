//! Applying the rule set with `iptables-restore --noflush` (so only our chains and our rules in
//! the built-in chains are touched), rolling back on failure, and cleaning up exactly what we add.

use crate::config::{CaptureConfig, InterceptionMode};
use crate::error::CaptureError;
use crate::rules::{Family, OUR_CHAINS, Rule, RuleSet, Table};
use crate::runner::CommandRunner;

/// Program names of one address family.
struct Tools {
    iptables: &'static str,
    save: &'static str,
    restore: &'static str,
    ip_flag: &'static str,
}

fn tools(family: Family) -> Tools {
    match family {
        Family::V4 => Tools {
            iptables: "iptables",
            save: "iptables-save",
            restore: "iptables-restore",
            ip_flag: "-4",
        },
        Family::V6 => Tools {
            iptables: "ip6tables",
            save: "ip6tables-save",
            restore: "ip6tables-restore",
            ip_flag: "-6",
        },
    }
}

/// The families a configuration writes rules for.
pub fn families(cfg: &CaptureConfig) -> Vec<Family> {
    if cfg.enable_ipv6 {
        vec![Family::V4, Family::V6]
    } else {
        vec![Family::V4]
    }
}

/// Applies the rules of `cfg`. Leftovers of an earlier run are removed first; if any step
/// fails, everything applied so far is removed again, so nothing stays half-applied.
pub fn apply(cfg: &CaptureConfig, runner: &CommandRunner) -> Result<(), CaptureError> {
    let rules = RuleSet::build(cfg);
    let families = families(cfg);
    for family in &families {
        cleanup_family(cfg, *family, runner)?;
    }
    let mut attempted = Vec::new();
    for family in &families {
        attempted.push(*family);
        if let Err(err) = apply_family(cfg, &rules, *family, runner) {
            return Err(rollback(cfg, &attempted, runner, err));
        }
    }
    Ok(())
}

fn apply_family(
    cfg: &CaptureConfig,
    rules: &RuleSet,
    family: Family,
    runner: &CommandRunner,
) -> Result<(), CaptureError> {
    let t = tools(family);
    if family == Family::V6 {
        // The proxy binds ::6 for inbound passthrough; IPv6 loopback only has ::1 by default.
        match runner.run("ip", &["-6", "addr", "add", "::6/128", "dev", "lo"], None) {
            Err(CaptureError::CommandFailed { ref stderr, .. })
                if stderr.contains("File exists") => {}
            other => {
                other?;
            }
        }
    }
    runner.run(t.restore, &["--noflush"], Some(&rules.restore_text(family)))?;
    if cfg.mode == InterceptionMode::Tproxy {
        // Packets marked by ISTIO_DIVERT / TPROXY are delivered locally through table N.
        let mark = cfg.tproxy_mark.to_string();
        let table = cfg.tproxy_route_table.to_string();
        runner.run(
            "ip",
            &[t.ip_flag, "rule", "add", "fwmark", &mark, "lookup", &table],
            None,
        )?;
        runner.run(
            "ip",
            &[
                t.ip_flag, "route", "add", "local", "default", "dev", "lo", "table", &table,
            ],
            None,
        )?;
    }
    Ok(())
}

fn rollback(
    cfg: &CaptureConfig,
    families: &[Family],
    runner: &CommandRunner,
    cause: CaptureError,
) -> CaptureError {
    for family in families {
        if let Err(rollback) = cleanup_family(cfg, *family, runner) {
            return CaptureError::RollbackFailed {
                apply: Box::new(cause),
                rollback: Box::new(rollback),
            };
        }
    }
    cause
}

/// Removes our chains, every jump into them from the built-in chains, and the other rules
/// `cfg` puts in built-in chains (interface exclusions, TPROXY marks). Nothing else is touched.
pub fn cleanup(cfg: &CaptureConfig, runner: &CommandRunner) -> Result<(), CaptureError> {
    for family in families(cfg) {
        cleanup_family(cfg, family, runner)?;
    }
    Ok(())
}

fn cleanup_family(
    cfg: &CaptureConfig,
    family: Family,
    runner: &CommandRunner,
) -> Result<(), CaptureError> {
    let t = tools(family);
    let candidates = builtin_rules_of_either_mode(cfg, family);
    for table in Table::ALL {
        let saved = match runner.run(t.save, &["-t", table.name()], None) {
            Ok(text) => text,
            // A table that was never created holds nothing of ours.
            Err(CaptureError::CommandFailed { ref stderr, .. })
                if stderr.contains("does not exist") =>
            {
                continue;
            }
            Err(err) => return Err(err),
        };
        let state = SavedTable::parse(&saved);
        let mut lines = state.jumps_into_ours();
        for rule in candidates.iter().filter(|r| r.table == table) {
            if rule_present(runner, &t, rule)? {
                lines.push(format!("-D {} {}", rule.chain, rule.spec));
            }
        }
        let ours = state.our_chains();
        lines.extend(ours.iter().map(|c| format!("-F {c}")));
        lines.extend(ours.iter().map(|c| format!("-X {c}")));
        if lines.is_empty() {
            continue;
        }
        let text = format!("*{}\n{}\nCOMMIT\n", table.name(), lines.join("\n"));
        runner.run(t.restore, &["--noflush"], Some(&text))?;
    }
    remove_tproxy_routes(cfg, &t, runner)?;
    Ok(())
}

/// Rules `cfg` puts in built-in chains that do not jump into our chains (those are found in
/// the saved state), for both interception modes: clean-up works even when the mode flag
/// differs from the one used to apply.
fn builtin_rules_of_either_mode(cfg: &CaptureConfig, family: Family) -> Vec<Rule> {
    let mut found: Vec<Rule> = Vec::new();
    for mode in [InterceptionMode::Redirect, InterceptionMode::Tproxy] {
        let variant = CaptureConfig {
            mode,
            ..cfg.clone()
        };
        let rules = RuleSet::build(&variant);
        for rule in rules.rules(family) {
            let wanted = rule.in_builtin_chain() && !jumps_to_ours(&rule.spec);
            let known = found
                .iter()
                .any(|f| (f.table, f.chain, &f.spec) == (rule.table, rule.chain, &rule.spec));
            if wanted && !known {
                found.push(rule.clone());
            }
        }
    }
    found
}

/// Removes our TPROXY policy rule and route (whatever the mode: they carry our mark and
/// table numbers); absent ones are fine.
fn remove_tproxy_routes(
    cfg: &CaptureConfig,
    t: &Tools,
    runner: &CommandRunner,
) -> Result<(), CaptureError> {
    let mark = cfg.tproxy_mark.to_string();
    let table = cfg.tproxy_route_table.to_string();
    let steps: [&[&str]; 2] = [
        &[t.ip_flag, "rule", "del", "fwmark", &mark, "lookup", &table],
        &[
            t.ip_flag, "route", "del", "local", "default", "dev", "lo", "table", &table,
        ],
    ];
    for args in steps {
        match runner.run("ip", args, None) {
            Ok(_) | Err(CaptureError::CommandFailed { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn rule_present(runner: &CommandRunner, t: &Tools, rule: &Rule) -> Result<bool, CaptureError> {
    let mut args = vec!["-t", rule.table.name(), "-C", rule.chain];
    args.extend(rule.spec.split(' '));
    match runner.run(t.iptables, &args, None) {
        Ok(_) => Ok(true),
        // `-C` exits non-zero when no such rule exists.
        Err(CaptureError::CommandFailed { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

fn jumps_to_ours(spec: &str) -> bool {
    let words: Vec<&str> = spec.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| (w[0] == "-j" || w[0] == "-g") && OUR_CHAINS.contains(&w[1]))
}

/// One table as `iptables-save -t TABLE` prints it.
#[derive(Debug, Default)]
struct SavedTable {
    chains: Vec<String>,
    /// (chain, rest of the rule) for every `-A` line.
    rules: Vec<(String, String)>,
}

impl SavedTable {
    fn parse(text: &str) -> Self {
        let mut table = SavedTable::default();
        for line in text.lines() {
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    table.chains.push(name.to_owned());
                }
            } else if let Some((chain, rest)) =
                line.strip_prefix("-A ").and_then(|r| r.split_once(' '))
            {
                table.rules.push((chain.to_owned(), rest.to_owned()));
            }
        }
        table
    }

    fn our_chains(&self) -> Vec<&str> {
        self.chains
            .iter()
            .map(String::as_str)
            .filter(|c| OUR_CHAINS.contains(c))
            .collect()
    }

    /// `-D` lines for rules in other chains that jump into one of ours.
    fn jumps_into_ours(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|(chain, rest)| !OUR_CHAINS.contains(&chain.as_str()) && jumps_to_ours(rest))
            .map(|(chain, rest)| format!("-D {chain} {rest}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_table_finds_our_chains_and_jumps_only() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ISTIO_OUTPUT - [0:0]\n\
                     :USER - [0:0]\n-A OUTPUT -j ISTIO_OUTPUT\n-A OUTPUT -j USER\n\
                     -A ISTIO_OUTPUT -j RETURN\n-A USER -d 198.18.9.9/32 -j RETURN\nCOMMIT\n";
        let table = SavedTable::parse(saved);
        assert_eq!(table.our_chains(), vec!["ISTIO_OUTPUT"]);
        assert_eq!(
            table.jumps_into_ours(),
            vec!["-D OUTPUT -j ISTIO_OUTPUT".to_owned()]
        );
    }
}
