//! The fast path for rules (and group heads): the common rule read straight from its
//! token trees.
//!
//! A policy is mostly rules, and reading each through syn (a token buffer per statement,
//! a fork per look-ahead, a full literal parse per peek) was most of the macro's time;
//! inside rustc every token stream built or walked is also a call into the compiler.
//! This reads a rule's tokens as they are, with no stream built. It gives up (`None`)
//! on anything it does not know for certain: a syntax error, a literal it would have to
//! parse the way syn does (escapes, suffixes, hex...), an invisible group from a
//! `macro_rules!` fragment. The caller then reads the statement with the syn path in
//! `parse.rs`, which is the language's definition and reports every error.
//!
//! Each function here mirrors the one its doc names there, step for step and in the
//! same order of [`Locs::add`] calls, so that a rule read here is exactly the rule read
//! there (same values, same locations). The unit tests read every rule and group head
//! the fast path reads a second time through syn and hold the two to that.

use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use vpsfw_runtime::spec::{AddrSpec, EndpointSpec, LimitSpec, PortSpec, RuleSpec};
use vpsfw_runtime::{Loc, Protocol, Spanned};

use crate::parse::{is_reserved, Locs};

/// What a token is, as far as the rule syntax asks.
enum Kind {
    Ident,
    Punct(char),
    /// A plain string literal (no escape, no suffix, not raw): its value.
    Str(String),
    /// A plain decimal integer (no suffix, no `_`, no leading zero): its digits are its
    /// text, as syn's `base10_digits` would give them.
    Int,
    /// `D.D` in decimal digits: what a bare IPv4 address lexes into.
    Float,
    Bracket,
    /// A literal syn would have to parse, or an invisible group syn would look into:
    /// the fast path cannot say what syn would do with it.
    Unknown,
    /// A group with `(...)` or `{...}`: never part of a rule.
    Other,
}

fn kind(t: Option<&TokenTree>) -> Option<Kind> {
    Some(match t? {
        TokenTree::Ident(_) => Kind::Ident,
        TokenTree::Punct(p) => Kind::Punct(p.as_char()),
        TokenTree::Literal(l) => literal_kind(&l.to_string()),
        TokenTree::Group(g) => match g.delimiter() {
            Delimiter::Bracket => Kind::Bracket,
            Delimiter::None => Kind::Unknown,
            Delimiter::Parenthesis | Delimiter::Brace => Kind::Other,
        },
    })
}

fn literal_kind(text: &str) -> Kind {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        if !inner.contains(['\\', '"', '\r']) {
            return Kind::Str(inner.to_owned());
        }
        return Kind::Unknown;
    }
    if digits(text) && (text == "0" || !text.starts_with('0')) {
        return Kind::Int;
    }
    if let Some((a, b)) = text.split_once('.') {
        if digits(a) && digits(b) {
            return Kind::Float;
        }
    }
    Kind::Unknown
}

/// A cursor over one level of token trees.
struct Cur<'a> {
    toks: &'a [TokenTree],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<&'a TokenTree> {
        self.toks.get(self.pos)
    }

    fn kind(&self) -> Option<Kind> {
        kind(self.peek())
    }

    fn kind2(&self) -> Option<Kind> {
        kind(self.toks.get(self.pos + 1))
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.toks.len()
    }

    fn bump(&mut self) -> Option<&'a TokenTree> {
        let t = self.toks.get(self.pos)?;
        self.pos += 1;
        Some(t)
    }

    /// `Ident::parse_any`: any identifier, keywords included.
    fn word(&mut self) -> Option<&'a Ident> {
        match self.peek()? {
            TokenTree::Ident(i) => {
                self.pos += 1;
                Some(i)
            }
            _ => None,
        }
    }

    /// `peek_word`.
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(TokenTree::Ident(i)) if i == w)
    }

    /// `input.peek(Token![c])` for a one-character token.
    fn peek_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(TokenTree::Punct(p)) if p.as_char() == c)
    }

    /// `input.parse::<Token![c]>()`.
    fn punct(&mut self, c: char) -> Option<Span> {
        if self.peek_punct(c) {
            self.bump().map(TokenTree::span)
        } else {
            None
        }
    }

    /// `input.parse::<LitInt>()` of a plain integer: its span and digits.
    fn int(&mut self) -> Option<(Span, String)> {
        match self.kind()? {
            Kind::Int => {
                let t = self.bump()?;
                Some((t.span(), t.to_string()))
            }
            _ => None,
        }
    }

    /// `input.parse::<LitStr>()` of a plain string: its span and value.
    fn string(&mut self) -> Option<(Span, String)> {
        match self.kind()? {
            Kind::Str(v) => Some((self.bump()?.span(), v)),
            _ => None,
        }
    }
}

/// `parse_group_head` for `group NAME { ... }` with a plain name: the name and the body.
/// The body is the group's own stream: through syn, inside rustc, every token of the
/// group would cross the compiler's bridge three more times.
pub(crate) fn group_head(
    trees: &[TokenTree],
    locs: &mut Locs,
) -> Option<(Spanned<String>, TokenStream)> {
    let [TokenTree::Ident(_), name, TokenTree::Group(body)] = trees else {
        return None;
    };
    if body.delimiter() != Delimiter::Brace {
        return None;
    }
    let name = match (name, kind(Some(name))?) {
        (TokenTree::Ident(i), _) => i.to_string(),
        (_, Kind::Str(v)) => v,
        _ => return None,
    };
    let at = trees[1].span();
    Some((spanned(name, at, at, locs), body.stream()))
}

fn spanned<T>(value: T, first: Span, last: Span, locs: &mut Locs) -> Spanned<T> {
    Spanned::new(value, locs.add(first, last))
}

/// `parse_rule` on a whole statement: the rule, or `None` to read it with syn.
pub(crate) fn rule(
    trees: &[TokenTree],
    at: Loc,
    line: Option<u32>,
    group: Option<&Spanned<String>>,
    locs: &mut Locs,
) -> Option<RuleSpec> {
    let mut c = Cur {
        toks: trees,
        pos: 0,
    };
    let action = c.word()?;
    match c.peek()? {
        TokenTree::Ident(d) if !is_reserved(&d.to_string()) => {}
        _ => return None,
    }
    let direction = c.word()?;
    let action = spanned(action.to_string(), action.span(), action.span(), locs);
    let direction = spanned(
        direction.to_string(),
        direction.span(),
        direction.span(),
        locs,
    );
    let mut rule = RuleSpec::new(at, action, direction);
    rule.line = line;
    rule.group = group.cloned();
    let mut proto_given = false;
    while !c.is_empty() {
        let kw = c.word()?;
        let k = kw.to_string();
        match k.as_str() {
            "on" => {
                if rule.iface.is_some() {
                    return None;
                }
                rule.iface = Some(match c.kind()? {
                    Kind::Str(v) => {
                        let s = c.bump()?.span();
                        spanned(v, s, s, locs)
                    }
                    Kind::Unknown => return None,
                    _ => {
                        let (t, f, l) = joined_word(&mut c)?;
                        spanned(t, f, l, locs)
                    }
                });
            }
            "from" | "to" => {
                let slot = if k == "from" {
                    &mut rule.from
                } else {
                    &mut rule.to
                };
                if slot.is_some() {
                    return None;
                }
                *slot = Some(endpoint(&mut c, locs)?);
            }
            "state" => {
                if rule.states.is_some() {
                    return None;
                }
                let mut list = Vec::new();
                loop {
                    let s = c.word()?;
                    list.push(spanned(s.to_string(), s.span(), s.span(), locs));
                    if c.punct(',').is_none() {
                        break;
                    }
                }
                rule.states = Some(list);
            }
            "limit" => {
                if rule.limit.is_some() {
                    return None;
                }
                rule.limit = Some(limit(&mut c, locs)?);
            }
            "prefix" | "comment" => {
                let slot = if k == "prefix" {
                    &mut rule.log_prefix
                } else {
                    &mut rule.comment
                };
                if slot.is_some() {
                    return None;
                }
                let (s, v) = c.string()?;
                *slot = Some(spanned(v, s, s, locs));
            }
            "type" => {
                if rule.icmp_type.is_some() {
                    return None;
                }
                let (t, f, l) = joined_word(&mut c)?;
                rule.icmp_type = Some(spanned(t, f, l, locs));
            }
            _ if Protocol::WORDS.contains(&k.as_str()) || k == "all" => {
                if proto_given {
                    return None;
                }
                proto_given = true;
                if k != "all" {
                    rule.proto = Some(spanned(k, kw.span(), kw.span(), locs));
                }
            }
            _ => return None,
        }
    }
    Some(rule)
}

/// `joined_word`.
fn joined_word(c: &mut Cur) -> Option<(String, Span, Span)> {
    let first = c.word()?;
    let mut text = first.to_string();
    let mut last = first.span();
    loop {
        if c.peek_punct('-') || c.peek_punct('.') {
            match c.kind2() {
                Some(Kind::Ident | Kind::Int) => {
                    let sep = c.bump()?;
                    let part = c.bump()?;
                    text.push_str(&sep.to_string());
                    text.push_str(&part.to_string());
                    last = part.span();
                    continue;
                }
                Some(Kind::Unknown) => return None,
                _ => {}
            }
        }
        match c.kind() {
            Some(Kind::Int) if text.ends_with('-') => {
                let part = c.bump()?;
                text.push_str(&part.to_string());
                last = part.span();
            }
            Some(Kind::Unknown) if text.ends_with('-') => return None,
            _ => break,
        }
    }
    if let Some(plus) = c.punct('+') {
        text.push('+');
        last = plus;
    }
    Some((text, first.span(), last))
}

/// `parse_limit`.
fn limit(c: &mut Cur, locs: &mut Locs) -> Option<LimitSpec> {
    let (count_span, count) = c.int()?;
    c.punct('/')?;
    let unit = c.word()?;
    let mut burst = None;
    if c.peek_word("burst") {
        c.word()?;
        let (s, digits) = c.int()?;
        burst = Some(spanned(digits, s, s, locs));
    }
    Some(LimitSpec {
        at: locs.add(count_span, unit.span()),
        count: spanned(count, count_span, count_span, locs),
        unit: spanned(unit.to_string(), unit.span(), unit.span(), locs),
        burst,
    })
}

/// `parse_endpoint`.
fn endpoint(c: &mut Cur, locs: &mut Locs) -> Option<EndpointSpec> {
    // syn's `input.span()`: a group's opening delimiter.
    let start = match c.peek()? {
        TokenTree::Group(g) => g.span_open(),
        t => t.span(),
    };
    let mut addr = None;
    let mut ports = None;
    if c.peek_word("any") {
        let any = c.word()?;
        addr = Some(AddrSpec::Any(locs.add(any.span(), any.span())));
    } else {
        match c.kind()? {
            Kind::Str(v) => {
                let s = c.bump()?.span();
                addr = Some(AddrSpec::Literal(spanned(v, s, s, locs)));
            }
            Kind::Float => addr = Some(AddrSpec::Literal(bare_ipv4(c, locs)?)),
            Kind::Int | Kind::Punct(':') | Kind::Bracket => ports = Some(port_list(c, locs)?),
            Kind::Ident => {
                let name = c.word()?;
                let n = name.to_string();
                if is_reserved(&n) {
                    return None;
                }
                let spanned_name = spanned(n, name.span(), name.span(), locs);
                if c.punct('/').is_some() {
                    let (len_span, digits) = c.int()?;
                    addr = Some(AddrSpec::Name {
                        name: spanned_name,
                        prefix: Some(spanned(digits, name.span(), len_span, locs)),
                    });
                } else if c.peek_word("port") {
                    addr = Some(AddrSpec::Name {
                        name: spanned_name,
                        prefix: None,
                    });
                } else {
                    addr = Some(AddrSpec::NameOrService(spanned_name));
                }
            }
            _ => return None,
        }
    }
    let mut ports_start = start;
    if addr.is_some() && c.peek_word("port") {
        ports_start = c.word()?.span();
        ports = Some(port_list(c, locs)?);
    }
    let at = match &ports {
        Some((_, last)) => locs.add(ports_start, *last),
        None => locs.add(start, start),
    };
    let ports = ports.map(|(list, _)| list);
    Some(EndpointSpec { at, addr, ports })
}

/// `parse_bare_ipv4`, on a float literal.
fn bare_ipv4(c: &mut Cur, locs: &mut Locs) -> Option<Spanned<String>> {
    let first = c.bump()?;
    let mut text = first.to_string();
    let mut last = first.span();
    while c.peek_punct('.') {
        match c.kind2() {
            Some(Kind::Float | Kind::Int) => {
                c.bump()?;
                let part = c.bump()?;
                text.push('.');
                text.push_str(&part.to_string());
                last = part.span();
            }
            Some(Kind::Unknown) => return None,
            _ => break,
        }
    }
    if c.punct('/').is_some() {
        let (len_span, digits) = c.int()?;
        text.push('/');
        text.push_str(&digits);
        last = len_span;
    }
    Some(spanned(text, first.span(), last, locs))
}

/// `parse_ports`.
fn port_list(c: &mut Cur, locs: &mut Locs) -> Option<(Vec<PortSpec>, Span)> {
    if let Some(TokenTree::Group(g)) = c.peek() {
        if g.delimiter() != Delimiter::Bracket {
            return None;
        }
        c.bump()?;
        let inner: Vec<TokenTree> = g.stream().into_iter().collect();
        let mut content = Cur {
            toks: &inner,
            pos: 0,
        };
        let mut list = Vec::new();
        while !content.is_empty() {
            list.push(port_item(&mut content, locs)?);
            if content.is_empty() {
                break;
            }
            content.punct(',')?;
        }
        if list.is_empty() {
            return None;
        }
        return Some((list, g.span_close()));
    }
    let item = port_item(c, locs)?;
    let (_, last) = locs.get(match &item {
        PortSpec::One(s) => s.at,
        PortSpec::Range { at, .. } => *at,
    });
    Some((vec![item], last))
}

/// `parse_port_item`.
fn port_item(c: &mut Cur, locs: &mut Locs) -> Option<PortSpec> {
    match c.kind()? {
        Kind::Punct(':') => {
            let colon = c.bump()?.span();
            let (hi_span, hi) = c.int()?;
            Some(PortSpec::Range {
                at: locs.add(colon, hi_span),
                lo: None,
                hi: Some(spanned(hi, hi_span, hi_span, locs)),
            })
        }
        Kind::Int => {
            let (lo_span, lo) = c.int()?;
            let lo_s = spanned(lo, lo_span, lo_span, locs);
            let Some(colon) = c.punct(':') else {
                return Some(PortSpec::One(lo_s));
            };
            let mut last = colon;
            let hi = match c.kind() {
                Some(Kind::Int) => {
                    let (hi_span, hi) = c.int()?;
                    last = hi_span;
                    Some(spanned(hi, hi_span, hi_span, locs))
                }
                Some(Kind::Unknown) => return None,
                _ => None,
            };
            Some(PortSpec::Range {
                at: locs.add(lo_span, last),
                lo: Some(lo_s),
                hi,
            })
        }
        Kind::Ident => {
            let (t, f, l) = joined_word(c)?;
            Some(PortSpec::One(spanned(t, f, l, locs)))
        }
        _ => None,
    }
}
