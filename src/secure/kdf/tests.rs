use super::*;

#[test]
fn round_trip_and_tamper() {
    let mk = Key32([7; 32]);
    let ct = encrypt(&mk, b"hello", b"ad");
    assert_eq!(ct.len(), IV_LEN + 5 + TAG_LEN);
    assert_eq!(&decrypt(&mk, &ct, b"ad").unwrap()[..], b"hello");
    assert_eq!(decrypt(&mk, &ct, b"aD"), Err(SecureError::BadMac));
    let mut bad = ct.clone();
    bad[IV_LEN] ^= 1;
    assert_eq!(decrypt(&mk, &bad, b"ad"), Err(SecureError::BadMac));
    assert_eq!(
        decrypt(&mk, &ct[..47], b"ad"),
        Err(SecureError::CiphertextTooShort)
    );
    assert_eq!(&decrypt(&mk, &encrypt(&mk, b"", b""), b"").unwrap()[..], b"");
    assert_eq!(format!("{mk:?}"), "Key32(..)");
}

#[test]
fn gcm_round_trip() {
    let sealed = gcm_seal(&[1; 32], &[2; 12], b"pt").unwrap();
    assert_eq!(&gcm_open(&[1; 32], &sealed).unwrap()[..], b"pt");
    assert_eq!(gcm_open(&[3; 32], &sealed), Err(SecureError::BadMac));
    assert_eq!(
        gcm_open(&[1; 32], &sealed[..20]),
        Err(SecureError::CiphertextTooShort)
    );
}
