//! Profiles: one per user, languages, retention, consents, preferences.

use bharatvoice_store::{ConsentKind, Entity, Error, LanguageTag, ProfileUpdate, VoicePreferences};

use crate::common::open_store;

#[tokio::test]
async fn upsert_creates_then_changes_one_profile() {
    let t = open_store().await;
    let u = t.bare_user("meena").await;
    assert!(matches!(
        t.store.profiles().get(u.id),
        Err(Error::NotFound {
            entity: Entity::Profile,
            ..
        })
    ));
    let change = ProfileUpdate {
        languages: Some(vec!["ta-IN".parse().unwrap(), "en-IN".parse().unwrap()]),
        region: Some(Some("Tamil Nadu".into())),
        accent: Some(Some("Madurai".into())),
        audio_retention_days: Some(Some(30)),
        preferences: vec![("wake_word".into(), Some("vanakkam".into()))],
        ..Default::default()
    };
    let p = t.store.profiles().upsert(u.id, change).await.unwrap();
    assert_eq!(p.user_id, u.id);
    assert_eq!(
        p.languages
            .iter()
            .map(LanguageTag::as_str)
            .collect::<Vec<_>>(),
        ["ta-IN", "en-IN"]
    );
    let voice = VoicePreferences {
        voice: Some("kani".into()),
        speaking_rate: 0.9,
        pitch: -1.0,
    };
    let q = t
        .store
        .profiles()
        .upsert(
            u.id,
            ProfileUpdate {
                voice: Some(voice.clone()),
                preferences: vec![("wake_word".into(), None)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(q.id, p.id, "one profile per user");
    assert_eq!(q.created_at, p.created_at);
    assert!(q.updated_at >= p.updated_at);
    assert_eq!(q.voice, voice);
    assert_eq!(q.region.as_deref(), Some("Tamil Nadu"));
    assert!(q.preferences.is_empty());
    assert_eq!(t.store.profiles().get(u.id).unwrap(), q);
}

#[tokio::test]
async fn language_tags_are_validated_and_canonical() {
    for (raw, canonical) in [
        ("hi-IN", "hi-IN"),
        ("TA-in", "ta-IN"),
        ("sat-olck-in", "sat-Olck-IN"),
        ("en_IN", "en-IN"),
        ("mni-Mtei", "mni-Mtei"),
        ("es-419", "es-419"),
    ] {
        assert_eq!(raw.parse::<LanguageTag>().unwrap().as_str(), canonical);
    }
    for bad in [
        "",
        "h",
        "hindi-india-extra-long-tag-that-is-wrong",
        "hi-",
        "hi-IN-ab",
        "12-IN",
        "hi-IN-x-private",
        "hi IN",
    ] {
        assert!(
            matches!(bad.parse::<LanguageTag>(), Err(Error::InvalidInput { .. })),
            "{bad:?} accepted"
        );
    }
}

#[tokio::test]
async fn out_of_range_values_are_refused_and_change_nothing() {
    let t = open_store().await;
    let u = t.bare_user("venkat").await;
    let bad = [
        ProfileUpdate {
            languages: Some(vec![]),
            ..Default::default()
        },
        ProfileUpdate {
            audio_retention_days: Some(Some(0)),
            ..Default::default()
        },
        ProfileUpdate {
            audio_retention_days: Some(Some(5000)),
            ..Default::default()
        },
        ProfileUpdate {
            voice: Some(VoicePreferences {
                voice: None,
                speaking_rate: 9.0,
                pitch: 0.0,
            }),
            ..Default::default()
        },
    ];
    for change in bad {
        assert!(matches!(
            t.store.profiles().upsert(u.id, change).await,
            Err(Error::InvalidInput { .. })
        ));
    }
    assert!(
        t.store.profiles().get(u.id).is_err(),
        "no profile was created by refused changes"
    );
}

#[tokio::test]
async fn consents_record_when_given_and_withdrawn() {
    let t = open_store().await;
    let u = t.bare_user("ananya").await;
    let p = t
        .store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, true)
        .await
        .unwrap();
    assert!(p.has_consent(ConsentKind::AudioStorage));
    assert!(!p.has_consent(ConsentKind::Analytics));
    let given_at = p.consents[&ConsentKind::AudioStorage].at;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let q = t
        .store
        .profiles()
        .set_consent(u.id, ConsentKind::AudioStorage, false)
        .await
        .unwrap();
    let state = q.consents[&ConsentKind::AudioStorage];
    assert!(!state.granted);
    assert!(state.at > given_at);
    assert!("audio-storage".parse::<ConsentKind>().is_ok());
    assert!("marketing".parse::<ConsentKind>().is_err());
}

#[tokio::test]
async fn profiles_of_missing_or_deleted_users_are_not_found() {
    let t = open_store().await;
    let u = t.bare_user("zoya").await;
    t.store
        .profiles()
        .set_consent(u.id, ConsentKind::Analytics, true)
        .await
        .unwrap();
    t.store.users().delete(u.id).await.unwrap();
    assert!(matches!(
        t.store.profiles().get(u.id),
        Err(Error::NotFound {
            entity: Entity::User,
            ..
        })
    ));
    assert!(matches!(
        t.store
            .profiles()
            .set_consent(u.id, ConsentKind::Analytics, false)
            .await,
        Err(Error::NotFound {
            entity: Entity::User,
            ..
        })
    ));
}
