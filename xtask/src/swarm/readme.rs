//! The README's first screen ("Run it on Swarm"), run as a new user would: each shell block
//! through `sh -e` where the test's client sits, with `docker` aimed at one node and nothing
//! changed but the placeholders (`<node>`, `<image>`) and, on nodes whose Docker socket is not
//! `/var/run/docker.sock`, the socket's source.
use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, ensure};
use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};

use super::{
    cluster::{Cluster, Node},
    docker,
};

/// The README the scenarios follow.
const README: &str = include_str!("../../../README.md");

/// The section a new user reads first.
const SECTION: &str = "Run it on Swarm";

/// The image standing in for the README's `<image>` (it answers like vfarcic/go-demo).
pub const DEMO_IMAGE: &str = "flowproxy-demo:latest";

/// How long one of the README's blocks may run.
const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The code of the README's first screen.
#[derive(Debug)]
pub struct FirstScreen {
    /// Its `sh` blocks, in order: deploy the proxy, expose a service, look.
    pub blocks: Vec<String>,
    /// The inline `docker service create ... --label com.df.notify=true ...` example.
    pub labelled: String,
}

impl FirstScreen {
    /// The README's first screen, which must have the three blocks and the label example.
    pub fn read() -> anyhow::Result<Self> {
        let screen = parse(README);
        ensure!(
            screen.blocks.len() == 3,
            "README.md's \"{SECTION}\" has {} sh blocks, not 3 (deploy, expose, look)",
            screen.blocks.len()
        );
        ensure!(
            !screen.labelled.is_empty(),
            "README.md's \"{SECTION}\" has no inline `docker service create` with com.df.notify"
        );
        Ok(screen)
    }

    /// The lines of the first block that make the token and its secret
    /// (`openssl rand ...`, `docker secret create ...`), for a Swarm that gets its proxies
    /// from the stack file instead.
    pub fn secret_lines(&self) -> String {
        self.blocks[0]
            .lines()
            .filter(|l| l.starts_with("openssl rand ") || l.starts_with("docker secret create "))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

fn parse(readme: &str) -> FirstScreen {
    let mut heading: Option<String> = None;
    let mut in_section = false;
    let mut code: Option<String> = None;
    let mut screen = FirstScreen {
        blocks: Vec::new(),
        labelled: String::new(),
    };
    for event in Parser::new(readme) {
        match event {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1 | HeadingLevel::H2,
                ..
            }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(HeadingLevel::H1 | HeadingLevel::H2)) => {
                in_section = heading.take().as_deref() == Some(SECTION);
            }
            Event::Text(text) if heading.is_some() || code.is_some() => {
                if let Some(buffer) = heading.as_mut().or(code.as_mut()) {
                    buffer.push_str(&text);
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang)))
                if in_section && &*lang == "sh" =>
            {
                code = Some(String::new());
            }
            Event::End(TagEnd::CodeBlock) => screen.blocks.extend(code.take()),
            // CommonMark turns the line ends of an inline code span into spaces.
            Event::Code(text)
                if in_section
                    && text.starts_with("docker service create ")
                    && text.contains("com.df.notify=true") =>
            {
                screen.labelled = text.to_string();
            }
            _ => {}
        }
    }
    screen
}

/// `script` with the README's placeholders filled in for `node`.
pub fn fill(script: &str, node: &Node) -> String {
    script
        .replace("<node>", &node.addr)
        .replace("<image>", DEMO_IMAGE)
        .replace(
            "source=/var/run/docker.sock,",
            &format!("source={},", node.socket),
        )
}

/// Where the README's commands run: the user's working directory, which keeps the token file
/// (`flowproxy_api_token`) the first block writes.
pub fn workdir() -> PathBuf {
    crate::shell::workspace_root().join("target/swarm-test/readme")
}

/// Runs `script` (filled in for `node`) with `sh -e` beside the client, in [`workdir`], with
/// `docker` on PATH aimed at `node`'s daemon; returns what it printed.
pub fn run(cluster: &dyn Cluster, node: &Node, script: &str) -> anyhow::Result<String> {
    let dir = workdir();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    write_docker_wrapper(&bin, node)?;
    let path = std::env::var("PATH").unwrap_or_default();
    let mut cmd: Command = cluster.shell();
    // A user would interrupt a command that hangs (a `docker service create` waiting for a
    // task that never converges); the test gives up after RUN_TIMEOUT.
    cmd.arg("-c")
        .arg(format!(
            "exec timeout -k 10 {} sh -ec \"$1\"",
            RUN_TIMEOUT.as_secs()
        ))
        .arg("sh")
        .arg(fill(script, node))
        .current_dir(&dir)
        .env("PATH", format!("{}:{path}", bin.display()));
    docker::capture(&mut cmd)
}

/// `bin/docker`: the docker CLI with `node`'s global options (what `DOCKER_HOST`, or
/// `eval $(docker-machine env node)`, does for a user).
fn write_docker_wrapper(bin: &std::path::Path, node: &Node) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let options: Vec<String> = node
        .docker
        .global_args()
        .iter()
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
        .collect();
    let wrapper = bin.join("docker");
    let program = docker::client();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' {} \"$@\"\n",
            program.display(),
            options.join(" ")
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_screen_has_the_deploy_expose_and_look_blocks() {
        let screen = FirstScreen::read().unwrap();
        let deploy = &screen.blocks[0];
        for production in [
            "docker service create --name proxy --mode global",
            "--secret flowproxy_api_token -e API_TOKEN_FILE=/run/secrets/flowproxy_api_token",
            "--update-parallelism 1 --update-order stop-first --update-failure-action rollback",
            "--mount type=bind,source=/var/run/docker.sock,",
            "flowproxy:latest",
        ] {
            assert!(deploy.contains(production), "{production} not in {deploy}");
        }
        assert!(screen.blocks[1].contains("/v1/docker-flow-proxy/reconfigure?"));
        assert!(screen.blocks[2].contains("/flowproxy stats"));
        assert!(screen.labelled.contains("--label com.df.servicePath=/demo"));
        assert!(!screen.labelled.contains('\n'), "{}", screen.labelled);
        let secret = screen.secret_lines();
        assert_eq!(secret.lines().count(), 2, "{secret}");
    }

    #[test]
    fn only_the_named_section_is_read() {
        let text = "# t\n```sh\nno\n```\n## Run it on Swarm\n```sh\nyes\n```\n```yaml\nno\n```\n\
                    `docker service create --name a --label com.df.notify=true\nx`\n## Next\n\
                    ```sh\nno\n```\n";
        let screen = parse(text);
        assert_eq!(screen.blocks, ["yes\n"]);
        assert_eq!(
            screen.labelled,
            "docker service create --name a --label com.df.notify=true x"
        );
    }

    #[test]
    fn placeholders_are_filled() {
        let node = Node {
            name: "node-1".into(),
            addr: "198.18.0.2".into(),
            docker: docker::Docker::from_env(),
            socket: "/run/x.sock".into(),
        };
        assert_eq!(
            fill(
                "curl http://<node>/a <image> source=/var/run/docker.sock,target=/x",
                &node
            ),
            "curl http://198.18.0.2/a flowproxy-demo:latest source=/run/x.sock,target=/x"
        );
    }
}
