//! `weir plugin new`: scaffolds a plugin crate (Cargo.toml, toolchain file,
//! a working example plugin with unit tests) that builds and passes its tests
//! out of the box.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plugin's name: lowercase letters, digits and dashes, e.g. `mask-emails`.
    name: String,
    /// Directory to create the crate in (default: ./NAME).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The weir-sdk crate to depend on (default: the SDK this binary was built from).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const TOOLCHAIN: &str = include_str!("templates/rust-toolchain.toml.tmpl");

pub fn run(args: Args) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = args
        .sdk
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"));
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the SDK is not at {}; pass --sdk PATH/TO/weir/sdk",
            sdk.display()
        )
    })?;
    let type_name: String = args
        .name
        .split('-')
        .map(|part| part[..1].to_ascii_uppercase() + &part[1..])
        .collect();
    let fill = |template: &str| {
        template
            .replace("{{name}}", &args.name)
            .replace("{{type_name}}", &type_name)
            .replace("{{sdk_path}}", &sdk.display().to_string())
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for (file, contents) in [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        ("src/lib.rs", fill(LIB_RS)),
        (".gitignore", "/target\n".to_string()),
    ] {
        std::fs::write(dir.join(file), contents)
            .with_context(|| format!("cannot write {}", dir.join(file).display()))?;
    }
    println!("Created plugin `{}` in {}", args.name, dir.display());
    println!(
        "  cd {} && cargo test        # unit tests, natively",
        dir.display()
    );
    println!(
        "  weir plugin build {}        # -> target/wasm32-wasip2/release/{}.wasm",
        dir.display(),
        args.name.replace('-', "_")
    );
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        bail!(
            "`{name}` is not a valid plugin name: use lowercase letters, digits and single dashes, starting with a letter"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("mask-emails2").is_ok());
        for bad in ["", "Mask", "2x", "a_b", "a--b", "a-"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
