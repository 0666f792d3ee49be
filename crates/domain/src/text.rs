//! SPEC section 7, "Text input": every string the service stores or passes on is refused when it
//! holds a NUL or another control character; tab and newline are the only ones let through
//! (a newline as a browser sends it, CR LF, counts as one). PostgreSQL refuses a NUL in text, and
//! the others have no place in a name, a reason or an id: a terminal or a log reader would act on
//! them.
//!
//! [`Text`] is a string that passed, with its length bounds; [`check`] is the rule itself, which
//! the HTTP edge applies to every string of every JSON body, form and query before a handler sees
//! it (crates/api `edge`), so no route can forget it.

use std::fmt;

/// Why a string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} holds a control character (U+{code:04X}); only tab and newline are allowed")]
    Control { field: String, code: u32 },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("{field} must not be empty")]
    Empty { field: String },
}

/// The rule: no control character but tab, newline, and CR directly before a newline.
pub fn check(field: &str, value: &str) -> Result<(), TextError> {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let allowed = match c {
            '\t' | '\n' => true,
            '\r' => chars.peek() == Some(&'\n'),
            c => !c.is_control(),
        };
        if !allowed {
            return Err(TextError::Control { field: field.to_owned(), code: u32::from(c) });
        }
    }
    Ok(())
}

/// A string from outside that passed the rule and its bounds.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(String);

impl Text {
    /// `value` if it holds no forbidden character and has between 1 and `max` characters.
    pub fn parse(field: &str, value: &str, max: usize) -> Result<Text, TextError> {
        check(field, value)?;
        if value.trim().is_empty() {
            return Err(TextError::Empty { field: field.to_owned() });
        }
        if value.chars().count() > max {
            return Err(TextError::TooLong { field: field.to_owned(), max });
        }
        Ok(Text(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_nul_and_the_other_control_characters_are_refused() {
        for bad in ["a\0b", "\u{1}", "x\u{1b}[31m", "\u{7f}", "\u{85}", "\u{9f}", "lone\rcr", "end\r"] {
            assert!(matches!(check("reason", bad), Err(TextError::Control { .. })), "{bad:?}");
        }
        assert_eq!(check("reason", "a\0b"), Err(TextError::Control { field: "reason".into(), code: 0 }));
    }

    #[test]
    fn tab_newline_and_a_browsers_cr_lf_pass_and_so_does_any_other_text() {
        for good in ["", "goodwill credit", "two\nlines", "a\tb", "form\r\nline", "ünïcødé ✓ 日本語 🎉", "\u{200b}"]
        {
            assert_eq!(check("reason", good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn text_has_bounds() {
        assert_eq!(Text::parse("name", "Ada", 10).unwrap().as_str(), "Ada");
        assert_eq!(Text::parse("name", "  ", 10), Err(TextError::Empty { field: "name".into() }));
        assert_eq!(Text::parse("name", "ééééé", 4), Err(TextError::TooLong { field: "name".into(), max: 4 }));
        assert!(Text::parse("name", "éééé", 4).is_ok(), "characters are counted, not bytes");
    }

    proptest! {
        #[test]
        fn check_refuses_exactly_the_strings_holding_a_forbidden_character(s in any::<String>()) {
            let forbidden = s.char_indices().any(|(i, c)| {
                c.is_control() && c != '\t' && c != '\n' && !(c == '\r' && s[i + 1..].starts_with('\n'))
            });
            prop_assert_eq!(check("f", &s).is_err(), forbidden);
        }
    }
}
