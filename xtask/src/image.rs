//! `cargo xtask image`: the `flowproxy:latest` and `flowproxy-demo:latest` images, each `FROM
//! scratch` around one static binary, so nothing is pulled. The binaries are glibc executables
//! linked statically (`+crt-static`): no extra Rust target to download and glibc's allocator,
//! which the benchmarks were measured with. The BPF object is embedded in `flowproxy` by its
//! build script, so the image needs no other file.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::{
    build,
    shell::{cargo, run, workspace_root},
    swarm::docker::Docker,
};

/// The target the static binaries are built for; with `--target`, RUSTFLAGS reach only the
/// binaries, not build scripts and proc macros (which cannot be static).
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// One image: its tag, the binary it wraps, the ports it exposes and its health check.
#[derive(Debug, Clone, Copy)]
pub struct Image {
    /// `name:tag` as `docker service create` refers to it.
    pub tag: &'static str,
    /// The binary (and cargo package) inside it, run as the entry point.
    pub binary: &'static str,
    ports: &'static str,
    /// The binary's arguments that check it (exec form: `FROM scratch` has no shell).
    healthcheck: Option<&'static str>,
}

/// How often Docker checks the proxy, how long a check may take, how long a start may take
/// before failed checks count (a replica with peers answers 503 while it takes their
/// configuration, up to BOOTSTRAP_TIMEOUT, 15 s), and how many failures make it unhealthy.
pub const HEALTHCHECK_OPTIONS: &str = "--interval=5s --timeout=3s --start-period=20s --retries=3";

/// The proxy and the article's go-demo stand-in.
pub const IMAGES: [Image; 2] = [
    Image {
        tag: "flowproxy:latest",
        binary: "flowproxy",
        ports: "80 443 8080",
        healthcheck: Some("healthcheck"),
    },
    Image {
        tag: "flowproxy-demo:latest",
        binary: "flowproxy-demo",
        ports: "8080",
        healthcheck: None,
    },
];

/// Builds the BPF object, then both binaries statically in release mode.
pub fn build_static_binaries() -> anyhow::Result<()> {
    build::build_ebpf()?;
    let object = build::ebpf_object();
    if fs::metadata(&object).map_or(0, |m| m.len()) == 0 {
        bail!(
            "no BPF object at {}: flowproxy in the image could only run with --no-ebpf",
            object.display()
        );
    }
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", TARGET]);
    for image in IMAGES {
        cmd.args(["-p", image.binary]);
    }
    run(cmd.env("RUSTFLAGS", "-C target-feature=+crt-static"))
}

/// Writes one build context per image under `target/image/` (Dockerfile + binary).
pub fn write_contexts() -> anyhow::Result<Vec<(Image, PathBuf)>> {
    let release = workspace_root().join("target").join(TARGET).join("release");
    IMAGES
        .iter()
        .map(|image| {
            let dir = workspace_root().join("target/image").join(image.binary);
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let binary = release.join(image.binary);
            fs::copy(&binary, dir.join(image.binary)).with_context(|| {
                format!(
                    "copying {} (built by `cargo xtask image`)",
                    binary.display()
                )
            })?;
            fs::write(dir.join("Dockerfile"), dockerfile(image))?;
            Ok((*image, dir))
        })
        .collect()
}

fn dockerfile(image: &Image) -> String {
    let mut file = format!(
        "FROM scratch\nCOPY {bin} /{bin}\nEXPOSE {ports}\nENTRYPOINT [\"/{bin}\"]\n",
        bin = image.binary,
        ports = image.ports
    );
    if let Some(args) = image.healthcheck {
        let argv: Vec<String> = std::iter::once(format!("/{}", image.binary))
            .chain(args.split_whitespace().map(str::to_owned))
            .map(|a| format!("\"{a}\""))
            .collect();
        file.push_str(&format!(
            "HEALTHCHECK {HEALTHCHECK_OPTIONS} CMD [{}]\n",
            argv.join(",")
        ));
    }
    file
}

/// Builds every image from its context with `docker` (the classic builder: it needs no
/// BuildKit and, `FROM scratch`, pulls nothing).
pub fn build_images(docker: &Docker, contexts: &[(Image, PathBuf)]) -> anyhow::Result<()> {
    for (image, dir) in contexts {
        build_one(docker, image, dir)?;
    }
    Ok(())
}

fn build_one(docker: &Docker, image: &Image, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = docker.command();
    cmd.args(["build", "--quiet", "--tag", image.tag])
        .arg(dir)
        .env("DOCKER_BUILDKIT", "0");
    run(&mut cmd).with_context(|| format!("building {}", image.tag))
}

/// `cargo xtask image`: the binaries, then both images in the Docker daemon `docker` reaches
/// (`DOCKER_HOST` or the default socket).
pub fn image() -> anyhow::Result<()> {
    crate::swarm::install::docker()?;
    build_static_binaries()?;
    let contexts = write_contexts()?;
    let docker = Docker::from_env();
    if docker
        .capture(&["version", "--format", "{{.Server.Version}}"])
        .is_err()
    {
        bail!(
            "no Docker daemon answers: start dockerd (or set DOCKER_HOST), then run `cargo xtask image` again; the build contexts are in {}",
            workspace_root().join("target/image").display()
        );
    }
    build_images(&docker, &contexts)?;
    for (image, _) in &contexts {
        eprintln!("image: {} built", image.tag);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfiles_start_from_scratch_and_run_the_binary() {
        let file = dockerfile(&IMAGES[0]);
        assert!(file.starts_with("FROM scratch\n"), "{file}");
        assert!(file.contains("COPY flowproxy /flowproxy\n"), "{file}");
        assert!(file.contains("ENTRYPOINT [\"/flowproxy\"]"), "{file}");
        assert!(file.contains("EXPOSE 80 443 8080"), "{file}");
        assert!(
            file.contains(
                "HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
                 CMD [\"/flowproxy\",\"healthcheck\"]\n"
            ),
            "{file}"
        );
        let demo = dockerfile(&IMAGES[1]);
        assert!(!demo.contains("HEALTHCHECK"), "{demo}");
    }
}
