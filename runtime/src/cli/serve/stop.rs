//! Stop strings matched on the generated text across token boundaries: text that could still
//! be the start of a stop string is held back until the next token decides, and a stop string
//! that matches is never sent.

/// The state of one request's stop strings.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Generated text not yet sent: a suffix that is a prefix of some stop string.
    held: String,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds `text` (the next token's); returns the text that can be sent now and whether a
    /// stop string matched (then the returned text is everything before it, and generation
    /// ends).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        if self.stops.is_empty() {
            return (std::mem::take(&mut self.held), false);
        }
        // The earliest match wins.
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            let mut out = std::mem::take(&mut self.held);
            out.truncate(at);
            return (out, true);
        }
        // Hold back the longest suffix that is a proper prefix of a stop string.
        let keep_from = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let rest = self.held.split_off(keep_from);
        (std::mem::replace(&mut self.held, rest), false)
    }

    /// Generation ended without a match: the held-back text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (text, hit) = m.push(p);
            out.push_str(&text);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_string_split_over_tokens_is_matched_and_not_sent() {
        assert_eq!(
            run(
                &["The end"],
                &["Once", " upon", " The", " e", "nd", " more"]
            ),
            ("Once upon ".to_string(), true)
        );
    }

    #[test]
    fn text_that_only_starts_a_stop_string_is_sent_once_it_diverges() {
        let mut m = StopMatcher::new(vec!["\n\n".into()]);
        assert_eq!(m.push("a\n"), ("a".to_string(), false));
        assert_eq!(m.push("b"), ("\nb".to_string(), false));
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn earliest_of_several_stop_strings_wins_and_held_text_is_flushed_at_the_end() {
        assert_eq!(run(&["yz", "x"], &["abxyz"]), ("ab".to_string(), true));
        assert_eq!(run(&["xyz"], &["ab", "xy"]), ("abxy".to_string(), false));
        assert_eq!(run(&[], &["é", "ü"]), ("éü".to_string(), false));
    }
}
