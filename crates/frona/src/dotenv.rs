//! The copies of the project's `.env` files that `frona run` shows the agent, every value
//! removed or replaced by its placeholder ([`frona_sandbox::dotenv`]): written to a private
//! directory of this run before the agent starts, removed when the run ends.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use frona_backends::Secret;
use frona_sandbox::EnvSnapshot;
use frona_sandbox::isolation::Plan;

use crate::failure::Failure;

/// The directory of this run's copies; removed on drop.
pub struct MaskedCopies {
    dir: Option<PathBuf>,
}

impl MaskedCopies {
    /// Writes a copy of each file in `plan.mask_files` and points the plan at it. A key that
    /// names a credential bound to hosts (`placeholders`, under `--net proxy`) gets its
    /// placeholder; every other value goes. A file frona cannot read stays hidden.
    pub fn write(
        env: &EnvSnapshot,
        plan: &mut Plan,
        placeholders: &[(String, Secret)],
    ) -> Result<Self, Failure> {
        if plan.mask_files.is_empty() {
            return Ok(Self { dir: None });
        }
        let dir = crate::dirs::session_dir(env, "masks")?;
        let placeholder = |key: &str| {
            placeholders
                .iter()
                .find(|(var, _)| var == key)
                .and_then(|(_, p)| std::str::from_utf8(p.expose()).ok().map(str::to_owned))
        };
        for (index, masked) in plan.mask_files.iter_mut().enumerate() {
            let Ok(text) = std::fs::read(&masked.path) else {
                continue;
            };
            let text = zeroize::Zeroizing::new(text);
            let copy = dir.join(format!("{index}.env"));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&copy)
                .map_err(|e| Failure::from_error(&e))?;
            std::io::Write::write_all(
                &mut file,
                frona_sandbox::dotenv::mask(&text, &placeholder).as_bytes(),
            )
            .map_err(|e| Failure::from_error(&e))?;
            masked.copy = copy;
        }
        Ok(Self { dir: Some(dir) })
    }
}

impl Drop for MaskedCopies {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
