use super::*;

#[test]
fn word_lists_have_the_reference_sizes() {
    assert_eq!(ADJECTIVES.lines().count() as u64, ADJECTIVE_COUNT);
    assert_eq!(ANIMALS.lines().count() as u64, ANIMAL_COUNT);
    assert!(ADJECTIVES
        .lines()
        .chain(ANIMALS.lines())
        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphabetic())));
}

#[test]
fn multibase_round_trips() {
    let data: Vec<u8> = (0u8..=40).chain([0, 0, 255]).collect();
    for len in [0, 1, 2, 3, 4, 5, 6, 7, 35, data.len()] {
        let d = &data[..len];
        for base in [
            Multibase::Base16,
            Multibase::Base16Upper,
            Multibase::Base32,
            Multibase::Base32Upper,
            Multibase::Base58Btc,
            Multibase::Base64,
            Multibase::Base64Url,
            Multibase::Base64UrlPad,
        ] {
            let s = encode_multibase(base, d);
            assert_eq!(decode_multibase(&s).as_deref(), Some(d), "{base:?} {s}");
        }
    }
    assert_eq!(encode_base58(&[0, 0, 1]), "112");
    assert_eq!(encode_bits(b"foobar", 6, B64), "Zm9vYmFy");
    assert_eq!(encode_bits(b"foobar", 5, B32), "mzxw6ytboi");
    assert_eq!(encode_multibase(Multibase::Base64UrlPad, b"f"), "UZg==");
    assert_eq!(decode_multibase("x123"), None);
    assert_eq!(decode_multibase("z0OIl"), None);
    assert_eq!(decode_multibase("fabc"), None);
    assert_eq!(decode_multibase(""), None);
}
