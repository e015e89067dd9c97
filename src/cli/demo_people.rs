//! The people of `bvstore demo` and its first two phases: users across
//! Indian languages get an account and a profile (languages, region,
//! consent), a few get passwords, and then each holds conversations in
//! their language. Every user is a task of its own, so the group-commit
//! writer packs the writes of many at once, as it would under real
//! traffic. Usernames carry the run's tag, so the demo can run again on
//! the same store.

use bharatvoice_store::{
    ConsentKind, Error, MetricSample, NewUser, ProfileUpdate, Role, Store, Turn, UserId,
};

use super::demo_phase::{Phases, templates};
use super::demo_summary::grouped;

/// The password the demo's first few users get (argon2id at full cost:
/// slow on purpose, so only a few).
const PASSWORD: &str = "namaste-duniya-2026";

/// How many of the run's users get a password.
pub(crate) const WITH_PASSWORD: usize = 3;

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

/// The username of the run's `i`th user: a first name, a number and the
/// run's tag (`aarav0_4fufgax`).
pub(crate) fn username(i: usize, tag: &str) -> String {
    format!("{}{}_{tag}", PEOPLE[i % PEOPLE.len()].0, i / PEOPLE.len())
}

/// The language tags `users` users speak, sorted.
pub(crate) fn languages(users: usize) -> Vec<String> {
    let mut tags: Vec<String> = PEOPLE.iter().take(users).map(|p| p.1.to_string()).collect();
    tags.sort();
    tags
}

/// Whether the run's `i`th user allows their audio to be stored (two in
/// three do).
fn stores_audio(i: usize) -> bool {
    !i.is_multiple_of(3)
}

async fn one_user(store: Store, i: usize, tag: String) -> Result<(usize, UserId), Error> {
    let (name, lang, region, _, _) = PEOPLE[i % PEOPLE.len()];
    let username = username(i, &tag);
    let user = store
        .users()
        .create(NewUser::new(&username, format!("{username}@example.in")).display_name(name))
        .await?;
    let change = ProfileUpdate {
        languages: Some(vec![lang.parse()?, "en-IN".parse()?]),
        region: Some(Some(region.to_string())),
        audio_retention_days: Some(Some(30 + (i as u32 % 4) * 30)),
        consents: vec![
            (ConsentKind::AudioStorage, stores_audio(i)),
            (ConsentKind::Personalisation, true),
        ],
        ..Default::default()
    };
    store.profiles().upsert(user.id, change).await?;
    Ok((i, user.id))
}

/// The users & profiles phase: `count` users, each with a profile, then
/// passwords for the first few (one checked). The ids come back in the
/// order of the users' numbers.
pub(crate) async fn create_users(
    store: &Store,
    count: usize,
    tag: &str,
    phases: &mut Phases<'_>,
) -> Result<Vec<UserId>, Error> {
    let phase = phases.start("users & profiles", templates::USERS, count);
    let bar = phase.bar();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        tasks.spawn(one_user(store.clone(), i, tag.to_string()));
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        ids.push(done.map_err(|e| Error::join("demo task", e))??);
        bar.set(ids.len() as u64);
    }
    ids.sort_unstable_by_key(|(i, _)| *i);
    let ids: Vec<UserId> = ids.into_iter().map(|(_, id)| id).collect();
    let with_password = &ids[..ids.len().min(WITH_PASSWORD)];
    for id in with_password {
        store.users().set_password(*id, PASSWORD).await?;
    }
    if let Some(id) = with_password.first()
        && !store.users().verify_password(*id, PASSWORD).await?
    {
        return Err(Error::InvalidInput {
            field: "demo",
            reason: "the password just set did not verify".into(),
        });
    }
    let detail = format!(
        "{} users in {} languages, {} with passwords",
        grouped(ids.len() as u64),
        languages(count).len(),
        with_password.len()
    );
    phases.end(phase, ids.len() as u64, "users", detail);
    Ok(ids)
}

/// One user's day: `sessions` conversations of 4 to 8 turns in their
/// language, the last one ended.
async fn converse(store: Store, i: usize, user: UserId, sessions: usize) -> Result<usize, Error> {
    let (_, lang, _, ask, reply) = PEOPLE[i % PEOPLE.len()];
    let mut turns = 0;
    for s in 0..sessions {
        let session = store.sessions().create(user, Some(lang.parse()?)).await?;
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
    Ok(turns)
}

/// What the sessions phase wrote.
pub(crate) struct Conversations {
    pub(crate) sessions: usize,
    pub(crate) turns: usize,
    /// Durable write requests: a create per session, the turns, an end
    /// per user.
    pub(crate) writes: usize,
    pub(crate) seconds: f64,
    pub(crate) writes_per_second: f64,
}

/// The sessions phase: every user's conversations at once (the bar counts
/// users done); the write rate goes into the store's metrics too.
pub(crate) async fn conversations(
    store: &Store,
    users: &[UserId],
    sessions: usize,
    phases: &mut Phases<'_>,
) -> Result<Conversations, Error> {
    let phase = phases.start("sessions", templates::USERS, users.len());
    let bar = phase.bar();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in users.iter().enumerate() {
        tasks.spawn(converse(store.clone(), i, *id, sessions));
    }
    let (mut turns, mut finished) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        turns += done.map_err(|e| Error::join("demo task", e))??;
        finished += 1;
        bar.set(finished);
    }
    let sessions = users.len() * sessions;
    let ends = if sessions > 0 { users.len() } else { 0 };
    let writes = sessions + turns + ends;
    let detail = format!(
        "{} sessions / {} turns",
        grouped(sessions as u64),
        grouped(turns as u64)
    );
    let row = phases.end(phase, writes as u64, "writes", detail);
    let (seconds, writes_per_second) = (row.seconds, row.per_second);
    let rate = MetricSample::new("demo.writes_per_second", writes_per_second);
    store.metrics().record(rate).await?;
    Ok(Conversations {
        sessions,
        turns,
        writes,
        seconds,
        writes_per_second,
    })
}
