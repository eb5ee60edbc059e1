//! The flags of the run settings, made from the table ([`super::defs::RUN`]): a command
//! flattens the [`Flags`] of the groups it takes, and gets the layer of flags given on the
//! command line (clap's defaults, which `--help` shows, are not given).

use std::marker::PhantomData;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use super::defs::RUN;
use super::layer::RunLayer;
use super::setting::{Group, Setting};

/// Which groups of flags a command takes.
pub trait Groups: std::fmt::Debug + Send + Sync + 'static {
    const GROUPS: &'static [Group];
}

/// `frona env check`: how the environment is built.
#[derive(Debug)]
pub struct EnvFlags;

impl Groups for EnvFlags {
    const GROUPS: &'static [Group] = &[Group::Env];
}

/// `frona doctor`: how the agent is isolated.
#[derive(Debug)]
pub struct IsolationFlags;

impl Groups for IsolationFlags {
    const GROUPS: &'static [Group] = &[Group::Isolation];
}

/// What `frona run` and `frona config show` share.
#[derive(Debug)]
pub struct SharedFlags;

impl Groups for SharedFlags {
    const GROUPS: &'static [Group] = &[Group::Env, Group::Isolation, Group::Run];
}

/// `frona run`'s own (`--aws-credential`).
#[derive(Debug)]
pub struct RunOnlyFlags;

impl Groups for RunOnlyFlags {
    const GROUPS: &'static [Group] = &[Group::RunOnly];
}

/// The flags of groups `G` given on the command line (boxed: a layer is large, and clap's
/// commands are an enum).
#[derive(Debug)]
pub struct Flags<G> {
    pub layer: Box<RunLayer>,
    groups: PhantomData<G>,
}

impl<G> Default for Flags<G> {
    fn default() -> Self {
        Self {
            layer: Box::default(),
            groups: PhantomData,
        }
    }
}

impl<G: Groups> Flags<G> {
    fn defs() -> impl Iterator<Item = &'static dyn Setting> {
        RUN.iter()
            .copied()
            .filter(|def| def.flag().is_some_and(|f| G::GROUPS.contains(&f.group)))
    }
}

impl<G: Groups> FromArgMatches for Flags<G> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for def in Self::defs() {
            def.set_from_matches(matches, &mut self.layer);
        }
        Ok(())
    }
}

impl<G: Groups> Args for Flags<G> {
    fn augment_args(mut cmd: Command) -> Command {
        for arg in Self::defs().filter_map(|def| def.arg()) {
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
