//! Tokens to [`Spec`]: the language's syntax, and nothing else.
//!
//! Leaves are kept as the text written, each with a [`Loc`] naming its tokens; every
//! check of a value (ports, addresses, names, states...) happens in
//! `vpsfw_runtime::spec`, the checker the run-time builder uses too. Each statement is
//! parsed on its own, so one syntax error does not hide the mistakes in the others.

use proc_macro2::{Delimiter, LineColumn, Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, LitFloat, LitInt, LitStr, Token};
use vpsfw_runtime::diag::{closest, shown};
use vpsfw_runtime::spec::{
    read_set_file, AddrSpec, AdminSpec, DefaultSpec, EndpointSpec, HardenSpec, Item, LimitSpec,
    NameKind, NameSpec, PortSpec, RuleSpec, SetElement, SetSpec, Spec,
};
use vpsfw_runtime::{service_port, Action, Loc, Protocol, Spanned};

/// The words that start a clause of a rule.
const CLAUSES: &[&str] = &[
    "on", "from", "to", "port", "state", "limit", "burst", "prefix", "comment", "type",
];

/// The words that start a statement other than a rule.
const STATEMENTS: &[&str] = &["host", "net", "set", "admin", "harden", "policy", "group"];

/// Where each [`Loc`] points: the first and last token of what it names.
#[derive(Default)]
pub struct Locs {
    spans: Vec<(Span, Span)>,
    /// Locations whose diagnostics are not shown, because a syntax error on the same
    /// statement already is (a name whose addresses could not be parsed).
    quiet: Vec<Loc>,
    /// Set files read, by absolute path: the expansion `include_str!`s them so cargo
    /// rebuilds when one changes.
    pub files: Vec<String>,
}

impl Locs {
    pub(crate) fn add(&mut self, first: Span, last: Span) -> Loc {
        self.spans.push((first, last));
        Loc::new(self.spans.len() as u32 - 1)
    }

    /// How many locations there are; [`Locs::truncate`] forgets those added since.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.spans.truncate(len);
    }

    /// The spans of the locations from `from` on, as text (tests compare them).
    #[cfg(test)]
    pub(crate) fn shown_since(&self, from: usize) -> Vec<String> {
        self.spans[from..]
            .iter()
            .map(|(a, b)| format!("{a:?}..{b:?}"))
            .collect()
    }

    pub fn get(&self, loc: Loc) -> (Span, Span) {
        self.spans
            .get(loc.index() as usize)
            .copied()
            .unwrap_or((Span::call_site(), Span::call_site()))
    }

    pub fn is_quiet(&self, loc: Loc) -> bool {
        self.quiet.contains(&loc)
    }
}

/// Parses the whole body of `firewall! { ... }`.
pub fn parse(
    body: impl IntoIterator<Item = TokenTree>,
    locs: &mut Locs,
) -> (Spec, Vec<syn::Error>) {
    let mut spec = Spec::default();
    let mut errors = Vec::new();
    for stmt in statements(body, &mut errors) {
        parse_statement(stmt, None, locs, &mut spec, &mut errors);
    }
    (spec, errors)
}

/// One statement's tokens, without its `;`.
struct Stmt {
    tokens: Vec<TokenTree>,
    /// Where "expected ... here" points when the statement ends too early: its `;`
    /// (its last token if the `;` is missing).
    end: Span,
}

/// Splits a token stream at top-level `;`, and after `group NAME { ... }`.
fn statements(
    body: impl IntoIterator<Item = TokenTree>,
    errors: &mut Vec<syn::Error>,
) -> Vec<Stmt> {
    let mut out = Vec::new();
    let mut cur: Vec<TokenTree> = Vec::new();
    for tt in body {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ';' => {
                if !cur.is_empty() {
                    out.push(Stmt {
                        tokens: std::mem::take(&mut cur),
                        end: p.span(),
                    });
                }
            }
            // `#![allow(...)]` stands alone, like a Rust inner attribute.
            TokenTree::Group(g)
                if g.delimiter() == Delimiter::Bracket
                    && cur.len() == 2
                    && matches!((&cur[0], &cur[1]), (TokenTree::Punct(a), TokenTree::Punct(b)) if a.as_char() == '#' && b.as_char() == '!') =>
            {
                let end = g.span_close();
                cur.push(tt);
                out.push(Stmt {
                    tokens: std::mem::take(&mut cur),
                    end,
                });
            }
            TokenTree::Group(g)
                if g.delimiter() == Delimiter::Brace
                    && matches!(cur.first(), Some(TokenTree::Ident(i))
                        if i == "group" || misspelt_statement(&i.to_string()) == Some("group")) =>
            {
                let end = g.span_close();
                cur.push(tt);
                out.push(Stmt {
                    tokens: std::mem::take(&mut cur),
                    end,
                });
            }
            _ => cur.push(tt),
        }
    }
    if let Some(last) = cur.last() {
        let end = last.span();
        errors.push(syn::Error::new(end, "expected `;` after this statement"));
        out.push(Stmt { tokens: cur, end });
    }
    out
}

/// Runs `f` on a statement's tokens. Running out of tokens is reported at `end` (the
/// statement's `;`), not at the whole macro call as `syn::parse2` would.
pub(crate) fn parse_in<T>(
    end: Span,
    tokens: TokenStream,
    f: impl FnOnce(ParseStream) -> syn::Result<T>,
) -> syn::Result<T> {
    let mut group = proc_macro2::Group::new(Delimiter::Bracket, tokens);
    group.set_span(end);
    let parser = |input: ParseStream| {
        let content;
        syn::bracketed!(content in input);
        let value = f(&content)?;
        if !content.is_empty() {
            return Err(content.error("unexpected token"));
        }
        Ok(value)
    };
    parser.parse2(TokenTree::Group(group).into()).map_err(|e| {
        let message = e.to_string();
        match message.strip_prefix("unexpected end of input, ") {
            Some(rest) => syn::Error::new(e.span(), rest),
            None => e,
        }
    })
}

/// `host NAME =` at the start of a statement: the name, if it is written well.
fn declared_name(trees: &[TokenTree]) -> Option<Ident> {
    match (trees.get(1), trees.get(2)) {
        (Some(TokenTree::Ident(name)), Some(TokenTree::Punct(eq))) if eq.as_char() == '=' => {
            Some(name.clone())
        }
        _ => None,
    }
}

fn not_before_a_rule(at: Span) -> syn::Error {
    syn::Error::new(
        at,
        "`#[allow(...)]` goes before a rule; for the whole policy write `#![allow(...)]` at its top",
    )
}

fn parse_statement(
    stmt: Stmt,
    group: Option<&Spanned<String>>,
    locs: &mut Locs,
    spec: &mut Spec,
    errors: &mut Vec<syn::Error>,
) {
    let end = stmt.end;
    let mut trees = stmt.tokens;
    let is_punct =
        |t: Option<&TokenTree>, c: char| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c);
    // `#![allow(...)]`: findings allowed for the whole policy.
    if is_punct(trees.first(), '#') && is_punct(trees.get(1), '!') {
        match trees.get(2) {
            Some(TokenTree::Group(g)) if trees.len() == 3 => {
                match parse_allow(g.stream(), g.span(), locs) {
                    Ok(list) => spec.items.push(Item::Allow(list)),
                    Err(e) => errors.push(e),
                }
            }
            _ => errors.push(syn::Error::new(end, "expected `#![allow(...)]`")),
        }
        return;
    }
    // `#[allow(...)]` before a rule.
    let mut allows = Vec::new();
    while is_punct(trees.first(), '#') {
        let Some(TokenTree::Group(g)) = trees.get(1).cloned() else {
            errors.push(syn::Error::new(trees[0].span(), "expected `#[allow(...)]`"));
            return;
        };
        match parse_allow(g.stream(), g.span(), locs) {
            Ok(list) => allows.extend(list),
            Err(e) => errors.push(e),
        }
        trees.drain(..2);
    }
    let mut head = match trees.first() {
        Some(TokenTree::Ident(i)) => i.to_string(),
        Some(other) => {
            if !allows.is_empty() {
                errors.push(not_before_a_rule(other.span()));
            }
            errors.push(syn::Error::new(
                other.span(),
                "expected a rule (`allow in ...`), `host`, `net`, `policy` or `group`",
            ));
            return;
        }
        None => return,
    };
    // The statement's tokens as a stream, for syn (rules take the fast path first).
    let stream = |trees: &[TokenTree]| -> TokenStream { trees.iter().cloned().collect() };
    let first = trees[0].span();
    if !allows.is_empty() && STATEMENTS.contains(&head.as_str()) {
        errors.push(not_before_a_rule(first));
    }
    if let Some(w) = misspelt_statement(&head) {
        // `hots admin = ...`: report the word, then read the statement as the one meant,
        // so its other mistakes are reported and its name is known.
        errors.push(syn::Error::new(
            first,
            format!("unknown statement `{head}`; did you mean `{w}`?"),
        ));
        head = w.to_owned();
    }
    let result = match head.as_str() {
        "host" | "net" => {
            let kind = if head == "host" {
                NameKind::Host
            } else {
                NameKind::Net
            };
            let result = parse_in(end, stream(&trees), |input| {
                parse_name(input, &head, kind, locs)
            });
            if let (Err(_), Some(name)) = (&result, declared_name(&trees)) {
                // Keep the name declared (without addresses, a mistake already reported
                // here), so that its uses do not add "undefined name" errors.
                let at = locs.add(name.span(), name.span());
                locs.quiet.push(at);
                spec.items.push(Item::Name(NameSpec {
                    kind,
                    name: Spanned::new(name.to_string(), at),
                    values: Vec::new(),
                }));
            }
            result.map(Item::Name)
        }
        "policy" => {
            parse_in(end, stream(&trees), |input| parse_default(input, locs)).map(Item::Default)
        }
        "set" => parse_in(end, stream(&trees), |input| parse_set(input, locs)).map(Item::Set),
        "admin" => parse_in(end, stream(&trees), |input| parse_admin(input, locs)).map(Item::Admin),
        "harden" => {
            parse_in(end, stream(&trees), |input| parse_harden(input, locs)).map(Item::Harden)
        }
        "group" => {
            if group.is_some() {
                errors.push(syn::Error::new_spanned(
                    stream(&trees),
                    "groups do not nest",
                ));
                return;
            }
            let head = match crate::fast::group_head(&trees, locs) {
                Some(head) => {
                    #[cfg(test)]
                    crate::tests::group_head_agrees(&head, &trees, end, locs);
                    Ok(head)
                }
                None => parse_in(end, stream(&trees), |input| parse_group_head(input, locs)),
            };
            match head {
                Ok((name, body)) => {
                    for stmt in statements(body, errors) {
                        parse_statement(stmt, Some(&name), locs, spec, errors);
                    }
                }
                Err(e) => errors.push(e),
            }
            return;
        }
        _ => {
            let last = trees.last().map_or(first, |t| t.span());
            let at = locs.add(first, last);
            let (text, line) = source_text(&trees);
            let line = u32::try_from(line).ok().filter(|l| *l > 0);
            let mark = locs.len();
            let rule = match crate::fast::rule(&trees, at, line, group, locs) {
                Some(rule) => {
                    #[cfg(test)]
                    crate::tests::fast_agrees(&rule, mark, &trees, end, group, locs);
                    Ok(rule)
                }
                None => {
                    locs.truncate(mark);
                    parse_in(end, stream(&trees), |input| {
                        parse_rule(input, at, group, locs)
                    })
                }
            };
            let allows = std::mem::take(&mut allows);
            rule.map(|mut rule| {
                rule.text = Some(text);
                rule.allow = allows;
                Item::Rule(rule)
            })
        }
    };
    match result {
        Ok(item) => spec.items.push(item),
        Err(e) => errors.push(e),
    }
}

/// The statement word `head` is a typo of, if it is closer to one than to any action
/// (a tie goes to the action: rules are the common case).
fn misspelt_statement(head: &str) -> Option<&'static str> {
    if STATEMENTS.contains(&head) || head.parse::<Action>().is_ok() {
        return None;
    }
    closest(head, Action::WORDS.iter().chain(STATEMENTS).copied())
        .filter(|w| STATEMENTS.contains(w))
}

fn spanned<T>(value: T, first: Span, last: Span, locs: &mut Locs) -> Spanned<T> {
    Spanned::new(value, locs.add(first, last))
}

fn word(input: ParseStream) -> syn::Result<Ident> {
    input.call(Ident::parse_any)
}

fn peek_word(input: ParseStream, w: &str) -> bool {
    input.fork().call(Ident::parse_any).is_ok_and(|i| i == w)
}

/// `host NAME = ADDR, ADDR` / `net NAME = NET, NET`
/// `allow(NAME, ...)` inside `#[...]` or `#![...]`.
fn parse_allow(
    stream: TokenStream,
    span: Span,
    locs: &mut Locs,
) -> syn::Result<Vec<Spanned<String>>> {
    let parser = |input: ParseStream| -> syn::Result<Vec<Spanned<String>>> {
        let kw = word(input)?;
        if kw != "allow" {
            return Err(syn::Error::new(
                kw.span(),
                "expected `allow(...)`: the only attribute is `allow`, naming findings",
            ));
        }
        let content;
        syn::parenthesized!(content in input);
        let mut list = Vec::new();
        while !content.is_empty() {
            let name = word(&content)?;
            list.push(spanned(name.to_string(), name.span(), name.span(), locs));
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after `allow(...)`"));
        }
        Ok(list)
    };
    parser.parse2(stream).map_err(|e| {
        if e.to_string().starts_with("unexpected end of input") {
            syn::Error::new(span, "expected `allow(FINDING, ...)`")
        } else {
            e
        }
    })
}

/// After `limit`: `5/minute [burst 10]`.
fn parse_limit(input: ParseStream, locs: &mut Locs) -> syn::Result<LimitSpec> {
    let count: LitInt = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a rate after `limit`, such as `5/minute`",
        )
    })?;
    input.parse::<Token![/]>().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected `/` and a unit after the rate, such as `5/minute`",
        )
    })?;
    let unit = word(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a unit: `second`, `minute`, `hour` or `day`",
        )
    })?;
    let mut burst = None;
    if peek_word(input, "burst") {
        word(input)?;
        let b: LitInt = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected a number after `burst`"))?;
        burst = Some(spanned(
            b.base10_digits().to_owned(),
            b.span(),
            b.span(),
            locs,
        ));
    }
    Ok(LimitSpec {
        at: locs.add(count.span(), unit.span()),
        count: spanned(
            count.base10_digits().to_owned(),
            count.span(),
            count.span(),
            locs,
        ),
        unit: spanned(unit.to_string(), unit.span(), unit.span(), locs),
        burst,
    })
}

/// `harden PRESET [limit RATE [burst N]] [for SECONDS] [prefix "..."]`.
fn parse_harden(input: ParseStream, locs: &mut Locs) -> syn::Result<HardenSpec> {
    let kw = word(input)?;
    let name = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a preset after `harden`: `invalid`, `syn_flood`, `conn_rate`, `ping`, `port_scan` or `log_drops`",
        )
    })?;
    let at = locs.add(kw.span(), name.span());
    let mut spec = HardenSpec {
        at,
        name: spanned(name.to_string(), name.span(), name.span(), locs),
        limit: None,
        seconds: None,
        prefix: None,
    };
    while !input.is_empty() {
        let w = word(input)
            .map_err(|e| syn::Error::new(e.span(), "expected `limit`, `for` or `prefix`"))?;
        match w.to_string().as_str() {
            "limit" if spec.limit.is_none() => spec.limit = Some(parse_limit(input, locs)?),
            "for" if spec.seconds.is_none() => {
                let n: LitInt = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "expected seconds after `for`, such as `for 60`")
                })?;
                spec.seconds = Some(spanned(
                    n.base10_digits().to_owned(),
                    n.span(),
                    n.span(),
                    locs,
                ));
            }
            "prefix" if spec.prefix.is_none() => {
                let s: LitStr = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "expected a string in quotes after `prefix`")
                })?;
                spec.prefix = Some(spanned(s.value(), s.span(), s.span(), locs));
            }
            "limit" | "for" | "prefix" => {
                return Err(syn::Error::new(w.span(), format!("`{w}` is given twice")))
            }
            _ => {
                return Err(syn::Error::new(
                    w.span(),
                    format!("unexpected `{w}`; a preset takes `limit`, `for` and `prefix`"),
                ))
            }
        }
    }
    Ok(spec)
}

/// `admin NAME [port P]` or `admin none`.
fn parse_admin(input: ParseStream, locs: &mut Locs) -> syn::Result<AdminSpec> {
    let kw = word(input)?;
    let name = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a declared name after `admin` (or `admin none;`)",
        )
    })?;
    let at = locs.add(kw.span(), name.span());
    if name == "none" {
        return Ok(AdminSpec {
            at,
            name: None,
            port: None,
        });
    }
    let name = spanned(name.to_string(), name.span(), name.span(), locs);
    let mut port = None;
    if peek_word(input, "port") {
        word(input)?;
        let (t, f, l) = if input.peek(LitInt) {
            let n: LitInt = input.parse()?;
            (n.base10_digits().to_owned(), n.span(), n.span())
        } else {
            joined_word(input)?
        };
        port = Some(spanned(t, f, l, locs));
    }
    Ok(AdminSpec {
        at,
        name: Some(name),
        port,
    })
}

/// `set NAME = [ADDR, ...]` or `set NAME from "path"` (relative to the crate's
/// Cargo.toml), one address or network per line, `#` comments.
fn parse_set(input: ParseStream, locs: &mut Locs) -> syn::Result<SetSpec> {
    word(input)?;
    let name = input
        .call(Ident::parse_any)
        .map_err(|e| syn::Error::new(e.span(), "expected a name after `set`"))?;
    let name = spanned(name.to_string(), name.span(), name.span(), locs);
    if peek_word(input, "from") {
        word(input)?;
        let path: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the file in quotes after `from`, such as `\"sets/blocklist.txt\"`",
            )
        })?;
        let shown_path = path.value();
        let base = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        let full = std::path::Path::new(&base).join(&shown_path);
        let text = std::fs::read_to_string(&full).map_err(|e| {
            syn::Error::new(
                path.span(),
                format!("cannot read set file `{}`: {e}", full.display()),
            )
        })?;
        locs.files.push(full.to_string_lossy().into_owned());
        let at = locs.add(path.span(), path.span());
        let elements = read_set_file(&text)
            .into_iter()
            .map(|(line, t)| SetElement {
                text: Spanned::new(t, at),
                line: Some(line),
            })
            .collect();
        return Ok(SetSpec {
            name,
            file: Some(shown_path),
            elements,
        });
    }
    input.parse::<Token![=]>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "expected `= [...]` or `from \"file\"` after `set {}`",
                name.value
            ),
        )
    })?;
    let content;
    syn::bracketed!(content in input);
    let mut elements = Vec::new();
    while !content.is_empty() {
        elements.push(SetElement {
            text: parse_address_literal(&content, locs)?,
            line: None,
        });
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(SetSpec {
        name,
        file: None,
        elements,
    })
}

fn parse_name(
    input: ParseStream,
    kw: &str,
    kind: NameKind,
    locs: &mut Locs,
) -> syn::Result<NameSpec> {
    word(input)?;
    let name = input
        .call(Ident::parse_any)
        .map_err(|e| syn::Error::new(e.span(), format!("expected a name after `{kw}`")))?;
    let name = spanned(name.to_string(), name.span(), name.span(), locs);
    input.parse::<Token![=]>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected `=` after `{kw} {}`", name.value),
        )
    })?;
    let mut values = Vec::new();
    loop {
        values.push(parse_address_literal(input, locs)?);
        if input.is_empty() {
            break;
        }
        if let Ok(next) = input.fork().call(Ident::parse_any) {
            return Err(syn::Error::new(
                next.span(),
                format!("expected `;` before `{next}`"),
            ));
        }
        input
            .parse::<Token![,]>()
            .map_err(|e| syn::Error::new(e.span(), "expected `,` or `;` after the address"))?;
    }
    Ok(NameSpec { kind, name, values })
}

/// `"2001:db8::1"`, `198.51.100.7`, `203.0.113.128/27`
fn parse_address_literal(input: ParseStream, locs: &mut Locs) -> syn::Result<Spanned<String>> {
    if input.peek(LitStr) {
        let s: LitStr = input.parse()?;
        return Ok(spanned(s.value(), s.span(), s.span(), locs));
    }
    if input.peek(LitFloat) || input.peek(LitInt) {
        return parse_bare_ipv4(input, locs);
    }
    Err(input.error(
        "expected an address: IPv4 as `198.51.100.7` or `203.0.113.128/27`, IPv6 in quotes as `\"2001:db8::1\"`",
    ))
}

/// A bare IPv4 address arrives as `198.51` `.` `100.7` (two float literals); glue the
/// pieces back into the text written, with an optional `/N`.
fn parse_bare_ipv4(input: ParseStream, locs: &mut Locs) -> syn::Result<Spanned<String>> {
    let first: TokenTree = input.parse()?;
    let mut text = first.to_string();
    let mut last = first.span();
    while input.peek(Token![.]) && (input.peek2(LitFloat) || input.peek2(LitInt)) {
        input.parse::<Token![.]>()?;
        let part: TokenTree = input.parse()?;
        text.push('.');
        text.push_str(&part.to_string());
        last = part.span();
    }
    if input.peek(Token![/]) {
        input.parse::<Token![/]>()?;
        let len: LitInt = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected a prefix length after `/`"))?;
        text.push('/');
        text.push_str(len.base10_digits());
        last = len.span();
    }
    // Anything odd (`1.5e3`, `10u8.0.0.1`) is reported by the runtime's address check.
    Ok(spanned(text, first.span(), last, locs))
}

/// `policy input drop`
fn parse_default(input: ParseStream, locs: &mut Locs) -> syn::Result<DefaultSpec> {
    word(input)?;
    let chain = word(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a chain after `policy`: `input`, `output` or `forward`",
        )
    })?;
    let verdict = word(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected `allow` or `drop` after `policy {chain}`"),
        )
    })?;
    if !input.is_empty() {
        return Err(input.error(format!("expected `;` after `policy {chain} {verdict}`")));
    }
    Ok(DefaultSpec {
        chain: spanned(chain.to_string(), chain.span(), chain.span(), locs),
        verdict: spanned(verdict.to_string(), verdict.span(), verdict.span(), locs),
    })
}

/// `group NAME { ... }`: the name and the body.
pub(crate) fn parse_group_head(
    input: ParseStream,
    locs: &mut Locs,
) -> syn::Result<(Spanned<String>, TokenStream)> {
    word(input)?;
    let name = if input.peek(LitStr) {
        let s: LitStr = input.parse()?;
        spanned(s.value(), s.span(), s.span(), locs)
    } else {
        let (text, first, last) = joined_word(input)
            .map_err(|e| syn::Error::new(e.span(), "expected a group name after `group`"))?;
        spanned(text, first, last, locs)
    };
    if !input.peek(syn::token::Brace) {
        return Err(input.error(format!(
            "expected the group's rules in braces: `group {} {{ ... }}`",
            shown(&name.value)
        )));
    }
    let body;
    syn::braced!(body in input);
    Ok((name, body.parse()?))
}

/// A word that may contain `-` and `.` (`echo-request`, `eth0.100`) and end in `+`.
fn joined_word(input: ParseStream) -> syn::Result<(String, Span, Span)> {
    let first = word(input)?;
    let mut text = first.to_string();
    let mut last = first.span();
    loop {
        if (input.peek(Token![-]) || input.peek(Token![.]))
            && (input.peek2(Ident::peek_any) || input.peek2(LitInt))
        {
            let sep: TokenTree = input.parse()?;
            let part: TokenTree = input.parse()?;
            text.push_str(&sep.to_string());
            text.push_str(&part.to_string());
            last = part.span();
        } else if input.peek(LitInt) && text.ends_with('-') {
            let part: TokenTree = input.parse()?;
            text.push_str(&part.to_string());
            last = part.span();
        } else {
            break;
        }
    }
    if input.peek(Token![+]) {
        let plus: Token![+] = input.parse()?;
        text.push('+');
        last = plus.span;
    }
    Ok((text, first.span(), last))
}

/// The rule as written, for the evaluator's "why": each token's source text, spaced as
/// in the source on one line (a rule over several lines is joined with single spaces);
/// and the line of its first token.
///
/// Inside rustc each span query is a call into the compiler (`start` is two, `end`
/// three), so a token that is not a group costs one `start`: its text is its source
/// (`to_string` gives a literal as written), and on one line it ends where its text
/// does. A group, or a literal over several lines, asks for its source and its end.
/// (Tokens made by another macro may carry a span that is not theirs; their text is then
/// their own, not their span's.)
pub(crate) fn source_text(trees: &[TokenTree]) -> (String, usize) {
    let mut out = String::with_capacity(64);
    let mut first_line = 0;
    let mut prev_end: Option<LineColumn> = None;
    for tt in trees {
        let span = tt.span();
        let start = span.start();
        match prev_end {
            None => first_line = start.line,
            Some(end) => {
                if start.line == end.line && start.column >= end.column && start.line > 0 {
                    out.extend(std::iter::repeat_n(' ', start.column - end.column));
                } else {
                    out.push(' ');
                }
            }
        }
        let text = match tt {
            TokenTree::Group(_) => None,
            _ => Some(tt.to_string()),
        };
        prev_end = Some(match text {
            Some(text) if !text.contains('\n') => {
                out.push_str(&text);
                LineColumn {
                    line: start.line,
                    column: start.column + text.chars().count(),
                }
            }
            _ => {
                out.push_str(&span.source_text().unwrap_or_else(|| tt.to_string()));
                span.end()
            }
        });
    }
    out.push(';');
    (out, first_line)
}

pub(crate) fn is_reserved(w: &str) -> bool {
    CLAUSES.contains(&w) || Protocol::WORDS.contains(&w) || w == "all"
}

pub(crate) fn parse_rule(
    input: ParseStream,
    at: Loc,
    group: Option<&Spanned<String>>,
    locs: &mut Locs,
) -> syn::Result<RuleSpec> {
    let action = word(input)?;
    let first_span = action.span();
    let line = u32::try_from(first_span.start().line)
        .ok()
        .filter(|l| *l > 0);
    let direction = match input.fork().call(Ident::parse_any) {
        Ok(d) if !is_reserved(&d.to_string()) => word(input)?,
        _ => {
            return Err(input.error(format!(
                "expected a direction after `{action}`: `in`, `out` or `forward`"
            )))
        }
    };
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

    while !input.is_empty() {
        let kw = input.call(Ident::parse_any).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a clause (`from`, `to`, `on`, `state`, ...) or a protocol",
            )
        })?;
        let k = kw.to_string();
        let dup = |given: bool| -> syn::Result<()> {
            if given {
                Err(syn::Error::new(
                    kw.span(),
                    format!("`{k}` is given twice in this rule"),
                ))
            } else {
                Ok(())
            }
        };
        match k.as_str() {
            "on" => {
                dup(rule.iface.is_some())?;
                rule.iface = Some(if input.peek(LitStr) {
                    let s: LitStr = input.parse()?;
                    spanned(s.value(), s.span(), s.span(), locs)
                } else {
                    let (t, f, l) = joined_word(input).map_err(|e| {
                        syn::Error::new(e.span(), "expected an interface name after `on`")
                    })?;
                    spanned(t, f, l, locs)
                });
            }
            "from" => {
                dup(rule.from.is_some())?;
                rule.from = Some(parse_endpoint(input, &kw, locs)?);
            }
            "to" => {
                dup(rule.to.is_some())?;
                rule.to = Some(parse_endpoint(input, &kw, locs)?);
            }
            "state" => {
                dup(rule.states.is_some())?;
                let mut list = Vec::new();
                loop {
                    let s = word(input)
                        .map_err(|e| syn::Error::new(e.span(), "expected a state: `new`, `established`, `related`, `invalid` or `untracked`"))?;
                    list.push(spanned(s.to_string(), s.span(), s.span(), locs));
                    if !input.peek(Token![,]) {
                        break;
                    }
                    input.parse::<Token![,]>()?;
                }
                rule.states = Some(list);
            }
            "limit" => {
                dup(rule.limit.is_some())?;
                rule.limit = Some(parse_limit(input, locs)?);
            }
            "prefix" | "comment" => {
                let slot = if k == "prefix" {
                    &mut rule.log_prefix
                } else {
                    &mut rule.comment
                };
                dup(slot.is_some())?;
                let s: LitStr = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), format!("expected a string in quotes after `{k}`"))
                })?;
                *slot = Some(spanned(s.value(), s.span(), s.span(), locs));
            }
            "type" => {
                dup(rule.icmp_type.is_some())?;
                let (t, f, l) = joined_word(input).map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected an ICMP type after `type`, such as `echo-request`",
                    )
                })?;
                rule.icmp_type = Some(spanned(t, f, l, locs));
            }
            "port" | "burst" => {
                return Err(syn::Error::new(
                    kw.span(),
                    if k == "port" {
                        "`port` goes after an address: `from admin port 1024:` (or write `to 22`)"
                    } else {
                        "`burst` goes after a rate: `limit 5/minute burst 10`"
                    },
                ))
            }
            _ if Protocol::WORDS.contains(&k.as_str()) || k == "all" => {
                dup(proto_given)?;
                proto_given = true;
                if k != "all" {
                    rule.proto = Some(spanned(k.clone(), kw.span(), kw.span(), locs));
                }
            }
            _ if k.parse::<Action>().is_ok() || STATEMENTS.contains(&k.as_str()) => {
                return Err(syn::Error::new(
                    kw.span(),
                    format!("expected `;` before `{k}`"),
                ))
            }
            _ if service_port(&k).is_ok() => {
                return Err(syn::Error::new(
                    kw.span(),
                    format!("expected a clause before `{k}`: `to {k}` or `from {k}`"),
                ))
            }
            _ => {
                let known = CLAUSES.iter().chain(Protocol::WORDS).copied();
                let hint = closest(&k, known)
                    .map(|w| format!("; did you mean `{w}`?"))
                    .unwrap_or_default();
                let what = if closest(&k, Protocol::WORDS.iter().copied()).is_some() {
                    "unknown protocol"
                } else {
                    "unknown clause"
                };
                return Err(syn::Error::new(kw.span(), format!("{what} `{k}`{hint}")));
            }
        }
    }
    Ok(rule)
}

/// After `from`/`to`: `any`, an address, a name (`office`, `office/27`), ports, or an
/// address or name followed by `port ...`.
fn parse_endpoint(input: ParseStream, kw: &Ident, locs: &mut Locs) -> syn::Result<EndpointSpec> {
    let start = input.span();
    let expected = || {
        input.error(format!(
            "expected an address, a name, `any` or ports after `{kw}`"
        ))
    };
    let mut addr = None;
    let mut ports = None;
    if peek_word(input, "any") {
        let any = word(input)?;
        addr = Some(AddrSpec::Any(locs.add(any.span(), any.span())));
    } else if input.peek(LitStr) {
        let s: LitStr = input.parse()?;
        addr = Some(AddrSpec::Literal(spanned(
            s.value(),
            s.span(),
            s.span(),
            locs,
        )));
    } else if input.peek(LitFloat) {
        addr = Some(AddrSpec::Literal(parse_bare_ipv4(input, locs)?));
    } else if input.peek(LitInt) || input.peek(Token![:]) || input.peek(syn::token::Bracket) {
        ports = Some(parse_ports(input, locs)?);
    } else if input.peek(Ident::peek_any) {
        let name = word(input)?;
        let n = name.to_string();
        if is_reserved(&n) {
            return Err(expected());
        }
        let spanned_name = spanned(n, name.span(), name.span(), locs);
        if input.peek(Token![/]) {
            input.parse::<Token![/]>()?;
            let len: LitInt = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), "expected a prefix length after `/`"))?;
            // The prefix's location is the whole `office/27`: its mistakes (host bits
            // set, too long) are about the widened name.
            addr = Some(AddrSpec::Name {
                name: spanned_name,
                prefix: Some(spanned(
                    len.base10_digits().to_owned(),
                    name.span(),
                    len.span(),
                    locs,
                )),
            });
        } else if peek_word(input, "port") {
            addr = Some(AddrSpec::Name {
                name: spanned_name,
                prefix: None,
            });
        } else {
            addr = Some(AddrSpec::NameOrService(spanned_name));
        }
    } else {
        return Err(expected());
    }
    let mut ports_start = start;
    if addr.is_some() && peek_word(input, "port") {
        ports_start = word(input)?.span();
        ports = Some(parse_ports(input, locs)?);
    }
    // The endpoint's location is that of its ports (what the checker reports about
    // it: ports without `tcp`/`udp`): `22`, `1024:`, `[http, https]`, `port 1024:`.
    let at = match &ports {
        Some((_, last)) => locs.add(ports_start, *last),
        None => locs.add(start, start),
    };
    let ports = ports.map(|(list, _)| list);
    Ok(EndpointSpec { at, addr, ports })
}

/// `22`, `https`, `1024:`, `:1023`, `1024:2048`, or a `[...]` list of those; and the
/// span of their last token.
fn parse_ports(input: ParseStream, locs: &mut Locs) -> syn::Result<(Vec<PortSpec>, Span)> {
    if input.peek(syn::token::Bracket) {
        let content;
        let bracket = syn::bracketed!(content in input);
        let mut list = Vec::new();
        while !content.is_empty() {
            list.push(parse_port_item(&content, locs)?);
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        if list.is_empty() {
            return Err(syn::Error::new(bracket.span.join(), "empty port list"));
        }
        return Ok((list, bracket.span.close()));
    }
    let item = parse_port_item(input, locs)?;
    let (_, last) = locs.get(match &item {
        PortSpec::One(s) => s.at,
        PortSpec::Range { at, .. } => *at,
    });
    Ok((vec![item], last))
}

fn parse_port_item(input: ParseStream, locs: &mut Locs) -> syn::Result<PortSpec> {
    if input.peek(Token![:]) {
        let colon: Token![:] = input.parse()?;
        let hi: LitInt = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected a port after `:`"))?;
        return Ok(PortSpec::Range {
            at: locs.add(colon.span, hi.span()),
            lo: None,
            hi: Some(spanned(
                hi.base10_digits().to_owned(),
                hi.span(),
                hi.span(),
                locs,
            )),
        });
    }
    if input.peek(LitInt) {
        let lo: LitInt = input.parse()?;
        let lo_s = spanned(lo.base10_digits().to_owned(), lo.span(), lo.span(), locs);
        if !input.peek(Token![:]) {
            return Ok(PortSpec::One(lo_s));
        }
        let colon: Token![:] = input.parse()?;
        let mut last = colon.span;
        let hi = if input.peek(LitInt) {
            let hi: LitInt = input.parse()?;
            last = hi.span();
            Some(spanned(
                hi.base10_digits().to_owned(),
                hi.span(),
                hi.span(),
                locs,
            ))
        } else {
            None
        };
        return Ok(PortSpec::Range {
            at: locs.add(lo.span(), last),
            lo: Some(lo_s),
            hi,
        });
    }
    if input.peek(Ident::peek_any) {
        let (t, f, l) = joined_word(input)?;
        return Ok(PortSpec::One(spanned(t, f, l, locs)));
    }
    Err(input.error(
        "expected a port: a number, a service name such as `https`, or a range such as `1024:`",
    ))
}
