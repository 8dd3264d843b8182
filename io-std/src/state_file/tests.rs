use super::*;

#[test]
fn round_trip_and_every_kind_of_damage_is_refused() {
    let framed = encode(b"state");
    assert_eq!(decode(&framed, 100), Ok(&b"state"[..]));
    assert_eq!(decode(&[], 100), Err(FormatError::Empty));
    assert!(matches!(
        decode(&framed[..framed.len() - 1], 100),
        Err(FormatError::Truncated { .. })
    ));
    assert!(matches!(
        decode(&framed[..10], 100),
        Err(FormatError::Truncated { .. })
    ));
    for i in 0..framed.len() {
        let mut bad = framed.clone();
        bad[i] ^= 0x01;
        assert!(decode(&bad, 100).is_err(), "bit flip at {i} accepted");
    }
    let mut v2 = framed.clone();
    v2[9] = 2;
    assert_eq!(decode(&v2, 100), Err(FormatError::UnsupportedVersion(2)));
    assert_eq!(decode(b"0123456789abcdef", 100), Err(FormatError::BadMagic));
    assert_eq!(decode(&framed, 2), Err(FormatError::TooLarge { max: 2 }));
    let mut long = framed.clone();
    long.push(0);
    assert_eq!(decode(&long, 100), Err(FormatError::TrailingBytes));
}

#[cfg(unix)]
#[test]
fn written_owner_only_even_over_a_leftover_temporary_file_and_read_back() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("status-state-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("messenger.state");
    let tmp = dir.join("messenger.state.tmp");
    std::fs::write(&tmp, b"old").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    write(&path, b"secret state").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(read(&path, 100).unwrap().unwrap().as_slice(), b"secret state");
    assert!(read(&dir.join("missing"), 100).unwrap().is_none());
    std::fs::write(&path, b"").unwrap();
    let e = read(&path, 100).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("messenger.state"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(mode, 0o600);
}

#[test]
fn a_second_lock_on_a_data_dir_is_refused_until_the_first_is_dropped() {
    let dir = std::env::temp_dir().join(format!("status-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = DataDirLock::acquire(&dir).unwrap();
    let e = DataDirLock::acquire(&dir).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert!(e.to_string().contains(DataDirLock::FILE_NAME), "{e}");
    drop(first);
    DataDirLock::acquire(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
