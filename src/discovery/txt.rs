//! TXT record texts for EIP-1459 ("DNS Record Structure": an entry longer than one character-string is
//! split over several strings of one TXT record, which the client joins); see
//! `docs/protocol/status-client.md` "Discovery and peers". A driver's resolver turns each TXT record
//! it receives into one text with [`join_txt`] before answering the engine's `ResolveTxt`.

/// The texts of TXT records: each record's character-strings concatenated, the bytes taken as UTF-8
/// (invalid sequences replaced, so a malformed record fails to parse as an entry rather than vanishing).
pub fn join_txt<'a, S: AsRef<[u8]> + 'a>(records: impl IntoIterator<Item = &'a [S]>) -> Vec<String> {
    records
        .into_iter()
        .map(|strings| {
            let bytes: Vec<u8> = strings.iter().flat_map(|s| s.as_ref().iter().copied()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_of_a_record_are_joined() {
        let records: Vec<Vec<Box<[u8]>>> = vec![
            vec![
                b"enrtree-root:v1 e=AB".to_vec().into(),
                b"CD l=EF".to_vec().into(),
            ],
            vec![b"x".to_vec().into()],
        ];
        assert_eq!(
            super::join_txt(records.iter().map(|r| &r[..])),
            vec!["enrtree-root:v1 e=ABCD l=EF".to_string(), "x".to_string()]
        );
    }
}
