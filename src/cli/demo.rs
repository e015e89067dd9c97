//! `bvstore demo`: a short, realistic workload on the data directory.
//!
//! Users across Indian languages get profiles (languages, region, consent),
//! a few get passwords, and each holds conversations in their language,
//! written by many tasks at once so the group-commit writer packs them.
//! Usernames carry a run tag, so the demo can run again on the same store.

use std::time::Instant;

use bharatvoice_store::{
    ConsentKind, Error, ListOptions, MetricSample, NewUser, ProfileUpdate, Role, Store, Timestamp,
    Turn, UserId,
};
use clap::Args;
use serde::Serialize;

use super::{Cli, Out, Outcome, done};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Users to create (each gets a profile and sessions).
    #[arg(long, default_value_t = 48)]
    users: usize,
    /// Sessions per user.
    #[arg(long, default_value_t = 3)]
    sessions: usize,
    /// Synthetic 16 kHz speech WAV clips to store.
    #[arg(long, default_value_t = 240)]
    wav_clips: usize,
    /// Random-byte "Opus" clips to store (they do not compress).
    #[arg(long, default_value_t = 60)]
    opus_clips: usize,
}

/// (name, language tag, region, a user's line, the assistant's reply)
const PEOPLE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "aarav",
        "hi-IN",
        "Uttar Pradesh",
        "कल लखनऊ में मौसम कैसा रहेगा?",
        "कल लखनऊ में धूप रहेगी, तापमान 31 डिग्री।",
    ),
    (
        "meenakshi",
        "ta-IN",
        "Tamil Nadu",
        "நாளை சென்னையில் மழை பெய்யுமா?",
        "நாளை சென்னையில் லேசான மழை எதிர்பார்க்கப்படுகிறது.",
    ),
    (
        "venkat",
        "te-IN",
        "Telangana",
        "హైదరాబాద్ కి రైలు ఎప్పుడు?",
        "తదుపరి రైలు సాయంత్రం 6 గంటలకు ఉంది.",
    ),
    (
        "ananya",
        "bn-IN",
        "West Bengal",
        "আজ বাজারে আলুর দাম কত?",
        "আজ আলু প্রতি কেজি ২৫ টাকা।",
    ),
    (
        "sai",
        "mr-IN",
        "Maharashtra",
        "मला उद्या सकाळी सहा वाजता उठव.",
        "ठीक आहे, उद्या सकाळी सहा वाजता गजर लावला.",
    ),
    (
        "hetal",
        "gu-IN",
        "Gujarat",
        "મારી દવા ક્યારે લેવાની છે?",
        "તમારી દવા રાત્રે નવ વાગ્યે લેવાની છે.",
    ),
    (
        "kavya",
        "kn-IN",
        "Karnataka",
        "ಬೆಂಗಳೂರಿನಲ್ಲಿ ಟ್ರಾಫಿಕ್ ಹೇಗಿದೆ?",
        "ಹೊರ ವರ್ತುಲ ರಸ್ತೆಯಲ್ಲಿ ದಟ್ಟಣೆ ಹೆಚ್ಚಾಗಿದೆ.",
    ),
    (
        "anjali",
        "ml-IN",
        "Kerala",
        "ഇന്ന് കൊച്ചിയിൽ മഴയുണ്ടോ?",
        "ഇന്ന് ഉച്ചയ്ക്ക് ശേഷം മഴയ്ക്ക് സാധ്യതയുണ്ട്.",
    ),
    (
        "gurpreet",
        "pa-IN",
        "Punjab",
        "ਅੱਜ ਮੰਡੀ ਵਿੱਚ ਕਣਕ ਦਾ ਭਾਅ ਕੀ ਹੈ?",
        "ਅੱਜ ਕਣਕ ਦਾ ਭਾਅ 2,275 ਰੁਪਏ ਪ੍ਰਤੀ ਕੁਇੰਟਲ ਹੈ।",
    ),
    (
        "subhashree",
        "or-IN",
        "Odisha",
        "ପୁରୀ ଯିବା ପାଇଁ ବସ୍ କେବେ?",
        "ପରବର୍ତ୍ତୀ ବସ୍ ସକାଳ ସାତଟାରେ।",
    ),
    (
        "bikash",
        "as-IN",
        "Assam",
        "আজি গুৱাহাটীত বতৰ কেনেকুৱা?",
        "আজি গুৱাহাটীত ডাৱৰীয়া বতৰ থাকিব।",
    ),
    (
        "zoya",
        "ur-IN",
        "Jammu and Kashmir",
        "سری نگر میں آج درجہ حرارت کیا ہے؟",
        "آج سری نگر میں درجہ حرارت 12 ڈگری ہے۔",
    ),
    (
        "rohan",
        "en-IN",
        "Delhi",
        "Remind me to pay the electricity bill.",
        "Done, I will remind you tomorrow at 10 am.",
    ),
];

#[derive(Debug, Serialize)]
struct DemoReport {
    data_dir: String,
    run_tag: String,
    users_created: usize,
    profiles_written: usize,
    passwords_set: usize,
    sessions_created: usize,
    turns_appended: usize,
    languages: Vec<String>,
    write_requests: usize,
    write_seconds: f64,
    writes_per_second: f64,
    users_in_store: usize,
    sample_session_turns: u64,
    sample_context_turns: usize,
    files: super::demo_files::FilePhase,
    cache: super::demo_cache::CacheFigures,
    lifecycle: super::demo_lifecycle::LifecyclePhase,
    privacy: super::demo_privacy::PrivacyPhase,
    operations: super::demo_ops::OpsPhase,
}

fn run_tag() -> String {
    let mut n = Timestamp::now().as_micros().unsigned_abs() / 1000;
    let mut tag = String::new();
    while n > 0 && tag.len() < 7 {
        tag.push(char::from(
            b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize],
        ));
        n /= 36;
    }
    tag
}

async fn one_user(
    store: Store,
    i: usize,
    tag: String,
    sessions: usize,
) -> Result<(UserId, usize, usize), Error> {
    let (name, lang, region, ask, reply) = PEOPLE[i % PEOPLE.len()];
    let username = format!("{name}{}_{tag}", i / PEOPLE.len());
    let user = store
        .users()
        .create(NewUser::new(&username, format!("{username}@example.in")).display_name(name))
        .await?;
    let tag_lang = lang.parse()?;
    let change = ProfileUpdate {
        languages: Some(vec![tag_lang, "en-IN".parse()?]),
        region: Some(Some(region.to_string())),
        audio_retention_days: Some(Some(30 + (i as u32 % 4) * 30)),
        consents: vec![
            (ConsentKind::AudioStorage, !i.is_multiple_of(3)),
            (ConsentKind::Personalisation, true),
        ],
        ..Default::default()
    };
    store.profiles().upsert(user.id, change).await?;
    let mut turns = 0;
    for s in 0..sessions {
        let session = store
            .sessions()
            .create(user.id, Some(lang.parse()?))
            .await?;
        for t in 0..(4 + (i + s) % 5) {
            let (role, text) = if t % 2 == 0 {
                (Role::User, ask)
            } else {
                (Role::Assistant, reply)
            };
            store
                .sessions()
                .append_turn(session.id, Turn::new(role, text))
                .await?;
            turns += 1;
        }
        if s + 1 == sessions {
            store.sessions().end(session.id).await?;
        }
    }
    Ok((user.id, sessions, turns))
}

pub(crate) async fn run(cli: &Cli, args: &DemoArgs, out: &Out) -> Outcome {
    let store = super::open_or_create(cli, bharatvoice_store::OpenMode::OpenOrCreate).await?;
    let tag = run_tag();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.users {
        tasks.spawn(one_user(store.clone(), i, tag.clone(), args.sessions));
    }
    let (mut sessions, mut turns) = (0, 0);
    let mut ids = Vec::with_capacity(args.users);
    while let Some(done) = tasks.join_next().await {
        let (id, s, t) = done.map_err(|e| Error::join("demo task", e))??;
        ids.push(id);
        sessions += s;
        turns += t;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A few accounts get passwords (argon2id at full cost: slow on purpose,
    // so it is kept out of the write timing above).
    let first = store.users().list(ListOptions::first(3)).await?;
    for u in &first.items {
        store
            .users()
            .set_password(u.id, "namaste-duniya-2026")
            .await?;
    }
    let ok = match first.items.first() {
        Some(u) => {
            store
                .users()
                .verify_password(u.id, "namaste-duniya-2026")
                .await?
        }
        None => false,
    };
    // user + profile per user, create per session, one end per user, turns
    let ends = if args.sessions > 0 { args.users } else { 0 };
    let write_requests = args.users * 2 + sessions + ends + turns;
    store
        .metrics()
        .record(MetricSample::new(
            "demo.writes_per_second",
            write_requests as f64 / elapsed,
        ))
        .await?;

    let mut users_in_store = 0;
    let mut page = store.users().list(ListOptions::first(1000)).await?;
    loop {
        users_in_store += page.items.len();
        match page.next {
            Some(c) => page = store.users().list(ListOptions::after(c, 1000)).await?,
            None => break,
        }
    }
    // Audio is stored only for the users who gave audio-storage consent.
    let mut consenting = Vec::with_capacity(ids.len());
    for id in &ids {
        if store
            .profiles()
            .get(*id)
            .is_ok_and(|p| p.has_consent(ConsentKind::AudioStorage))
        {
            consenting.push(*id);
        }
    }
    let files =
        super::demo_files::run(&store, &consenting, args.wav_clips, args.opus_clips).await?;
    let sample = match first.items.first() {
        Some(u) => store
            .sessions()
            .list_for_user(u.id, 1)
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    let cache = super::demo_cache::run(&store, &ids).await?;
    let lifecycle = super::demo_lifecycle::run(&tag).await?;
    let privacy = super::demo_privacy::run(&store, &consenting).await?;
    let operations = super::demo_ops::run(&store).await?;
    let mut languages: Vec<String> = PEOPLE
        .iter()
        .take(args.users)
        .map(|p| p.1.to_string())
        .collect();
    languages.sort();
    let report = DemoReport {
        data_dir: store.config().data_dir.display().to_string(),
        run_tag: tag,
        users_created: args.users,
        profiles_written: args.users,
        passwords_set: first.items.len(),
        sessions_created: sessions,
        turns_appended: turns,
        languages,
        write_requests,
        write_seconds: elapsed,
        writes_per_second: write_requests as f64 / elapsed,
        users_in_store,
        sample_session_turns: sample.as_ref().map_or(0, |s| s.turn_count),
        sample_context_turns: sample.as_ref().map_or(0, |s| s.context.len()),
        files,
        cache,
        lifecycle,
        privacy,
        operations,
    };
    if !ok && report.passwords_set > 0 {
        return Err(Error::InvalidInput {
            field: "demo",
            reason: "password check failed".into(),
        });
    }
    done(out.emit(&report, || {
        let main = format!(
            "bvstore demo — {data}\n\
             users created:     {u} (run tag {tag}) in {nl} languages: {langs}\n\
             profiles written:  {p} (languages, region, consents)\n\
             passwords set:     {pw} (argon2id), one verified\n\
             sessions:          {s} with {t} turns\n\
             durable writes:    {w} in {secs:.2} s ({wps:.0}/s, group commit)\n\
             users in store:    {total}\n\
             files stored:      {wav} speech WAV + {opus} random \"Opus\" clips, {mb:.1} MB in {fsecs:.2} s ({fput:.0} MB/s)\n\
             on disk:           {disk:.1} MB (speech WAV compressed {ratio:.2}x; Opus stored raw), encrypted\n\
             read back:         {rb} whole files and {rr} range reads ({fread:.0} MB/s)\n\
             cache lookups:     {cl} (profiles and sessions, tagged per user), hit ratio {hr:.1}%, \
             {cps:.0}/s\n\
             cache loads:       {loads} from the database; a profile change invalidated {inv} \
             entries ({rel} reloaded); tier 2 {t2}",
            data = report.data_dir,
            u = report.users_created,
            tag = report.run_tag,
            nl = report.languages.len(),
            langs = report.languages.join(", "),
            p = report.profiles_written,
            pw = report.passwords_set,
            s = report.sessions_created,
            t = report.turns_appended,
            w = report.write_requests,
            secs = report.write_seconds,
            wps = report.writes_per_second,
            total = report.users_in_store,
            wav = report.files.wav_clips,
            opus = report.files.opus_clips,
            mb = report.files.plain_bytes as f64 / 1e6,
            fsecs = report.files.put_seconds,
            fput = report.files.put_mb_per_second,
            disk = report.files.stored_bytes as f64 / 1e6,
            ratio = report.files.wav_compression_ratio,
            rb = report.files.read_back,
            rr = report.files.range_reads,
            fread = report.files.read_mb_per_second,
            cl = report.cache.lookups,
            hr = report.cache.hit_ratio * 100.0,
            cps = report.cache.lookups_per_second,
            loads = report.cache.loads_from_db,
            inv = report.cache.invalidated_entries,
            rel = report.cache.reloads_after_invalidation,
            t2 = report.cache.tier2_state,
        );
        format!(
            "{main}\n{}\n{}\n{}",
            super::demo_lifecycle::text(&report.lifecycle),
            super::demo_privacy::text(&report.privacy),
            super::demo_ops::text(&report.operations)
        )
    }))
}
