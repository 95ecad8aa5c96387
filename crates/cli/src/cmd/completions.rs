//! `netslice completions SHELL` and `netslice man DIR`: shell completions
//! (`clap_complete`) and man pages (`clap_mangen`) made from the command
//! definitions themselves, so they never disagree with `--help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

/// `netslice completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `netslice man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write `netslice.1` and one page per subcommand into
    /// (`netslice-slice-apply.1`, ...).
    pub dir: PathBuf,
}

/// Prints the completion script of a shell.
pub fn completions(a: CompletionsArgs, mut cmd: clap::Command) -> Result<ExitCode> {
    clap_complete::generate(a.shell, &mut cmd, "netslice", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

fn write_page(cmd: &clap::Command, name: &str, dir: &Path, written: &mut usize) -> Result<()> {
    let cmd = cmd.clone().name(name.to_owned());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf).with_context(|| format!("rendering {name}"))?;
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// Writes the man pages.
pub fn man(a: ManArgs, mut cmd: clap::Command) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    cmd.build();
    let mut written = 0;
    write_page(&cmd, "netslice", &a.dir, &mut written)?;
    note!("{written} man pages in {} (`man -l {}/netslice.1`)", a.dir.display(), a.dir.display());
    Ok(ExitCode::SUCCESS)
}
