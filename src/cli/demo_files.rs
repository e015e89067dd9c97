//! The file phase of `bvstore demo`: synthetic speech clips (16 kHz PCM
//! WAV made in code) and random-byte "Opus" clips stored for the demo's
//! users, then some read back whole and by range.

use std::time::Instant;

use bharatvoice_store::{Actor, Error, PutOptions, Store, UserId};
use serde::Serialize;

/// What the file phase did.
#[derive(Debug, Serialize)]
pub(crate) struct FilePhase {
    pub(crate) wav_clips: usize,
    pub(crate) opus_clips: usize,
    pub(crate) plain_bytes: u64,
    pub(crate) stored_bytes: u64,
    pub(crate) wav_compression_ratio: f64,
    pub(crate) put_seconds: f64,
    pub(crate) put_mb_per_second: f64,
    pub(crate) read_back: usize,
    pub(crate) range_reads: usize,
    pub(crate) read_mb_per_second: f64,
}

/// A WAV file of `seconds` of speech-like 16 kHz mono PCM: a voiced tone
/// with drifting pitch, syllable-rate loudness and a little noise.
pub(crate) fn speech_wav(seconds: f64, seed: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = (seconds * f64::from(rate)) as u32;
    let mut pcm = Vec::with_capacity(n as usize * 2);
    let mut noise = seed.wrapping_mul(2_654_435_761) | 1;
    let base = 110.0 + f64::from(seed % 7) * 20.0;
    for i in 0..n {
        let t = f64::from(i) / f64::from(rate);
        let pitch = base * (1.0 + 0.15 * (t * 1.3).sin());
        let syllable = (t * 4.0 * std::f64::consts::PI).sin().abs();
        let phase = t * pitch * std::f64::consts::TAU;
        let voiced = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let v = 6000.0 * syllable * voiced + f64::from(noise % 200) - 100.0;
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

pub(crate) async fn run(
    store: &Store,
    users: &[UserId],
    wav_clips: usize,
    opus_clips: usize,
) -> Result<FilePhase, Error> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..wav_clips + opus_clips {
        let Some(&owner) = users.get(i % users.len().max(1)) else {
            break;
        };
        let store = store.clone();
        tasks.spawn(async move {
            let (bytes, options) = if i < wav_clips {
                let secs = 1.0 + (i % 4) as f64 * 0.5;
                (
                    speech_wav(secs, i as u32),
                    PutOptions {
                        name: Some(format!("utterance-{i}.wav")),
                        ..PutOptions::content_type("audio/wav")
                    },
                )
            } else {
                (
                    random_clip(8_000 + (i % 5) * 3_000, i as u64),
                    PutOptions {
                        name: Some(format!("reply-{i}.opus")),
                        ..PutOptions::content_type("audio/ogg")
                    },
                )
            };
            let f = store
                .files()
                .put_bytes(Actor::User(owner), owner, &bytes, options)
                .await?;
            Ok::<_, Error>((f, i < wav_clips))
        });
    }
    let mut stored = Vec::new();
    let (mut plain, mut disk, mut wav_plain, mut wav_disk) = (0u64, 0u64, 0u64, 0u64);
    while let Some(done) = tasks.join_next().await {
        let (f, is_wav) = done.map_err(|e| Error::join("demo task", e))??;
        plain += f.plain_bytes;
        disk += f.stored_bytes;
        if is_wav {
            wav_plain += f.plain_bytes;
            wav_disk += f.stored_bytes;
        }
        stored.push(f);
    }
    let put_seconds = started.elapsed().as_secs_f64();
    let read_started = Instant::now();
    let mut read_bytes = 0u64;
    let mut range_reads = 0;
    let sample: Vec<_> = stored.iter().step_by(7).collect();
    for f in &sample {
        let me = Actor::User(f.owner);
        read_bytes += store.files().read(me, f.id).await?.len() as u64;
        // Seek into the middle of the clip, as a player would.
        read_bytes += store
            .files()
            .read_range(me, f.id, f.plain_bytes / 2, 4096)
            .await?
            .len() as u64;
        range_reads += 1;
    }
    let read_seconds = read_started.elapsed().as_secs_f64().max(1e-9);
    Ok(FilePhase {
        wav_clips,
        opus_clips,
        plain_bytes: plain,
        stored_bytes: disk,
        wav_compression_ratio: if wav_disk > 0 {
            wav_plain as f64 / wav_disk as f64
        } else {
            0.0
        },
        put_seconds,
        put_mb_per_second: plain as f64 / 1e6 / put_seconds.max(1e-9),
        read_back: sample.len(),
        range_reads,
        read_mb_per_second: read_bytes as f64 / 1e6 / read_seconds,
    })
}
