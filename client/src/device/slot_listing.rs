//! Test support: what lies in an install slot's directory (the install tests check that no
//! temporary file is left beside the image).

/// The file names in the directory of `path`.
pub(crate) fn files_beside(path: &std::path::Path) -> Vec<String> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}
