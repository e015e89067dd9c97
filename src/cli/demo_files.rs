//! The file phases of `bvstore demo`: synthetic speech clips (16 kHz PCM
//! WAV made in code) and random-byte "Opus" clips stored for the demo's
//! users, some of them stored a second time by the same user (as an app
//! re-sends a recording after a dropped connection), then a sample read
//! back whole and by range. The store's own figures say what compression
//! and deduplication saved.

use std::collections::BTreeMap;

use bharatvoice_store::{Actor, AudioFile, Codec, Error, PutOptions, Store, UserId};
use serde::Serialize;

use super::demo_phase::{Phases, templates};
use super::demo_summary::grouped;
use super::human::size;

/// Every this many speech clips, one is stored again by its owner.
const REPEAT_EVERY: usize = 8;

/// What the file phase stored.
#[derive(Debug, Serialize)]
pub(crate) struct FilePhase {
    pub(crate) wav_clips: usize,
    pub(crate) opus_clips: usize,
    /// Speech clips stored a second time by the same owner.
    pub(crate) repeated_clips: usize,
    pub(crate) plain_bytes: u64,
    pub(crate) stored_bytes: u64,
    pub(crate) wav_compression_ratio: f64,
    /// This run's files by content type, as the store recorded them.
    pub(crate) by_type: Vec<TypeFigures>,
    /// Stored bytes deduplication saved during the phase: the store's
    /// `dedup_saved_bytes` after it, less before.
    pub(crate) dedup_saved_bytes: u64,
    /// Blobs the phase added (fewer than its files: the repeats added none).
    pub(crate) blobs_added: u64,
}

/// This run's files of one content type.
#[derive(Debug, Default, Serialize)]
pub(crate) struct TypeFigures {
    pub(crate) content_type: String,
    pub(crate) files: u64,
    pub(crate) plain_bytes: u64,
    pub(crate) stored_bytes: u64,
    /// Files stored without compression (judged not to shrink).
    pub(crate) raw_files: u64,
}

/// What the read-back phase read.
#[derive(Debug, Serialize)]
pub(crate) struct ReadBack {
    pub(crate) files: usize,
    pub(crate) range_reads: usize,
    pub(crate) bytes: u64,
}

/// Near-silence before an utterance (the wake word's end to the first
/// syllable) and after it (what the end-pointer waits for), in seconds.
const LEAD_IN: f64 = 0.15;
const TAIL: f64 = 0.35;

/// A WAV file of `seconds` of speech-like 16 kHz mono PCM between a short
/// lead-in and tail of room noise: a voiced tone with drifting pitch,
/// syllable-rate loudness and a little noise.
pub(crate) fn speech_wav(seconds: f64, seed: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = ((LEAD_IN + seconds + TAIL) * f64::from(rate)) as u32;
    let mut pcm = Vec::with_capacity(n as usize * 2);
    let mut noise = seed.wrapping_mul(2_654_435_761) | 1;
    let base = 110.0 + f64::from(seed % 7) * 20.0;
    for i in 0..n {
        let t = f64::from(i) / f64::from(rate);
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let v = if t < LEAD_IN || t > LEAD_IN + seconds {
            f64::from(noise % 17) - 8.0
        } else {
            let pitch = base * (1.0 + 0.15 * (t * 1.3).sin());
            let syllable = ((t - LEAD_IN) * 4.0 * std::f64::consts::PI).sin().abs();
            let phase = t * pitch * std::f64::consts::TAU;
            let voiced = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
            6000.0 * syllable * voiced + f64::from(noise % 200) - 100.0
        };
        pcm.extend_from_slice(&(v.clamp(-32768.0, 32767.0) as i16).to_le_bytes());
    }
    let mut wav = Vec::with_capacity(44 + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&pcm);
    wav
}

fn random_clip(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"OggS");
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The `i`th clip: its bytes and how it is stored.
fn clip(i: usize, wav_clips: usize) -> (Vec<u8>, PutOptions) {
    if i < wav_clips {
        let secs = 1.0 + (i % 4) as f64 * 0.5;
        let options = PutOptions {
            name: Some(format!("utterance-{i}.wav")),
            ..PutOptions::content_type("audio/wav")
        };
        (speech_wav(secs, i as u32), options)
    } else {
        let options = PutOptions {
            name: Some(format!("reply-{i}.opus")),
            ..PutOptions::content_type("audio/ogg")
        };
        (random_clip(8_000 + (i % 5) * 3_000, i as u64), options)
    }
}

/// Stores clip `i` for `owner`, and a second time if it is one of the
/// repeated ones.
async fn store_clip(
    store: Store,
    owner: UserId,
    i: usize,
    wav_clips: usize,
) -> Result<Vec<AudioFile>, Error> {
    let (bytes, options) = clip(i, wav_clips);
    let me = Actor::User(owner);
    let mut files = vec![
        store
            .files()
            .put_bytes(me, owner, &bytes, options.clone())
            .await?,
    ];
    if i < wav_clips && i.is_multiple_of(REPEAT_EVERY) {
        files.push(store.files().put_bytes(me, owner, &bytes, options).await?);
    }
    Ok(files)
}

/// The files phase: `wav_clips` speech clips and `opus_clips` "Opus"
/// clips spread over `users` (who allow audio storage); the bar counts
/// clips. Returns what it stored, with the files themselves.
pub(crate) async fn run(
    store: &Store,
    users: &[UserId],
    wav_clips: usize,
    opus_clips: usize,
    phases: &mut Phases<'_>,
) -> Result<(FilePhase, Vec<AudioFile>), Error> {
    let phase = phases.start("files", templates::CLIPS, wav_clips + opus_clips);
    let bar = phase.bar();
    let before = store.stats().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..wav_clips + opus_clips {
        let Some(&owner) = users.get(i % users.len().max(1)) else {
            break;
        };
        tasks.spawn(store_clip(store.clone(), owner, i, wav_clips));
    }
    let mut stored = Vec::new();
    let mut by_type: BTreeMap<String, TypeFigures> = BTreeMap::new();
    let mut clips = 0;
    while let Some(done) = tasks.join_next().await {
        for f in done.map_err(|e| Error::join("demo task", e))?? {
            let t = by_type.entry(f.content_type.clone()).or_default();
            t.files += 1;
            t.plain_bytes += f.plain_bytes;
            t.stored_bytes += f.stored_bytes;
            t.raw_files += u64::from(f.codec == Codec::None);
            stored.push(f);
        }
        clips += 1;
        bar.set(clips);
    }
    let after = store.stats().await?;
    let by_type: Vec<TypeFigures> = by_type
        .into_iter()
        .map(|(content_type, t)| TypeFigures { content_type, ..t })
        .collect();
    let wav = by_type.iter().find(|t| t.content_type == "audio/wav");
    let figures = FilePhase {
        wav_clips: wav_clips.min(clips as usize),
        opus_clips: (clips as usize).saturating_sub(wav_clips),
        repeated_clips: stored.len() - clips as usize,
        plain_bytes: by_type.iter().map(|t| t.plain_bytes).sum(),
        stored_bytes: by_type.iter().map(|t| t.stored_bytes).sum(),
        wav_compression_ratio: wav
            .map_or(0.0, |t| t.plain_bytes as f64 / t.stored_bytes.max(1) as f64),
        by_type,
        dedup_saved_bytes: after
            .dedup_saved_bytes
            .saturating_sub(before.dedup_saved_bytes),
        blobs_added: after.blobs.saturating_sub(before.blobs),
    };
    let detail = format!(
        "{} clips + {} again, {}",
        grouped(clips),
        figures.repeated_clips,
        size(figures.plain_bytes)
    );
    phases.end(phase, figures.plain_bytes, "bytes", detail);
    Ok((figures, stored))
}

/// The read-back phase: every seventh file read whole, then 4 KiB from
/// its middle, as a player seeking would; the bar counts files.
pub(crate) async fn read_back(
    store: &Store,
    files: &[AudioFile],
    phases: &mut Phases<'_>,
) -> Result<ReadBack, Error> {
    let phase = phases.start("read-back", templates::FILES, files.len().div_ceil(7));
    let bar = phase.bar();
    let mut read = ReadBack {
        files: 0,
        range_reads: 0,
        bytes: 0,
    };
    for f in files.iter().step_by(7) {
        let me = Actor::User(f.owner);
        read.bytes += store.files().read(me, f.id).await?.len() as u64;
        read.files += 1;
        read.bytes += store
            .files()
            .read_range(me, f.id, f.plain_bytes / 2, 4096)
            .await?
            .len() as u64;
        read.range_reads += 1;
        bar.set(read.files as u64);
    }
    let detail = format!("{} files + {} range reads", read.files, read.range_reads);
    phases.end(phase, read.bytes, "bytes", detail);
    Ok(read)
}
