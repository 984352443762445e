//! A checked [`Policy`] to the tokens that rebuild it at run time.
//!
//! The expansion only assembles values the checker already accepted, through
//! `$crate::__private`; nothing in it can fail or panic at run time.

use proc_macro2::TokenStream;
use quote::quote;
use vpsfw_runtime::{
    Action, Address, Direction, Family, FindingKind, Origin, Policy, Ports, Preset, Protocol,
    RateUnit, Rule, Target, Verdict,
};

/// The expression that builds `policy`; `krate` is the path of the `vpsfw` facade.
pub fn expand(krate: &TokenStream, policy: &Policy, files: &[String]) -> TokenStream {
    let p = quote!(__vpsfw);
    let names = policy.names().iter().map(|n| {
        let name = n.name();
        let addr = address(&p, n.address());
        quote!(#p::name(#name, #addr))
    });
    let sets = policy.sets().iter().map(|s| {
        let name = s.name();
        let v4 = s.v4().iter().map(|n| {
            let (a, l) = (u32::from(n.addr()), n.prefix_len());
            quote!((#a, #l))
        });
        let v6 = s.v6().iter().map(|n| {
            let (a, l) = (u128::from(n.addr()), n.prefix_len());
            quote!((#a, #l))
        });
        quote!(#p::set(#name, &[#(#v4),*], &[#(#v6),*]))
    });
    let admins = policy.admins().iter().map(|a| {
        let (name, port) = (a.name.as_str(), a.port);
        quote!(#p::admin(#name, #port))
    });
    let console_only = policy.console_only();
    let allowed = policy.allowed_findings().iter().map(|k| finding(&p, *k));
    let presets = policy.presets().iter().map(|(at, preset)| {
        let name = preset.name();
        let (limit, seconds, prefix) = match preset {
            Preset::SynFlood(l) | Preset::ConnRate(l) | Preset::Ping(l) => (Some(*l), None, None),
            Preset::PortScan { seconds } => (None, Some(*seconds), None),
            Preset::LogDrops { limit, prefix } => (Some(*limit), None, Some(prefix.as_str())),
            Preset::Invalid => (None, None, None),
        };
        let limit = opt(&p, limit, |l| limit_tokens(&p, l));
        let seconds = opt(&p, seconds, |s| quote!(#s));
        let prefix = opt(&p, prefix, |s| quote!(#s));
        quote!((#at, #p::preset(#name, #limit, #seconds, #prefix)))
    });
    let d = policy.defaults();
    let [input, forward, output] = [d.input, d.forward, d.output].map(|v| verdict(&p, v));
    let rules = policy
        .rules()
        .iter()
        .filter(|r| matches!(r.origin(), Origin::Written { .. }))
        .map(|r| rule(&p, r));
    quote! {
        {
            use #krate::__private as #p;
            #(const _: &str = include_str!(#files);)*
            #p::policy(
                #p::PolicyParts {
                    names: <#p::Vec<_> as #p::From<_>>::from([#(#names),*]),
                    sets: <#p::Vec<_> as #p::From<_>>::from([#(#sets),*]),
                    defaults: #p::Defaults { input: #input, forward: #forward, output: #output },
                    admins: <#p::Vec<_> as #p::From<_>>::from([#(#admins),*]),
                    console_only: #console_only,
                    allowed: <#p::Vec<_> as #p::From<_>>::from([#(#allowed),*]),
                    presets: <#p::Vec<_> as #p::From<_>>::from([#(#presets),*]),
                },
                <#p::Vec<_> as #p::From<_>>::from([#(#rules),*]),
            )
        }
    }
}

fn opt<T>(p: &TokenStream, v: Option<T>, f: impl FnOnce(T) -> TokenStream) -> TokenStream {
    match v {
        Some(v) => {
            let inner = f(v);
            quote!(#p::Some(#inner))
        }
        None => quote!(#p::None),
    }
}

fn verdict(p: &TokenStream, v: Verdict) -> TokenStream {
    match v {
        Verdict::Allow => quote!(#p::Verdict::Allow),
        Verdict::Drop => quote!(#p::Verdict::Drop),
    }
}

fn address(p: &TokenStream, a: &Address) -> TokenStream {
    let name = opt(p, a.name(), |n| quote!(#n));
    let v4 = opt(p, a.v4(), |n| {
        let o = n.addr().octets();
        let len = n.prefix_len();
        quote!(([#(#o),*], #len))
    });
    let v6 = opt(p, a.v6(), |n| {
        let s = n.addr().segments();
        let len = n.prefix_len();
        quote!(([#(#s),*], #len))
    });
    quote!(#p::addr(#name, #v4, #v6))
}

fn limit_tokens(p: &TokenStream, l: vpsfw_runtime::Limit) -> TokenStream {
    let (count, burst) = (l.count(), l.burst());
    let unit = match l.unit() {
        RateUnit::Second => quote!(Second),
        RateUnit::Minute => quote!(Minute),
        RateUnit::Hour => quote!(Hour),
        RateUnit::Day => quote!(Day),
    };
    quote!(#p::limit(#count, #p::RateUnit::#unit, #burst))
}

fn finding(p: &TokenStream, k: FindingKind) -> TokenStream {
    let variant = match k {
        FindingKind::Shadowed => quote!(Shadowed),
        FindingKind::Redundant => quote!(Redundant),
        FindingKind::NoLoopback => quote!(NoLoopback),
        FindingKind::NoReplies => quote!(NoReplies),
        FindingKind::OpenAdminPort => quote!(OpenAdminPort),
        FindingKind::UnusedName => quote!(UnusedName),
        FindingKind::Lockout => quote!(Lockout),
        FindingKind::NoAdmin => quote!(NoAdmin),
    };
    quote!(#p::FindingKind::#variant)
}

fn target(p: &TokenStream, t: &Target) -> TokenStream {
    match t {
        Target::Addr(a) => {
            let a = address(p, a);
            quote!(#p::addr_target(#a))
        }
        Target::Set { name, v4, v6 } => quote!(#p::set_target(#name, #v4, #v6)),
    }
}

fn ports(p: &TokenStream, ports: &Ports) -> TokenStream {
    let pairs = ports.ranges().iter().map(|r| {
        let (lo, hi) = (r.lo().get(), r.hi().get());
        quote!((#lo, #hi))
    });
    quote!(#p::ports(&[#(#pairs),*]))
}

fn rule(p: &TokenStream, r: &Rule) -> TokenStream {
    let action = match r.action() {
        Action::Allow => quote!(Allow),
        Action::Drop => quote!(Drop),
        Action::Reject => quote!(Reject),
        Action::Log => quote!(Log),
    };
    let direction = match r.direction() {
        Direction::In => quote!(In),
        Direction::Out => quote!(Out),
        Direction::Forward => quote!(Forward),
    };
    let (v4, v6) = (r.in_family(Family::V4), r.in_family(Family::V6));
    let iface = opt(p, r.iface(), |i| {
        let s = i.as_str();
        quote!(#p::iface(#s))
    });
    let proto = opt(p, r.proto(), |pr| match pr {
        Protocol::Tcp => quote!(#p::Protocol::Tcp),
        Protocol::Udp => quote!(#p::Protocol::Udp),
        Protocol::Icmp => quote!(#p::Protocol::Icmp),
        Protocol::Icmpv6 => quote!(#p::Protocol::Icmpv6),
    });
    let src = opt(p, r.src(), |t| target(p, t));
    let dst = opt(p, r.dst(), |t| target(p, t));
    let sport = opt(p, r.sport(), |x| ports(p, x));
    let dport = opt(p, r.dport(), |x| ports(p, x));
    let icmp_type = opt(p, r.icmp_type(), |t| {
        let code = t.code();
        let fam = match t.family() {
            Family::V4 => quote!(V4),
            Family::V6 => quote!(V6),
        };
        quote!(#p::icmp_type(#p::Family::#fam, #code))
    });
    let states = opt(p, r.states(), |s| {
        let bits = s.bits();
        quote!(#p::states(#bits))
    });
    let limit = opt(p, r.limit(), |l| limit_tokens(p, l));
    let log_prefix = opt(p, r.log_prefix(), |l| {
        let s = l.as_str();
        quote!(#p::log_prefix(#s))
    });
    let group = opt(p, r.group(), |l| {
        let s = l.as_str();
        quote!(#p::label(#s))
    });
    let comment = opt(p, r.comment(), |l| {
        let s = l.as_str();
        quote!(#p::label(#s))
    });
    let line = opt(p, r.line(), |l| quote!(#l));
    let rule_allowed: Vec<TokenStream> = r.allowed().iter().map(|k| finding(p, *k)).collect();
    let text = match r.origin() {
        Origin::Written { text: Some(t), .. } => {
            let t = t.as_str();
            quote!(#p::Some(#t))
        }
        _ => quote!(#p::None),
    };
    quote! {
        #p::rule(#p::RuleParts {
            action: #p::Action::#action,
            direction: #p::Direction::#direction,
            v4: #v4,
            v6: #v6,
            iface: #iface,
            proto: #proto,
            src: #src,
            dst: #dst,
            sport: #sport,
            dport: #dport,
            icmp_type: #icmp_type,
            states: #states,
            limit: #limit,
            log_prefix: #log_prefix,
            group: #group,
            comment: #comment,
            line: #line,
            text: #text,
            allowed: <#p::Vec<_> as #p::From<_>>::from([#(#rule_allowed),*]),
        })
    }
}
