//! Stored text decoded with a vectorised UTF-8 check.
//!
//! Why: a session's turns are the bulk of a session read, and in Indic
//! scripts every character is several bytes, which the standard library's
//! UTF-8 check walks one byte at a time: it was a quarter of a read of a
//! 16-turn Devanagari context. `simdutf8` checks the same bytes many at a
//! time and refuses exactly what the standard check refuses.
//!
//! The wire format is unchanged: postcard writes a string and a byte
//! string alike (a varint length, then the bytes), so a field decoded with
//! [`deserialize`] reads what `String`'s own encoding wrote, and is
//! written by it (`#[serde(deserialize_with = "text::deserialize")]`).

use serde::de::{Deserializer, Error, Visitor};

/// Decodes a string field, checking its UTF-8 with `simdutf8`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_bytes(Text)
}

struct Text;

impl Text {
    fn checked<E: Error>(bytes: &[u8]) -> Result<String, E> {
        simdutf8::basic::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| E::custom("text is not valid UTF-8"))
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UTF-8 text")
    }
    fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<String, E> {
        Self::checked(v)
    }
    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<String, E> {
        Self::checked(v)
    }
    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<String, E> {
        String::from_utf8(v).map_err(|_| E::custom("text is not valid UTF-8"))
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Plain {
        a: String,
        n: u32,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Fast {
        #[serde(deserialize_with = "super::deserialize")]
        a: String,
        n: u32,
    }

    #[test]
    fn reads_what_a_string_wrote_and_refuses_what_it_refuses() {
        for text in ["", "ascii only", "कल सुबह मुंबई में मौसम", "தமிழ் 🎙️ ਪੰਜਾਬੀ"]
        {
            let plain = postcard::to_stdvec(&Plain {
                a: text.into(),
                n: 7,
            })
            .unwrap();
            let fast = postcard::to_stdvec(&Fast {
                a: text.into(),
                n: 7,
            })
            .unwrap();
            assert_eq!(plain, fast, "the same bytes on disk");
            let back: Fast = postcard::from_bytes(&plain).unwrap();
            assert_eq!(back.a, text);
            assert_eq!(back.n, 7);
        }
        // Invalid UTF-8: a lone continuation byte, a truncated sequence,
        // an overlong encoding, a surrogate. Both decoders refuse each.
        for bad in [
            &[0x80][..],
            &[0xe0, 0xa4],
            &[0xc0, 0x80],
            &[0xed, 0xa0, 0x80],
        ] {
            let mut bytes = vec![bad.len() as u8];
            bytes.extend_from_slice(bad);
            bytes.push(7);
            assert!(postcard::from_bytes::<Plain>(&bytes).is_err());
            assert!(postcard::from_bytes::<Fast>(&bytes).is_err(), "{bad:?}");
        }
        // A length past the end is refused, not read past.
        assert!(postcard::from_bytes::<Fast>(&[9, b'a', 7]).is_err());
    }
}
