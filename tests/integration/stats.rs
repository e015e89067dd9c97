//! `Store::stats` / `bvstore stats`: exact counts of a store built for it,
//! compression by content type, dedup savings and the largest users.

use bharatvoice_store::{Compression, PutOptions, Role, Turn};

use crate::blob_cli::{add_user, json, put_file};
use crate::blobs::{random_bytes, speech_pcm};
use crate::common::{bvstore, open_store, stdout};

#[tokio::test]
async fn stats_count_exactly_what_the_store_holds() {
    let t = open_store().await;
    let store = &t.store;
    let (asha, ravi) = (t.user("asha").await, t.user("ravi").await);
    let gone = t.bare_user("gone").await;
    store.users().delete(gone.id).await.unwrap();

    let s1 = store.sessions().create(asha.id, None).await.unwrap();
    for n in 0..3 {
        let turn = Turn::new(Role::User, format!("turn {n}"));
        store.sessions().append_turn(s1.id, turn).await.unwrap();
    }
    store.sessions().create(ravi.id, None).await.unwrap();
    let s3 = store.sessions().create(ravi.id, None).await.unwrap();
    store.sessions().delete(s3.id).await.unwrap();

    let wav = PutOptions::content_type("audio/wav");
    let speech = speech_pcm(200_000, 1);
    let a = t.put_as(&asha, &speech, wav.clone()).await;
    // The same bytes again: a second record, one blob.
    let again = t.put_as(&asha, &speech, wav.clone()).await;
    assert_eq!(a.blob, again.blob);
    let noise = random_bytes(100_000, 2);
    let opus = t
        .put_as(&ravi, &noise, PutOptions::content_type("audio/opus"))
        .await;
    let raw = t
        .put_as(
            &ravi,
            &speech_pcm(50_000, 3),
            PutOptions {
                compression: Compression::Off,
                ..PutOptions::content_type("audio/wav")
            },
        )
        .await;
    let doomed = t.put_as(&ravi, &random_bytes(10, 4), wav).await;
    store
        .files()
        .delete(bharatvoice_store::Actor::User(ravi.id), doomed.id)
        .await
        .unwrap();

    let s = store.stats().await.unwrap();
    assert_eq!((s.users, s.users_deleted), (2, 1));
    assert_eq!((s.sessions, s.sessions_deleted, s.turns), (2, 1, 3));
    assert_eq!((s.files, s.files_deleted), (4, 1));
    assert_eq!(s.plain_bytes, 2 * 200_000 + 100_000 + 50_000);
    // Blobs: speech, noise, raw speech, and the deleted file's (until the
    // purge).
    assert_eq!(s.blobs, 4);
    assert_eq!(
        s.blob_stored_bytes,
        a.stored_bytes + opus.stored_bytes + raw.stored_bytes + doomed.stored_bytes
    );
    assert_eq!(
        s.referenced_stored_bytes,
        2 * a.stored_bytes + opus.stored_bytes + raw.stored_bytes
    );
    assert_eq!(
        s.dedup_saved_bytes,
        a.stored_bytes.saturating_sub(doomed.stored_bytes)
    );

    let types: Vec<&str> = s
        .by_content_type
        .iter()
        .map(|t| t.content_type.as_str())
        .collect();
    assert_eq!(types, ["audio/wav", "audio/opus"], "largest stored first");
    let (wav_t, opus_t) = (&s.by_content_type[0], &s.by_content_type[1]);
    assert_eq!(
        (wav_t.files, wav_t.plain_bytes, wav_t.uncompressed_files),
        (3, 450_000, 1)
    );
    assert_eq!(wav_t.stored_bytes, 2 * a.stored_bytes + raw.stored_bytes);
    assert!(wav_t.ratio < 0.95, "speech shrinks: {}", wav_t.ratio);
    assert_eq!((opus_t.files, opus_t.uncompressed_files), (1, 1));
    assert!(opus_t.ratio >= 1.0, "noise does not: {}", opus_t.ratio);

    // Asha's one blob against Ravi's three.
    let top: Vec<_> = s.top_users.iter().map(|u| (u.user, u.blobs)).collect();
    let ravi_stored = opus.stored_bytes + raw.stored_bytes + doomed.stored_bytes;
    if ravi_stored > a.stored_bytes {
        assert_eq!(top, [(ravi.id, 3), (asha.id, 1)]);
    } else {
        assert_eq!(top, [(asha.id, 1), (ravi.id, 3)]);
    }
    assert!(s.db_file_bytes > 0 && s.cache_file_bytes > 0);
    assert_eq!(
        s.default_retention_days,
        store.config().default_retention_days
    );
    assert_eq!(s.data_region, None);
}

#[test]
fn the_cli_prints_stats_as_a_table_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");
    let input = dir.path().join("clip.wav");
    std::fs::write(&input, speech_pcm(100_000, 1)).unwrap();
    put_file(&d, &input, "mira", &[]);

    let doc = json(&bvstore(&d, &["--json", "stats"]));
    assert_eq!(
        (doc["users"].as_u64(), doc["files"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(doc["by_content_type"][0]["content_type"], "audio/wav");
    assert_eq!(doc["by_content_type"][0]["plain_bytes"], 100_000);
    assert!(doc["cache"]["hit_ratio"].is_number());

    let out = bvstore(&d, &["stats"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for want in [
        "users",
        "audio/wav",
        "mira",
        "97.7 KiB",
        "hit ratio",
        "data region",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}
