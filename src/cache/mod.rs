//! Seam for the tiered cache (moka in memory, `cache.redb` on disk, tag
//! versions). It will own `cache.redb`; nothing else opens that file.
