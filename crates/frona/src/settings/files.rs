//! Finding and reading the three config files, with the ownership and permission checks that
//! keep another user (or, for the project file, a symbolic link) from choosing what frona reads.

use std::fs::Metadata;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// A config file bigger than this is refused rather than parsed.
const MAX_SIZE: u64 = 1 << 20;

/// Where the project file lives, relative to the project directory.
pub const PROJECT_FILE: &str = ".frona/config.yaml";

/// Which layer a file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    System,
    User,
    Project,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::System => "system",
            Layer::User => "user",
            Layer::Project => "project",
        }
    }
}

/// The project directory for `cwd`: the nearest of `cwd` and its ancestors holding
/// `.frona/config.yaml`, searched up to (not including) the home directory and `/`, where
/// frona's user and system files are the ones that apply.
pub fn find_project(cwd: &Path, home: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .take_while(|dir| *dir != home && dir.parent().is_some())
        .find(|dir| std::fs::symlink_metadata(dir.join(PROJECT_FILE)).is_ok())
        .map(Path::to_path_buf)
}

/// Reads a config file of `layer`; `None` when a system or user file does not exist. Every
/// file must be owned by the invoking user (or, for system and user files, root) and not be
/// writable by group or others; the project file and its `.frona` directory must moreover be
/// the invoking user's own and not symbolic links.
pub fn read(path: &Path, layer: Layer) -> Result<Option<String>, Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if layer == Layer::Project {
        if let Some(dir) = path.parent() {
            let meta = std::fs::symlink_metadata(dir).map_err(|e| io_failure(dir, &e))?;
            if meta.file_type().is_symlink() || !meta.is_dir() {
                return Err(refuse(
                    dir,
                    "is not a directory (a symbolic link is refused)",
                ));
            }
            check(dir, &meta, layer)?;
        }
        // A link could make frona parse, and quote in its errors, any file the user can read.
        options.custom_flags(nix::libc::O_NOFOLLOW);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && layer != Layer::Project => {
            return Ok(None);
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse(path, "is a symbolic link"));
        }
        Err(e) => return Err(io_failure(path, &e)),
    };
    // The checks are on the open file, so nothing can be swapped in between.
    let meta = file.metadata().map_err(|e| io_failure(path, &e))?;
    if !meta.is_file() {
        return Err(refuse(path, "is not a regular file"));
    }
    check(path, &meta, layer)?;
    let mut text = String::new();
    file.take(MAX_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(|e| io_failure(path, &e))?;
    if text.len() as u64 > MAX_SIZE {
        return Err(refuse(path, "is larger than 1 MiB"));
    }
    Ok(Some(text))
}

fn check(path: &Path, meta: &Metadata, layer: Layer) -> Result<(), Failure> {
    let uid = nix::unistd::geteuid().as_raw();
    let owner_ok = meta.uid() == uid || (layer != Layer::Project && meta.uid() == 0);
    if !owner_ok {
        return Err(Failure::new(
            125,
            format!(
                "{} config `{}` is owned by uid {}, not by you (uid {uid})",
                layer.name(),
                path.display(),
                meta.uid()
            ),
        )
        .with_hint(match layer {
            Layer::Project => "frona reads a project file only if it is yours; remove it, or run frona elsewhere",
            _ => "frona reads a config file only if it is yours or root's; fix its owner or remove it",
        }));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Failure::new(
            125,
            format!(
                "{} config `{}` is writable by other users",
                layer.name(),
                path.display()
            ),
        )
        .with_hint(format!("`chmod go-w {}`", path.display())));
    }
    Ok(())
}

fn refuse(path: &Path, why: &str) -> Failure {
    Failure::new(125, format!("config `{}` {why}", path.display()))
        .with_hint("frona refuses it rather than guess; replace it with a plain file of yours")
}

fn io_failure(path: &Path, e: &std::io::Error) -> Failure {
    Failure::new(125, format!("cannot read config `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("frona-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn project_is_the_nearest_ancestor_below_home() {
        let root = tempdir("find");
        let home = root.join("home");
        let project = home.join("src/app");
        std::fs::create_dir_all(project.join("deep/er")).unwrap();
        std::fs::create_dir_all(project.join(".frona")).unwrap();
        std::fs::write(project.join(PROJECT_FILE), "").unwrap();
        assert_eq!(
            find_project(&project.join("deep/er"), &home),
            Some(project.clone())
        );
        assert_eq!(find_project(&project, &home), Some(project.clone()));
        // The home directory's own .frona is not a project file.
        std::fs::create_dir_all(home.join(".frona")).unwrap();
        std::fs::write(home.join(PROJECT_FILE), "").unwrap();
        assert_eq!(find_project(&home.join("src"), &home), None);
        assert_eq!(find_project(&home, &home), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn project_file_checks() {
        let root = tempdir("read");
        std::fs::create_dir_all(root.join(".frona")).unwrap();
        let path = root.join(PROJECT_FILE);
        std::fs::write(&path, "run: {}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            read(&path, Layer::Project).unwrap().as_deref(),
            Some("run: {}\n")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = read(&path, Layer::Project).unwrap_err();
        assert!(err.message.contains("writable by other users"), "{err:?}");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let err = read(&path, Layer::Project).unwrap_err();
        assert!(err.message.contains("symbolic link"), "{err:?}");
        // A missing user file is no configuration; a missing project file is an error (it was
        // found a moment ago).
        assert!(
            read(&root.join("none.yaml"), Layer::User)
                .unwrap()
                .is_none()
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
