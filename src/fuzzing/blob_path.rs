//! The `blob_path` target: any bytes as a path the blob directory's watch
//! hears of (inotify reports whatever anyone creates under `blobs/`, so
//! the names are anyone's). The layout's parser must never panic, must
//! name a blob only for the very path where the layout keeps it, and a
//! layout directory only for the root and its two levels of lower-case
//! hex directories.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::blob::backend::local::LocalDir;

const ROOT: &str = "/data/store/blobs";

/// The bytes as a path, both as they are and joined to the root: 1 if
/// either named a blob, else 2 if either named a layout directory, else 0.
pub fn blob_path(data: &[u8]) -> usize {
    let root = PathBuf::from(ROOT);
    let local = LocalDir::new(root.clone());
    let raw = Path::new(std::ffi::OsStr::from_bytes(data));
    let mut found = 0;
    for path in [raw.to_path_buf(), root.join(raw)] {
        if let Some(address) = local.address_at(&path) {
            assert_eq!(local.path_of(address), path, "the blob's own path");
            assert!(!local.is_layout_dir(&path), "a blob is not a directory");
            found = 1;
        } else if local.is_layout_dir(&path) {
            let rest = path
                .strip_prefix(&root)
                .expect("a layout directory is under the root");
            let names: Vec<_> = rest.components().collect();
            assert!(names.len() <= 2, "{path:?}");
            for c in names {
                let Component::Normal(n) = c else {
                    panic!("{path:?}: not a plain name")
                };
                let n = n.as_bytes();
                assert!(
                    n.len() == 2 && n.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                    "{path:?}"
                );
            }
            if found == 0 {
                found = 2;
            }
        }
    }
    found
}

/// Seeds: a blob's path (absolute and relative), the layout directories,
/// and paths that look like them but are not.
pub fn sample_blob_paths() -> Vec<(&'static str, Vec<u8>)> {
    let hex = "ab".repeat(32);
    let blob = format!("ab/ab/{hex}");
    vec![
        ("blob", blob.clone().into_bytes()),
        ("blob_absolute", format!("{ROOT}/{blob}").into_bytes()),
        (
            "blob_doubled_slashes",
            format!("ab//ab/./{hex}").into_bytes(),
        ),
        ("dir", b"ab/cd".to_vec()),
        ("root", ROOT.as_bytes().to_vec()),
        (
            "damaged_upper_case",
            format!("AB/AB/{}", hex.to_uppercase()).into_bytes(),
        ),
        ("damaged_wrong_dir", format!("ab/cd/{hex}").into_bytes()),
        (
            "damaged_parent",
            format!("../blobs/ab/ab/{hex}").into_bytes(),
        ),
        (
            "damaged_temporary",
            format!("ab/ab/{hex}.part").into_bytes(),
        ),
        ("damaged_not_utf8", b"ab/\xff\xfe/x".to_vec()),
        ("damaged_deep", format!("ab/ab/{hex}/ab").into_bytes()),
    ]
}
