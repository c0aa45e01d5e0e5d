//! Tokenizer rules the two fixture models never exercise, on a hand-made vocabulary: unknown
//! runs without byte pieces, unused-piece resegmentation, user-defined pieces, score ties,
//! no dummy prefix, sentencepiece's leading-space rule under remove_extra_whitespaces, and
//! rejected vocabularies.

use cinder::tokenizer::{Tokenizer, TokenizerSpec, UNK_SURFACE};

/// id: 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 a, 5 b, 6 ab, 7 ▁ab (unused), 8 <x> (user defined), 9 ba.
fn spec(add_dummy_prefix: bool, remove_extra_whitespaces: bool) -> TokenizerSpec {
    let table: [(&str, f32, i32); 10] = [
        ("<unk>", 0.0, 2),
        ("<s>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("\u{2581}", -1.0, 1),
        ("a", -2.0, 1),
        ("b", -3.0, 1),
        ("ab", -0.5, 1),
        ("\u{2581}ab", -0.1, 5),
        ("<x>", 0.0, 4),
        ("ba", -0.5, 1),
    ];
    TokenizerSpec {
        tokens: table.iter().map(|t| t.0.to_string()).collect(),
        scores: table.iter().map(|t| t.1).collect(),
        token_types: table.iter().map(|t| t.2).collect(),
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: 0,
        add_bos: true,
        add_dummy_prefix,
        remove_extra_whitespaces,
    }
}

fn tok(add_dummy_prefix: bool, remove_extra_whitespaces: bool) -> Tokenizer {
    Tokenizer::new(spec(add_dummy_prefix, remove_extra_whitespaces)).expect("valid spec")
}

#[test]
fn without_byte_pieces_a_run_of_unknown_characters_is_one_unk() {
    let t = tok(true, false);
    assert_eq!(t.encode("zz", false), [3, 0]);
    assert_eq!(t.encode("zzaz", false), [3, 0, 4, 0]);
    assert_eq!(t.decode(&[3, 0]), UNK_SURFACE);
}

#[test]
fn equal_scores_merge_leftmost_first_and_unused_pieces_are_resegmented() {
    let t = tok(true, false);
    // "▁aba": ab and ba tie at -0.5, ab (leftmost) wins; then ▁ab (unused, -0.1) merges and is
    // split back into ▁ + ab.
    assert_eq!(t.encode("aba", false), [3, 6, 4]);
    assert_eq!(t.encode("aba", true), [1, 3, 6, 4]);
    // Without the dummy prefix: "aba" -> ab a.
    assert_eq!(tok(false, false).encode("aba", false), [6, 4]);
    assert_eq!(tok(false, false).encode("bab", false), [9, 5]);
}

#[test]
fn user_defined_pieces_are_matched_whole_and_never_merged() {
    let t = tok(true, false);
    assert_eq!(t.encode("a<x>b", false), [3, 4, 8, 5]);
    assert_eq!(t.decode(&[3, 4, 8, 5]), "a<x>b");
}

#[test]
fn remove_extra_whitespaces_normalizes_and_decode_strips_every_leading_space_piece() {
    let t = tok(true, true);
    assert_eq!(t.normalize("  a   b  "), "\u{2581}a\u{2581}b");
    assert_eq!(t.normalize("   "), "");
    assert_eq!(t.encode("   ", false), Vec::<u32>::new());
    // While nothing has been written, every leading ▁ is dropped with remove_extra_whitespaces.
    assert_eq!(t.decode(&[3, 3, 4]), "a");
    assert_eq!(tok(true, false).decode(&[3, 3, 4]), " a");
    assert_eq!(
        tok(true, false).normalize("  a "),
        "\u{2581}\u{2581}\u{2581}a\u{2581}"
    );
}

#[test]
fn bad_specs_are_errors() {
    let mut s = spec(true, false);
    s.scores.pop();
    assert!(Tokenizer::new(s).is_err());
    let mut s = spec(true, false);
    s.unk_id = 10;
    assert!(Tokenizer::new(s).is_err());
    let mut s = spec(true, false);
    s.bos_id = Some(99);
    assert!(Tokenizer::new(s).is_err());
    let mut s = spec(true, false);
    s.token_types[4] = 9;
    assert!(Tokenizer::new(s).is_err());
    let mut s = spec(true, false);
    s.token_types[4] = 6; // "a" is not a <0xXX> piece
    assert!(Tokenizer::new(s).is_err());
    let mut s = spec(true, false);
    s.tokens.clear();
    s.scores.clear();
    s.token_types.clear();
    assert!(Tokenizer::new(s).is_err());
}
