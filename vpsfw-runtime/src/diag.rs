//! Diagnostics: what is wrong with a policy, and where.
//!
//! A [`Loc`] is an opaque handle that whoever built the [`Spec`](crate::spec::Spec)
//! chose: the `firewall!` macro numbers its token ranges and maps a `Loc` back to a
//! span, a run-time builder may use a rule index. The checks never interpret it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a piece of the policy was written, as numbered by the producer of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Loc(u32);

impl Loc {
    /// A location the producer of the spec can map back to its source.
    pub const fn new(index: u32) -> Self {
        Loc(index)
    }

    /// The number the producer gave this location.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// A value as written, with the place it was written at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spanned<T> {
    pub value: T,
    pub at: Loc,
}

impl<T> Spanned<T> {
    pub fn new(value: T, at: Loc) -> Self {
        Spanned { value, at }
    }
}

/// One problem found in a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The tokens at fault.
    pub at: Loc,
    /// rustc style: lowercase, no final period, the bad part named.
    pub message: String,
}

impl Diagnostic {
    pub fn new(at: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            at,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// All problems of one policy, in the order they were written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "error at #{}: {}", d.at.index(), d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics; checks push and go on, so one build reports every mistake.
#[derive(Default)]
pub(crate) struct Sink(Vec<Diagnostic>);

impl Sink {
    pub(crate) fn error(&mut self, at: Loc, message: impl Into<String>) {
        self.0.push(Diagnostic::new(at, message));
    }

    /// Records the error of a checked constructor and gives back its value, if any.
    pub(crate) fn take<T>(&mut self, at: Loc, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(at, message);
                None
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn finish(mut self) -> Diagnostics {
        self.0.sort_by_key(|d| d.at);
        Diagnostics(self.0)
    }
}

/// The known word closest to a misspelt one, if any is close enough to be a likely typo.
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lc = word.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&word_lc, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < k.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `"; did you mean `x`?"` for the closest known word, or nothing.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, known) {
        Some(k) => format!("; did you mean `{k}`?"),
        None => String::new(),
    }
}

/// Shows untrusted text inside a message without letting it span lines or run on.
/// Control and invisible characters and backslashes are escaped; quotes are shown as written.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(40) {
        match c {
            '"' | '\'' => out.push(c),
            _ => out.extend(c.escape_debug()),
        }
    }
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// One character of untrusted text, ready to follow "contains": `` `$` ``, `` `\n` ``,
/// or "a backtick" (which cannot be shown between backticks).
pub fn shown_char(c: char) -> String {
    match c {
        '`' => "a backtick".into(),
        _ => format!("`{}`", shown(c.encode_utf8(&mut [0; 4]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_word() {
        assert_eq!(
            did_you_mean("htps", ["http", "https", "ssh"]),
            "; did you mean `https`?"
        );
        assert_eq!(did_you_mean("zzzzzz", ["http", "https"]), "");
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert!(shown(&"x".repeat(100)).ends_with('…'));
        assert_eq!(shown("it's \"q\" \\"), "it's \"q\" \\\\");
        assert_eq!(shown_char('`'), "a backtick");
        assert_eq!(shown_char('\n'), "`\\n`");
    }
}
