//! Hardening presets, the article's `set_fwlevel` as named statements a policy opts into:
//! `harden invalid;`, `harden syn_flood;`, `harden conn_rate;`, `harden ping;`,
//! `harden port_scan;`, `harden log_drops;` (rates and times can be given).
//!
//! A preset becomes ordinary rules of the group `harden`, placed where the statement
//! stands among the INPUT rules (so `allow in on lo;` and `allow in state
//! established,related;` written before it keep loopback and replies out of its reach);
//! `port_scan`'s trap and `log_drops` go to the end of INPUT, where only packets no rule
//! accepted arrive. The rules use three matches only presets write: a TCP SYN test, a
//! rate "over" limit (hashlimit / nft `limit rate over`, global or per source) and a
//! list of recent sources (`recent` / an nft dynamic set with a timeout).

use serde::{Deserialize, Serialize};

use crate::model::{Origin, Rule};
use crate::value::{
    Action, Direction, Family, IcmpType, Label, Limit, LogPrefix, Protocol, RateUnit, State, States,
};

/// A rate that, when exceeded, makes the rule match (it drops what is over).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Over {
    pub limit: Limit,
    /// One bucket per source address (hashlimit `srcip` mode), or one for all.
    pub per_source: bool,
    /// The kernel's name for the buckets: `vpsfw-syn`, `vpsfw-conn`, `vpsfw-ping`.
    pub name: String,
}

/// The list of sources that hit the port-scan trap.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recent {
    /// The source is on the list, added at most this many seconds ago.
    Listed { seconds: u32 },
    /// Put the source on the list (always matches).
    Add,
}

/// The name of the port-scan list, as `recent --name` and as nft set stem.
pub const SCAN_LIST: &str = "vpsfw-scan";

/// A preset and its settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Drop packets conntrack calls invalid.
    Invalid,
    /// Drop new TCP connections over a rate, counted for all sources together.
    SynFlood(Limit),
    /// Drop new connections over a rate, counted per source address.
    ConnRate(Limit),
    /// Let pings in, at most at a rate per source; drop the rest.
    Ping(Limit),
    /// A source that reaches the end of INPUT with a new connection (a closed or
    /// forbidden port) is dropped entirely for this many seconds.
    PortScan { seconds: u32 },
    /// Log what reaches the end of INPUT (to be dropped), at most at a rate.
    LogDrops { limit: Limit, prefix: LogPrefix },
}

pub const NAMES: &[&str] = &[
    "invalid",
    "syn_flood",
    "conn_rate",
    "ping",
    "port_scan",
    "log_drops",
];

impl Preset {
    pub fn name(&self) -> &'static str {
        match self {
            Preset::Invalid => "invalid",
            Preset::SynFlood(_) => "syn_flood",
            Preset::ConnRate(_) => "conn_rate",
            Preset::Ping(_) => "ping",
            Preset::PortScan { .. } => "port_scan",
            Preset::LogDrops { .. } => "log_drops",
        }
    }

    /// The preset with its defaults, by name; `limit`, `seconds` and `prefix` replace them.
    pub fn new(
        name: &str,
        limit: Option<Limit>,
        seconds: Option<u32>,
        prefix: Option<LogPrefix>,
    ) -> Result<Preset, String> {
        let rate = |count, unit, burst| limit.unwrap_or_else(|| Limit::raw(count, unit, burst));
        let has_prefix = prefix.is_some();
        let p = match name {
            "invalid" => Preset::Invalid,
            "syn_flood" => Preset::SynFlood(rate(25, RateUnit::Second, 50)),
            "conn_rate" => Preset::ConnRate(rate(20, RateUnit::Second, 40)),
            "ping" => Preset::Ping(rate(5, RateUnit::Second, 10)),
            "port_scan" => Preset::PortScan {
                seconds: seconds.unwrap_or(60),
            },
            "log_drops" => Preset::LogDrops {
                limit: rate(5, RateUnit::Minute, 10),
                prefix: prefix.unwrap_or_else(|| LogPrefix::raw("vpsfw-drop: ")),
            },
            _ => {
                return Err(format!(
                    "unknown hardening preset `{}`{}",
                    crate::diag::shown(name),
                    crate::diag::did_you_mean(name, NAMES.iter().copied())
                ))
            }
        };
        let takes_limit = matches!(
            p,
            Preset::SynFlood(_) | Preset::ConnRate(_) | Preset::Ping(_) | Preset::LogDrops { .. }
        );
        if limit.is_some() && !takes_limit {
            return Err(format!("`harden {name}` takes no `limit`"));
        }
        if seconds.is_some() && !matches!(p, Preset::PortScan { .. }) {
            return Err(format!(
                "`harden {name}` takes no `for`; only `port_scan` does"
            ));
        }
        if has_prefix && !matches!(p, Preset::LogDrops { .. }) {
            return Err(format!(
                "`harden {name}` takes no `prefix`; only `log_drops` does"
            ));
        }
        if let Preset::PortScan { seconds } = p {
            if seconds == 0 || seconds > 86_400 {
                return Err(format!(
                    "a port-scan ban of {seconds} seconds is out of range; 1 to 86400"
                ));
            }
        }
        Ok(p)
    }

    /// Rules at the statement's place, and rules for the end of INPUT.
    pub(crate) fn rules(&self) -> (Vec<Rule>, Vec<Rule>) {
        let base = |action| preset_rule(action, self.name());
        match self {
            Preset::Invalid => {
                let mut r = base(Action::Drop);
                r.states = Some(States::empty().with(State::Invalid));
                (vec![r], vec![])
            }
            Preset::SynFlood(limit) => {
                let mut r = base(Action::Drop);
                r.proto = Some(Protocol::Tcp);
                r.syn = true;
                r.states = Some(States::empty().with(State::New));
                r.over = Some(Over {
                    limit: *limit,
                    per_source: false,
                    name: "vpsfw-syn".into(),
                });
                (vec![r], vec![])
            }
            Preset::ConnRate(limit) => {
                let mut r = base(Action::Drop);
                r.states = Some(States::empty().with(State::New));
                r.over = Some(Over {
                    limit: *limit,
                    per_source: true,
                    name: "vpsfw-conn".into(),
                });
                (vec![r], vec![])
            }
            Preset::Ping(limit) => {
                let mut out = Vec::new();
                for (proto, family, code) in [
                    (Protocol::Icmp, Family::V4, 8),
                    (Protocol::Icmpv6, Family::V6, 128),
                ] {
                    let mut over = base(Action::Drop);
                    over.proto = Some(proto);
                    over.v4 = family == Family::V4;
                    over.v6 = family == Family::V6;
                    over.icmp_type = Some(IcmpType::from_code(family, code));
                    over.over = Some(Over {
                        limit: *limit,
                        per_source: true,
                        name: "vpsfw-ping".into(),
                    });
                    let mut allow = over.clone();
                    allow.action = Action::Allow;
                    allow.over = None;
                    out.push(over);
                    out.push(allow);
                }
                (out, vec![])
            }
            Preset::PortScan { seconds } => {
                let mut check = base(Action::Drop);
                check.recent = Some(Recent::Listed { seconds: *seconds });
                let mut trap = base(Action::Drop);
                trap.states = Some(States::empty().with(State::New));
                trap.recent = Some(Recent::Add);
                (vec![check], vec![trap])
            }
            Preset::LogDrops { limit, prefix } => {
                let mut log = base(Action::Log);
                log.limit = Some(*limit);
                log.log_prefix = Some(prefix.clone());
                (vec![], vec![log])
            }
        }
    }
}

fn preset_rule(action: Action, name: &str) -> Rule {
    Rule {
        action,
        direction: Direction::In,
        v4: true,
        v6: true,
        iface: None,
        proto: None,
        src: None,
        dst: None,
        sport: None,
        dport: None,
        icmp_type: None,
        states: None,
        limit: None,
        log_prefix: None,
        group: Label::new("harden").ok(),
        comment: Label::new(name).ok(),
        origin: Origin::Implicit {
            why: format!("the hardening preset `harden {name}`"),
        },
        allowed: Vec::new(),
        syn: false,
        over: None,
        recent: None,
    }
}

/// The policy's rules with its presets' rules in place: each preset's head rules where
/// its statement stood (`at`: the number of rules before it), tail rules at the end.
pub(crate) fn with_presets(rules: Vec<Rule>, presets: &[(usize, Preset)]) -> Vec<Rule> {
    place(rules, presets, Preset::rules)
}

/// [`with_presets`] for anything kept alongside the rules (such as where each was
/// written), with `fill` for the presets' rules.
pub(crate) fn place<T: Clone>(
    mut items: Vec<T>,
    presets: &[(usize, Preset)],
    rules_of: impl Fn(&Preset) -> (Vec<T>, Vec<T>),
) -> Vec<T> {
    let mut tail_log = Vec::new();
    let mut tail_trap = Vec::new();
    // Insert from the last so earlier positions stay valid.
    for (at, preset) in presets.iter().rev() {
        let (head, tail) = rules_of(preset);
        let at = (*at).min(items.len());
        items.splice(at..at, head);
        let tail_list = if matches!(preset, Preset::LogDrops { .. }) {
            &mut tail_log
        } else {
            &mut tail_trap
        };
        // Reversed iteration: prepend to keep the presets' written order.
        let mut t = tail;
        t.append(tail_list);
        *tail_list = t;
    }
    // Logging first: the trap drops what it catches.
    items.extend(tail_log);
    items.extend(tail_trap);
    items
}
