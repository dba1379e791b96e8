//! Key slips: group and per-device recipients end to end, and refusal with the specific error
//! for a device without a slip, another device's slip, another target's slip and altered slips.

use ota_formats::envelope::*;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Release side: encrypt `plain` as `target`, with group slips for `group`.
fn release(
    target: &str,
    plain: &[u8],
    group: &[&RecipientSecretKey],
) -> (DataKey, Vec<u8>, EncryptionInfo) {
    let key = DataKey::generate();
    let mut sealed = Vec::new();
    let params = EncryptParams::new(plain.len() as u64).with_chunk_size(4096);
    let info = encrypt_stream(plain, &mut sealed, &key, &params).unwrap();
    let mut meta = EncryptionInfo::new(&info);
    let binding = meta.binding(target);
    for member in group {
        meta.slips
            .push(wrap_key(&key, member.public_key(), &binding).unwrap());
    }
    (key, sealed, meta)
}

fn decrypt_with(key: &DataKey, sealed: &[u8], meta: &EncryptionInfo) -> Vec<u8> {
    let mut out = Vec::new();
    decrypt_stream_checked(sealed, &mut out, key, meta).unwrap();
    out
}

#[test]
fn group_recipients_each_unwrap_and_decrypt_through_signed_json() {
    let groups: Vec<_> = (0..3).map(|_| RecipientSecretKey::generate()).collect();
    let refs: Vec<_> = groups.iter().collect();
    for len in [0, 1, 4096, 4097, 3 * 1024 * 1024] {
        let plain = pattern(len);
        let (_, sealed, meta) = release("fw/board-a-2.1.bin", &plain, &refs);
        // The metadata travels as canonical JSON inside the signed targets role.
        let json = ota_formats::cjson::to_vec(&meta).unwrap();
        let meta: EncryptionInfo = serde_json::from_slice(&json).unwrap();
        assert_eq!(meta.slips.len(), 3);
        for group in &groups {
            let key = meta
                .unwrap_data_key("fw/board-a-2.1.bin", group, None)
                .unwrap();
            assert_eq!(decrypt_with(&key, &sealed, &meta), plain, "len {len}");
        }
    }
}

#[test]
fn per_device_slip_files_unwrap_and_decrypt() {
    let devices: Vec<_> = (0..40).map(|_| RecipientSecretKey::generate()).collect();
    let publics: Vec<_> = devices.iter().map(|d| d.public_key().clone()).collect();
    let plain = pattern(70_000);
    let (key, sealed, mut meta) = release("fw.bin", &plain, &[]);
    meta.device_slips = true;
    let slips = wrap_keys(&key, &publics, &meta.binding("fw.bin")).unwrap();
    assert_eq!(slips.len(), devices.len());

    // Publish each slip as a small file next to the target.
    let dir = tempfile::tempdir().unwrap();
    for (slip, public) in slips.iter().zip(&publics) {
        assert_eq!(slip.recipient, public.id(), "wrap_keys keeps the order");
        let path = dir.path().join(slip_path("fw.bin", &slip.recipient));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, slip.to_bytes().unwrap()).unwrap();
    }
    let files = std::fs::read_dir(dir.path().join("fw.bin.slips"))
        .unwrap()
        .count();
    assert_eq!(files, devices.len());

    for device in devices.iter().step_by(7) {
        // The group list has nothing for a device...
        assert!(matches!(
            meta.slip_for(&device.id()),
            Err(EnvelopeError::NoSlipForRecipient(_))
        ));
        // ...which then fetches its own slip file.
        let path = dir.path().join(slip_path("fw.bin", &device.id()));
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() < 200, "a slip file is small: {}", bytes.len());
        let slip = KeySlip::from_bytes(&bytes).unwrap();
        let key = meta.unwrap_data_key("fw.bin", device, Some(&slip)).unwrap();
        assert_eq!(decrypt_with(&key, &sealed, &meta), plain);
    }
}

#[test]
fn device_without_a_slip_is_told_so() {
    let member = RecipientSecretKey::generate();
    let outsider = RecipientSecretKey::generate();
    let (_, _, meta) = release("fw.bin", b"x", &[&member]);
    match meta.unwrap_data_key("fw.bin", &outsider, None) {
        Err(EnvelopeError::NoSlipForRecipient(id)) => assert_eq!(id, outsider.id()),
        other => panic!("expected NoSlipForRecipient, got {other:?}"),
    }
}

#[test]
fn slip_wrapped_for_another_device_is_wrong_key() {
    let a = RecipientSecretKey::generate();
    let b = RecipientSecretKey::generate();
    let (_, _, meta) = release("fw.bin", b"x", &[&a]);
    let slip_for_a = meta.slip_for(&a.id()).unwrap();
    match meta.unwrap_data_key("fw.bin", &b, Some(slip_for_a)) {
        Err(EnvelopeError::WrongKey { slip, ours }) => {
            assert_eq!(slip, a.id());
            assert_eq!(ours, b.id());
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
}

#[test]
fn slip_for_another_target_or_release_is_a_binding_mismatch() {
    let device = RecipientSecretKey::generate();
    let (_, _, meta_a) = release("fw-a.bin", b"aaa", &[&device]);
    let (_, _, meta_b) = release("fw-b.bin", b"bbb", &[&device]);
    let slip_a = meta_a.slip_for(&device.id()).unwrap();
    // Slip of target A offered while installing target B.
    let res = unwrap_key(slip_a, &device, &meta_b.binding("fw-b.bin"));
    assert!(
        matches!(&res, Err(EnvelopeError::BindingMismatch { slip_target, expected_target, .. })
            if slip_target == "fw-a.bin" && expected_target == "fw-b.bin"),
        "{res:?}"
    );
    // Same target name, another release (payload id): an old slip cannot unlock a new payload.
    let (_, _, meta_a2) = release("fw-a.bin", b"aaa v2", &[&device]);
    let res = unwrap_key(slip_a, &device, &meta_a2.binding("fw-a.bin"));
    assert!(
        matches!(&res, Err(EnvelopeError::BindingMismatch { slip_payload, expected_payload, .. })
            if *slip_payload == meta_a.payload_id && *expected_payload == meta_a2.payload_id),
        "{res:?}"
    );
}

#[test]
fn slips_with_rewritten_clear_fields_do_not_open() {
    let a = RecipientSecretKey::generate();
    let b = RecipientSecretKey::generate();
    let (_, _, meta_a) = release("fw-a.bin", b"aaa", &[&a]);
    let (_, _, meta_b) = release("fw-b.bin", b"bbb", &[&a]);
    let slip = meta_a.slip_for(&a.id()).unwrap().clone();

    // Another target's slip relabelled to look like it belongs to target B.
    let mut relabelled = slip.clone();
    relabelled.target = "fw-b.bin".into();
    relabelled.payload_id = meta_b.payload_id;
    let res = unwrap_key(&relabelled, &a, &meta_b.binding("fw-b.bin"));
    assert!(
        matches!(res, Err(EnvelopeError::SlipDoesNotOpen)),
        "{res:?}"
    );

    // Device A's slip relabelled with device B's recipient id.
    let mut stolen = slip.clone();
    stolen.recipient = b.id();
    let res = unwrap_key(&stolen, &b, &meta_a.binding("fw-a.bin"));
    assert!(
        matches!(res, Err(EnvelopeError::SlipDoesNotOpen)),
        "{res:?}"
    );

    // Any flipped bit in the encapsulated or wrapped key.
    let binding = meta_a.binding("fw-a.bin");
    for i in 0..ENC_LEN {
        let mut bad = slip.clone();
        bad.enc[i] ^= 0x10;
        assert!(matches!(
            unwrap_key(&bad, &a, &binding),
            Err(EnvelopeError::SlipDoesNotOpen)
        ));
    }
    for i in 0..WRAPPED_KEY_LEN {
        let mut bad = slip.clone();
        bad.wrapped_key[i] ^= 0x01;
        assert!(matches!(
            unwrap_key(&bad, &a, &binding),
            Err(EnvelopeError::SlipDoesNotOpen)
        ));
    }
    // The untouched slip still opens.
    assert!(unwrap_key(&slip, &a, &binding).is_ok());
}

#[test]
fn unwrapped_key_is_the_data_key() {
    let device = RecipientSecretKey::generate();
    let (key, _, meta) = release("t", b"", &[&device]);
    let got = meta.unwrap_data_key("t", &device, None).unwrap();
    assert_eq!(got.expose_secret(), key.expose_secret());
    assert_eq!(format!("{got:?}"), "DataKey(<redacted>)");
}

#[test]
fn slip_binary_and_json_layouts_round_trip_and_reject_damage() {
    let device = RecipientSecretKey::generate();
    let (_, _, meta) = release("dir/ünïcode target.bin", b"x", &[&device]);
    let slip = meta.slips[0].clone();

    let bytes = slip.to_bytes().unwrap();
    assert_eq!(&bytes[..8], b"OTASLIP\n");
    assert_eq!(bytes.len(), 123 + slip.target.len());
    assert_eq!(KeySlip::from_bytes(&bytes).unwrap(), slip);
    assert_eq!(slip.file_name(), format!("{}.slip", device.id()));

    let json = serde_json::to_value(&slip).unwrap();
    for field in ["recipient", "target", "payload_id", "enc", "wrapped_key"] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    assert_eq!(json["recipient"], device.id().to_string());
    assert_eq!(
        serde_json::from_value::<KeySlip>(json.clone()).unwrap(),
        slip
    );

    for bad in [
        &bytes[..bytes.len() - 1],
        &bytes[..50],
        &[bytes.as_slice(), b"!"].concat()[..],
        &[b"NOTASLIP".as_slice(), &bytes[8..]].concat()[..],
    ] {
        assert!(matches!(
            KeySlip::from_bytes(bad),
            Err(EnvelopeError::MalformedSlip(_))
        ));
    }
    let mut wrong_len = json.clone();
    wrong_len["wrapped_key"] = "AAAA".into();
    assert!(serde_json::from_value::<KeySlip>(wrong_len).is_err());
    let mut bad_id = json;
    bad_id["recipient"] = "xyz".into();
    assert!(serde_json::from_value::<KeySlip>(bad_id).is_err());
}

#[test]
fn encryption_info_json_is_stable_and_unknown_suites_are_refused() {
    let (_, _, mut meta) = release("t", b"abc", &[]);
    let json = serde_json::to_value(&meta).unwrap();
    assert_eq!(json["format"], "ota-envelope-v1");
    assert_eq!(json["aead"], "chacha20poly1305-stream-be32");
    assert_eq!(
        json["key_wrap"],
        "hpke-base-x25519-hkdf-sha256-chacha20poly1305"
    );
    assert_eq!(json["chunk_size"], 4096);
    assert_eq!(json["plaintext_length"], 3);
    assert!(json.get("slips").is_none() && json.get("device_slips").is_none());
    meta.check_supported().unwrap();
    meta.format = "ota-envelope-v9".into();
    let device = RecipientSecretKey::generate();
    assert!(matches!(
        meta.unwrap_data_key("t", &device, None),
        Err(EnvelopeError::BadHeader(_))
    ));
}

#[test]
fn recipient_keys_round_trip_as_text_and_parse_errors_are_clear() {
    let secret = RecipientSecretKey::generate();
    let public = secret.public_key().clone();
    let pub_text = public.to_text();
    let sec_text = secret.to_text();
    assert!(pub_text.starts_with("otapub1"));
    assert!(sec_text.starts_with("otasec1"));
    assert_eq!(RecipientPublicKey::from_text(&pub_text).unwrap(), public);
    assert_eq!(
        RecipientPublicKey::from_text(&format!("  {pub_text}\n")).unwrap(),
        public
    );
    let again = RecipientSecretKey::from_text(&sec_text).unwrap();
    assert_eq!(again.id(), secret.id());
    assert_eq!(public.id().to_string().len(), 32);
    assert!(!format!("{secret:?}").contains(&sec_text[7..]));

    let err = |r: Result<RecipientPublicKey>| match r {
        Err(EnvelopeError::BadKeyText(msg)) => msg,
        other => panic!("expected BadKeyText, got {other:?}"),
    };
    assert!(err(RecipientPublicKey::from_text(&sec_text)).contains("secret key"));
    assert!(err(RecipientPublicKey::from_text("age1qqqq")).contains("otapub1"));
    assert!(err(RecipientPublicKey::from_text(
        &pub_text[..pub_text.len() - 4]
    ))
    .contains("bytes"));
    assert!(err(RecipientPublicKey::from_text("otapub1!!!")).contains("base64"));
    // One character changed: the checksum catches it.
    let mut typo: Vec<char> = pub_text.chars().collect();
    typo[10] = if typo[10] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    assert!(err(RecipientPublicKey::from_text(&typo)).contains("checksum"));
    assert!(matches!(
        RecipientSecretKey::from_text(&pub_text),
        Err(EnvelopeError::BadKeyText(msg)) if msg.contains("public key")
    ));

    // Serde uses the text form.
    let json = serde_json::to_string(&public).unwrap();
    assert_eq!(json, format!("\"{pub_text}\""));
    assert_eq!(
        serde_json::from_str::<RecipientPublicKey>(&json).unwrap(),
        public
    );
}
