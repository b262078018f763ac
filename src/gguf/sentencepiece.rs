//! Gemma's sentencepiece vocabulary as the byte-fallback BPE that transformers builds from a
//! GGUF file (`gemma_tokenizer` in its `gguf_tokenizer_mapping.py`): the file lists no merges,
//! so they are recovered from the vocabulary, best first by the order the tokens appear in the
//! file (Gemma's scores do not follow its merge order).

/// A token of two or more characters that are all whitespace, spaces among them, is stored with
/// real spaces ("  "), where the BPE (which sees spaces as "▁") looks it up as "▁▁".
pub fn respell(token: &str) -> String {
    if token.contains(' ') && token.trim().is_empty() {
        "\u{2581}".repeat(token.chars().count())
    } else {
        token.to_string()
    }
}

/// The merges a vocabulary implies (transformers' `generate_merges` with the file order as the
/// scores): for each token, in order, every split into two tokens of the vocabulary, ordered by
/// the halves' ids; then all of them by the token's position, longer left halves first, then
/// longer right halves, the order otherwise kept.
pub fn merges(tokens: &[String]) -> Vec<(String, String)> {
    use std::collections::HashMap;
    // As Python's dicts: a repeated token keeps its first place and its last id.
    let mut id: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut first = Vec::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        if id.insert(t.as_str(), i).is_none() {
            first.push(t.as_str());
        }
    }
    // (position of the merged token, left chars, right chars, left, right)
    let mut all: Vec<(usize, usize, usize, &str, &str)> = Vec::new();
    for token in first {
        let rank = id[token];
        let mut local = Vec::new();
        for (at, _) in token.char_indices().skip(1) {
            let (l, r) = token.split_at(at);
            if let (Some(&li), Some(&ri)) = (id.get(l), id.get(r)) {
                local.push((li, ri, l, r));
            }
        }
        local.sort_by_key(|&(li, ri, _, _)| (li, ri));
        all.extend(
            local
                .into_iter()
                .map(|(_, _, l, r)| (rank, l.chars().count(), r.chars().count(), l, r)),
        );
    }
    // Python sorts by (−position, len l, len r) descending, stably.
    all.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| b.1.cmp(&a.1))
            .then_with(|| b.2.cmp(&a.2))
    });
    all.into_iter()
        .map(|(_, _, _, l, r)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_file_order_then_the_longer_halves() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "abc", "bc", "  "]
            .iter()
            .map(|t| respell(t))
            .collect();
        assert_eq!(tokens[6], "▁▁");
        let m = merges(&tokens);
        let pairs: Vec<(&str, &str)> = m.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
        // "ab" (position 3) first; then "abc" (4): "ab"+"c" (longer left) before "a"+"bc";
        // then "bc" (5).
        assert_eq!(pairs, [("a", "b"), ("ab", "c"), ("a", "bc"), ("b", "c")]);
    }
}
