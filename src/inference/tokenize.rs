//! Tokenizers: how input text becomes the space-separated tokens the model reads,
//! and how predicted tokens become text again.

/// The tokenizer the deployed model expects (`TOKENIZER`; clap reads the
/// setting straight into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    tokens_of(tokenized).collect()
}

type TokenIter<'a> = std::iter::Filter<std::str::Split<'a, char>, fn(&&str) -> bool>;

fn tokens_of(tokenized: &str) -> TokenIter<'_> {
    tokenized.split(' ').filter(|t| !t.is_empty())
}

/// A list of tokens kept as the model writes them: one string, a space between
/// tokens. Read and serialized as a list, without a `String` per token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tokens(String);

impl Tokens {
    pub fn new(tokenized: String) -> Self {
        Tokens(tokenized)
    }

    pub fn iter(&self) -> TokenIter<'_> {
        tokens_of(&self.0)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'a> IntoIterator for &'a Tokens {
    type Item = &'a str;
    type IntoIter = TokenIter<'a>;

    fn into_iter(self) -> TokenIter<'a> {
        self.iter()
    }
}

impl serde::Serialize for Tokens {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_and_serialize_as_a_list() {
        let t = Tokens::new(" C  ( = O ".into());
        assert_eq!(t.iter().collect::<Vec<_>>(), ["C", "(", "=", "O"]);
        assert_eq!((t.len(), t.is_empty()), (4, false));
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"["C","(","=","O"]"#);
        assert!(Tokens::new(" ".into()).is_empty());
    }

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
