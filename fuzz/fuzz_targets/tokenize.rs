//! Encode arbitrary strings and decode arbitrary id lists (ids outside the vocabulary
//! included) with the stories260K tokenizer (512 pieces, byte fallback). The first byte picks
//! what to do with the rest; decoding one id at a time must give the same text as decoding the
//! list.

#![no_main]

use cinder_fuzz::stories_tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tok = stories_tokenizer();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        let ids = tok.encode(&text, mode & 2 != 0);
        assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()));
        std::hint::black_box(tok.decode(&ids));
    } else {
        let ids: Vec<u32> = rest
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) % 600)
            .collect();
        let whole = tok.decode(&ids);
        let mut stream = tok.decoder();
        let mut pieces = String::new();
        for &id in &ids {
            stream.push_into(id, &mut pieces);
        }
        stream.finish_into(&mut pieces);
        assert_eq!(whole, pieces);
    }
});
