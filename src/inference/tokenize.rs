//! Tokenizers: how input text becomes the space-separated tokens the model reads,
//! and how predicted tokens become text again.

/// The tokenizer the deployed model expects (`TOKENIZER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokenizer {
    /// Trim, drop all whitespace, one space between characters; detokenize by
    /// removing spaces. What the existing SMILES model expects.
    Chars,
    /// Collapse runs of whitespace to one space; predictions shown as they are.
    Whitespace,
    /// The text is sent as it is.
    None,
}

impl Tokenizer {
    /// The name used by `TOKENIZER` and shown by `/api/v1/config`.
    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::Chars => "chars",
            Tokenizer::Whitespace => "whitespace",
            Tokenizer::None => "none",
        }
    }

    pub fn tokenize(self, text: &str) -> String {
        match self {
            Tokenizer::Chars => {
                let mut out = String::with_capacity(text.len() * 2);
                for c in text.chars().filter(|c| !c.is_whitespace()) {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push(c);
                }
                out
            }
            Tokenizer::Whitespace => text.split_whitespace().collect::<Vec<_>>().join(" "),
            Tokenizer::None => text.to_string(),
        }
    }

    pub fn detokenize(self, tokens: &str) -> String {
        match self {
            Tokenizer::Chars => tokens.split_whitespace().collect(),
            Tokenizer::Whitespace | Tokenizer::None => tokens.to_string(),
        }
    }
}

/// The tokens of a tokenized string, as the heatmap labels them.
pub fn split_tokens(tokenized: &str) -> Vec<&str> {
    tokenized.split(' ').filter(|t| !t.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chars_spaces_every_character_and_drops_whitespace() {
        assert_eq!(Tokenizer::Chars.tokenize("  CC(C)=O . OCC \n"), "C C ( C ) = O . O C C");
        assert_eq!(Tokenizer::Chars.tokenize("N#Cc1ccccc1"), "N # C c 1 c c c c c 1");
        assert_eq!(Tokenizer::Chars.tokenize("é漢"), "é 漢");
        assert_eq!(Tokenizer::Chars.tokenize(" \t"), "");
        assert_eq!(Tokenizer::Chars.detokenize("C C ( = O ) O C C"), "CC(=O)OCC");
    }

    #[test]
    fn whitespace_collapses_runs() {
        assert_eq!(Tokenizer::Whitespace.tokenize("  the   cat\tsat \n"), "the cat sat");
        assert_eq!(Tokenizer::Whitespace.detokenize("le chat"), "le chat");
    }

    #[test]
    fn none_sends_text_as_is() {
        assert_eq!(Tokenizer::None.tokenize(" a  b "), " a  b ");
    }

    #[test]
    fn split_tokens_ignores_empty_pieces() {
        assert_eq!(split_tokens("a  b c"), vec!["a", "b", "c"]);
        assert!(split_tokens("").is_empty());
    }
}
